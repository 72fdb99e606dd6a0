//! Where a database keeps its files, and the two files that guard a data
//! dir: the `LOCK` a running server holds and `tessera-meta.json`, which
//! fixes the shard count for the life of the directory.
//!
//! ```text
//! <data-dir>/
//!   LOCK                      flock'd while a server (or a repairing tool) runs
//!   tessera-meta.json         {"version":1,"shards":N}
//!   shard-000/
//!     wal/                    segments and checkpoints (`crate::wal`)
//!     head_chunks/            sealed head chunks, rebuilt at start (`docs/format/head_chunks.md`)
//!     blocks/<block>/         immutable blocks (`crate::block`)
//!   shard-001/ ...
//!   damaged/                  what `tessera tsdb repair` set aside
//! ```
//!
//! Everything that names a path inside a data dir calls this module, so the
//! layout has one owner.

use std::path::{Path, PathBuf};

use crate::block;
use crate::error::DbError;

const META_FILE: &str = "tessera-meta.json";
const META_VERSION: u32 = 1;

/// The directory of one shard (its `wal/`, `head_chunks/` and `blocks/`).
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

/// Where one shard's head keeps its sealed chunks.
pub fn shard_head_chunks_dir(data_dir: &Path, shard: usize) -> PathBuf {
    shard_dir(data_dir, shard).join("head_chunks")
}

/// A block directory name for `[min, max]` not taken in `dir` (a range
/// can be written twice when the block duration changes between runs).
pub(crate) fn free_block_dir(dir: &Path, min: i64, max: i64) -> PathBuf {
    (0u32..)
        .map(|seq| dir.join(block::block_dir_name(min, max, seq)))
        .find(|p| !p.exists())
        .expect("some sequence number is free")
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
        .map_err(DbError::io(&path))?;
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

/// Checks the data dir's recorded shard count against `shards`, recording
/// it first when the dir is new.
pub(crate) fn check_or_write_meta(dir: &Path, shards: usize) -> Result<(), DbError> {
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
            check_shards(dir, meta.shards, shards)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let meta = Meta {
                version: META_VERSION,
                shards,
            };
            let tmp = dir.join(format!("{META_FILE}.tmp"));
            std::fs::write(
                &tmp,
                serde_json::to_vec_pretty(&meta).expect("meta serializes"),
            )
            .map_err(DbError::io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(DbError::io(&path))
        }
        Err(source) => Err(DbError::Io { path, source }),
    }
}

/// Refuses a shard count other than the one a data dir was created with.
pub(crate) fn check_shards(dir: &Path, on_disk: usize, asked: usize) -> Result<(), DbError> {
    if on_disk == asked {
        return Ok(());
    }
    Err(DbError::ShardMismatch {
        dir: dir.to_path_buf(),
        on_disk,
        asked,
    })
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
