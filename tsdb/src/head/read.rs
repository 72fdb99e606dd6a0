//! Reading a shard's head: series selection by matchers, labels, samples.

use roaring::RoaringBitmap;

use super::Head;
use crate::error::ReadError;
use crate::read::{CHECK_EVERY, ReadControl};
use crate::{Label, Labels, Matcher, Sample, SeriesSamples};

impl Head {
    /// Ids of the series matching all matchers with a sample in `[mint, maxt]`.
    pub(crate) fn select_ids(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> RoaringBitmap {
        let mint = self.clamp(mint);
        let mut ids = self.postings.select_all(matchers);
        ids.retain(|id| self.series[id as usize].overlaps(mint, maxt));
        ids
    }

    pub(crate) fn labels_of(&self, id: u32) -> Labels {
        let pairs = &self.series[id as usize].labels;
        Labels::from_sorted_unchecked(
            pairs
                .iter()
                .map(|&(n, v)| Label::new(self.symbols.get(n), self.symbols.get(v)))
                .collect(),
        )
    }

    /// Series with their samples in `[mint, maxt]`; series with none omitted.
    pub(crate) fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
        out: &mut Vec<SeriesSamples>,
    ) -> Result<(), ReadError> {
        let ids = self.select_ids(matchers, mint, maxt);
        let mint = self.clamp(mint);
        ctl.add_series(ids.len() as usize)?;
        for (i, id) in ids.iter().enumerate() {
            if i % CHECK_EVERY == 0 {
                ctl.check()?;
            }
            let mut samples: Vec<Sample> = Vec::new();
            self.series[id as usize].samples_in(
                self.chunk_files.as_ref(),
                mint,
                maxt,
                &mut samples,
            );
            ctl.add_samples(samples.len())?;
            if !samples.is_empty() {
                out.push(SeriesSamples {
                    labels: self.labels_of(id),
                    samples,
                });
            }
        }
        Ok(())
    }

    /// Label sets of the matching series, at most `take` of them (0: all).
    /// Returns how many series matched in all.
    pub(crate) fn series_labels(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        take: usize,
        ctl: &ReadControl<'_>,
        out: &mut Vec<Labels>,
    ) -> Result<u64, ReadError> {
        let ids = self.select_ids(matchers, mint, maxt);
        let matched = ids.len();
        let n = crate::read::to_build(matched, take);
        // Count first: a call over the budget fails before building anything.
        ctl.add_series(n)?;
        for (i, id) in ids.iter().take(n).enumerate() {
            if i % CHECK_EVERY == 0 {
                ctl.check()?;
            }
            out.push(self.labels_of(id));
        }
        Ok(matched)
    }

    /// Label names of the matching series (all names when no matchers).
    pub(crate) fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
        out: &mut Vec<String>,
    ) -> Result<(), ReadError> {
        if matchers.is_empty() && self.all_in_range(mint, maxt) {
            out.extend(self.postings.names().map(|n| n.to_string()));
            return Ok(());
        }
        let mut names = std::collections::BTreeSet::new();
        let ids = self.select_ids(matchers, mint, maxt);
        ctl.add_series(ids.len() as usize)?;
        for (i, id) in ids.iter().enumerate() {
            if i % CHECK_EVERY == 0 {
                ctl.check()?;
            }
            for &(n, _) in self.series[id as usize].labels.iter() {
                names.insert(n);
            }
        }
        out.extend(names.into_iter().map(|n| self.symbols.get(n).to_string()));
        Ok(())
    }

    /// Values of label `name` among the matching series.
    pub(crate) fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
        out: &mut Vec<String>,
    ) -> Result<(), ReadError> {
        let Some(values) = self.postings.values(name) else {
            return Ok(());
        };
        let ids = (!matchers.is_empty() || !self.all_in_range(mint, maxt))
            .then(|| self.select_ids(matchers, mint, maxt));
        if let Some(ids) = &ids {
            ctl.add_series(ids.len() as usize)?;
        }
        for (i, (v, posting)) in values.iter().enumerate() {
            if i % CHECK_EVERY == 0 {
                ctl.check()?;
            }
            let hit = match &ids {
                None => !posting.is_empty(),
                Some(ids) => !posting.is_disjoint(ids),
            };
            if hit {
                out.push(v.to_string());
            }
        }
        Ok(())
    }

    /// True when every series of the head lies inside `[mint, maxt]`, so
    /// listings can skip per-series time checks.
    fn all_in_range(&self, mint: i64, maxt: i64) -> bool {
        let st = self.bounds();
        match st {
            Some((lo, hi)) => lo >= mint && hi <= maxt,
            None => true,
        }
    }

    /// Adds this head's cardinality to a cross-shard analysis: every
    /// series, or those matching one of `matchers` (counted against the
    /// read's series budget). `range` is the time range of the whole
    /// database, against which a series counts as churn when it starts or
    /// stops inside it.
    pub(crate) fn analyze_into(
        &self,
        acc: &mut crate::analyze::Accumulator,
        range: Option<(i64, i64)>,
        matchers: &[Vec<Matcher>],
        ctl: &ReadControl<'_>,
    ) -> Result<(), ReadError> {
        acc.created += self.created_since_cut;
        acc.removed += self.removed_by_last_cut;
        let selected = if matchers.is_empty() {
            None
        } else {
            let mut ids = RoaringBitmap::new();
            for set in matchers {
                ids |= self.postings.select_all(set);
            }
            ctl.add_series(ids.len() as usize)?;
            Some(ids)
        };
        let pairs = |id: u32| {
            self.series[id as usize]
                .labels
                .iter()
                .map(|&(n, v)| (self.symbols.get_arc(n), self.symbols.get_arc(v)))
        };
        match &selected {
            // The index already counts series per pair: no series walk.
            None => {
                acc.series += self.live as u64;
                for (i, (n, v, c)) in self.postings.pairs().enumerate() {
                    if i % CHECK_EVERY == 0 {
                        ctl.check()?;
                    }
                    acc.add_pair(n, v, c);
                }
            }
            Some(ids) => {
                acc.series += ids.len();
                for (i, id) in ids.iter().enumerate() {
                    if i % CHECK_EVERY == 0 {
                        ctl.check()?;
                    }
                    for (n, v) in pairs(id) {
                        acc.add_pair(n, v, 1);
                    }
                }
            }
        }
        let Some((lo, hi)) = range else {
            return Ok(());
        };
        let slack = crate::analyze::CHURN_SLACK_MS;
        let ids = selected.as_ref().unwrap_or(self.postings.all());
        for (i, id) in ids.iter().enumerate() {
            if i % CHECK_EVERY == 0 {
                ctl.check()?;
            }
            let s = &self.series[id as usize];
            let started = s.min_t().is_some_and(|t| t > lo.saturating_add(slack));
            let stopped = s.last_t < hi.saturating_sub(slack);
            if started || stopped {
                acc.add_churned(pairs(id));
            }
        }
        Ok(())
    }

    /// A read's lower time bound raised to the head's: older samples of a
    /// chunk straddling the last cut are in a block, which answers them.
    pub(crate) fn clamp(&self, mint: i64) -> i64 {
        self.min_valid_t.map_or(mint, |m| mint.max(m))
    }
}
