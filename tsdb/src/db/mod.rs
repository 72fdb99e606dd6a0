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
//! WALs in parallel (`crate::replay`).

//!
//! The methods are split by concern, as Prometheus splits its head:
//! `open.rs` (opening and replay wiring), `append.rs` (writes), `read.rs`
//! (selections and listings), `stats.rs` (what it reports about itself) and
//! `maintain.rs` (cuts, compaction, retention). The modules this one uses
//! (`shard`, `shard_cut`, `shard_compaction`, `replay`, `layout`, `error`)
//! never import from it.

mod append;
mod maintain;
mod open;
mod read;
mod series_listing;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub use maintain::{MaintenanceCounters, MaintenanceReport};
pub use series_listing::SeriesListing;

use crate::Labels;
use crate::replay::ReplayProgress;
use crate::shard::Shard;
use crate::wal::{Flusher, WalOptions};
use maintain::Counters;

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
    /// Where the WAL replay of this open reports its progress: keep a
    /// clone to watch it (the server's `/metrics` does, while `Db::open`
    /// has not returned yet).
    pub replay_progress: ReplayProgress,
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
            replay_progress: ReplayProgress::default(),
        }
    }
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

impl Db {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::stored_shard_count;
    use crate::{DbError, MatchOp, Matcher, ReadControl, ReadError, Sample};

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
