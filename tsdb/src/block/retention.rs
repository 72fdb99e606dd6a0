//! Block directories: naming, listing, crash leftovers and retention.

use std::path::{Path, PathBuf};

use super::meta::BlockMeta;
use super::{BlockError, META_FILE, TMP_SUFFIX};

/// A block directory name that sorts by `min_time`, then `max_time`, then
/// `seq`: `b-<min>-<max>-<seq>`, each time as 16 hex digits of the
/// timestamp with its sign bit flipped (so negative times sort first).
pub fn block_dir_name(min_time: i64, max_time: i64, seq: u32) -> String {
    let key = |t: i64| (t as u64) ^ (1 << 63);
    format!("b-{:016x}-{:016x}-{seq:08x}", key(min_time), key(max_time))
}

/// Deletes the `*.tmp` directories a crash left in `dir` (blocks that were
/// being written); returns how many. Call before opening the blocks.
pub fn cleanup_tmp(dir: &Path) -> Result<usize, BlockError> {
    let mut n = 0;
    for e in std::fs::read_dir(dir).map_err(BlockError::io("read dir", dir))? {
        let e = e.map_err(BlockError::io("read dir", dir))?;
        let path = e.path();
        let is_dir = e
            .file_type()
            .map_err(BlockError::io("stat", &path))?
            .is_dir();
        if is_dir && e.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
            tracing::warn!(path = %path.display(), "deleting a block left half-written by a crash");
            std::fs::remove_dir_all(&path).map_err(BlockError::io("remove", &path))?;
            n += 1;
        }
    }
    Ok(n)
}

/// The complete blocks in `dir` (directories with a `meta.json`, not
/// `.tmp` or `.repaired`), with their metadata, sorted by `(min_time, max_time, path)`.
pub fn list_blocks(dir: &Path) -> Result<Vec<(PathBuf, BlockMeta)>, BlockError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(BlockError::io("read dir", dir))? {
        let e = e.map_err(BlockError::io("read dir", dir))?;
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        // A `.repaired` dir is a replacement an interrupted
        // `tessera tsdb repair` had not swapped in yet: not a block.
        if name.ends_with(TMP_SUFFIX)
            || name.ends_with(super::REPAIRED_SUFFIX)
            || !path.join(META_FILE).is_file()
        {
            continue;
        }
        let meta = BlockMeta::read(&path)?;
        out.push((path, meta));
    }
    out.sort_by(|a, b| (a.1.min_time, a.1.max_time, &a.0).cmp(&(b.1.min_time, b.1.max_time, &b.0)));
    Ok(out)
}

/// True when every sample of the block is older than the retention: its
/// (inclusive) `max_time < newest_ms - retention_ms`. A block is deleted
/// whole or not at all, so data up to one block's span older than the
/// retention may be kept.
pub fn past_retention(meta: &BlockMeta, newest_ms: i64, retention_ms: i64) -> bool {
    meta.max_time < newest_ms.saturating_sub(retention_ms)
}
