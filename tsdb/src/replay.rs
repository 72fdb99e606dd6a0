//! Opening a data dir: every shard's WAL replayed into a fresh head, shards
//! in parallel on a bounded pool.
//!
//! The pool has `threads` workers (the CPU budget), not one per shard or per
//! core: a replay that used every core of a 96-core host while the pod was
//! limited to 24 was slower than one that used 24. Workers take the next
//! unreplayed shard from a shared counter; a monitor logs progress (shards
//! and bytes done, samples, samples/s) every few seconds.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::{info, warn};

use crate::error::DbError;
use crate::head::Head;
use crate::layout::{shard_head_chunks_dir, shard_wal_dir};
use crate::wal::{ReadRecord, WalReader, list_checkpoints, list_segments};

/// Where one open's WAL replay reports its progress: a handle passed in
/// [`crate::DbOptions::replay_progress`] and shared by the replay workers,
/// the progress log and whoever watches (the server's `/metrics` reads it
/// while `Db::open` has not returned). Each open has its own, so two
/// databases in one process never mix their figures.
#[derive(Clone, Default)]
pub struct ReplayProgress(Arc<Counters>);

#[derive(Default)]
struct Counters {
    total_bytes: AtomicU64,
    done_bytes: AtomicU64,
    samples: AtomicU64,
    series: AtomicU64,
    shards_done: AtomicUsize,
    elapsed_ms: AtomicU64,
}

/// A reading of a [`ReplayProgress`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplaySnapshot {
    pub total_bytes: u64,
    pub done_bytes: u64,
    pub samples: u64,
    /// Wall time of the finished replay, 0 while running or when none ran.
    pub elapsed_ms: u64,
}

