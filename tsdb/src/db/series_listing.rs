//! A series listing that streams: [`Db::series_listing`] counts and orders
//! the matching series up front (so a call over the series budget fails
//! before its first label set), then [`SeriesListing::next`] merges the
//! shards' sorted runs one label set at a time. Memory is 4 bytes per
//! matching head series (its id) plus a small batch of label sets per
//! shard, not one owned label set per series of the answer.

use std::collections::VecDeque;

use super::Db;
use crate::error::ReadError;
use crate::read::ReadControl;
use crate::{Labels, Matcher};

/// Label sets a head run builds per lock acquisition.
const BATCH: usize = 256;

/// One sorted, duplicate-free run of the merge.
struct Run {
    /// Label sets built and not yet merged.
    buf: VecDeque<Labels>,
    /// A shard head's remaining ids (`None` for a block's run, built whole).
    head: Option<HeadRun>,
}

struct HeadRun {
    shard: usize,
    ids: Vec<u32>,
    next: usize,
    /// The head's removal count when `ids` were chosen.
    removals: u64,
    /// The last label set this run handed out (only kept once the head
    /// removed series mid-listing, to keep the run sorted).
    last: Option<Labels>,
}

/// The matching series of a [`Db::series_listing`] call, in label order,
/// each once, at most `limit` of them.
pub struct SeriesListing<'a> {
    db: &'a Db,
    sets: &'a [Vec<Matcher>],
    runs: Vec<Run>,
    limit: usize,
    emitted: usize,
    /// Some source matched more series than it listed (the `limit` cut).
    cut: bool,
    /// Set once the listing has ended: whether `limit` truncated it.
    truncated: bool,
}

impl Db {
    /// Series matching any of `sets` (each a conjunction of matchers; at least one) with
    /// a sample in `[mint, maxt]`, as a sorted stream. With `limit` > 0
    /// each source lists at most `limit` series, and the stream at most
    /// `limit`. Every source's series are counted against `ctl`'s series
    /// budget here, before any label set is built.
    pub fn series_listing<'a>(
        &'a self,
        sets: &'a [Vec<Matcher>],
        mint: i64,
        maxt: i64,
        limit: usize,
        ctl: &ReadControl<'_>,
    ) -> Result<SeriesListing<'a>, ReadError> {
        let mut runs = Vec::new();
        let mut cut = false;
        for (shard, s) in self.shards.iter().enumerate() {
            ctl.check()?;
            let (ids, matched, removals) = {
                let state = s.state.read();
                let (ids, matched) = state.head.sorted_ids(sets, mint, maxt, limit, ctl)?;
                (ids, matched, state.head.removals())
            };
            cut |= matched > ids.len() as u64;
            runs.push(Run {
                buf: VecDeque::new(),
                head: Some(HeadRun {
                    shard,
                    ids,
                    next: 0,
                    removals,
                    last: None,
                }),
            });
            for b in s.blocks().iter().filter(|b| b.meta().overlaps(mint, maxt)) {
                let mut all = Vec::new();
                for set in sets {
                    let (labels, matched) = b.series_with(set, mint, maxt, limit, ctl)?;
                    cut |= matched > labels.len() as u64;
                    all.extend(labels);
                }
                all.sort_unstable();
                all.dedup();
                runs.push(Run {
                    buf: all.into(),
                    head: None,
                });
            }
        }
        Ok(SeriesListing {
            db: self,
            sets,
            runs,
            limit,
            emitted: 0,
            cut,
            truncated: false,
        })
    }
}

