//! The store's error types: [`DbError`] for opening, appending and
//! maintenance, [`ReadError`] for reads, and the one conversion from a
//! block's error into a read's.
//!
//! Errors that concern a file name it (and for damage, the byte offset), so
//! an operator reading a log line knows what to repair.

use std::path::{Path, PathBuf};

use crate::block::BlockError;
use crate::wal::WalError;

/// Why the database could not open, append, sync or maintain itself.
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
    Block { shard: usize, error: BlockError },
    #[error("shard {shard}: {source}")]
    Wal {
        shard: usize,
        #[source]
        source: WalError,
    },
}

impl DbError {
    /// `map_err` adapter for an I/O error on `path`.
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DbError + '_ {
        move |source| DbError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// `map_err` adapter for a block error of shard `shard`.
    pub(crate) fn block(shard: usize) -> impl Fn(BlockError) -> DbError + Copy {
        move |error| DbError::Block { shard, error }
    }

    /// `map_err` adapter for a WAL error of shard `shard`.
    pub(crate) fn wal(shard: usize) -> impl Fn(WalError) -> DbError + Copy {
        move |source| DbError::Wal { shard, source }
    }
}

/// Why a read stopped early.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("read stopped: cancelled or past its deadline")]
    Stopped,
    #[error("read would touch more than {limit} series")]
    TooManySeries { limit: usize },
    #[error("read would load more than {limit} samples")]
    TooManySamples { limit: usize },
    /// Stored data failed its checks (a block's CRC, say) or could not be
    /// read: the read fails rather than answer without it. `message` is the
    /// storage's own, which names the file and says how to repair.
    #[error("{message}")]
    Corrupt {
        /// The damaged (or unreadable) file or directory.
        path: PathBuf,
        /// Byte offset of the damage, when known.
        offset: Option<u64>,
        message: String,
    },
}

impl From<BlockError> for ReadError {
    fn from(e: BlockError) -> Self {
        let (path, offset) = match &e {
            BlockError::Read(r) => return r.clone(),
            BlockError::Corrupt { path, offset, .. } => (path.clone(), Some(*offset)),
            BlockError::Io { path, .. } | BlockError::BadMeta { path, .. } => (path.clone(), None),
            BlockError::SeriesOutOfOrder { dir, .. }
            | BlockError::SampleOutOfOrder { dir, .. }
            | BlockError::BadInput { dir, .. }
            | BlockError::AlreadyExists { dir }
            | BlockError::Empty { dir } => (dir.clone(), None),
        };
        ReadError::Corrupt {
            path,
            offset,
            message: e.to_string(),
        }
    }
}
