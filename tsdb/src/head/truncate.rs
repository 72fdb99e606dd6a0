//! Handing the head's oldest range to a block, then letting it go.
//!
//! A cut (driven by `crate::shard_cut`) first raises the head's lower bound so no
//! append can add to the range being written, reads the range out series by
//! series in label order, and once the block is durable truncates: sealed
//! chunks that end before the bound are dropped, and series with no sample
//! at or after it are removed (garbage collection of churned series), then
//! the head chunk files holding only dropped chunks are deleted.

use super::{Head, MemSeries};
use crate::{Labels, Sample};

impl Head {
    /// The head's lower bound, if a range was ever cut from it.
    pub(crate) fn min_valid_t(&self) -> Option<i64> {
        self.min_valid_t
    }

    /// Raises the lower bound to `t` (never lowers it): appends older than
    /// `t` are refused from now on, replayed ones skipped.
    pub(crate) fn raise_min_valid(&mut self, t: i64) {
        self.min_valid_t = Some(self.min_valid_t.map_or(t, |m| m.max(t)));
    }

    /// Oldest and newest visible sample timestamps.
    pub(crate) fn bounds(&self) -> Option<(i64, i64)> {
        self.bounds
    }

    /// Live series ids, in id order: what a cut puts in label order
    /// (`label_order.rs`) for the block.
    pub(crate) fn live_ids(&self) -> Vec<u32> {
        self.postings.all().iter().collect()
    }

    /// The labels of series `id` and its samples in `[mint, maxt]` (pushed
    /// onto `out`), or `None` for a removed series.
    pub(crate) fn series_range(
        &self,
        id: u32,
        mint: i64,
        maxt: i64,
        out: &mut Vec<Sample>,
    ) -> Option<Labels> {
        let s = self.series.get(id as usize)?;
        if s.labels.is_empty() {
            return None;
        }
        s.samples_in(self.chunk_files.as_ref(), mint, maxt, out);
        Some(self.labels_of(id))
    }

    /// Per series id, the hash of its labels, or 0 for a removed series:
    /// what a WAL checkpoint compares a Series record against to know
    /// whether the head still has that series under that id.
    pub(crate) fn live_hashes(&self) -> Vec<u64> {
        let mut out = vec![0u64; self.series.len()];
        for (&h, &id) in &self.by_hash {
            out[id as usize] = h;
        }
        for (&h, ids) in &self.collisions {
            for &id in ids {
                out[id as usize] = h;
            }
        }
        out
    }

    /// Drops what a block now holds: sealed chunks ending before `t`, and
    /// series whose newest sample is before `t` (they have nothing left in
    /// the head; a later sample recreates them). Returns (series removed,
    /// chunks dropped).
    pub(crate) fn truncate_before(&mut self, t: i64) -> (usize, usize) {
        self.raise_min_valid(t);
        let mut removed = 0;
        let mut chunks = 0;
        let ids: Vec<u32> = self.postings.all().iter().collect();
        for id in ids {
            let s = &mut self.series[id as usize];
            if s.last_t < t {
                chunks += s.sealed.len() + usize::from(!s.open.is_empty());
                self.remove_series(id);
                removed += 1;
                continue;
            }
            let drop = s
                .sealed
                .iter()
                .position(|c| c.max_t() >= t)
                .unwrap_or(s.sealed.len());
            if drop > 0 {
                s.sealed.drain(..drop);
                s.sealed.shrink_to_fit();
                chunks += drop;
            }
        }
        self.bounds = match self.bounds {
            Some((lo, hi)) if self.live > 0 && hi >= t => Some((lo.max(t), hi)),
            _ => None,
        };
        self.created_since_cut = 0;
        self.removed_by_last_cut = removed as u64;
        // Every chunk ending before `t` is gone: so are the chunk files
        // holding only such chunks.
        if let Some(files) = &mut self.chunk_files {
            files.truncate_before(t);
        }
        (removed, chunks)
    }

    /// Removes a series from the index and frees its chunks, leaving an
    /// empty slot for the next new series.
    pub(super) fn remove_series(&mut self, id: u32) {
        let hash = self.labels_of(id).stable_hash();
        let labels = std::mem::take(&mut self.series[id as usize].labels);
        self.series[id as usize] = MemSeries::new(Box::new([]));
        for &(n, v) in labels.iter() {
            let (n, v) = (self.symbols.get(n), self.symbols.get(v));
            self.postings.remove(id, n, v);
        }
        self.postings.remove_series(id);
        self.unhook(hash, id);
        self.live -= 1;
        self.removals += 1;
        self.free.push(id);
    }

    /// Takes `id` out of the hash lookup.
    fn unhook(&mut self, h: u64, id: u32) {
        if self.by_hash.get(&h) == Some(&id) {
            match self.collisions.get_mut(&h).and_then(|c| c.pop()) {
                Some(other) => {
                    self.by_hash.insert(h, other);
                }
                None => {
                    self.by_hash.remove(&h);
                }
            }
        } else if let Some(c) = self.collisions.get_mut(&h) {
            c.retain(|&i| i != id);
        }
        if self.collisions.get(&h).is_some_and(|c| c.is_empty()) {
            self.collisions.remove(&h);
        }
    }
}
