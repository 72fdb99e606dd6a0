//! What a [`Db`] reports about itself: head, block and WAL statistics and
//! the cardinality analysis, for `/metrics`, status pages and `tessera tsdb`.

use super::{BlockStats, Db};
use crate::head::HeadStats;
use crate::{ReadControl, ReadError};

impl Db {
    /// Cardinality analysis across all shards, lists cut to `top` entries.
    pub fn analyze(&self, top: usize) -> crate::analyze::Analysis {
        let req = crate::analyze::AnalyzeRequest {
            top,
            ..Default::default()
        };
        self.analyze_with(&req, &ReadControl::unlimited())
            .expect("an unlimited read never stops")
    }

    /// Cardinality analysis of the series `req` selects, under `ctl`: the
    /// stop signal is checked every [`crate::CHECK_EVERY`] series or pairs,
    /// and selected series count against its series budget.
    pub fn analyze_with(
        &self,
        req: &crate::analyze::AnalyzeRequest,
        ctl: &ReadControl<'_>,
    ) -> Result<crate::analyze::Analysis, ReadError> {
        let mut acc = crate::analyze::Accumulator::new(req.focus_label.clone());
        // Churn is judged against the whole database's time range.
        for s in self.shards.iter() {
            acc.add_bounds(s.state.read().head.bounds());
        }
        let range = acc.min_time.zip(acc.max_time);
        for s in self.shards.iter() {
            s.state
                .read()
                .head
                .analyze_into(&mut acc, range, &req.matchers, ctl)?;
        }
        Ok(acc.finish(req.top))
    }

    /// Per shard, the WAL segment being written (None without a WAL).
    pub fn wal_segments(&self) -> Vec<Option<u64>> {
        self.shards
            .iter()
            .map(|s| s.state.read().wal.as_ref().map(|w| w.current_segment()))
            .collect()
    }

    /// Per-shard head statistics.
    pub fn head_stats(&self) -> Vec<HeadStats> {
        self.shards
            .iter()
            .map(|s| s.state.read().head.stats())
            .collect()
    }

    /// Per-shard block statistics.
    pub fn block_stats(&self) -> Vec<BlockStats> {
        self.shards
            .iter()
            .map(|s| {
                let mut st = BlockStats::default();
                for b in s.blocks().iter() {
                    let m = b.meta();
                    st.blocks += 1;
                    st.bytes += b.size_bytes();
                    st.series += m.stats.series;
                    st.samples += m.stats.samples;
                    st.min_t = Some(st.min_t.map_or(m.min_time, |t| t.min(m.min_time)));
                    st.max_t = Some(st.max_t.map_or(m.max_time, |t| t.max(m.max_time)));
                }
                st
            })
            .collect()
    }
}
