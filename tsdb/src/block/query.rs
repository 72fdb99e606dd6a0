//! Queries over one block with `Db`'s contracts: `select` (samples in an
//! inclusive range, series sorted by labels, empty ones omitted), series and
//! label listings (series-level time bounds, as the head uses), each under a
//! [`ReadControl`]'s budgets and stop signal, counted as the head counts.

use std::collections::BTreeSet;

use roaring::RoaringBitmap;

use super::BlockError;
use super::reader::{Block, SeriesChunks};
use crate::chunk::ChunkIter;
use crate::matcher::Matcher;
use crate::read::{CHECK_EVERY, ReadControl};
use crate::{Labels, Sample, SeriesSamples};

impl Block {
    /// Matching ids whose series has a sample bound inside `[mint, maxt]`
    /// (the head's rule: series-level bounds, not exact samples), checking
    /// the stop signal while it filters.
    fn select_ids(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<RoaringBitmap, BlockError> {
        ctl.check()?;
        if !self.meta.overlaps(mint, maxt) {
            return Ok(RoaringBitmap::new());
        }
        let mut ids = self.postings(matchers)?;
        if self.within(mint, maxt) {
            return Ok(ids);
        }
        let mut err = None;
        let mut seen = 0usize;
        ids.retain(|id| {
            if err.is_some() {
                return false;
            }
            seen += 1;
            if seen.is_multiple_of(CHECK_EVERY)
                && let Err(e) = ctl.check()
            {
                err = Some(e.into());
                return false;
            }
            match self
                .index
                .series_entry(id)
                .and_then(|e| e.bounds(&self.index))
            {
                Ok((lo, hi)) => lo <= maxt && mint <= hi,
                Err(e) => {
                    err = Some(e);
                    false
                }
            }
        });
        err.map_or(Ok(ids), Err)
    }

    /// Series matching all `matchers` with their samples in `[mint, maxt]`
    /// (inclusive), sorted by labels; series with no sample in range are
    /// omitted. The same contract as `Db::select`. Unbounded: see
    /// [`select_with`](Self::select_with).
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesSamples>, BlockError> {
        self.select_with(matchers, mint, maxt, &ReadControl::unlimited())
    }

    /// [`select`](Self::select) under the budgets and stop signal of `ctl`,
    /// counted as the head counts them (`Db::select_with`).
    pub fn select_with(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<Vec<SeriesSamples>, BlockError> {
        let ids = self.select_ids(matchers, mint, maxt, ctl)?;
        ctl.add_series(ids.len() as usize)?;
        let mut out = Vec::new();
        let mut chunks = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if i.is_multiple_of(CHECK_EVERY) {
                ctl.check()?;
            }
            let e = self.entry(id)?;
            chunks.clear();
            self.chunks_of(&e, mint, maxt, &mut chunks)?;
            if chunks.is_empty() {
                continue;
            }
            let mut samples = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
            for c in &chunks {
                collect(c.iter(), mint, maxt, &mut samples);
            }
            ctl.add_samples(samples.len())?;
            if !samples.is_empty() {
                out.push(SeriesSamples {
                    labels: e.labels(&self.index)?,
                    samples,
                });
            }
        }
        Ok(out)
    }

    /// Like [`select_with`](Self::select_with) but returns the chunks
    /// overlapping the range undecoded (they may hold samples outside it),
    /// for callers that merge blocks with the head or stream. Counts series
    /// against `ctl`, and the samples of the chunks returned.
    pub fn select_chunks(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<Vec<SeriesChunks<'_>>, BlockError> {
        let ids = self.select_ids(matchers, mint, maxt, ctl)?;
        ctl.add_series(ids.len() as usize)?;
        let mut out = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if i.is_multiple_of(CHECK_EVERY) {
                ctl.check()?;
            }
            let s = self.series_chunks(id, mint, maxt)?;
            ctl.add_samples(s.chunks.iter().map(|c| c.len()).sum())?;
            if !s.chunks.is_empty() {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Label sets of the matching series with a sample in range, sorted.
    /// Unbounded: see [`series_with`](Self::series_with).
    pub fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, BlockError> {
        Ok(self
            .series_with(matchers, mint, maxt, 0, &ReadControl::unlimited())?
            .0)
    }

    /// [`series`](Self::series) under `ctl`, building at most `limit` label
    /// sets (0: all); also returns how many series matched in all.
    pub fn series_with(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        limit: usize,
        ctl: &ReadControl<'_>,
    ) -> Result<(Vec<Labels>, u64), BlockError> {
        let ids = self.select_ids(matchers, mint, maxt, ctl)?;
        let matched = ids.len();
        let n = crate::read::to_build(matched, limit);
        // Count first: a call over the budget fails before building anything.
        ctl.add_series(n)?;
        let mut out = Vec::with_capacity(n);
        for (i, id) in ids.iter().take(n).enumerate() {
            if i.is_multiple_of(CHECK_EVERY) {
                ctl.check()?;
            }
            out.push(self.entry(id)?.labels(&self.index)?);
        }
        Ok((out, matched))
    }

    /// Sorted, unique label names of the matching series. Unbounded: see
    /// [`label_names_with`](Self::label_names_with).
    pub fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, BlockError> {
        self.label_names_with(matchers, mint, maxt, &ReadControl::unlimited())
    }

    /// [`label_names`](Self::label_names) under `ctl`.
    pub fn label_names_with(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<Vec<String>, BlockError> {
        let idx = &self.index;
        if matchers.is_empty() && self.within(mint, maxt) {
            // Names are stored sorted: no series is touched.
            return (0..idx.n_names())
                .map(|i| Ok(idx.symbol(idx.name_entry(i)?.name)?.to_string()))
                .collect();
        }
        let ids = self.select_ids(matchers, mint, maxt, ctl)?;
        ctl.add_series(ids.len() as usize)?;
        let mut names = BTreeSet::new();
        for (i, id) in ids.iter().enumerate() {
            if i.is_multiple_of(CHECK_EVERY) {
                ctl.check()?;
            }
            let e = self.entry(id)?;
            for pair in e.label_ids() {
                let (n, _) = pair.ok_or_else(|| {
                    BlockError::corrupt(&idx.path, e.file_offset(), "series entry: bad label ids")
                })?;
                names.insert(n);
            }
        }
        // Symbol ids sort like their strings.
        names
            .into_iter()
            .map(|n| Ok(idx.symbol(n)?.to_string()))
            .collect()
    }

    /// Sorted, unique values of label `name` among the matching series.
    /// Unbounded: see [`label_values_with`](Self::label_values_with).
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, BlockError> {
        self.label_values_with(name, matchers, mint, maxt, &ReadControl::unlimited())
    }

    /// [`label_values`](Self::label_values) under `ctl`.
    pub fn label_values_with(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<Vec<String>, BlockError> {
        let idx = &self.index;
        let Some(e) = idx.find_name(name)? else {
            return Ok(Vec::new());
        };
        let ids = if matchers.is_empty() && self.within(mint, maxt) {
            None
        } else {
            let ids = self.select_ids(matchers, mint, maxt, ctl)?;
            ctl.add_series(ids.len() as usize)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            Some(ids)
        };
        let mut out = Vec::new();
        for j in 0..e.len() {
            if j.is_multiple_of(CHECK_EVERY) {
                ctl.check()?;
            }
            let (v, p) = idx.value_entry(&e, j)?;
            let hit = match &ids {
                // Every stored value has at least one series.
                None => true,
                Some(ids) => !idx.postings(p)?.is_disjoint(ids),
            };
            if hit {
                out.push(idx.symbol(v)?.to_string());
            }
        }
        Ok(out)
    }

    /// True when the whole block lies inside `[mint, maxt]`.
    fn within(&self, mint: i64, maxt: i64) -> bool {
        mint <= self.meta.min_time && self.meta.max_time <= maxt
    }
}

/// Pushes the samples of `it` in `[mint, maxt]` onto `out`.
fn collect(mut it: ChunkIter<'_>, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
    let mut cur = it.seek(mint);
    while let Some((t, v)) = cur {
        if t > maxt {
            break;
        }
        out.push(Sample { t, v });
        cur = it.next();
    }
}
