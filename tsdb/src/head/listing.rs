//! A head's side of a streamed series listing (`db/series_listing.rs`):
//! the matching ids sorted by their label sets (4 bytes a series, not an
//! owned label set), then label sets built a batch at a time under short
//! read locks, so a listing of millions of series never holds them all.

use std::cmp::Ordering;
use std::collections::VecDeque;

use roaring::RoaringBitmap;

use super::Head;
use crate::error::ReadError;
use crate::read::ReadControl;
use crate::{Labels, Matcher};

impl Head {
    /// Ids of the series matching any of `sets`
    /// with a sample in `[mint, maxt]`, the first `take` of them in id
    /// order (0: all), sorted by label set; and how many matched in all.
    /// Counts the ids against the series budget before sorting, so a call
    /// over it fails having built nothing.
    pub(crate) fn sorted_ids(
        &self,
        sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
        take: usize,
        ctl: &ReadControl<'_>,
    ) -> Result<(Vec<u32>, u64), ReadError> {
        let mut ids = RoaringBitmap::new();
        for set in sets {
            ctl.check()?;
            ids |= self.select_ids(set, mint, maxt);
        }
        let matched = ids.len();
        let n = crate::read::to_build(matched, take);
        ctl.add_series(n)?;
        let mut v: Vec<u32> = ids.iter().take(n).collect();
        v.sort_unstable_by(|&a, &b| self.cmp_series(a, b));
        Ok((v, matched))
    }

    /// Orders two series as their [`Labels`] order (name, then value, label
    /// by label), comparing the interned strings in place.
    pub(super) fn cmp_series(&self, a: u32, b: u32) -> Ordering {
        let strs = |id: u32| {
            self.series[id as usize]
                .labels
                .iter()
                .map(|&(n, v)| (self.symbols.get(n), self.symbols.get(v)))
        };
        strs(a).cmp(strs(b))
    }

    /// How many series this head has removed: a listing that sees this
    /// change between batches re-checks the slots it still holds.
    pub(crate) fn removals(&self) -> u64 {
        self.removals
    }

    /// Appends the label sets of `ids` to `out`. When the head removed
    /// series since the ids were chosen (`removals` differs), a slot may be
    /// empty or hold a series created since (which the listing may leave
    /// out, as one created after the call began). A slot's series is then
    /// kept only if it still matches `sets` and sits in order: after the
    /// last one kept (`after` across batches) and before the next slot's,
    /// so a newer series in an early slot is dropped, not the rest.
    pub(crate) fn labels_batch(
        &self,
        ids: &[u32],
        removals: u64,
        sets: &[Vec<Matcher>],
        after: Option<&Labels>,
        out: &mut VecDeque<Labels>,
    ) {
        if removals == self.removals {
            out.extend(ids.iter().map(|&id| self.labels_of(id)));
            return;
        }
        let mut last = after.cloned();
        for (k, &id) in ids.iter().enumerate() {
            if self.series[id as usize].labels.is_empty() {
                continue;
            }
            let next = ids.get(k + 1).copied();
            if next.is_some_and(|n| {
                !self.series[n as usize].labels.is_empty()
                    && self.cmp_series(id, n) != Ordering::Less
            }) {
                continue;
            }
            let ls = self.labels_of(id);
            let matches = sets
                .iter()
                .any(|set| crate::matcher::matches_labels(set, &ls));
            if matches && last.as_ref().is_none_or(|l| *l < ls) {
                last = Some(ls.clone());
                out.push_back(ls);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sample;
    use crate::head::AppendStats;
    use crate::matcher::MatchOp;

    fn add(h: &mut Head, name: &str, i: &str) -> u32 {
        let ls = Labels::from_pairs([("__name__", name), ("i", i)]);
        let (id, _) = h.get_or_create(&ls, ls.stable_hash());
        let mut st = AppendStats::default();
        h.append_samples(id, &ls, &[Sample::new(10, 1.0)], &mut st, &mut Vec::new());
        id
    }

    #[test]
    fn a_slot_reused_mid_listing_drops_the_newcomer_not_the_rest() {
        let mut h = Head::default();
        for i in ["c", "a", "d", "b"] {
            add(&mut h, "m", i);
        }
        let sets = vec![vec![Matcher::new(MatchOp::Equal, "__name__", "m").unwrap()]];
        let ctl = ReadControl::unlimited();
        let (ids, matched) = h.sorted_ids(&sets, 0, 100, 0, &ctl).unwrap();
        assert_eq!(matched, 4);
        let mut out = VecDeque::new();
        h.labels_batch(&ids, h.removals(), &sets, None, &mut out);
        let is: Vec<_> = out.iter().map(|l| l.get("i").unwrap()).collect();
        assert_eq!(is, ["a", "b", "c", "d"], "sorted by label set");

        // "a" and "c" go; their slots are reused by a series that does not
        // match and one that does.
        let before = h.removals();
        let (a, c) = (ids[0], ids[2]);
        h.remove_series(a);
        h.remove_series(c);
        assert_ne!(h.removals(), before);
        let x = add(&mut h, "other", "z");
        let y = add(&mut h, "m", "e");
        assert!([a, c].contains(&x) && [a, c].contains(&y));
        let mut out = VecDeque::new();
        h.labels_batch(&ids, before, &sets, None, &mut out);
        let is: Vec<_> = out.iter().map(|l| l.get("i").unwrap()).collect();
        // The new matching series sits in the first slot, ahead of "b":
        // it is left out, the series listed from the start are not.
        assert_eq!(is, ["b", "d"]);
    }
}
