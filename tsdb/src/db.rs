//! The database: N independent shards, routing by series hash.
//!
//! `shard = labels.stable_hash() % shards`. Each shard has its own lock and
//! head (and, with a data dir, its own WAL), so appends to different shards
//! proceed in parallel and a slow read of one shard never blocks the others.
//! The shard count is fixed for the life of a data dir: it is recorded in
//! `tessera-meta.json` and a start with another value is refused.
//!
//! With a data dir every shard has a WAL (`shard-NNN/wal/`): an append is
//! logged (handed to the kernel) under the shard's lock before it returns,
//! so a caller that acknowledges after `append_batch` returns `Ok` never
//! acknowledges a sample a `kill -9` can lose. Opening replays the shards'
//! WALs in parallel (`replay.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::block::{Block, BlockError};
use crate::compaction::{self, CompactionReport};
use crate::cut::{self, CutReport};
use crate::head::{AppendStats, Head, HeadStats};
use crate::parallel;
use crate::read::{ReadControl, ReadError};
use crate::shard::{self, Shard, ShardState};
use crate::wal::{Flusher, FsyncPolicy, RecordRef, Wal, WalError, WalOptions};
use crate::{Labels, Matcher, Sample, SeriesSamples};

const META_FILE: &str = "tessera-meta.json";
const META_VERSION: u32 = 1;

/// How to open a [`Db`].
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Where the data lives; `None` keeps everything in memory (tests).
    pub data_dir: Option<PathBuf>,
    /// Number of shards; fixed for the life of the data dir.
    pub shards: usize,
    /// WAL settings (used with a data dir).
    pub wal: WalOptions,
    /// Threads that replay shards at open (the CPU budget).
    pub replay_threads: usize,
    /// Replay only, open no WAL for writing and change nothing on disk
    /// (offline tools reading a data dir). Appends then fail.
    pub read_only: bool,
    /// When head ranges become blocks and how long blocks are kept.
    pub blocks: BlockPolicy,
}

/// Block duration and retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockPolicy {
    /// Length of the head range cut into a block (`--block.duration`),
    /// and the base of the compaction ranges.
    pub block_duration_ms: i64,
    /// Blocks whose newest sample is older than this before the newest
    /// data are deleted (`--retention`); `None` keeps everything.
    pub retention_ms: Option<i64>,
}

/// Prometheus' defaults: 2 h blocks, 15 days of retention.
impl Default for BlockPolicy {
    fn default() -> Self {
        BlockPolicy {
            block_duration_ms: 2 * 3_600_000,
            retention_ms: Some(15 * 24 * 3_600_000),
        }
    }
}

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

/// A shard's blocks, summed, for `/metrics` and status pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    pub blocks: u64,
    pub bytes: u64,
    pub series: u64,
    pub samples: u64,
    pub min_t: Option<i64>,
    pub max_t: Option<i64>,
}

impl DbOptions {
    /// An in-memory database's options.
    pub fn in_memory(shards: usize) -> Self {
        DbOptions {
            data_dir: None,
            shards,
            wal: WalOptions::default(),
            replay_threads: 1,
            read_only: false,
            blocks: BlockPolicy::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "data dir {dir} was created with --shards {on_disk}, but this start asked for --shards {asked}; \
         the shard count of a data dir cannot change: start with --shards {on_disk} or use a new --data-dir"
    )]
    ShardMismatch {
        dir: PathBuf,
        on_disk: usize,
        asked: usize,
    },
    #[error("--shards must be between 1 and 4096, got {0}")]
    BadShardCount(usize),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid metadata: {reason}")]
    BadMeta { path: PathBuf, reason: String },
    #[error(
        "data dir {dir} is in use by another process (it holds {dir}/LOCK); \
         two servers on one data dir would corrupt its WAL: stop the other one or use another --data-dir"
    )]
    Locked { dir: PathBuf },
    #[error("the database was opened read-only (an offline tool); it takes no appends")]
    ReadOnly,
    /// The message is the block error's own (which says how to repair).
    #[error("shard {shard}: {error}")]
    Block {
        shard: usize,
        error: crate::block::BlockError,
    },
    #[error("shard {shard}: {source}")]
    Wal {
        shard: usize,
        #[source]
        source: WalError,
    },
}

