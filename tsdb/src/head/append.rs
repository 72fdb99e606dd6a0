//! Appending to a shard's head: series lookup or creation, then samples.

use super::{Head, MemSeries};
use crate::{Labels, Sample, is_stale_nan};

/// What an append did. Rejections are per sample: the rest is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendStats {
    pub samples_appended: u64,
    pub series_created: u64,
    /// Samples older than the series' newest sample.
    pub out_of_order: u64,
    /// Samples older than the head's lower bound: their time range was
    /// already cut into a block (Prometheus' "out of bounds").
    pub out_of_bounds: u64,
    /// Samples at the series' newest timestamp with a different value.
    pub duplicate_timestamp: u64,
    /// Exact re-sends (same timestamp and value), dropped silently as
    /// Prometheus does, so a retried batch is not an error.
    pub duplicates_ignored: u64,
    /// The first rejection, spelled out for the client and the log.
    pub first_rejection: Option<String>,
}

impl AppendStats {
    pub fn rejected(&self) -> u64 {
        self.out_of_order + self.duplicate_timestamp + self.out_of_bounds
    }

    pub fn merge(&mut self, o: AppendStats) {
        self.samples_appended += o.samples_appended;
        self.series_created += o.series_created;
        self.out_of_order += o.out_of_order;
        self.out_of_bounds += o.out_of_bounds;
        self.duplicate_timestamp += o.duplicate_timestamp;
        self.duplicates_ignored += o.duplicates_ignored;
        if self.first_rejection.is_none() {
            self.first_rejection = o.first_rejection;
        }
    }

    fn reject(&mut self, what: &str, labels: &Labels, t: i64, last_t: i64) {
        if self.first_rejection.is_none() {
            self.first_rejection = Some(format!(
                "{what}: series {} sample at {t} is not after its newest sample at {last_t}",
                short(labels)
            ));
        }
    }
}

/// A label set for a message, cut at 200 bytes.
fn short(labels: &Labels) -> String {
    let mut l = labels.to_string();
    if l.len() > 200 {
        let mut cut = 200;
        while !l.is_char_boundary(cut) {
            cut -= 1;
        }
        l.truncate(cut);
        l.push('…');
    }
    l
}

impl Head {
    /// Re-applies one sample from the WAL. Replay sees samples in the order
    /// they were accepted, so anything not newer than the series' last
    /// sample is a duplicate from an overlap (e.g. checkpoint + segment) and
    /// is skipped; returns whether it was applied.
    pub(crate) fn replay_sample(&mut self, id: u32, t: i64, v: f64) -> bool {
        let s = &mut self.series[id as usize];
        // Samples below the lower bound are in a block already (the WAL
        // was not yet truncated when the process stopped).
        if t <= s.last_t || self.min_valid_t.is_some_and(|m| t < m) {
            return false;
        }
        s.push(t, v, self.chunk_files.as_mut());
        self.bounds = Some(match self.bounds {
            None => (t, t),
            Some((lo, hi)) => (lo.min(t), hi.max(t)),
        });
        true
    }

    /// [`Head::replay_sample`] for a WAL ref; false when no live series has
    /// that id (its Series record is missing).
    pub(crate) fn replay_sample_by_ref(&mut self, r: u64, t: i64, v: f64) -> bool {
        match self.series.get(r as usize) {
            Some(s) if !s.labels.is_empty() => {
                self.replay_sample(r as u32, t, v);
                true
            }
            _ => false,
        }
    }