impl SeriesListing<'_> {
    /// The next label set in order, or `None` at the end; stops with
    /// [`ReadError::Stopped`] when `ctl` says so (checked per batch).
    pub fn next(&mut self, ctl: &ReadControl<'_>) -> Result<Option<Labels>, ReadError> {
        for i in 0..self.runs.len() {
            if self.runs[i].buf.is_empty() {
                self.refill(i, ctl)?;
            }
        }
        let min = self
            .runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.buf.front().map(|l| (i, l)))
            .min_by(|a, b| a.1.cmp(b.1))
            .map(|(i, _)| i);
        let Some(min) = min else {
            self.truncated = self.limit > 0 && self.cut;
            return Ok(None);
        };
        if self.limit > 0 && self.emitted == self.limit {
            // Something is left past the limit.
            self.truncated = true;
            return Ok(None);
        }
        let ls = self.runs[min].buf.pop_front().expect("the minimum exists");
        // A series in the head and a block (or two blocks) is listed once:
        // each run is duplicate-free, so its copies are all at the fronts.
        for r in &mut self.runs {
            if r.buf.front() == Some(&ls) {
                r.buf.pop_front();
            }
        }
        self.emitted += 1;
        Ok(Some(ls))
    }

    /// Whether `limit` cut the listing; meaningful once `next` returned
    /// `None`.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Builds the next batch of a head run under a short read lock.
    fn refill(&mut self, i: usize, ctl: &ReadControl<'_>) -> Result<(), ReadError> {
        let run = &mut self.runs[i];
        let Some(h) = &mut run.head else {
            return Ok(());
        };
        while run.buf.is_empty() && h.next < h.ids.len() {
            ctl.check()?;
            let end = (h.next + BATCH).min(h.ids.len());
            let state = self.db.shards[h.shard].state.read();
            let changed = state.head.removals() != h.removals;
            state.head.labels_batch(
                &h.ids[h.next..end],
                h.removals,
                self.sets,
                h.last.as_ref(),
                &mut run.buf,
            );
            drop(state);
            h.next = end;
            if changed {
                h.last = run.buf.back().cloned().or(h.last.take());
            }
        }
        if h.next == h.ids.len() {
            // Done with the ids: free them before the merge goes on.
            h.ids = Vec::new();
            h.next = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sample;
    use crate::matcher::MatchOp;

    fn db_with(n: usize) -> Db {
        let db = Db::in_memory(4);
        for i in 0..n {
            let ls =
                Labels::from_pairs([("__name__", format!("m{}", i % 7)), ("id", i.to_string())]);
            db.append(
                &ls,
                &[Sample {
                    t: 1_000,
                    v: i as f64,
                }],
            )
            .unwrap();
        }
        db
    }

    fn all(l: &mut SeriesListing<'_>) -> Vec<Labels> {
        let ctl = ReadControl::unlimited();
        std::iter::from_fn(|| l.next(&ctl).unwrap()).collect()
    }

    #[test]
    fn listing_equals_the_collected_answer_in_order() {
        let db = db_with(3_000);
        let re = |v: &str| vec![Matcher::new(MatchOp::RegexMatch, "__name__", v).unwrap()];
        for sets in [vec![re(".+")], vec![re("m1|m2"), re("m2|m3")]] {
            let ctl = ReadControl::unlimited();
            let mut want = Vec::new();
            for set in &sets {
                want.extend(db.series_with(set, 0, 2_000, 0, &ctl).unwrap().0);
            }
            want.sort();
            want.dedup();
            let mut l = db.series_listing(&sets, 0, 2_000, 0, &ctl).unwrap();
            assert_eq!(all(&mut l), want);
            assert!(!l.truncated());
        }
    }

    #[test]
    fn listing_counts_before_building_and_truncates_at_limit() {
        let db = db_with(500);
        let sets = vec![vec![
            Matcher::new(MatchOp::RegexMatch, "__name__", ".+").unwrap(),
        ]];
        let stop = || false;
        let over = ReadControl::new(499, 0, &stop);
        assert!(matches!(
            db.series_listing(&sets, 0, 2_000, 0, &over),
            Err(ReadError::TooManySeries { limit: 499 })
        ));
        let ctl = ReadControl::unlimited();
        let mut l = db.series_listing(&sets, 0, 2_000, 10, &ctl).unwrap();
        let got = all(&mut l);
        assert_eq!(got.len(), 10);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert!(l.truncated());
        let mut l = db.series_listing(&sets, 0, 2_000, 500, &ctl).unwrap();
        assert_eq!(all(&mut l).len(), 500);
        assert!(!l.truncated());
    }
}