/// A sharded time-series database.
pub struct Db {
    shards: Box<[Shard]>,
    data_dir: Option<PathBuf>,
    /// Fsyncs the WALs in the background under `FsyncPolicy::Interval`;
    /// stopped on drop.
    _flusher: Option<Flusher>,
    read_only: bool,
    /// Threads one read may use to select shards in parallel (1: the
    /// caller's thread only). Part of the `--cpus` budget; see `parallel.rs`.
    read_threads: AtomicUsize,
    /// Holds an exclusive `flock` on `<data_dir>/LOCK` while the Db lives.
    _lock: Option<std::fs::File>,
    policy: BlockPolicy,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    cuts: AtomicU64,
    cut_failures: AtomicU64,
    compactions: AtomicU64,
    compaction_failures: AtomicU64,
    blocks_deleted: AtomicU64,
    last_cut_millis: AtomicU64,
    last_compaction_millis: AtomicU64,
}

/// The directory of one shard (its `wal/` and `blocks/`).
pub fn shard_dir(data_dir: &Path, shard: usize) -> PathBuf {
    data_dir.join(format!("shard-{shard:03}"))
}

/// The WAL directory of one shard.
pub fn shard_wal_dir(data_dir: &Path, shard: usize) -> PathBuf {
    shard_dir(data_dir, shard).join("wal")
}

/// The block directory of one shard: one subdirectory per block
/// (`crate::block`'s layout).
pub fn shard_block_dir(data_dir: &Path, shard: usize) -> PathBuf {
    shard_dir(data_dir, shard).join("blocks")
}

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
        std::fs::create_dir_all(dir).map_err(|source| DbError::Io {
            path: dir.clone(),
            source,
        })?;
        let lock = if opts.read_only {
            None
        } else {
            Some(lock_data_dir(dir)?)
        };
        if opts.read_only {
            match stored_shard_count(dir)? {
                Some(n) if n != opts.shards => {
                    return Err(DbError::ShardMismatch {
                        dir: dir.clone(),
                        on_disk: n,
                        asked: opts.shards,
                    });
                }
                _ => {}
            }
        } else {
            check_or_write_meta(dir, opts.shards)?;
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
        )?;
        let mut shards = Vec::with_capacity(opts.shards);
        let mut syncers = Vec::new();
        for ((i, head), blocks) in heads.into_iter().enumerate().zip(blocks) {
            if opts.read_only {
                shards.push(Shard::new(ShardState { head, wal: None }, blocks));
                continue;
            }
            let wal = Wal::open(&shard_wal_dir(dir, i), opts.wal)
                .map_err(|source| DbError::Wal { shard: i, source })?;
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
            FsyncPolicy::Interval(every) if !opts.read_only => Some(
                Flusher::spawn(syncers, every).map_err(|source| DbError::Io {
                    path: dir.clone(),
                    source,
                })?,
            ),
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

    /// Sets how many threads one read may use to select shards in
    /// parallel (clamped to 1..=shards; 1, the default, reads on the
    /// caller's thread). Size it from the `--cpus` budget: every concurrent
    /// query may use this many threads at once.
    pub fn set_read_threads(&self, n: usize) {
        self.read_threads
            .store(n.clamp(1, self.shards.len()), Ordering::Relaxed);
    }

    /// Threads one read may use (see [`Db::set_read_threads`]).
    pub fn read_threads(&self) -> usize {
        self.read_threads.load(Ordering::Relaxed)
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// The shard a series belongs to.
    pub fn shard_of(&self, labels: &Labels) -> usize {
        (labels.stable_hash() % self.shards.len() as u64) as usize
    }

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
                    wal.log(&recs)
                        .map_err(|source| DbError::Wal { shard: i, source })?;
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
                wal.sync()
                    .map_err(|source| DbError::Wal { shard: i, source })?;
            }
        }
        Ok(())
    }

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

    /// Cardinality analysis across all shards, lists cut to `top` entries.
    pub fn analyze(&self, top: usize) -> crate::analyze::Analysis {
        let mut acc = crate::analyze::Accumulator::default();
        // Churn is judged against the whole database's time range.
        for s in self.shards.iter() {
            acc.add_bounds(s.state.read().head.bounds());
        }
        let range = acc.min_time.zip(acc.max_time);
        for s in self.shards.iter() {
            s.state.read().head.analyze_into(&mut acc, range);
        }
        acc.finish(top)
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
            match cut::cut_shard(s, i, dir, block_ms) {
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
        let ranges = compaction::ranges(block_ms, self.policy.retention_ms);
        loop {
            let floor = s.state.read().head.min_valid_t();
            let Some(inputs) = compaction::plan(&s.blocks(), &ranges, floor) else {
                break;
            };
            match compaction::compact_shard(s, i, &shard_block_dir(dir, i), &inputs) {
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
                let n = compaction::apply_retention(s, newest, retention)?;
                c.blocks_deleted.fetch_add(n as u64, Ordering::Relaxed);
                report.blocks_deleted += n;
            }
        }
        Ok(())
    }
}

