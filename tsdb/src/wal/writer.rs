//! The append side: [`Wal`] writes framed records to the current segment with
//! one `pwrite` per call, cuts segments, applies the fsync policy, and hands
//! out a [`WalSyncer`] so a background thread can fsync without the shard lock.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use super::record::{FrameEncoder, RecordRef};
use super::segment::{
    SEGMENT_HEADER_LEN, Scanner, Step, create_segment, list_checkpoints, list_segments,
    segment_header, segment_name, sync_dir, valid_record_after,
};
use super::{FORMAT_VERSION, FsyncPolicy, WalError, WalOptions};
use crate::Labels;

/// State shared between the writer and its syncers.
struct Shared {
    dir: PathBuf,
    /// The current segment; swapped on cut (after the old one is fsynced).
    file: Mutex<Arc<File>>,
    /// Set after every write, cleared just before an fsync starts.
    dirty: AtomicBool,
    /// Milliseconds since `base` of the last completed fsync.
    last_sync_ms: AtomicU64,
    base: Instant,
    /// Why an fsync failed, if one did: the writer refuses further writes.
    failed: Mutex<Option<String>>,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    fn sync(&self) -> Result<bool, WalError> {
        // Clear before syncing: a write landing during the fsync sets it again
        // and is picked up next time, never lost.
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let file = self.file.lock().clone();
        if let Err(e) = file.sync_data() {
            *self.failed.lock() = Some(format!("fsync: {e}"));
            return Err(WalError::Io {
                op: "fsync of current segment in",
                path: self.dir.clone(),
                source: e,
            });
        }
        self.last_sync_ms.store(self.now_ms(), Ordering::Release);
        Ok(true)
    }
}

/// The writer of one WAL directory. Not `Sync` by design: the shard calls
/// it under its own lock; only [`WalSyncer`] crosses threads.
pub struct Wal {
    opts: WalOptions,
    file: Arc<File>,
    segment: u64,
    /// Bytes in the current segment, header included: the next write offset.
    size: u64,
    /// Encode buffer reused by every `log` call.
    buf: Vec<u8>,
    encoder: FrameEncoder,
    shared: Arc<Shared>,
    poisoned: Option<String>,
}

/// A cheap, cloneable handle that fsyncs the writer's current segment from
/// another thread (the `Interval` flusher) without taking the shard lock.
#[derive(Clone)]
pub struct WalSyncer {
    shared: Arc<Shared>,
}

impl WalSyncer {
    /// fsyncs the current segment if anything was written since the last
    /// fsync; returns whether it did. A failure poisons the writer.
    pub fn sync_if_dirty(&self) -> Result<bool, WalError> {
        self.shared.sync()
    }

    /// True if something was written since the last fsync.
    pub fn is_dirty(&self) -> bool {
        self.shared.dirty.load(Ordering::Acquire)
    }
}

