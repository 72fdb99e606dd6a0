//! Opening a block and reading its chunks: [`Block::open`] maps `index`
//! and `chunks` and checks them; [`Block::chunk`] checks one chunk (CRC,
//! header, shared timestamp column) and views it in place. Matchers are
//! resolved in `postings.rs`, queries in `query.rs`.

use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::index::{CHUNKS_MAGIC, HEADER_LEN, Index, check_header, map_file};
use super::meta::BlockMeta;
use super::series::{ChunkMeta, SeriesEntry};
use super::view::BlockChunk;
use super::{BlockError, CHUNKS_FILE, INDEX_FILE};
use crate::Labels;
use crate::chunk::ChunkRef;

/// An open, immutable block.
pub struct Block {
    dir: PathBuf,
    pub(super) meta: BlockMeta,
    pub(super) index: Index,
    chunks: Mmap,
    chunks_path: PathBuf,
}

/// A series and the chunks of it a read asked for, still encoded: what a
/// merging querier (head + blocks) or compaction consumes.
pub struct SeriesChunks<'a> {
    pub labels: Labels,
    pub chunks: Vec<BlockChunk<'a>>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("dir", &self.dir)
            .field("meta", &self.meta)
            .finish()
    }
}

impl Block {
    /// Opens a block directory: reads `meta.json`, maps `index` (checking
    /// its TOC, section CRCs and tables) and `chunks` (checking its header).
    pub fn open(dir: impl AsRef<Path>) -> Result<Block, BlockError> {
        let dir = dir.as_ref().to_path_buf();
        let meta = BlockMeta::read(&dir)?;
        let index = Index::open(dir.join(INDEX_FILE))?;
        if u64::from(index.n_series) != meta.stats.series {
            return Err(BlockError::corrupt(
                &index.path,
                0,
                format!(
                    "index holds {} series but meta.json says {}",
                    index.n_series, meta.stats.series
                ),
            ));
        }
        let chunks_path = dir.join(CHUNKS_FILE);
        let chunks = map_file(&chunks_path, HEADER_LEN)?;
        check_header(&chunks_path, &chunks, CHUNKS_MAGIC)?;
        Ok(Block {
            dir,
            meta,
            index,
            chunks,
            chunks_path,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// Bytes on disk of `index` and `chunks` (`meta.json` is negligible).
    pub fn size_bytes(&self) -> u64 {
        self.index.size_bytes() + self.chunks.len() as u64
    }

    /// Number of series (ids are `0..series_count`, in label order).
    pub fn series_count(&self) -> u32 {
        self.index.n_series
    }

    /// The chunk a reference points at, its CRC32C and header checked.
    pub(crate) fn chunk(&self, m: &ChunkMeta) -> Result<BlockChunk<'_>, BlockError> {
        let bad = |reason: String| BlockError::corrupt(&self.chunks_path, m.offset, reason);
        let start = usize::try_from(m.offset).map_err(|_| bad("offset overflows".into()))?;
        let end = start
            .checked_add(m.len as usize)
            .filter(|&e| {
                start >= HEADER_LEN && e.checked_add(4).is_some_and(|x| x <= self.chunks.len())
            })
            .ok_or_else(|| {
                bad(format!(
                    "chunk of {} bytes + CRC runs past the end of the {}-byte file",
                    m.len,
                    self.chunks.len()
                ))
            })?;
        let bytes = &self.chunks[start..end];
        let stored = u32::from_le_bytes(self.chunks[end..end + 4].try_into().expect("4 bytes"));
        let c = if m.ts_back == 0 {
            let crc = crc32c::crc32c(bytes);
            if crc != stored {
                return Err(bad(format!(
                    "chunk CRC32C {crc:#010x}, stored {stored:#010x}"
                )));
            }
            BlockChunk::whole(ChunkRef::new(bytes).map_err(|e| bad(e.to_string()))?)
        } else {
            let Some((header, vals)) = bytes.split_at_checked(crate::chunk::HEADER_LEN) else {
                return Err(bad(format!(
                    "chunk of {} bytes is shorter than its header",
                    m.len
                )));
            };
            let ts_len = u32::from_le_bytes(header[24..28].try_into().expect("4 bytes")) as usize;
            // The shared column lies in an earlier chunk, before this one.
            let ts = usize::try_from(m.ts_back)
                .ok()
                .and_then(|back| start.checked_sub(back))
                .filter(|&at| at >= HEADER_LEN && at.saturating_add(ts_len) <= start)
                .map(|at| &self.chunks[at..at + ts_len])
                .ok_or_else(|| {
                    bad(format!(
                        "shared timestamp column {} bytes back ({ts_len} bytes) is not inside an earlier chunk",
                        m.ts_back
                    ))
                })?;
            let crc =
                crc32c::crc32c_append(crc32c::crc32c_append(crc32c::crc32c(header), ts), vals);
            if crc != stored {
                return Err(bad(format!(
                    "chunk CRC32C {crc:#010x} (with its shared timestamps), stored {stored:#010x}"
                )));
            }
            BlockChunk::split(header, ts, vals).map_err(bad)?
        };
        if c.min_t() != m.min_t || c.max_t() != m.max_t {
            return Err(bad(format!(
                "chunk covers {}..={} but the index says {}..={}",
                c.min_t(),
                c.max_t(),
                m.min_t,
                m.max_t
            )));
        }
        Ok(c)
    }

    pub(super) fn entry(&self, id: u32) -> Result<SeriesEntry<'_>, BlockError> {
        self.index.series_entry(id)
    }

    /// The chunks of series `id` overlapping `[mint, maxt]`, checked.
    pub(super) fn chunks_of<'b>(
        &'b self,
        e: &SeriesEntry<'_>,
        mint: i64,
        maxt: i64,
        out: &mut Vec<BlockChunk<'b>>,
    ) -> Result<(), BlockError> {
        let mut metas = e.chunks();
        let at = metas.entry_offset();
        for m in &mut metas {
            let m = m.ok_or_else(|| {
                BlockError::corrupt(&self.index.path, at, "series entry: bad chunk reference")
            })?;
            if m.min_t > maxt {
                break;
            }
            if m.max_t >= mint {
                out.push(self.chunk(&m)?);
            }
        }
        Ok(())
    }

    /// Series `id`'s labels and chunks overlapping `[mint, maxt]`.
    pub fn series_chunks(
        &self,
        id: u32,
        mint: i64,
        maxt: i64,
    ) -> Result<SeriesChunks<'_>, BlockError> {
        let e = self.entry(id)?;
        let mut chunks = Vec::new();
        self.chunks_of(&e, mint, maxt, &mut chunks)?;
        Ok(SeriesChunks {
            labels: e.labels(&self.index)?,
            chunks,
        })
    }

    /// Reads every series entry and checks every chunk's CRC and header:
    /// the full check `open` leaves out (it reads the whole block).
    pub fn verify(&self) -> Result<(), BlockError> {
        let mut chunks = Vec::new();
        for id in 0..self.index.n_series {
            let e = self.entry(id)?;
            e.labels(&self.index)?;
            chunks.clear();
            self.chunks_of(&e, i64::MIN, i64::MAX, &mut chunks)?;
        }
        Ok(())
    }
}