/// Takes an exclusive, non-blocking `flock` on `<dir>/LOCK`, held until
/// the file is dropped: what a server holds while it runs, and what an
/// offline tool that changes the data dir takes first. The kernel drops it
/// when the process dies, so a crash never leaves a stale lock.
pub fn lock_data_dir(dir: &Path) -> Result<std::fs::File, DbError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DbError::Io {
            path: path.clone(),
            source,
        })?;
    // SAFETY: flock on a file descriptor we own for the duration of the call.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
            DbError::Locked {
                dir: dir.to_path_buf(),
            }
        } else {
            DbError::Io { path, source: e }
        });
    }
    Ok(f)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    version: u32,
    shards: usize,
}

fn check_or_write_meta(dir: &Path, shards: usize) -> Result<(), DbError> {
    let path = dir.join(META_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| DbError::BadMeta {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if meta.version != META_VERSION {
                return Err(DbError::BadMeta {
                    path,
                    reason: format!(
                        "unknown version {} (this build reads {META_VERSION})",
                        meta.version
                    ),
                });
            }
            if meta.shards != shards {
                return Err(DbError::ShardMismatch {
                    dir: dir.to_path_buf(),
                    on_disk: meta.shards,
                    asked: shards,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let meta = Meta {
                version: META_VERSION,
                shards,
            };
            let tmp = dir.join(format!("{META_FILE}.tmp"));
            let io = |source| DbError::Io {
                path: tmp.clone(),
                source,
            };
            std::fs::write(
                &tmp,
                serde_json::to_vec_pretty(&meta).expect("meta serializes"),
            )
            .map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(|source| DbError::Io {
                path: path.clone(),
                source,
            })
        }
        Err(source) => Err(DbError::Io { path, source }),
    }
}

/// The stored shard count of a data dir, if it has one.
pub fn stored_shard_count(dir: &Path) -> Result<Option<usize>, DbError> {
    let path = dir.join(META_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Meta>(&bytes)
            .map(|m| Some(m.shards))
            .map_err(|e| DbError::BadMeta {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DbError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MatchOp;

    fn series(i: usize) -> Labels {
        Labels::from_pairs([
            (
                "__name__",
                if i.is_multiple_of(2) {
                    "DCGM_FI_DEV_GPU_UTIL"
                } else {
                    "node_load1"
                },
            ),
            ("gpu", &*(i % 8).to_string()),
            ("Hostname", &*format!("node-{}", i / 8)),
        ])
    }

    #[test]
    fn appends_across_shards_and_selects_back() {
        let db = Db::in_memory(4);
        for i in 0..64 {
            let st = db
                .append(
                    &series(i),
                    &[
                        Sample::new(1000, i as f64),
                        Sample::new(2000, i as f64 + 1.0),
                    ],
                )
                .unwrap();
            assert_eq!(st.samples_appended, 2);
        }
        let m = [Matcher::equal("__name__", "DCGM_FI_DEV_GPU_UTIL")];
        let got = db.select(&m, 0, 10_000);
        assert_eq!(got.len(), 32);
        assert!(got.windows(2).all(|w| w[0].labels < w[1].labels));
        assert!(got.iter().all(|s| s.samples.len() == 2));
        // Time range is inclusive and filters samples.
        let got = db.select(&m, 2000, 2000);
        assert!(
            got.iter()
                .all(|s| s.samples == vec![Sample::new(2000, s.samples[0].v)])
        );
        assert!(db.select(&m, 3000, 4000).is_empty());
        let names = db.label_names(&[], i64::MIN, i64::MAX);
        assert_eq!(names, vec!["Hostname", "__name__", "gpu"]);
        let gpus = db.label_values("gpu", &m, i64::MIN, i64::MAX);
        assert_eq!(gpus, vec!["0", "2", "4", "6"]);
        let le = Matcher::new(MatchOp::NotEqual, "le", "").unwrap();
        assert!(db.series(&[le], i64::MIN, i64::MAX).is_empty());
    }

    #[test]
    fn parallel_reads_match_one_thread_and_keep_budgets() {
        let db = Db::in_memory(8);
        // Series of varied lengths so shards differ in size.
        for i in 0..600usize {
            let n = 1 + (i * 7919) % 37;
            let samples: Vec<Sample> = (0..n as i64)
                .map(|t| Sample::new(t * 1000, (i as i64 * t) as f64))
                .collect();
            db.append(&series(i), &samples).unwrap();
        }
        let m = [Matcher::equal("__name__", "node_load1")];
        let want = db.select(&m, 3000, 20_000);
        let total: usize = want.iter().map(|s| s.samples.len()).sum();
        assert!(want.len() > 200);
        let tight = |series: usize, samples: usize| {
            let ctl = ReadControl::new(series, samples, &|| false);
            db.select_with(&m, 3000, 20_000, &ctl).err()
        };
        for threads in [1, 2, 3, 8] {
            db.set_read_threads(threads);
            assert_eq!(db.select(&m, 3000, 20_000), want, "threads {threads}");
            // The budgets trip exactly where one thread trips them.
            assert_eq!(tight(0, total), None);
            assert_eq!(
                tight(0, total - 1),
                Some(ReadError::TooManySamples { limit: total - 1 })
            );
            assert_eq!(tight(want.len(), 0), None);
            let few = want.len() - 1;
            assert_eq!(tight(few, 0), Some(ReadError::TooManySeries { limit: few }));
            assert_eq!(
                db.select_with(&m, 0, 1, &ReadControl::new(0, 0, &|| true))
                    .err(),
                Some(ReadError::Stopped)
            );
            // Batches: one per shard, together the same series.
            let mut got = Vec::new();
            let mut batches = 0;
            db.select_batches(&m, 3000, 20_000, &ReadControl::unlimited(), &mut |b| {
                batches += 1;
                got.extend(b);
                Ok(())
            })
            .unwrap();
            assert_eq!(batches, 8);
            got.sort_by(|a, b| a.labels.cmp(&b.labels));
            assert_eq!(got, want);
        }
    }

    #[test]
    fn long_series_span_many_chunks() {
        let db = Db::in_memory(1);
        let ls = series(0);
        let samples: Vec<Sample> = (0..1000)
            .map(|i| Sample::new(i * 15_000, (i % 100) as f64))
            .collect();
        db.append(&ls, &samples).unwrap();
        let got = db.select(&[Matcher::equal("gpu", "0")], 0, i64::MAX);
        assert_eq!(got[0].samples, samples);
        let mid = db.select(&[Matcher::equal("gpu", "0")], 15_000 * 250, 15_000 * 260);
        assert_eq!(mid[0].samples, samples[250..=260].to_vec());
    }

    #[test]
    fn refuses_a_different_shard_count_for_a_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let opts = |shards| DbOptions {
            data_dir: Some(dir.path().to_path_buf()),
            shards,
            ..DbOptions::in_memory(1)
        };
        Db::open(opts(4)).unwrap();
        Db::open(opts(4)).unwrap();
        let err = Db::open(opts(8)).err().unwrap().to_string();
        assert!(
            err.contains("--shards 4") && err.contains("--shards 8"),
            "{err}"
        );
        assert_eq!(stored_shard_count(dir.path()).unwrap(), Some(4));
    }

    #[test]
    fn a_second_open_of_a_data_dir_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let opts = || DbOptions {
            data_dir: Some(dir.path().to_path_buf()),
            shards: 2,
            ..DbOptions::in_memory(2)
        };
        let first = Db::open(opts()).unwrap();
        let err = Db::open(opts()).err().unwrap();
        assert!(matches!(err, DbError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("in use"), "{err}");
        // Offline tools may read while a server runs.
        Db::open(DbOptions {
            read_only: true,
            ..opts()
        })
        .unwrap();
        drop(first);
        Db::open(opts()).unwrap();
    }
}
