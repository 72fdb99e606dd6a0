//! Repairing damaged blocks: keep every chunk that still checks out, set
//! the damaged original aside, never delete it.
//!
//! What can be trusted decides what is kept:
//!
//! - `meta.json` or the index fails its checks ([`Block::open`]): the
//!   series list itself is in doubt, so nothing in the block is used. The
//!   directory is moved whole to the damaged root (`<data>/damaged/shard-NNN/`
//!   for `tessera tsdb repair`), where an operator can still inspect it.
//! - The index is sound but some chunks fail their CRC32C or do not
//!   decode: a replacement block holding every series and every intact chunk
//!   is written next to the original, checked, and swapped in; the original
//!   goes to the damaged root. The report names every dropped chunk (series,
//!   time range, sample count, file offset). If no chunk is intact the block
//!   is moved aside and nothing is written (a block cannot be empty).
//! - An intact block is only read.
//!
//! # Crash safety
//!
//! The replacement is written by [`BlockWriter`] as `<name>.repaired`
//! (itself via `<name>.repaired.tmp`, so a crash mid-write leaves only a
//! `.tmp` that [`cleanup_tmp`] removes). Only once it is complete, fsynced
//! and verified is the original renamed into the damaged root, and then the
//! replacement renamed to `<name>`; each rename is followed by fsyncs of
//! both directories. At every instant at least one full copy exists under
//! a name that is neither `.tmp` nor gone. A crash between the two renames
//! leaves `<name>.repaired` alone in the block dir, a valid block that
//! [`repair_blocks`] renames into place on its next run; a crash before the
//! first leaves both, and the next run rebuilds the replacement from the
//! still-present original.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::meta::BlockMeta;
use super::reader::Block;
use super::retention::cleanup_tmp;
use super::series::ChunkMeta;
use super::view::BlockChunk;
use super::writer::{BlockOptions, BlockWriter, sync_dir};
use super::{BlockError, CHUNKS_FILE, INDEX_FILE, TMP_SUFFIX};
use crate::Labels;
use crate::chunk::{Chunk, ChunkBuilder, ChunkRef};

/// Suffix of a replacement block written by a repair, before it takes the
/// original's name.
pub const REPAIRED_SUFFIX: &str = ".repaired";

/// Where damage was found: a file, the byte offset when known, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub path: PathBuf,
    /// Byte offset in `path`; `None` for a whole-file problem (unparsable
    /// `meta.json`, a missing file).
    pub offset: Option<u64>,
    pub reason: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(o) => write!(
                f,
                "{} at byte offset {o}: {}",
                self.path.display(),
                self.reason
            ),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

impl Damage {
    /// The damage an error describes, or the error back when it is not
    /// damage (permission denied, a failing disk): guessing there could set
    /// a healthy block aside.
    pub fn from_error(e: BlockError) -> Result<Damage, BlockError> {
        match e {
            BlockError::Corrupt {
                path,
                offset,
                reason,
            } => Ok(Damage {
                path,
                offset: Some(offset),
                reason,
            }),
            BlockError::BadMeta { path, reason } => Ok(Damage {
                path,
                offset: None,
                reason,
            }),
            BlockError::Io { path, source, .. } if source.kind() == io::ErrorKind::NotFound => {
                Ok(Damage {
                    path,
                    offset: None,
                    reason: "file is missing".into(),
                })
            }
            other => Err(other),
        }
    }
}

/// A chunk left out of a repaired block.
#[derive(Clone, Debug, PartialEq)]
pub struct DroppedChunk {
    pub labels: Labels,
    /// The chunk's time range, from the index (which passed its checks).
    pub min_t: i64,
    pub max_t: i64,
    /// Samples in the chunk, from its header when the header is still
    /// readable and agrees with the index; `None` when that cannot be told
    /// (the total lost is exact: see [`BlockRepair::samples_lost`]).
    pub samples: Option<u64>,
    pub damage: Damage,
}

/// What [`repair_block`] did to one block directory.
#[derive(Clone, Debug, PartialEq)]
pub enum BlockRepair {
    /// Every check passed; nothing was written.
    Intact { meta: BlockMeta },
    /// Damaged chunks were dropped: the block now holds everything else,
    /// and the original is at `moved_to`.
    Rewritten {
        moved_to: PathBuf,
        old: BlockMeta,
        new: BlockMeta,
        dropped: Vec<DroppedChunk>,
    },
    /// Nothing could be kept: the directory was moved to `moved_to`. For an
    /// unreadable `meta.json` or index `damage` says where, and `dropped`
    /// is empty; when every chunk was damaged `damage` is the first one's
    /// and `dropped` lists them all.
    MovedAside {
        moved_to: PathBuf,
        damage: Damage,
        /// What `meta.json` says the block held, if it still parses.
        meta: Option<BlockMeta>,
        dropped: Vec<DroppedChunk>,
    },
}

