//! The write-ahead log of one shard: the only thing that makes an
//! acknowledged sample survive a crash before it reaches a block.
//!
//! Each shard owns one WAL directory and calls [`Wal`] under its own lock;
//! replay of the shards runs in parallel (`crate::replay` owns that pool), and
//! this module provides the fast sequential per-directory [`WalReader`].
//! The byte layout is documented in `docs/format/wal.md` (format version 2:
//! columnar Samples records and snappy-compressed bodies; version-1 segments
//! are still read, and a writer reopening one starts a new segment).
//!
//! Layout of a directory:
//!
//! ```text
//! wal/
//!   checkpoint.00000041/00000000   live series (+ recent samples) of segments <= 41
//!   00000042                       segments, numbered %08d, cut at `segment_bytes`
//!   00000043
//! ```
//!
//! # Durability contract
//!
//! When [`Wal::log`] (or `log_series` / `log_samples`) returns `Ok`, every byte
//! of the records has been handed to the kernel with `pwrite` — there is no
//! userspace buffer left — so a process crash (`kill -9`) loses nothing that
//! was acknowledged. What a power loss can lose depends on [`FsyncPolicy`]:
//!
//! - `Always`: `fdatasync` before returning; nothing acknowledged is lost.
//! - `Interval(d)`: an fsync happens at most `d` after a write, by the
//!   background [`Flusher`] (one thread for all shards, calling
//!   [`WalSyncer::sync_if_dirty`] every `d`), or inline in `log` when the
//!   last fsync is older than `d`; up to `d` of acknowledged writes may be
//!   lost.
//! - `Never`: the kernel decides (typically ~30 s on Linux).
//!
//! Segments are fsynced when they are cut, whatever the policy, so at most the
//! current segment can ever have a torn tail. A failed fsync poisons the
//! writer ([`WalError::Poisoned`]): after such a failure the kernel may have
//! dropped dirty pages, so accepting more writes would acknowledge data that
//! may already be gone.
//!
//! # Damage
//!
//! A torn record at the tail of the last segment (short header, short
//! payload, CRC mismatch with nothing valid after it, trailing zeros) is the
//! normal result of a crash: [`Wal::open`] truncates it and [`WalReader`]
//! stops before it, both with a `tracing::warn!` naming the file, offset and
//! bytes dropped. Any other damage is [`WalError::Corrupt`], never skipped;
//! [`repair`] keeps everything before the first damage and reports the rest.

mod checkpoint;
mod flusher;
mod reader;
mod record;
mod repair;
mod samples;
mod segment;
mod writer;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use checkpoint::{CheckpointStats, checkpoint};
pub use flusher::Flusher;
pub use reader::{ReadRecord, ReadStats, WalReader};
pub use record::{MAX_RECORD_BYTES, RecordRef, WalRecord};
pub use repair::{Damage, RepairReport, repair};
pub use segment::{checkpoint_name, list_checkpoints, list_segments, segment_name};
pub use writer::{Wal, WalSyncer, delete_segments_before};

/// On-disk format version, written in every segment header. Readers also
/// read [`FORMAT_VERSION_V1`] segments.
pub const FORMAT_VERSION: u8 = 2;

/// The previous format version (row Samples records, no compression).
pub const FORMAT_VERSION_V1: u8 = 1;

/// Default segment size (128 MiB), as in Prometheus.
pub const DEFAULT_SEGMENT_BYTES: u64 = 128 << 20;

/// When the WAL fsyncs (see the module doc for what each policy may lose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before every `log` returns: survives power loss, costs one
    /// device flush per call.
    Always,
    /// fsync at most this long after a write: a power loss may lose up to this
    /// much acknowledged data.
    Interval(Duration),
    /// Leave it to the kernel's writeback.
    Never,
}

/// How a [`Wal`] writes.
#[derive(Clone, Copy, Debug)]
pub struct WalOptions {
    /// A new segment is cut when the next record would make the current one
    /// larger than this. A single record larger than this gets a segment of
    /// its own (records are split at ~1 MiB, so that is rare).
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
        }
    }
}

/// Everything that can go wrong in the WAL, each with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL I/O error: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "WAL corrupt: {path} at byte offset {offset}: {reason}; run `tessera tsdb repair --data-dir <dir>` \
         to keep everything before the damage (it reports what is dropped)"
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error(
        "WAL segment {missing} is missing in {dir} (segments must be contiguous after the checkpoint); \
         run `tessera tsdb repair --data-dir <dir>` to keep everything before the gap"
    )]
    MissingSegment { dir: PathBuf, missing: u64 },
    #[error(
        "WAL record entry of {bytes} bytes exceeds the {MAX_RECORD_BYTES}-byte record limit \
         (a single label set this large is not a real series)"
    )]
    RecordTooLarge { bytes: usize },
    #[error("cannot checkpoint WAL {dir}: {reason}")]
    Checkpoint { dir: PathBuf, reason: String },
    #[error(
        "WAL writer for {dir} is poisoned by an earlier failed write or fsync ({cause}); \
         reopen the WAL so it re-reads what is really on disk"
    )]
    Poisoned { dir: PathBuf, cause: String },
}

impl WalError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> WalError {
        let path = path.into();
        move |source| WalError::Io { op, path, source }
    }
}
