//! `meta.json`: what a block holds, readable without opening the index.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{BlockError, FORMAT_VERSION, META_FILE};

/// A block's metadata, stored as `meta.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Block format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Timestamp (ms) of the oldest sample in the block.
    pub min_time: i64,
    /// Timestamp (ms) of the newest sample in the block, **inclusive**
    /// (Prometheus' block `maxTime` is exclusive; ours is the real last
    /// sample, so `[min_time, max_time]` tests work like `select`'s range).
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: CompactionMeta,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    pub series: u64,
    pub samples: u64,
    pub chunks: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionMeta {
    /// 1 for a block written from the head; a compaction's output is one
    /// more than the highest level of its inputs.
    pub level: u32,
    /// Directory names of the level-1 blocks whose data this block holds,
    /// sorted (a level-1 block lists itself).
    pub sources: Vec<String>,
}

impl BlockMeta {
    /// True when the block may hold a sample in `[mint, maxt]`.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.min_time <= maxt && mint <= self.max_time
    }

    pub(crate) fn read(dir: &Path) -> Result<BlockMeta, BlockError> {
        let path = dir.join(META_FILE);
        let bytes = std::fs::read(&path).map_err(BlockError::io("read", &path))?;
        let meta: BlockMeta = serde_json::from_slice(&bytes).map_err(|e| BlockError::BadMeta {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if meta.version != u32::from(FORMAT_VERSION) {
            return Err(BlockError::BadMeta {
                path,
                reason: format!(
                    "format version {} is not supported (this build reads {FORMAT_VERSION})",
                    meta.version
                ),
            });
        }
        if meta.min_time > meta.max_time || meta.stats.series == 0 {
            return Err(BlockError::BadMeta {
                path,
                reason: format!(
                    "impossible contents: min_time {} max_time {} series {}",
                    meta.min_time, meta.max_time, meta.stats.series
                ),
            });
        }
        Ok(meta)
    }
}