impl BlockRepair {
    pub fn is_intact(&self) -> bool {
        matches!(self, BlockRepair::Intact { .. })
    }

    /// Samples no longer in the data dir's blocks, when known: exact for a
    /// rewrite (`meta.json` totals before and after), `meta.json`'s count
    /// for a block moved aside whose meta is readable.
    pub fn samples_lost(&self) -> Option<u64> {
        match self {
            BlockRepair::Intact { .. } => Some(0),
            BlockRepair::Rewritten { old, new, .. } => {
                Some(old.stats.samples.saturating_sub(new.stats.samples))
            }
            BlockRepair::MovedAside { meta, .. } => meta.as_ref().map(|m| m.stats.samples),
        }
    }
}

/// What [`repair_blocks`] did to one directory of blocks.
#[derive(Debug, Default)]
pub struct BlocksRepair {
    /// `.tmp` directories (blocks half-written by a crash) deleted.
    pub tmp_removed: usize,
    /// Replacements of an interrupted repair renamed into place: the
    /// original had already been moved aside.
    pub resumed: Vec<PathBuf>,
    /// Each block directory and what was done to it, in name order.
    pub blocks: Vec<(PathBuf, BlockRepair)>,
    /// Blocks that could not be checked or repaired for a reason that is
    /// not damage (permissions, a failing disk); each is left as it was.
    pub failed: Vec<(PathBuf, BlockError)>,
}