impl ReplayProgress {
    /// The figures so far.
    pub fn snapshot(&self) -> ReplaySnapshot {
        let c = &self.0;
        ReplaySnapshot {
            total_bytes: c.total_bytes.load(Ordering::Relaxed),
            done_bytes: c.done_bytes.load(Ordering::Relaxed),
            samples: c.samples.load(Ordering::Relaxed),
            elapsed_ms: c.elapsed_ms.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for ReplayProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// How often replay progress is logged.
const LOG_EVERY: Duration = Duration::from_secs(3);

/// Replays every shard's WAL; returns the heads in shard order. Unless
/// `read_only`, each head keeps its sealed chunks in memory-mapped files
/// under `<shard>/head_chunks/` (recreated empty here; replay refills
/// them); a read-only open writes nothing and keeps them on the heap.
pub(crate) fn replay_all(
    data_dir: &Path,
    shards: usize,
    threads: usize,
    min_valid: &[Option<i64>],
    read_only: bool,
    progress: &ReplayProgress,
) -> Result<Vec<Head>, DbError> {
    let progress = &*progress.0;
    let total_bytes: u64 = (0..shards)
        .map(|i| wal_bytes(&shard_wal_dir(data_dir, i)))
        .sum();
    if total_bytes == 0 {
        return (0..shards)
            .map(|i| new_head(data_dir, i, min_valid[i], read_only))
            .collect();
    }
    let started = Instant::now();
    progress.total_bytes.store(total_bytes, Ordering::Relaxed);
    info!(shards, threads, wal_bytes = total_bytes, "replaying WAL");
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Head, DbError>>>> =
        Mutex::new((0..shards).map(|_| None).collect());
    // Dropping the sender (after the workers) wakes the monitor at once.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();

    std::thread::scope(|scope| {
        scope.spawn(move || monitor(progress, done_rx, shards, total_bytes, started));
        let workers: Vec<_> = (0..threads.min(shards))
            .map(|w| {
                let (next, results) = (&next, &results);
                std::thread::Builder::new()
                    .name(format!("wal-replay-{w}"))
                    .spawn_scoped(scope, move || {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= shards {
                                break;
                            }
                            let r = replay_shard(data_dir, i, min_valid[i], read_only, progress);
                            let failed = r.is_err();
                            results.lock()[i] = Some(r);
                            progress.shards_done.fetch_add(1, Ordering::Relaxed);
                            if failed {
                                // Stop handing out shards: start-up fails anyway.
                                next.store(shards, Ordering::Relaxed);
                            }
                        }
                    })
                    .expect("spawn a replay thread")
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        drop(done_tx);
    });

    let mut heads = Vec::with_capacity(shards);
    for (i, r) in results.into_inner().into_iter().enumerate() {
        match r {
            Some(Ok(h)) => heads.push(h),
            Some(Err(e)) => return Err(e),
            None => {
                // Only reachable when another shard failed first and the
                // loop above returned its error; keep the contract explicit.
                return Err(DbError::BadMeta {
                    path: shard_wal_dir(data_dir, i),
                    reason: "replay did not run for this shard".into(),
                });
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let samples = progress.samples.load(Ordering::Relaxed);
    progress
        .elapsed_ms
        .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    info!(
        shards,
        series = progress.series.load(Ordering::Relaxed),
        samples,
        elapsed_s = format!("{secs:.2}"),
        samples_per_s = (samples as f64 / secs.max(1e-9)) as u64,
        "WAL replay finished"
    );
    Ok(heads)
}

/// A new, empty head for `shard` with lower bound `min_valid`, with its
/// chunk files (recreated empty) unless `read_only`.
fn new_head(
    data_dir: &Path,
    shard: usize,
    min_valid: Option<i64>,
    read_only: bool,
) -> Result<Head, DbError> {
    let mut head = Head::default();
    if !read_only {
        let dir = shard_head_chunks_dir(data_dir, shard);
        head.enable_chunk_files(&dir).map_err(DbError::io(&dir))?;
    }
    if let Some(t) = min_valid {
        head.raise_min_valid(t);
    }
    Ok(head)
}

/// Replays one shard's WAL into a new head (see [`new_head`]) whose lower
/// bound is `min_valid` (the end of the shard's newest block): older
/// samples are in blocks already and are skipped.
fn replay_shard(
    data_dir: &Path,
    shard: usize,
    min_valid: Option<i64>,
    read_only: bool,
    progress: &Counters,
) -> Result<Head, DbError> {
    let dir = shard_wal_dir(data_dir, shard);
    let mut head = new_head(data_dir, shard, min_valid, read_only)?;
    let mut reader = WalReader::open(&dir).map_err(DbError::wal(shard))?;
    let mut unknown_refs = 0u64;
    let mut last_bytes = 0;
    loop {
        let rec = reader.next().map_err(DbError::wal(shard))?;
        let Some(rec) = rec else { break };
        match rec {
            ReadRecord::Series(list) => {
                progress
                    .series
                    .fetch_add(list.len() as u64, Ordering::Relaxed);
                for (r, labels) in list.drain(..) {
                    match u32::try_from(r) {
                        // WAL refs are the head's series ids.
                        Ok(id) if id < u32::MAX => head.create_at(id, &labels),
                        _ => unknown_refs += 1,
                    }
                }
            }
            ReadRecord::Samples(list) => {
                progress
                    .samples
                    .fetch_add(list.len() as u64, Ordering::Relaxed);
                for &(r, t, v) in list {
                    if !head.replay_sample_by_ref(r, t, v) {
                        unknown_refs += 1;
                    }
                }
            }
        }
        let bytes = reader.stats().bytes;
        progress
            .done_bytes
            .fetch_add(bytes - last_bytes, Ordering::Relaxed);
        last_bytes = bytes;
    }
    if unknown_refs > 0 {
        // Samples whose series record is missing cannot be placed; say so
        // rather than dropping them silently.
        warn!(
            shard,
            unknown_refs, "WAL samples reference series never logged; they were skipped"
        );
    }
    if let Some(t) = min_valid {
        // Series whose samples were all in blocks came back empty.
        head.truncate_before(t);
    }
    head.rebuild_free_list();
    Ok(head)
}

fn monitor(
    p: &Counters,
    done: std::sync::mpsc::Receiver<()>,
    shards: usize,
    total: u64,
    started: Instant,
) {
    // Times out every LOG_EVERY while replay runs; disconnects when it ends.
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(LOG_EVERY) {
        let bytes = p.done_bytes.load(Ordering::Relaxed);
        let samples = p.samples.load(Ordering::Relaxed);
        info!(
            shards_done = p.shards_done.load(Ordering::Relaxed),
            shards,
            percent = format!("{:.1}", bytes as f64 * 100.0 / total.max(1) as f64),
            samples,
            samples_per_s = (samples as f64 / started.elapsed().as_secs_f64().max(1e-9)) as u64,
            "replaying WAL"
        );
    }
}

/// Bytes in a WAL dir's segments and checkpoints (0 when absent).
fn wal_bytes(dir: &Path) -> u64 {
    let size = |p: std::path::PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut n = 0;
    if let Ok(segs) = list_segments(dir) {
        n += segs
            .iter()
            .map(|s| size(dir.join(crate::wal::segment_name(*s))))
            .sum::<u64>();
    }
    if let Ok(cps) = list_checkpoints(dir) {
        for c in cps {
            let cdir = dir.join(crate::wal::checkpoint_name(c));
            if let Ok(rd) = std::fs::read_dir(cdir) {
                n += rd.flatten().map(|e| size(e.path())).sum::<u64>();
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::ReplayProgress;
    use crate::layout::shard_head_chunks_dir;
    use crate::wal::{FsyncPolicy, WalOptions};
    use crate::{BlockPolicy, Db, DbOptions};
    use crate::{Labels, Sample};

    fn opts(dir: &std::path::Path, read_only: bool) -> DbOptions {
        DbOptions {
            data_dir: Some(dir.to_path_buf()),
            shards: 2,
            wal: WalOptions {
                segment_bytes: 1 << 20,
                fsync: FsyncPolicy::Never,
            },
            replay_threads: 2,
            read_only,
            blocks: BlockPolicy {
                // Nothing is cut during the test.
                block_duration_ms: 1 << 50,
                retention_ms: None,
            },
            replay_progress: ReplayProgress::default(),
        }
    }

    /// Names of the head chunk files of every shard.
    fn chunk_files(dir: &std::path::Path) -> Vec<String> {
        let mut v = Vec::new();
        for s in 0..2 {
            let d = shard_head_chunks_dir(dir, s);
            if let Ok(rd) = std::fs::read_dir(&d) {
                v.extend(rd.map(|e| format!("{s}/{:?}", e.unwrap().file_name())));
            }
        }
        v.sort();
        v
    }

    #[test]
    fn sealed_chunks_go_to_files_rebuilt_by_replay_never_by_read_only_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(opts(tmp.path(), false)).unwrap();
        for i in 0..6 {
            let ls = Labels::from_pairs([("__name__", "up"), ("i", &*i.to_string())]);
            let smp: Vec<Sample> = (0..400)
                .map(|t| Sample::new(t * 15_000, (t * i) as f64 / 4.0))
                .collect();
            db.append(&ls, &smp).unwrap();
        }
        let want = db.select(&[], i64::MIN, i64::MAX);
        assert_eq!(want.len(), 6);
        let mapped: u64 = db.head_stats().iter().map(|s| s.mapped_bytes).sum();
        assert!(mapped > 0);
        let files = chunk_files(tmp.path());
        assert!(!files.is_empty());

        // A read-only open (an offline tool next to the server) keeps its
        // chunks on the heap and leaves the server's files alone.
        let ro = Db::open(opts(tmp.path(), true)).unwrap();
        assert_eq!(ro.select(&[], i64::MIN, i64::MAX), want);
        assert!(ro.head_stats().iter().all(|s| s.mapped_bytes == 0));
        drop(ro);
        assert_eq!(chunk_files(tmp.path()), files);
        assert_eq!(db.select(&[], i64::MIN, i64::MAX), want);

        // A restart rebuilds the files from the WAL.
        drop(db);
        let db = Db::open(opts(tmp.path(), false)).unwrap();
        assert_eq!(db.select(&[], i64::MIN, i64::MAX), want);
        let st = db.head_stats();
        assert_eq!(st.iter().map(|s| s.mapped_bytes).sum::<u64>(), mapped);
        assert_eq!(chunk_files(tmp.path()), files);
    }
}
