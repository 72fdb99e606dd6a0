//! Opening a database: checks, the data dir's lock and meta file, the
//! blocks of every shard, then the WALs replayed in parallel
//! (`crate::replay`).

use std::sync::atomic::AtomicUsize;

use super::{Counters, Db, DbOptions};
use crate::error::DbError;
use crate::head::Head;
use crate::layout::{self, shard_block_dir, shard_wal_dir};
use crate::shard::{self, Shard, ShardState};
use crate::wal::{Flusher, FsyncPolicy, Wal};

impl Db {
    /// Opens (or creates) a database, replaying the WALs of a data dir.
    pub fn open(opts: DbOptions) -> Result<Db, DbError> {
        if opts.shards == 0 || opts.shards > 4096 {
            return Err(DbError::BadShardCount(opts.shards));
        }
        if opts.blocks.block_duration_ms < 1 {
            return Err(DbError::BadMeta {
                path: opts.data_dir.clone().unwrap_or_default(),
                reason: format!(
                    "the block duration must be positive, got {} ms",
                    opts.blocks.block_duration_ms
                ),
            });
        }
        let Some(dir) = &opts.data_dir else {
            let shards = (0..opts.shards)
                .map(|_| {
                    Shard::new(
                        ShardState {
                            head: Head::default(),
                            wal: None,
                        },
                        Vec::new(),
                    )
                })
                .collect();
            return Ok(Db {
                shards,
                data_dir: None,
                _flusher: None,
                read_only: false,
                read_threads: AtomicUsize::new(1),
                _lock: None,
                policy: opts.blocks,
                counters: Counters::default(),
            });
        };
        std::fs::create_dir_all(dir).map_err(DbError::io(dir))?;
        let lock = if opts.read_only {
            None
        } else {
            Some(layout::lock_data_dir(dir)?)
        };
        if opts.read_only {
            if let Some(n) = layout::stored_shard_count(dir)? {
                layout::check_shards(dir, n, opts.shards)?;
            }
        } else {
            layout::check_or_write_meta(dir, opts.shards)?;
        }
        let mut blocks = Vec::with_capacity(opts.shards);
        for i in 0..opts.shards {
            blocks.push(shard::open_blocks(
                &shard_block_dir(dir, i),
                i,
                opts.read_only,
            )?);
        }
        let floors: Vec<Option<i64>> = blocks
            .iter()
            .map(|b| shard::head_floor(b, opts.blocks.block_duration_ms))
            .collect();
        let heads = crate::replay::replay_all(
            dir,
            opts.shards,
            opts.replay_threads.max(1),
            &floors,
            opts.read_only,
            &opts.replay_progress,
        )?;
        let mut shards = Vec::with_capacity(opts.shards);
        let mut syncers = Vec::new();
        for ((i, head), blocks) in heads.into_iter().enumerate().zip(blocks) {
            if opts.read_only {
                shards.push(Shard::new(ShardState { head, wal: None }, blocks));
                continue;
            }
            let wal = Wal::open(&shard_wal_dir(dir, i), opts.wal).map_err(DbError::wal(i))?;
            syncers.push(wal.syncer());
            shards.push(Shard::new(
                ShardState {
                    head,
                    wal: Some(wal),
                },
                blocks,
            ));
        }
        let flusher = match opts.wal.fsync {
            FsyncPolicy::Interval(every) if !opts.read_only => {
                Some(Flusher::spawn(syncers, every).map_err(DbError::io(dir))?)
            }
            _ => None,
        };
        Ok(Db {
            shards: shards.into_boxed_slice(),
            data_dir: opts.data_dir,
            _flusher: flusher,
            read_only: opts.read_only,
            read_threads: AtomicUsize::new(1),
            _lock: lock,
            policy: opts.blocks,
            counters: Counters::default(),
        })
    }

    /// A database held only in memory (tests, PromQL conformance).
    pub fn in_memory(shards: usize) -> Db {
        Db::open(DbOptions::in_memory(shards.clamp(1, 4096)))
            .expect("an in-memory db with a valid shard count cannot fail to open")
    }
}
