//! What the engine needs from storage, and its two implementations: the
//! real [`tessera_tsdb::Db`] and a plain in-memory list for unit tests.

use tessera_tsdb::{Db, Matcher, SeriesSamples};

use crate::error::QueryError;

/// Series selection by matchers and time range.
pub trait Storage: Send + Sync {
    /// Series matching every matcher with their samples in `mint..=maxt`
    /// (staleness markers included), each sorted by time. Series without a
    /// sample in range may be omitted.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesSamples>, QueryError>;
}

impl Storage for Db {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesSamples>, QueryError> {
        Ok(Db::select(self, matchers, mint, maxt))
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
    ) -> Result<Vec<SeriesSamples>, QueryError> {
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