/// The block directories in `dir`: every subdirectory except `.tmp` ones
/// (being written, or crash leftovers), sorted by name, which for
/// `block_dir_name` names is time order. Unlike [`super::list_blocks`] it
/// neither reads `meta.json` nor skips directories without one, so tools
/// see damaged blocks too. A missing `dir` has no blocks.
pub fn block_dirs(dir: &Path) -> Result<Vec<PathBuf>, BlockError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BlockError::io("read dir", dir)(e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(BlockError::io("read dir", dir))?;
        let path = e.path();
        let is_dir = e
            .file_type()
            .map_err(BlockError::io("stat", &path))?
            .is_dir();
        if is_dir && !e.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Repairs every block in `blocks_dir` (a shard's `blocks/`), moving what
/// cannot be kept under `damaged_root`: deletes `.tmp` leftovers, finishes
/// interrupted repairs, then runs [`repair_block`] on each block. A missing
/// `blocks_dir` is an empty report. A block that fails for a reason that is
/// not damage is left alone and listed in [`BlocksRepair::failed`]; the
/// others are still repaired. `Err` is a directory that cannot be listed
/// or cleaned.
pub fn repair_blocks(blocks_dir: &Path, damaged_root: &Path) -> Result<BlocksRepair, BlockError> {
    let mut report = BlocksRepair::default();
    if !blocks_dir.exists() {
        return Ok(report);
    }
    report.tmp_removed = cleanup_tmp(blocks_dir)?;
    let mut dirs = Vec::new();
    for d in block_dirs(blocks_dir)? {
        let Some(original) = original_of_repaired(&d) else {
            dirs.push(d);
            continue;
        };
        if original.exists() {
            // The swap never started: `repair_block` rebuilds it.
            continue;
        }
        // The original is already in the damaged root: finish the swap.
        fs::rename(&d, &original).map_err(BlockError::io("rename into place", &original))?;
        sync_dir(blocks_dir)?;
        report.resumed.push(original.clone());
        dirs.push(original);
    }
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        match repair_block(&d, damaged_root) {
            Ok(r) => report.blocks.push((d, r)),
            Err(e) => report.failed.push((d, e)),
        }
    }
    Ok(report)
}

/// `<dir>` for a `<dir>.repaired` path.
fn original_of_repaired(p: &Path) -> Option<PathBuf> {
    let name = p.file_name()?.to_str()?;
    let base = name.strip_suffix(REPAIRED_SUFFIX)?;
    (!base.is_empty()).then(|| p.with_file_name(base))
}

/// Repairs one block directory (see the module doc): leaves it alone when
/// intact, rewrites it without its damaged chunks, or moves it whole to
/// `damaged_root/<name>` (`<name>.1`, … if taken). Never deletes a block.
/// `Err` is an I/O problem (or a bug caught by checking the replacement),
/// with the original still in place.
pub fn repair_block(dir: &Path, damaged_root: &Path) -> Result<BlockRepair, BlockError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| BlockError::BadInput {
            dir: dir.to_path_buf(),
            reason: "not a block directory path (it has no name)".into(),
        })?;
    if !dir.is_dir() {
        return Err(BlockError::Io {
            op: "open block dir",
            path: dir.to_path_buf(),
            source: io::Error::from(io::ErrorKind::NotFound),
        });
    }
    let sibling = dir.with_file_name(format!("{name}{REPAIRED_SUFFIX}"));
    if sibling.exists() {
        // An earlier repair stopped before its swap; the original still
        // holds everything the leftover copy was made from.
        fs::remove_dir_all(&sibling).map_err(BlockError::io("remove stale repair", &sibling))?;
    }

    let block = match Block::open(dir) {
        Ok(b) => b,
        Err(e) => {
            let damage = Damage::from_error(e)?;
            // Still say what was lost when meta.json alone is sound.
            let meta = BlockMeta::read(dir).ok();
            let moved_to = move_aside(dir, &name, damaged_root)?;
            return Ok(BlockRepair::MovedAside {
                moved_to,
                damage,
                meta,
                dropped: Vec::new(),
            });
        }
    };
    let old = block.meta().clone();

    let (dropped, bad, chunks) = match scan(&block) {
        Ok(x) => x,
        Err(Scan::Index(damage)) => {
            drop(block);
            let moved_to = move_aside(dir, &name, damaged_root)?;
            return Ok(BlockRepair::MovedAside {
                moved_to,
                damage,
                meta: Some(old),
                dropped: Vec::new(),
            });
        }
        Err(Scan::Other(e)) => return Err(e),
    };
    if dropped.is_empty() {
        return Ok(BlockRepair::Intact { meta: old });
    }
    if dropped.len() == chunks {
        drop(block);
        let moved_to = move_aside(dir, &name, damaged_root)?;
        return Ok(BlockRepair::MovedAside {
            moved_to,
            damage: dropped[0].damage.clone(),
            meta: Some(old),
            dropped,
        });
    }

    let new = match write_replacement(&block, &bad, &sibling) {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_dir_all(&sibling);
            return Err(e);
        }
    };
    drop(block);
    let moved_to = move_aside(dir, &name, damaged_root)?;
    fs::rename(&sibling, dir).map_err(BlockError::io("rename into place", dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(BlockRepair::Rewritten {
        moved_to,
        old,
        new,
        dropped,
    })
}

/// Why a scan stopped: the index is inconsistent (the block cannot be
/// trusted as a whole) or something that is not damage.
enum Scan {
    Index(Damage),
    Other(BlockError),
}

impl From<BlockError> for Scan {
    fn from(e: BlockError) -> Self {
        match Damage::from_error(e) {
            Ok(d) => Scan::Index(d),
            Err(e) => Scan::Other(e),
        }
    }
}

/// Position of a chunk: series id and index among the series' chunks.
type ChunkPos = (u32, usize);

/// Reads every series entry and checks every chunk (CRC, header, full
/// decode). Returns the damaged chunks, reported and by position, and the
/// number of chunks in the block.
fn scan(block: &Block) -> Result<(Vec<DroppedChunk>, Vec<ChunkPos>, usize), Scan> {
    let mut dropped = Vec::new();
    let mut bad = Vec::new();
    let mut chunks = 0;
    // Reading damaged headers for their sample counts needs the raw file;
    // if it cannot be opened the counts are just unknown.
    let raw = fs::File::open(block.dir().join(CHUNKS_FILE)).ok();
    for id in 0..block.series_count() {
        let e = block.entry(id)?;
        let labels = e.labels(&block.index)?;
        for (j, m) in chunk_metas(block, &e)?.into_iter().enumerate() {
            chunks += 1;
            let damage = match block.chunk(&m) {
                Ok(c) => match decode_check(&c) {
                    Ok(()) => continue,
                    Err(reason) => Damage {
                        path: block.dir().join(CHUNKS_FILE),
                        offset: Some(m.offset),
                        reason,
                    },
                },
                Err(e) => Damage::from_error(e).map_err(Scan::Other)?,
            };
            dropped.push(DroppedChunk {
                labels: labels.clone(),
                min_t: m.min_t,
                max_t: m.max_t,
                samples: raw.as_ref().and_then(|f| header_count(f, &m)),
                damage,
            });
            bad.push((id, j));
        }
    }
    Ok((dropped, bad, chunks))
}

/// The chunk references of a series entry; a reference that does not
/// decode is index damage.
fn chunk_metas(block: &Block, e: &super::series::SeriesEntry<'_>) -> Result<Vec<ChunkMeta>, Scan> {
    let mut out = Vec::new();
    for m in e.chunks() {
        out.push(m.ok_or_else(|| {
            Scan::Index(Damage {
                path: block.dir().join(INDEX_FILE),
                offset: Some(e.file_offset()),
                reason: "series entry: bad chunk reference".into(),
            })
        })?);
    }
    Ok(out)
}

/// Decodes a chunk whose CRC passed: it must yield exactly its header's
/// count, ending at its `max_t`. The CRC makes a failure here nearly
/// impossible short of a writer bug, but a repair must not copy one.
fn decode_check(c: &BlockChunk<'_>) -> Result<(), String> {
    let mut n = 0usize;
    let mut last = None;
    for (t, _) in c.iter() {
        n += 1;
        last = Some(t);
    }
    if n != c.len() || (n > 0 && last != Some(c.max_t())) {
        return Err(format!(
            "chunk decodes to {n} of its {} samples (last at {last:?}, header says {})",
            c.len(),
            c.max_t()
        ));
    }
    Ok(())
}

/// The sample count in a damaged chunk's header, if the header is still
/// there and its time range matches the index's (then its count is very
/// likely undamaged too) and the count is possible for that range.
fn header_count(f: &fs::File, m: &ChunkMeta) -> Option<u64> {
    let mut h = [0u8; crate::chunk::HEADER_LEN];
    f.read_exact_at(&mut h, m.offset).ok()?;
    let count = u64::from(u32::from_le_bytes(h[4..8].try_into().ok()?));
    let min_t = i64::from_le_bytes(h[8..16].try_into().ok()?);
    let max_t = i64::from_le_bytes(h[16..24].try_into().ok()?);
    let span = m.max_t.abs_diff(m.min_t);
    let possible = if span == 0 {
        count == 1
    } else {
        // Timestamps are distinct integers in [min_t, max_t].
        count >= 2 && count - 1 <= span
    };
    (min_t == m.min_t && max_t == m.max_t && possible).then_some(count)
}

/// An intact chunk as contiguous bytes for [`BlockWriter::add_series_chunks`]:
/// borrowed when stored whole, re-encoded from its samples when its
/// timestamp column is shared (the writer shares it again).
enum Kept<'a> {
    Whole(ChunkRef<'a>),
    Encoded(Chunk),
}

impl Kept<'_> {
    fn as_ref(&self) -> ChunkRef<'_> {
        match self {
            Kept::Whole(r) => *r,
            Kept::Encoded(c) => c.as_ref(),
        }
    }
}

