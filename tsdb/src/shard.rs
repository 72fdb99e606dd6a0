//! One shard: its head and WAL under one lock, and its blocks.
//!
//! The block list is a separate, copy-on-write `Arc` so a read takes a
//! snapshot and reads blocks without holding any lock, and a cut or a
//! compaction swaps the list in one step. Blocks a swap removed stay mapped
//! until the last read holding them finishes (their files are unlinked, but
//! a mapping keeps the pages).
//!
//! Ordering that keeps reads gap-free: a cut publishes its block *before*
//! truncating the head, both under the state's write lock, and a read
//! takes the head first and the block list after. A read therefore sees
//! every sample at least once (twice only across a cut, and the merge
//! keeps one per timestamp).

use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::block::{self, Block, BlockMeta};
use crate::error::DbError;
use crate::head::Head;
use crate::wal::Wal;

/// The head and, with a data dir, the WAL: appends change both together.
pub(crate) struct ShardState {
    pub(crate) head: Head,
    pub(crate) wal: Option<Wal>,
}

pub(crate) struct Shard {
    pub(crate) state: RwLock<ShardState>,
    /// Blocks sorted by `(min_time, max_time)`.
    blocks: RwLock<Arc<[Arc<Block>]>>,
    /// Serialises the shard's maintenance (cut, compaction, retention).
    pub(crate) maintenance: Mutex<()>,
}

impl Shard {
    pub(crate) fn new(state: ShardState, blocks: Vec<Arc<Block>>) -> Shard {
        Shard {
            state: RwLock::new(state),
            blocks: RwLock::new(sorted(blocks).into()),
            maintenance: Mutex::new(()),
        }
    }

    /// The current blocks (a snapshot; take it after reading the head).
    pub(crate) fn blocks(&self) -> Arc<[Arc<Block>]> {
        self.blocks.read().clone()
    }

    /// Replaces the blocks whose directories are in `remove` by `add`.
    pub(crate) fn swap_blocks(&self, remove: &[&Path], add: Option<Arc<Block>>) {
        let mut list = self.blocks.write();
        let mut next: Vec<Arc<Block>> = list
            .iter()
            .filter(|b| !remove.contains(&b.dir()))
            .cloned()
            .collect();
        next.extend(add);
        *list = sorted(next).into();
    }
}

fn sorted(mut v: Vec<Arc<Block>>) -> Vec<Arc<Block>> {
    v.sort_by(|a, b| {
        (a.meta().min_time, a.meta().max_time, a.dir()).cmp(&(
            b.meta().min_time,
            b.meta().max_time,
            b.dir(),
        ))
    });
    v
}

/// Opens the blocks of one shard's block dir at start-up: removes blocks a
/// crash left half-written, then blocks a finished compaction had
/// superseded but not yet deleted, and opens the rest (index checked).
/// `read_only` (offline tools) changes nothing on disk: leftovers are only
/// skipped.
pub(crate) fn open_blocks(
    dir: &Path,
    shard: usize,
    read_only: bool,
) -> Result<Vec<Arc<Block>>, DbError> {
    let err = DbError::block(shard);
    if read_only {
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
    } else {
        std::fs::create_dir_all(dir).map_err(DbError::io(dir))?;
        block::cleanup_tmp(dir).map_err(err)?;
    }
    let listed = block::list_blocks(dir).map_err(err)?;
    let superseded = superseded(&listed);
    let mut out = Vec::with_capacity(listed.len());
    for (i, (path, _)) in listed.iter().enumerate() {
        if superseded.contains(&i) {
            if read_only {
                continue;
            }
            tracing::info!(block = %path.display(), "deleting a block a finished compaction replaced");
            std::fs::remove_dir_all(path).map_err(DbError::io(path))?;
            continue;
        }
        out.push(Arc::new(Block::open(path).map_err(err)?));
    }
    Ok(out)
}

/// Indexes of blocks whose sources are all in another, larger block: a
/// compaction wrote that block and the process stopped before it deleted
/// its inputs.
fn superseded(listed: &[(std::path::PathBuf, BlockMeta)]) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, (_, a)) in listed.iter().enumerate() {
        let covered = listed.iter().enumerate().any(|(j, (_, b))| {
            j != i
                && b.compaction.sources.len() > a.compaction.sources.len()
                && a.compaction
                    .sources
                    .iter()
                    .all(|s| b.compaction.sources.binary_search(s).is_ok())
        });
        if covered {
            out.push(i);
        }
    }
    out
}

/// Where the head's lower bound goes after a restart: the end of the cut
/// range that produced the newest block, i.e. its newest sample rounded up
/// to the block duration (cuts are aligned to it).
pub(crate) fn head_floor(blocks: &[Arc<Block>], block_ms: i64) -> Option<i64> {
    let newest = blocks.iter().map(|b| b.meta().max_time).max()?;
    Some(align_up(newest.saturating_add(1), block_ms))
}

/// `t` rounded up to a multiple of `step`.
pub(crate) fn align_up(t: i64, step: i64) -> i64 {
    let r = t.rem_euclid(step);
    if r == 0 { t } else { t - r + step }
}
