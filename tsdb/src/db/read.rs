//! The read side of a [`Db`]: selections, series and label listings, each
//! merging every shard's head with the blocks that overlap the range,
//! under a [`ReadControl`]'s budgets and stop signal.

use super::Db;
use crate::block::{Block, BlockError};
use crate::error::ReadError;
use crate::head::Head;
use crate::parallel;
use crate::read::ReadControl;
use crate::{Labels, Matcher, SeriesSamples};

impl Db {
    /// Series matching all `matchers` with their samples in `[mint, maxt]`
    /// (inclusive), sorted by labels. Unbounded: for bounded reads use
    /// [`Db::select_with`].
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesSamples> {
        self.select_with(matchers, mint, maxt, &ReadControl::unlimited())
            .expect("an unlimited read never stops")
    }

    /// [`Db::select`] under budgets and a stop signal.
    pub fn select_with(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<Vec<SeriesSamples>, ReadError> {
        let mut out = Vec::new();
        let threads = self.read_threads();
        if threads <= 1 {
            for i in 0..self.shards.len() {
                ctl.check()?;
                out.extend(self.select_shard(i, matchers, mint, maxt, ctl)?);
            }
        } else {
            // Each shard reads under its own control with the caller's
            // budgets; the totals are charged to `ctl` as shards come back,
            // so a read over budget fails as before (having loaded at most
            // a few shards' worth more than one thread would have).
            let work =
                |i: usize, c: &ReadControl<'_>| self.select_shard(i, matchers, mint, maxt, c);
            parallel::for_each_shard(
                self.shards.len(),
                threads,
                ctl,
                ctl.limits(),
                &work,
                &mut |r| {
                    ctl.add_series(r.series)?;
                    ctl.add_samples(r.samples)?;
                    out.extend(r.value);
                    Ok(())
                },
            )?;
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Streams the series of [`Db::select_with`] one shard at a time: `each`
    /// gets every shard's matching series (in no particular order inside a
    /// batch, shards in index order) and the batch is dropped before the
    /// next one is handed over, so a caller that folds series into
    /// aggregates holds one shard's samples, not the whole selection. The
    /// budgets of `ctl` bound each batch (what is held at once); its stop
    /// signal ends the whole read. Shards are read on up to `read_threads`
    /// threads, a few batches ahead of `each`.
    pub fn select_batches(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
        each: &mut dyn FnMut(Vec<SeriesSamples>) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let work = |i: usize, c: &ReadControl<'_>| self.select_shard(i, matchers, mint, maxt, c);
        parallel::for_each_shard(
            self.shards.len(),
            self.read_threads(),
            ctl,
            ctl.limits(),
            &work,
            &mut |r| each(r.value),
        )
    }

    /// One shard's part of a selection: its head and the blocks that
    /// overlap the range, merged (one sample per timestamp). Sorted by
    /// labels when blocks took part, in head order otherwise.
    fn select_shard(
        &self,
        shard: usize,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<Vec<SeriesSamples>, ReadError> {
        let s = &self.shards[shard];
        let mut part = Vec::new();
        s.state
            .read()
            .head
            .select(matchers, mint, maxt, ctl, &mut part)?;
        // After the head: see `shard.rs` for why this order has no gap.
        let blocks = s.blocks();
        let mut sources = Vec::new();
        for b in blocks.iter().filter(|b| b.meta().overlaps(mint, maxt)) {
            ctl.check()?;
            sources.push(b.select_with(matchers, mint, maxt, ctl)?);
        }
        if sources.is_empty() {
            return Ok(part);
        }
        part.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        // The head first: it wins a timestamp both hold.
        sources.insert(0, part);
        Ok(crate::block::merge_series(sources))
    }

    /// Label sets of the series matching `matchers` with a sample in range,
    /// sorted. Unbounded: see [`Db::series_with`].
    pub fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Labels> {
        self.series_with(matchers, mint, maxt, 0, &ReadControl::unlimited())
            .expect("an unlimited read never stops")
            .0
    }

    /// [`Db::series`] under budgets and a stop signal, returning at most
    /// `limit` series (0: all) and whether more matched. With a limit, each
    /// shard builds at most `limit` label sets, so memory is bounded by
    /// `limit x shards` whatever the matchers select.
    pub fn series_with(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        limit: usize,
        ctl: &ReadControl<'_>,
    ) -> Result<(Vec<Labels>, bool), ReadError> {
        let mut out = Vec::new();
        // Whether some source matched more series than it built.
        let mut more = false;
        for s in self.shards.iter() {
            ctl.check()?;
            let from = out.len();
            let matched = s
                .state
                .read()
                .head
                .series_labels(matchers, mint, maxt, limit, ctl, &mut out)?;
            more |= matched > (out.len() - from) as u64;
            for b in s.blocks().iter().filter(|b| b.meta().overlaps(mint, maxt)) {
                let (labels, matched) = b.series_with(matchers, mint, maxt, limit, ctl)?;
                more |= matched > labels.len() as u64;
                out.extend(labels);
            }
            // Sorting shard by shard keeps each uninterruptible step short
            // (a cancelled call stops between shards); the final sort then
            // only merges already-sorted runs, which the std sort detects.
            out[from..].sort_unstable();
        }
        ctl.check()?;
        out.sort();
        // A series in the head and a block (or in two blocks) counts once.
        out.dedup();
        let truncated = limit > 0 && (more || out.len() > limit);
        if limit > 0 {
            out.truncate(limit);
        }
        Ok((out, truncated))
    }

    /// Sorted, unique label names of the matching series.
    pub fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        self.label_names_with(matchers, mint, maxt, &ReadControl::unlimited())
            .expect("an unlimited read never stops")
    }

    /// [`Db::label_names`] under budgets and a stop signal.
    pub fn label_names_with(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<Vec<String>, ReadError> {
        self.sorted_unique(
            ctl,
            mint,
            maxt,
            |head, out| head.label_names(matchers, mint, maxt, ctl, out),
            |block| block.label_names_with(matchers, mint, maxt, ctl),
        )
    }

    /// Sorted, unique values of label `name` among the matching series.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        self.label_values_with(name, matchers, mint, maxt, &ReadControl::unlimited())
            .expect("an unlimited read never stops")
    }

    /// [`Db::label_values`] under budgets and a stop signal.
    pub fn label_values_with(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<Vec<String>, ReadError> {
        self.sorted_unique(
            ctl,
            mint,
            maxt,
            |head, out| head.label_values(name, matchers, mint, maxt, ctl, out),
            |block| block.label_values_with(name, matchers, mint, maxt, ctl),
        )
    }

    /// Runs a string listing on every shard's head and on its blocks that
    /// overlap `[mint, maxt]`, and merges the results sorted and unique
    /// (label names and values).
    fn sorted_unique(
        &self,
        ctl: &ReadControl<'_>,
        mint: i64,
        maxt: i64,
        head: impl Fn(&Head, &mut Vec<String>) -> Result<(), ReadError>,
        block: impl Fn(&Block) -> Result<Vec<String>, BlockError>,
    ) -> Result<Vec<String>, ReadError> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            ctl.check()?;
            head(&s.state.read().head, &mut out)?;
            for b in s.blocks().iter().filter(|b| b.meta().overlaps(mint, maxt)) {
                ctl.check()?;
                out.extend(block(b)?);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}