/// Writes the block minus the chunks at `bad` (sorted) to `out`, keeping
/// its compaction level and sources, then checks it in full.
fn write_replacement(block: &Block, bad: &[ChunkPos], out: &Path) -> Result<BlockMeta, BlockError> {
    let old = block.meta();
    let mut w = BlockWriter::create(out, BlockOptions::default())?;
    w.set_compaction(old.compaction.level, old.compaction.sources.clone());
    let mut bad = bad.iter().peekable();
    let mut kept = Vec::new();
    let mut builder = ChunkBuilder::new();
    for id in 0..block.series_count() {
        let e = block.entry(id)?;
        let labels = e.labels(&block.index)?;
        kept.clear();
        for (j, m) in e.chunks().enumerate() {
            if bad.next_if(|&&p| p == (id, j)).is_some() {
                continue;
            }
            let m = m.ok_or_else(|| {
                BlockError::corrupt(
                    &block.dir().join(INDEX_FILE),
                    e.file_offset(),
                    "series entry: bad chunk reference",
                )
            })?;
            let c = block.chunk(&m)?;
            kept.push(match c.as_chunk_ref() {
                Some(r) => Kept::Whole(r),
                None => {
                    for (t, v) in c.iter() {
                        builder.append(t, v);
                    }
                    Kept::Encoded(builder.seal())
                }
            });
        }
        // A series whose chunks were all dropped is left out by the writer.
        w.add_series_chunks(&labels, kept.iter().map(Kept::as_ref))?;
    }
    let meta = w.finish()?;
    // Swapping in a replacement that does not read back would turn
    // repairable damage into loss: check it the way verify does.
    Block::open(out)?.verify()?;
    Ok(meta)
}

