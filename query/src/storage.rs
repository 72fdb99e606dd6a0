//! What the engine needs from storage, and its two implementations: the
//! real [`tessera_tsdb::Db`] and a plain in-memory list for unit tests.

use tessera_tsdb::{Db, Matcher, ReadControl, ReadError, SeriesSamples};

/// Series selection by matchers and time range.
pub trait Storage: Send + Sync {
    /// Series matching every matcher with their samples in `mint..=maxt`
    /// (staleness markers included), each sorted by time. Series without a
    /// sample in range may be omitted. The storage stops early, with
    /// [`SelectStop`], when `stop` returns true or more than `max_samples`
    /// samples (0: no limit) would be loaded, so a huge selector fails
    /// before it fills memory rather than after.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        max_samples: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<SeriesSamples>, SelectStop>;

    /// The series of [`Storage::select`] handed to `each` in batches (the
    /// Db: one shard at a time), in no particular order, each batch dropped
    /// before the next is built; `max_samples` bounds one batch. An
    /// aggregation that folds series as they come holds one batch instead
    /// of the whole selection. An error from `each` ends the read and is
    /// returned. The default hands over the whole selection as one batch.
    fn select_batches(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        max_samples: usize,
        stop: &dyn Fn() -> bool,
        each: &mut dyn FnMut(Vec<SeriesSamples>) -> Result<(), SelectStop>,
    ) -> Result<(), SelectStop> {
        each(self.select(matchers, mint, maxt, max_samples, stop)?)
    }
}

/// Why a storage selection ended early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectStop {
    /// `stop` returned true (cancelled or past the deadline).
    Stopped,
    /// More than `max_samples` samples matched.
    TooManySamples,
    /// The storage failed (damaged or unreadable data, or a budget of its
    /// own); the error names the file and offset where it knows them.
    Failed(ReadError),
}

impl Storage for Db {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        max_samples: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<SeriesSamples>, SelectStop> {
        let ctl = ReadControl::new(0, max_samples, stop);
        Db::select_with(self, matchers, mint, maxt, &ctl).map_err(select_stop)
    }

    fn select_batches(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        max_samples: usize,
        stop: &dyn Fn() -> bool,
        each: &mut dyn FnMut(Vec<SeriesSamples>) -> Result<(), SelectStop>,
    ) -> Result<(), SelectStop> {
        let ctl = ReadControl::new(0, max_samples, stop);
        // `each`'s own error rides through the Db as a stop and is put back.
        let mut failed = None;
        let r = Db::select_batches(self, matchers, mint, maxt, &ctl, &mut |b| {
            each(b).map_err(|e| {
                failed = Some(e);
                ReadError::Stopped
            })
        });
        match failed {
            Some(e) => Err(e),
            None => r.map_err(select_stop),
        }
    }
}

fn select_stop(e: ReadError) -> SelectStop {
    match e {
        ReadError::Stopped => SelectStop::Stopped,
        ReadError::TooManySamples { .. } => SelectStop::TooManySamples,
        ReadError::TooManySeries { .. } | ReadError::Corrupt { .. } => SelectStop::Failed(e),
    }
}

/// A list of series held in memory: for tests and small embedded uses.
#[derive(Clone, Debug, Default)]
pub struct VecStorage {
    pub series: Vec<SeriesSamples>,
}

impl VecStorage {
    pub fn new(series: Vec<SeriesSamples>) -> Self {
        VecStorage { series }
    }
}

impl Storage for VecStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        _max_samples: usize,
        _stop: &dyn Fn() -> bool,
    ) -> Result<Vec<SeriesSamples>, SelectStop> {
        let mut out = Vec::new();
        for s in &self.series {
            if !matchers
                .iter()
                .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
            {
                continue;
            }
            let lo = s.samples.partition_point(|p| p.t < mint);
            let hi = s.samples.partition_point(|p| p.t <= maxt);
            if lo < hi {
                out.push(SeriesSamples {
                    labels: s.labels.clone(),
                    samples: s.samples[lo..hi].to_vec(),
                });
            }
        }
        Ok(out)
    }
}