impl Wal {
    /// Opens `dir` (created if missing) for appending after the last valid
    /// record of the last segment. A torn tail there is truncated with a
    /// warning; damage followed by valid data is [`WalError::Corrupt`].
    /// Earlier segments are not read here: replay ([`super::WalReader`])
    /// checks them.
    /// If the last segment has an older format version (1), it is left
    /// unchanged and writing continues in a newly cut segment.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<Wal, WalError> {
        fs::create_dir_all(dir).map_err(WalError::io("creating WAL directory", dir))?;
        let segments = list_segments(dir)?;
        let (segment, file, size, version) = match segments.last() {
            None => {
                // After a checkpoint of everything, numbering continues after it.
                let next = list_checkpoints(dir)?.last().map_or(0, |c| c + 1);
                let f = create_segment(dir, next)?;
                (next, f, SEGMENT_HEADER_LEN, FORMAT_VERSION)
            }
            Some(&last) => {
                let path = dir.join(segment_name(last));
                let (size, version) = recover_tail(&path)?;
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(WalError::io("opening segment", &path))?;
                (last, f, size, version)
            }
        };
        let file = Arc::new(file);
        let base = Instant::now();
        let mut wal = Wal {
            opts,
            file: file.clone(),
            segment,
            size,
            buf: Vec::with_capacity(64 << 10),
            encoder: FrameEncoder::new(true),
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                file: Mutex::new(file),
                dirty: AtomicBool::new(false),
                last_sync_ms: AtomicU64::new(0),
                base,
                failed: Mutex::new(None),
            }),
            poisoned: None,
        };
        if version != FORMAT_VERSION {
            // Never mix formats in one segment: an older build's segment is
            // left as it is and writing continues in a new one.
            let next = wal.cut_segment()?;
            tracing::info!(
                dir = %dir.display(),
                old_segment = segment,
                old_version = version,
                segment = next,
                version = FORMAT_VERSION,
                "WAL segment has an older format version; writing continues in a new segment"
            );
        }
        Ok(wal)
    }

    /// Logs new series. See [`Wal::log`].
    pub fn log_series(&mut self, series: &[(u64, &Labels)]) -> Result<(), WalError> {
        self.log(&[RecordRef::Series(series)])
    }

    /// Logs samples `(series ref, t ms, value)`. See [`Wal::log`].
    pub fn log_samples(&mut self, samples: &[(u64, i64, f64)]) -> Result<(), WalError> {
        self.log(&[RecordRef::Samples(samples)])
    }

    /// Writes the records in order, normally with a single `pwrite` (two or
    /// more only when a segment is cut in between), then applies the fsync
    /// policy. `Ok` means the bytes are in the kernel (see the module doc for
    /// what each policy adds). On `Err` nothing is acknowledged, though a
    /// prefix of the records may have been written and will be replayed.
    pub fn log(&mut self, records: &[RecordRef<'_>]) -> Result<(), WalError> {
        self.check_poisoned()?;
        self.buf.clear();
        for rec in records {
            let mut from = 0;
            while from < rec.len() {
                let start = self.buf.len();
                from += self.encoder.append_frame(rec, from, &mut self.buf)?;
                let n = (self.buf.len() - start) as u64;
                let used = self.size + start as u64;
                if used > SEGMENT_HEADER_LEN && used + n > self.opts.segment_bytes {
                    self.write_out(start)?;
                    self.cut_segment()?;
                    self.buf.drain(..start);
                }
            }
        }
        self.write_out(self.buf.len())?;
        match self.opts.fsync {
            FsyncPolicy::Always => self.sync(),
            FsyncPolicy::Interval(d) => {
                // Fallback for when no flusher runs (or it lags): keep the bound.
                // Saturating: a flusher may record a sync after our clock read.
                let last = self.shared.last_sync_ms.load(Ordering::Acquire);
                let since = self.shared.now_ms().saturating_sub(last);
                if u128::from(since) >= d.as_millis() {
                    self.sync()?;
                }
                Ok(())
            }
            FsyncPolicy::Never => Ok(()),
        }
    }

    /// Writes `buf[..n]` at the end of the segment. On failure the segment is
    /// cut back to its last good size so no half record sits before later
    /// writes; if even that fails the writer is poisoned.
    fn write_out(&mut self, n: usize) -> Result<(), WalError> {
        if n == 0 {
            return Ok(());
        }
        if let Err(e) = self.file.write_all_at(&self.buf[..n], self.size) {
            if let Err(e2) = self.file.set_len(self.size) {
                self.poisoned = Some(format!(
                    "write failed ({e}) and truncating it back failed ({e2})"
                ));
            }
            return Err(WalError::Io {
                op: "writing segment",
                path: self.segment_path(),
                source: e,
            });
        }
        self.size += n as u64;
        self.shared.dirty.store(true, Ordering::Release);
        Ok(())
    }

    fn check_poisoned(&self) -> Result<(), WalError> {
        let cause = match &self.poisoned {
            Some(c) => Some(c.clone()),
            None => self.shared.failed.lock().clone(),
        };
        match cause {
            Some(cause) => Err(WalError::Poisoned {
                dir: self.shared.dir.clone(),
                cause,
            }),
            None => Ok(()),
        }
    }

    /// fsyncs the current segment now (if anything was written since the
    /// last fsync).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.check_poisoned()?;
        self.shared.sync().map(|_| ())
    }

    /// A handle for fsyncing from another thread (see [`WalSyncer`]).
    pub fn syncer(&self) -> WalSyncer {
        WalSyncer {
            shared: self.shared.clone(),
        }
    }

    /// fsyncs and closes; use on clean shutdown so `Interval`/`Never` lose nothing.
    pub fn close(mut self) -> Result<(), WalError> {
        self.shared.dirty.store(true, Ordering::Release);
        self.sync()
    }

    /// Indexes of the segment files on disk, ascending.
    pub fn segments(&self) -> Result<Vec<u64>, WalError> {
        list_segments(&self.shared.dir)
    }

    /// Index of the segment being written.
    pub fn current_segment(&self) -> u64 {
        self.segment
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    fn segment_path(&self) -> PathBuf {
        self.shared.dir.join(segment_name(self.segment))
    }

    /// fsyncs the current segment and starts the next one; returns its
    /// index. Checkpointing cuts first so every segment it reads is closed.
    pub fn cut_segment(&mut self) -> Result<u64, WalError> {
        self.check_poisoned()?;
        if let Err(e) = self.file.sync_data() {
            self.poisoned = Some(format!("fsync at segment cut: {e}"));
            return Err(WalError::Io {
                op: "fsync at cut of",
                path: self.segment_path(),
                source: e,
            });
        }
        let next = self.segment + 1;
        let file = Arc::new(create_segment(&self.shared.dir, next)?);
        *self.shared.file.lock() = file.clone();
        self.file = file;
        self.segment = next;
        self.size = SEGMENT_HEADER_LEN;
        Ok(next)
    }

    /// Deletes segments with index `< segment` (never the current one), oldest
    /// first so a crash leaves a contiguous run. Call it after a
    /// [`super::checkpoint`] covering them. Returns how many were deleted.
    pub fn truncate_before(&mut self, segment: u64) -> Result<usize, WalError> {
        delete_segments_before(&self.shared.dir, segment.min(self.segment))
    }
}