/// Moves `dir` to `damaged_root/<name>` (or `<name>.<n>` when a block of
/// that name was already set aside), fsyncing both directories.
fn move_aside(dir: &Path, name: &str, damaged_root: &Path) -> Result<PathBuf, BlockError> {
    fs::create_dir_all(damaged_root).map_err(BlockError::io("create dir", damaged_root))?;
    // Make the new directory itself durable before anything lands in it.
    if let Some(parent) = damaged_root.parent() {
        sync_dir(parent)?;
    }
    let mut dest = damaged_root.join(name);
    let mut n = 0u32;
    while dest.exists() {
        n += 1;
        dest = damaged_root.join(format!("{name}.{n}"));
    }
    fs::rename(dir, &dest).map_err(|source| BlockError::Io {
        op: "move aside to",
        path: dest.clone(),
        source,
    })?;
    sync_dir(damaged_root)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_of_a_repaired_sibling() {
        assert_eq!(
            original_of_repaired(Path::new("/d/b-1.repaired")),
            Some(PathBuf::from("/d/b-1"))
        );
        assert_eq!(original_of_repaired(Path::new("/d/b-1")), None);
        assert_eq!(original_of_repaired(Path::new("/d/.repaired")), None);
    }

    #[test]
    fn damage_displays_file_and_offset() {
        let d = Damage {
            path: "/x/chunks".into(),
            offset: Some(42),
            reason: "bad".into(),
        };
        assert_eq!(d.to_string(), "/x/chunks at byte offset 42: bad");
        let e = BlockError::Io {
            op: "read",
            path: "/x/meta.json".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(Damage::from_error(e).is_err(), "not damage");
    }

    use std::collections::BTreeMap;

    use crate::{Sample, stale_nan};

    type Data = BTreeMap<Labels, Vec<Sample>>;

    /// Eight series in two scrape targets (each target's series share
    /// their timestamps, so the block shares timestamp columns), 50
    /// samples each in chunks of 16, 16, 16 and 2, with values of every
    /// shape (integers, decimals, NaN, stale markers).
    fn data() -> Data {
        let mut d = Data::new();
        for k in 0..8u32 {
            let labels = Labels::from_pairs([
                ("__name__", "m".to_string()),
                ("instance", format!("i{}", k % 2)),
                ("s", k.to_string()),
            ]);
            let samples = (0..50i64)
                .map(|i| {
                    // Scrape jitter makes the columns long enough to share.
                    let jitter = (i * i * 37 + i64::from(k % 2) * 101) % 500;
                    let t = 1_000_000 + 15_000 * i + jitter;
                    let v = match (k, i) {
                        (_, 20) => stale_nan(),
                        (_, 21) => f64::NAN,
                        (0..=3, _) => (i * i + i64::from(k)) as f64,
                        _ => (i as f64).sin() * 100.0,
                    };
                    Sample::new(t, v)
                })
                .collect();
            d.insert(labels, samples);
        }
        d
    }

    fn write(dir: &Path, d: &Data) -> BlockMeta {
        let mut w = BlockWriter::create(
            dir,
            BlockOptions {
                max_chunk_samples: 16,
                share_timestamps: true,
            },
        )
        .unwrap();
        w.set_compaction(2, vec!["src-a".into(), "src-b".into()]);
        for (l, s) in d {
            w.add_series(l, s.iter().copied()).unwrap();
        }
        w.finish().unwrap()
    }

    /// Every chunk reference of a block: labels and where it is.
    fn refs(dir: &Path) -> Vec<(Labels, ChunkMeta)> {
        let b = Block::open(dir).unwrap();
        let mut out = Vec::new();
        for id in 0..b.series_count() {
            let e = b.entry(id).unwrap();
            let l = e.labels(&b.index).unwrap();
            out.extend(e.chunks().map(|m| (l.clone(), m.unwrap())));
        }
        out
    }

    /// `d` without the samples of the chunks in `gone`.
    fn without(d: &Data, gone: &[(Labels, ChunkMeta)]) -> Data {
        let mut d = d.clone();
        for (l, m) in gone {
            d.get_mut(l)
                .unwrap()
                .retain(|s| s.t < m.min_t || s.t > m.max_t);
        }
        d.retain(|_, s| !s.is_empty());
        d
    }

    /// Everything a block holds, as comparable bits (NaN payloads too).
    fn contents(dir: &Path) -> Vec<(String, Vec<(i64, u64)>)> {
        let b = Block::open(dir).unwrap();
        b.verify().unwrap();
        let got = b.select(&[], i64::MIN, i64::MAX).unwrap();
        got.iter()
            .map(|s| {
                let v = s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect();
                (s.labels.to_string(), v)
            })
            .collect()
    }

    fn bits(d: &Data) -> Vec<(String, Vec<(i64, u64)>)> {
        d.iter()
            .map(|(l, s)| {
                let v = s.iter().map(|x| (x.t, x.v.to_bits())).collect();
                (l.to_string(), v)
            })
            .collect()
    }

    fn flip(path: &Path, at: u64) {
        let mut b = fs::read(path).unwrap();
        b[at as usize] ^= 0x20;
        fs::write(path, b).unwrap();
    }

    fn dropped_keys(r: &BlockRepair) -> Vec<(Labels, i64, i64)> {
        let dropped = match r {
            BlockRepair::Rewritten { dropped, .. } | BlockRepair::MovedAside { dropped, .. } => {
                dropped
            }
            BlockRepair::Intact { .. } => return Vec::new(),
        };
        dropped
            .iter()
            .map(|c| (c.labels.clone(), c.min_t, c.max_t))
            .collect()
    }

    fn keys(v: &[(Labels, ChunkMeta)]) -> Vec<(Labels, i64, i64)> {
        v.iter()
            .map(|(l, m)| (l.clone(), m.min_t, m.max_t))
            .collect()
    }

    #[test]
    fn a_flipped_chunk_byte_drops_that_chunk_and_keeps_everything_else() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, damaged) = (tmp.path().join("b"), tmp.path().join("damaged"));
        let d = data();
        let before = write(&tmp.path().join("b"), &d);
        // A chunk whose timestamps live in an earlier chunk: only its own
        // CRC covers its value bytes.
        let all = refs(&dir);
        let victim = all.iter().find(|(_, m)| m.ts_back != 0).unwrap().clone();
        let at = victim.1.offset + u64::from(victim.1.len) - 1;
        flip(&dir.join(CHUNKS_FILE), at);
        let damaged_bytes = fs::read(dir.join(CHUNKS_FILE)).unwrap();

        let r = repair_block(&dir, &damaged).unwrap();
        let BlockRepair::Rewritten {
            moved_to,
            old,
            new,
            dropped,
        } = &r
        else {
            panic!("not rewritten: {r:?}");
        };
        assert_eq!(dropped_keys(&r), keys(std::slice::from_ref(&victim)));
        let c = &dropped[0];
        assert_eq!(c.samples, Some(16), "{c:?}");
        assert_eq!(c.damage.path, dir.join(CHUNKS_FILE));
        assert_eq!(c.damage.offset, Some(victim.1.offset));
        assert!(c.damage.reason.contains("CRC32C"), "{}", c.damage);
        assert_eq!(old, &before);
        assert_eq!(new.stats.samples, before.stats.samples - 16);
        assert_eq!(new.stats.chunks, before.stats.chunks - 1);
        assert_eq!(r.samples_lost(), Some(16));
        assert_eq!(new.compaction, before.compaction, "level and sources kept");

        // Everything else, bit for bit; the original kept, unchanged.
        assert_eq!(contents(&dir), bits(&without(&d, &[victim])));
        assert_eq!(moved_to, &damaged.join("b"));
        assert_eq!(fs::read(moved_to.join(CHUNKS_FILE)).unwrap(), damaged_bytes);
        assert!(!tmp.path().join("b.repaired").exists());
        // The repaired block is sound: a second run leaves it alone.
        assert!(repair_block(&dir, &damaged).unwrap().is_intact());
    }

    #[test]
    fn a_damaged_shared_timestamp_column_drops_every_chunk_using_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, damaged) = (tmp.path().join("b"), tmp.path().join("damaged"));
        let d = data();
        write(&dir, &d);
        let all = refs(&dir);
        // The first chunk stores a column the other series of its target
        // point back at.
        let owner = all[0].1;
        let col = owner.offset + crate::chunk::HEADER_LEN as u64;
        let users: Vec<_> = all
            .iter()
            .filter(|(_, m)| {
                m.offset == owner.offset || m.offset.checked_sub(m.ts_back) == Some(col)
            })
            .cloned()
            .collect();
        assert!(users.len() > 1, "the column is shared");
        flip(&dir.join(CHUNKS_FILE), col);

        let r = repair_block(&dir, &damaged).unwrap();
        assert!(matches!(r, BlockRepair::Rewritten { .. }), "{r:?}");
        assert_eq!(dropped_keys(&r), keys(&users));
        assert_eq!(contents(&dir), bits(&without(&d, &users)));
    }

    #[test]
    fn any_flipped_chunks_byte_is_repaired_to_exactly_the_undamaged_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let d = data();
        let pristine = tmp.path().join("pristine");
        write(&pristine, &d);
        let chunks = fs::read(pristine.join(CHUNKS_FILE)).unwrap();
        let all = refs(&pristine);
        // Every byte of the file header, then a spread over the chunks.
        let positions = (0..8).chain((8..chunks.len()).step_by(29));
        for (n, at) in positions.enumerate() {
            let dir = tmp.path().join(format!("b{n}"));
            let damaged = tmp.path().join(format!("damaged{n}"));
            fs::create_dir(&dir).unwrap();
            for f in fs::read_dir(&pristine).unwrap() {
                let f = f.unwrap();
                fs::copy(f.path(), dir.join(f.file_name())).unwrap();
            }
            flip(&dir.join(CHUNKS_FILE), at as u64);
            let r = repair_block(&dir, &damaged).unwrap_or_else(|e| panic!("byte {at}: {e}"));
            match &r {
                BlockRepair::Intact { .. } => {
                    assert!((5..8).contains(&at), "byte {at}: damage went unnoticed")
                }
                BlockRepair::MovedAside { dropped, .. } if dropped.is_empty() => {
                    assert!(at < 5, "byte {at}: a header flip, not {r:?}");
                }
                BlockRepair::MovedAside { .. } => panic!("byte {at}: all chunks lost: {r:?}"),
                BlockRepair::Rewritten { dropped, .. } => {
                    // The chunk holding the byte is among the dropped.
                    let holder = all
                        .iter()
                        .rfind(|(_, m)| m.offset <= at as u64)
                        .map(|(l, m)| (l.clone(), m.min_t, m.max_t))
                        .unwrap();
                    assert!(dropped_keys(&r).contains(&holder), "byte {at}: {r:?}");
                    let gone: Vec<_> = all
                        .iter()
                        .filter(|(l, m)| {
                            dropped.iter().any(|c| &c.labels == l && c.min_t == m.min_t)
                        })
                        .cloned()
                        .collect();
                    assert_eq!(contents(&dir), bits(&without(&d, &gone)), "byte {at}");
                    assert!(repair_block(&dir, &damaged).unwrap().is_intact());
                }
            }
        }
    }

    #[test]
    fn a_flipped_index_byte_moves_the_block_aside_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, damaged) = (tmp.path().join("b"), tmp.path().join("damaged"));
        let meta = write(&dir, &data());
        let index = dir.join(INDEX_FILE);
        let len = fs::metadata(&index).unwrap().len();
        flip(&index, len / 2);
        let bad = fs::read(&index).unwrap();

        let r = repair_block(&dir, &damaged).unwrap();
        let BlockRepair::MovedAside {
            moved_to,
            damage,
            meta: m,
            dropped,
        } = &r
        else {
            panic!("not moved aside: {r:?}");
        };
        assert_eq!(damage.path, index);
        assert!(damage.offset.is_some(), "{damage}");
        assert_eq!(m.as_ref(), Some(&meta));
        assert!(dropped.is_empty());
        assert_eq!(r.samples_lost(), Some(meta.stats.samples));
        assert!(!dir.exists());
        assert_eq!(moved_to, &damaged.join("b"));
        assert_eq!(fs::read(moved_to.join(INDEX_FILE)).unwrap(), bad);
    }

    #[test]
    fn unreadable_meta_moves_the_block_aside_and_a_second_one_gets_a_new_name() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, damaged) = (tmp.path().join("b"), tmp.path().join("damaged"));
        for round in 0..2 {
            write(&dir, &data());
            fs::write(dir.join(super::super::META_FILE), b"{ not json").unwrap();
            let r = repair_block(&dir, &damaged).unwrap();
            let BlockRepair::MovedAside {
                moved_to,
                damage,
                meta,
                ..
            } = &r
            else {
                panic!("not moved aside: {r:?}");
            };
            assert_eq!(damage.offset, None);
            assert!(damage.path.ends_with("meta.json"), "{damage}");
            assert_eq!(meta, &None);
            assert_eq!(r.samples_lost(), None);
            let want = if round == 0 { "b" } else { "b.1" };
            assert_eq!(moved_to, &damaged.join(want));
        }
    }

    #[test]
    fn truncated_chunks_drop_the_chunks_past_the_cut_and_keep_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, damaged) = (tmp.path().join("b"), tmp.path().join("damaged"));
        let d = data();
        write(&dir, &d);
        let path = dir.join(CHUNKS_FILE);
        let len = fs::metadata(&path).unwrap().len();
        let cut = len * 2 / 3;
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        // A chunk is lost when its bytes or its shared column pass the cut.
        let all = refs(&dir);
        let past = |m: &ChunkMeta| m.offset + u64::from(m.len) + 4 > cut;
        let gone: Vec<_> = all.iter().filter(|(_, m)| past(m)).cloned().collect();
        assert!(!gone.is_empty() && gone.len() < all.len());

        let r = repair_block(&dir, &damaged).unwrap();
        assert!(matches!(r, BlockRepair::Rewritten { .. }), "{r:?}");
        assert_eq!(dropped_keys(&r), keys(&gone));
        let BlockRepair::Rewritten { dropped, .. } = &r else {
            unreachable!()
        };
        for c in dropped {
            assert_eq!(c.damage.path, path);
            assert!(c.damage.reason.contains("past the end"), "{}", c.damage);
        }
        assert_eq!(contents(&dir), bits(&without(&d, &gone)));
    }

    #[test]
    fn a_block_with_no_intact_chunk_is_moved_aside_with_every_chunk_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, damaged) = (tmp.path().join("b"), tmp.path().join("damaged"));
        let meta = write(&dir, &data());
        let all = refs(&dir);
        // Only the 8-byte file header survives.
        let path = dir.join(CHUNKS_FILE);
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(8)
            .unwrap();
        let r = repair_block(&dir, &damaged).unwrap();
        assert!(matches!(r, BlockRepair::MovedAside { .. }), "{r:?}");
        assert_eq!(dropped_keys(&r), keys(&all));
        assert_eq!(r.samples_lost(), Some(meta.stats.samples));
        assert!(!dir.exists() && damaged.join("b").is_dir());
    }

    #[test]
    fn an_intact_block_is_left_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, damaged) = (tmp.path().join("b"), tmp.path().join("damaged"));
        let meta = write(&dir, &data());
        let snapshot = |dir: &Path| {
            let mut v: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let md = e.metadata().unwrap();
                    (
                        e.file_name(),
                        fs::read(e.path()).unwrap(),
                        md.modified().unwrap(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let before = snapshot(&dir);
        let r = repair_block(&dir, &damaged).unwrap();
        assert_eq!(r, BlockRepair::Intact { meta });
        assert_eq!(r.samples_lost(), Some(0));
        assert_eq!(snapshot(&dir), before);
        assert!(!damaged.exists(), "nothing set aside");
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["b"]);
    }

    #[test]
    fn repair_blocks_cleans_leftovers_and_finishes_an_interrupted_swap() {
        let tmp = tempfile::tempdir().unwrap();
        let blocks = tmp.path().join("blocks");
        let damaged = tmp.path().join("damaged");
        assert_eq!(repair_blocks(&blocks, &damaged).unwrap().blocks.len(), 0);
        let d = data();
        // a: intact. b: a crash after its original was moved aside left
        // only `b.repaired`. c: a crash before the swap left a stale
        // `c.repaired` next to the damaged original. x.tmp: a half-written
        // block.
        write(&blocks.join("a"), &d);
        write(&blocks.join("b.repaired"), &d);
        write(&blocks.join("c"), &d);
        write(&blocks.join("c.repaired"), &d);
        fs::create_dir_all(blocks.join("x.tmp")).unwrap();
        let victim = refs(&blocks.join("c"))
            .into_iter()
            .find(|(_, m)| m.ts_back != 0)
            .unwrap();
        flip(
            &blocks.join("c").join(CHUNKS_FILE),
            victim.1.offset + u64::from(victim.1.len) - 1,
        );

        let r = repair_blocks(&blocks, &damaged).unwrap();
        assert_eq!(r.tmp_removed, 1);
        assert_eq!(r.resumed, [blocks.join("b")]);
        let names: Vec<_> = r.blocks.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(
            names,
            [blocks.join("a"), blocks.join("b"), blocks.join("c")]
        );
        assert!(r.blocks[0].1.is_intact() && r.blocks[1].1.is_intact());
        assert_eq!(
            dropped_keys(&r.blocks[2].1),
            keys(std::slice::from_ref(&victim))
        );
        assert_eq!(
            block_dirs(&blocks).unwrap(),
            [blocks.join("a"), blocks.join("b"), blocks.join("c")]
        );
        assert_eq!(contents(&blocks.join("c")), bits(&without(&d, &[victim])));
        assert_eq!(block_dirs(&damaged).unwrap(), [damaged.join("c")]);
    }
}