    /// The id of the series with these labels, created if new; the bool says
    /// whether it was created (the caller logs new series to the WAL).
    pub(crate) fn get_or_create(&mut self, labels: &Labels, hash: u64) -> (u32, bool) {
        if let Some(id) = self.lookup(labels, hash) {
            return (id, false);
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                if self.series.len() == self.series.capacity() {
                    // Grow by an eighth, not double: the table holds one
                    // ~180-byte slot per series, so doubling would leave up
                    // to half of it unused.
                    let more = (self.series.len() / 8).max(16);
                    self.series.reserve_exact(more);
                }
                self.series.push(MemSeries::new(Box::new([])));
                self.series.len() as u32 - 1
            }
        };
        self.create_in_slot(id, labels, hash);
        (id, true)
    }

    /// Replays a WAL Series record: the series gets exactly id `id`, so the
    /// head's ids stay the WAL's refs across restarts (later records, and
    /// the checkpoint, refer to series by them). A slot still holding
    /// another series is freed first: a ref is only redefined after its
    /// series was removed.
    pub(crate) fn create_at(&mut self, id: u32, labels: &Labels) {
        let hash = labels.stable_hash();
        let i = id as usize;
        if i >= self.series.len() {
            self.series
                .resize_with(i + 1, || MemSeries::new(Box::new([])));
        } else if !self.series[i].labels.is_empty() {
            if self.labels_equal(id, labels) {
                return;
            }
            self.remove_series(id);
            self.free.retain(|&f| f != id);
        }
        self.create_in_slot(id, labels, hash);
    }

    /// After replay: the empty slots (refs a checkpoint dropped, series
    /// removed) become the free list.
    pub(crate) fn rebuild_free_list(&mut self) {
        self.free = (0..self.series.len() as u32)
            .rev()
            .filter(|&id| self.series[id as usize].labels.is_empty())
            .collect();
    }

    /// Fills the empty slot `id` with a new series.
    fn create_in_slot(&mut self, id: u32, labels: &Labels, hash: u64) {
        let mut pairs = Vec::with_capacity(labels.len());
        for l in labels {
            let n = self.symbols.intern(&l.name);
            let v = self.symbols.intern(&l.value);
            pairs.push((n, v));
            let (na, va) = (
                self.symbols.get_arc(n).clone(),
                self.symbols.get_arc(v).clone(),
            );
            self.postings.add(id, &na, &va);
        }
        self.postings.add_series(id);
        self.series[id as usize] = MemSeries::new(pairs.into_boxed_slice());
        self.live += 1;
        self.created_since_cut += 1;
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.entry(hash).or_default().push(id);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
            }
        }
    }

    fn lookup(&self, labels: &Labels, hash: u64) -> Option<u32> {
        let first = *self.by_hash.get(&hash)?;
        if self.labels_equal(first, labels) {
            return Some(first);
        }
        self.collisions
            .get(&hash)?
            .iter()
            .copied()
            .find(|&id| self.labels_equal(id, labels))
    }

    fn labels_equal(&self, id: u32, labels: &Labels) -> bool {
        let pairs = &self.series[id as usize].labels;
        pairs.len() == labels.len()
            && pairs
                .iter()
                .zip(labels.iter())
                .all(|(&(n, v), l)| self.symbols.get(n) == l.name && self.symbols.get(v) == l.value)
    }

    /// Appends samples to series `id`, rejecting out-of-order and
    /// conflicting-duplicate samples one by one. Accepted samples are also
    /// pushed to `accepted` (as `(series id, t, v)`) for the WAL.
    pub(crate) fn append_samples(
        &mut self,
        id: u32,
        labels: &Labels,
        samples: &[Sample],
        stats: &mut AppendStats,
        accepted: &mut Vec<(u64, i64, f64)>,
    ) {
        let s = &mut self.series[id as usize];
        let bounds = &mut self.bounds;
        let mut files = self.chunk_files.as_mut();
        let min_valid = self.min_valid_t.unwrap_or(i64::MIN);
        for smp in samples {
            if smp.t < min_valid {
                stats.out_of_bounds += 1;
                if stats.first_rejection.is_none() {
                    stats.first_rejection = Some(format!(
                        "out of bounds: series {} sample at {} is older than {min_valid}, \
                         the start of the head (older time ranges are already in blocks)",
                        short(labels),
                        smp.t
                    ));
                }
            } else if smp.t > s.last_t {
                s.push(smp.t, smp.v, files.as_deref_mut());
                stats.samples_appended += 1;
                accepted.push((id as u64, smp.t, smp.v));
                *bounds = Some(match *bounds {
                    None => (smp.t, smp.t),
                    Some((lo, hi)) => (lo.min(smp.t), hi.max(smp.t)),
                });
            } else if smp.t == s.last_t {
                // Same bits (incl. NaN payloads and staleness markers) is a
                // harmless re-send.
                if smp.v.to_bits() == s.last_v.to_bits()
                    || (is_stale_nan(smp.v) && is_stale_nan(s.last_v))
                {
                    stats.duplicates_ignored += 1;
                } else {
                    stats.duplicate_timestamp += 1;
                    let last_t = s.last_t;
                    stats.reject("duplicate sample for timestamp", labels, smp.t, last_t);
                }
            } else {
                stats.out_of_order += 1;
                let last_t = s.last_t;
                stats.reject("out of order sample", labels, smp.t, last_t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &str) -> Labels {
        Labels::from_pairs([("__name__", "m"), ("i", v)])
    }

    #[test]
    fn rejects_out_of_order_samples_keeps_the_rest() {
        let mut h = Head::default();
        let ls = labels("a");
        let (id, created) = h.get_or_create(&ls, ls.stable_hash());
        assert!(created);
        let mut st = AppendStats::default();
        let smp = |t, v| Sample::new(t, v);
        let mut acc = Vec::new();
        h.append_samples(
            id,
            &ls,
            &[smp(10, 1.0), smp(20, 2.0), smp(15, 9.0), smp(30, 3.0)],
            &mut st,
            &mut acc,
        );
        assert_eq!(acc.len(), 3);
        assert_eq!(st.samples_appended, 3);
        assert_eq!(st.out_of_order, 1);
        assert!(
            st.first_rejection
                .as_deref()
                .unwrap()
                .contains("out of order")
        );
        let mut st = AppendStats::default();
        h.append_samples(id, &ls, &[smp(30, 3.0), smp(30, 4.0)], &mut st, &mut acc);
        assert_eq!((st.duplicates_ignored, st.duplicate_timestamp), (1, 1));
    }

    #[test]
    fn same_labels_same_series_hash_collisions_kept_apart() {
        let mut h = Head::default();
        let (a, b) = (labels("a"), labels("b"));
        // Force a collision by passing the same hash for different sets.
        let (ia, _) = h.get_or_create(&a, 42);
        let (ib, created) = h.get_or_create(&b, 42);
        assert!(created);
        assert_ne!(ia, ib);
        assert_eq!(h.get_or_create(&a, 42), (ia, false));
        assert_eq!(h.get_or_create(&b, 42), (ib, false));
    }
}
