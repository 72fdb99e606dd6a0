//! The write side of a [`Db`]: samples routed to their shards, each
//! shard's batch appended to its head and logged to its WAL under one hold
//! of its lock.

use super::Db;
use crate::error::DbError;
use crate::head::AppendStats;
use crate::shard::ShardState;
use crate::wal::RecordRef;
use crate::{Labels, Sample};

impl Db {
    /// Appends one series' samples (in time order).
    pub fn append(&self, labels: &Labels, samples: &[Sample]) -> Result<AppendStats, DbError> {
        self.append_batch([(labels, samples)])
    }

    /// Appends many series, taking each shard's lock once per batch. With a
    /// WAL, returns only after the accepted samples (and new series) are
    /// logged; on a WAL error the caller must not acknowledge.
    pub fn append_batch<'a>(
        &self,
        batch: impl IntoIterator<Item = (&'a Labels, &'a [Sample])>,
    ) -> Result<AppendStats, DbError> {
        if self.read_only {
            return Err(DbError::ReadOnly);
        }
        let n = self.shards.len() as u64;
        let mut per_shard: Vec<Vec<(u64, &Labels, &[Sample])>> =
            vec![Vec::new(); self.shards.len()];
        for (labels, samples) in batch {
            let h = labels.stable_hash();
            per_shard[(h % n) as usize].push((h, labels, samples));
        }
        let mut stats = AppendStats::default();
        let mut accepted = Vec::new();
        let mut created: Vec<(u64, &Labels)> = Vec::new();
        for (i, (shard, items)) in self.shards.iter().zip(per_shard).enumerate() {
            if items.is_empty() {
                continue;
            }
            let mut st = shard.state.write();
            let ShardState { head, wal } = &mut *st;
            for (h, labels, samples) in items {
                let (id, is_new) = head.get_or_create(labels, h);
                if is_new {
                    stats.series_created += 1;
                    created.push((id as u64, labels));
                }
                head.append_samples(id, labels, samples, &mut stats, &mut accepted);
            }
            if let Some(wal) = wal {
                let mut recs = Vec::with_capacity(2);
                if !created.is_empty() {
                    recs.push(RecordRef::Series(&created));
                }
                if !accepted.is_empty() {
                    recs.push(RecordRef::Samples(&accepted));
                }
                if !recs.is_empty() {
                    wal.log(&recs).map_err(DbError::wal(i))?;
                }
            }
            accepted.clear();
            created.clear();
        }
        Ok(stats)
    }

    /// Fsyncs every shard's WAL (graceful shutdown).
    pub fn sync(&self) -> Result<(), DbError> {
        for (i, s) in self.shards.iter().enumerate() {
            if let Some(wal) = &mut s.state.write().wal {
                wal.sync().map_err(DbError::wal(i))?;
            }
        }
        Ok(())
    }
}