/// Deletes the segments of `dir` numbered below `segment`, then syncs the
/// directory. It needs no [`Wal`]: a cut calls it for segments it has
/// already closed without holding the shard's lock, since the directory
/// fsync can wait for the file system's journal long enough to stall every
/// append to the shard.
pub fn delete_segments_before(dir: &Path, segment: u64) -> Result<usize, WalError> {
    let mut n = 0;
    for s in list_segments(dir)? {
        if s >= segment {
            break;
        }
        let p = dir.join(segment_name(s));
        fs::remove_file(&p).map_err(WalError::io("deleting segment", &p))?;
        n += 1;
    }
    if n > 0 {
        sync_dir(dir)?;
    }
    Ok(n)
}

/// Finds the end of the valid records of the last segment, truncating a torn
/// tail (with a warning) and rewriting a torn header. Returns the size and
/// the segment's format version (the current one if the header was rewritten).
fn recover_tail(path: &Path) -> Result<(u64, u8), WalError> {
    let mut sc = Scanner::open(path, Vec::new())?;
    let file_len = sc.file_len();
    let bad = loop {
        match sc.next()? {
            Step::Record { .. } => {}
            Step::End => return Ok((file_len, sc.version().unwrap_or(FORMAT_VERSION))),
            Step::Damaged(d) => break d,
        }
    };
    let version = sc.version().unwrap_or(FORMAT_VERSION);
    drop(sc);
    if !bad.tearable || valid_record_after(path, bad.offset + 1)? {
        return Err(WalError::Corrupt {
            path: path.to_path_buf(),
            offset: bad.offset,
            reason: bad.reason,
        });
    }
    tracing::warn!(
        file = %path.display(),
        offset = bad.offset,
        bytes_dropped = file_len - bad.offset,
        reason = %bad.reason,
        "truncating torn tail of the last WAL segment (a crash interrupted a write)"
    );
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(WalError::io("opening segment", path))?;
    let io = WalError::io("truncating torn tail of", path);
    if bad.offset < SEGMENT_HEADER_LEN {
        f.set_len(0)
            .and_then(|_| f.write_all_at(&segment_header(), 0))
            .and_then(|_| f.sync_data())
            .map_err(io)?;
        Ok((SEGMENT_HEADER_LEN, FORMAT_VERSION))
    } else {
        f.set_len(bad.offset)
            .and_then(|_| f.sync_data())
            .map_err(io)?;
        Ok((bad.offset, version))
    }
}
