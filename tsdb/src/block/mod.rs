//! Blocks: immutable, memory-mapped, time-partitioned files holding the
//! series of one shard over a time range, with their chunks and an index.
//!
//! A block is a directory written once by [`BlockWriter`] and read through
//! [`Block`] (both files mmap'd, chunks decoded in place as [`BlockChunk`]s
//! with no allocation per sample). Reads take the same matchers, inclusive
//! time range and [`crate::ReadControl`] budgets as `Db`'s, with the same
//! results. [`compact`] merges several blocks into one, streaming series in
//! label order; [`past_retention`] says which blocks a retention
//! policy deletes, whole. The byte layout is specified in
//! `docs/format/block.md` (format version 1).
//!
//! ```text
//! <data>/
//!   b-<min>-<max>-<seq>/      a block (name from `block_dir_name`, any name works)
//!     meta.json               time range, counts, compaction level and sources
//!     index                   symbols, series (labels + chunk refs), postings, label index, TOC
//!     chunks                  `tsdb::chunk` chunks, each + CRC32C; a timestamp column
//!                             identical to an earlier one is stored once and shared
//!   b-....tmp/                a block being written; deleted by `cleanup_tmp`
//! ```
//!
//! # Size
//!
//! A block is immutable, so it cuts long chunks (480 samples, 2 h at 15 s,
//! instead of the head's 120; 1,920 in compacted blocks), stores each
//! distinct timestamp column once (all series of a scrape target share
//! theirs) and seals each chunk in its smallest encoding (the "fitted"
//! value code: exact decimal or multiplied integers, GCD-divided deltas,
//! per-chunk bucket tables). On the bench generator's dcgm/node-exporter
//! data that is 1.0 bytes a sample in a 2 h block and 0.85 after
//! compaction to 24 h; what remains is the entropy of the values
//! (`docs/format/block.md` has the figures and the command).
//!
//! # Crash safety
//!
//! The writer fills `<dir>.tmp/`, fsyncs every file and the directory, then
//! renames it to `<dir>` and fsyncs the parent, so after a crash a block is
//! either complete or absent; a leftover `.tmp` directory is garbage that
//! [`cleanup_tmp`] removes at open.
//!
//! # Integrity
//!
//! [`Block::open`] checks the index's table of contents and the CRC32C of
//! every index section, so a damaged index never serves wrong series. Each
//! chunk carries its own CRC32C, checked when the chunk is read (a block's
//! chunks can be gigabytes; checking them all at open would read them all);
//! [`Block::verify`] checks every chunk for tools. Damage is a
//! [`BlockError::Corrupt`] naming the file and byte offset, never a panic.

mod bytes;
mod compact;
mod index;
mod index_writer;
mod merge;
mod meta;
mod postings;
mod query;
mod reader;
mod repair;
mod retention;
mod series;
mod view;
mod writer;

#[cfg(test)]
mod measure;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

pub use compact::compact;
pub use merge::merge_series;
pub use meta::{BlockMeta, BlockStats, CompactionMeta};
pub use reader::{Block, SeriesChunks};
pub use repair::{
    BlockRepair, BlocksRepair, Damage, DroppedChunk, REPAIRED_SUFFIX, block_dirs, repair_block,
    repair_blocks,
};
pub use retention::{block_dir_name, cleanup_tmp, list_blocks, past_retention};
pub use view::BlockChunk;
pub use writer::{BlockOptions, BlockWriter, DEFAULT_MAX_CHUNK_SAMPLES, TS_DEDUP_BYTES};

/// Block format version, in `meta.json` and the headers of `index` and
/// `chunks`; readers reject any other.
pub const FORMAT_VERSION: u8 = 1;

/// File names inside a block directory.
pub const META_FILE: &str = "meta.json";
pub const INDEX_FILE: &str = "index";
pub const CHUNKS_FILE: &str = "chunks";

/// Suffix of a block directory still being written.
pub const TMP_SUFFIX: &str = ".tmp";

/// Everything that can go wrong writing or reading a block, each naming the
/// file (and for damage the byte offset) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block I/O error: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "block corrupt: {path} at byte offset {offset}: {reason}; run `tessera tsdb repair --data-dir <dir>`: \
         it keeps the block's intact series and chunks and sets the damaged block aside under <dir>/damaged/"
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("block meta {path}: {reason}")]
    BadMeta { path: PathBuf, reason: String },
    #[error(
        "block writer {dir}: series {labels} is not after the previous series {prev}; \
         add series in strictly increasing label order"
    )]
    SeriesOutOfOrder {
        dir: PathBuf,
        labels: String,
        prev: String,
    },
    #[error(
        "block writer {dir}: series {labels} has a sample at {t} not after the previous one at {prev_t}; \
         samples and chunks of a series must be in strictly increasing time order"
    )]
    SampleOutOfOrder {
        dir: PathBuf,
        labels: String,
        t: i64,
        prev_t: i64,
    },
    #[error("block writer {dir}: {reason}")]
    BadInput { dir: PathBuf, reason: String },
    #[error("block {dir} already exists; blocks are immutable, write to a new directory")]
    AlreadyExists { dir: PathBuf },
    #[error(
        "block writer {dir}: no series with samples were added, and an empty block is not written"
    )]
    Empty { dir: PathBuf },
    /// A read stopped by its budget or stop signal (not damage).
    #[error(transparent)]
    Read(#[from] crate::error::ReadError),
}

impl BlockError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| BlockError::Io { op, path, source }
    }

    pub(crate) fn corrupt(path: &std::path::Path, offset: u64, reason: impl Into<String>) -> Self {
        BlockError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }
}
