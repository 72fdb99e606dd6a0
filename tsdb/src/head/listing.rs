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
    fn cmp_series(&self, a: u32, b: u32) -> Ordering {
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
    /// empty or hold a newer series: such ids are kept only if the slot
    /// still holds a series that matches `sets` and sorts after `after`,
    /// so the listing stays sorted and holds only live matching series.
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
        for &id in ids {
            if self.series[id as usize].labels.is_empty() {
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
