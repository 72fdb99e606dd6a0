//! One maintenance pass of a [`Db`]: per shard, cut the head ranges that are
//! due into blocks (`crate::shard_cut`), run the compactions that are due
//! and apply retention (`crate::shard_compaction`), counting what was done.
//! [`crate::Maintainer`] runs passes in the background.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{BlockPolicy, Db};
use crate::error::DbError;
use crate::layout::shard_block_dir;
use crate::shard_compaction::{self, CompactionReport};
use crate::shard_cut::{self, CutReport};

/// What one [`Db::maintain`] pass did.
#[derive(Clone, Debug, Default)]
pub struct MaintenanceReport {
    pub cuts: Vec<CutReport>,
    pub compactions: Vec<CompactionReport>,
    pub blocks_deleted: usize,
}

/// Counters of the maintenance work since open, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceCounters {
    pub cuts: u64,
    pub cut_failures: u64,
    pub compactions: u64,
    pub compaction_failures: u64,
    pub blocks_deleted: u64,
    /// Wall time of the last cut and of the last compaction.
    pub last_cut_millis: u64,
    pub last_compaction_millis: u64,
}

/// The live counters behind [`MaintenanceCounters`].
#[derive(Default)]
pub(super) struct Counters {
    cuts: AtomicU64,
    cut_failures: AtomicU64,
    compactions: AtomicU64,
    compaction_failures: AtomicU64,
    blocks_deleted: AtomicU64,
    last_cut_millis: AtomicU64,
    last_compaction_millis: AtomicU64,
}

impl Db {
    /// The block policy this database was opened with.
    pub fn block_policy(&self) -> BlockPolicy {
        self.policy
    }

    /// Counters of the maintenance work since open.
    pub fn maintenance_counters(&self) -> MaintenanceCounters {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MaintenanceCounters {
            cuts: get(&c.cuts),
            cut_failures: get(&c.cut_failures),
            compactions: get(&c.compactions),
            compaction_failures: get(&c.compaction_failures),
            blocks_deleted: get(&c.blocks_deleted),
            last_cut_millis: get(&c.last_cut_millis),
            last_compaction_millis: get(&c.last_compaction_millis),
        }
    }

    /// One maintenance pass over every shard: cuts the head ranges that are
    /// due into blocks (checkpointing and truncating the WAL), runs the
    /// compactions that are due, and deletes blocks past retention. Called
    /// by a [`crate::maintain::Maintainer`] in the background; tests call
    /// it directly. Without a data dir, or read-only, it does nothing.
    /// Every shard is attempted; the first error is returned.
    pub fn maintain(&self) -> Result<MaintenanceReport, DbError> {
        let mut report = MaintenanceReport::default();
        let Some(dir) = self.data_dir.as_deref().filter(|_| !self.read_only) else {
            return Ok(report);
        };
        let mut first_err = None;
        for i in 0..self.shards.len() {
            if let Err(e) = self.maintain_shard(i, dir, &mut report) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(report), Err)
    }

    fn maintain_shard(
        &self,
        i: usize,
        dir: &Path,
        report: &mut MaintenanceReport,
    ) -> Result<(), DbError> {
        let s = &self.shards[i];
        let _one_at_a_time = s.maintenance.lock();
        let c = &self.counters;
        let block_ms = self.policy.block_duration_ms;
        // Several ranges may be due after a long stop; each cut is bounded.
        loop {
            match shard_cut::cut_shard(s, i, dir, block_ms) {
                Ok(Some(r)) => {
                    c.cuts.fetch_add(1, Ordering::Relaxed);
                    c.last_cut_millis.store(r.millis, Ordering::Relaxed);
                    report.cuts.push(r);
                }
                Ok(None) => break,
                Err(e) => {
                    c.cut_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        let ranges = shard_compaction::ranges(block_ms, self.policy.retention_ms);
        loop {
            let floor = s.state.read().head.min_valid_t();
            let Some(inputs) = shard_compaction::plan(&s.blocks(), &ranges, floor) else {
                break;
            };
            match shard_compaction::compact_shard(s, i, &shard_block_dir(dir, i), &inputs) {
                Ok(r) => {
                    c.compactions.fetch_add(1, Ordering::Relaxed);
                    c.last_compaction_millis.store(r.millis, Ordering::Relaxed);
                    report.compactions.push(r);
                }
                Err(e) => {
                    c.compaction_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        if let Some(retention) = self.policy.retention_ms {
            let head_max = s.state.read().head.bounds().map(|b| b.1);
            let block_max = s.blocks().iter().map(|b| b.meta().max_time).max();
            if let Some(newest) = head_max.max(block_max) {
                let n = shard_compaction::apply_retention(s, newest, retention)?;
                c.blocks_deleted.fetch_add(n as u64, Ordering::Relaxed);
                report.blocks_deleted += n;
            }
        }
        Ok(())
    }
}
