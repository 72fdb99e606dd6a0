//! Writing a block: [`BlockWriter`] takes series in label order, streams
//! their chunks to `chunks` (storing a repeated timestamp column once),
//! keeps the index in memory and writes it (`index_writer.rs`), `meta.json`
//! and the directory atomically in [`BlockWriter::finish`].
//!
//! Memory is the index (symbols, one small entry per series, postings), never
//! the samples: each series' chunks go to the file as they are cut.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use roaring::RoaringBitmap;

use super::bytes::{put_uvarint, put_varint};
use super::index::CHUNKS_MAGIC;
use super::meta::{BlockMeta, BlockStats, CompactionMeta};
use super::{BlockError, CHUNKS_FILE, FORMAT_VERSION, META_FILE, TMP_SUFFIX};
use crate::chunk::{ChunkBuilder, ChunkRef, HEADER_LEN};
use crate::{Labels, Sample};

/// Shortest timestamp column worth sharing: below it the back reference
/// (a varint of the distance) saves little or nothing.
const MIN_SHARED_TS: usize = 8;

/// How a [`BlockWriter`] cuts chunks.
#[derive(Clone, Copy, Debug)]
pub struct BlockOptions {
    /// Samples per chunk when the writer encodes samples itself. A block is
    /// immutable, so unlike the head (120) it can use long chunks: the
    /// 28-byte chunk header, its CRC and index entry are paid once per chunk,
    /// and delta-of-delta / decimal codes need no restart. Longer chunks
    /// cost a read that needs a few samples a longer decode from the
    /// chunk's start. See `docs/format/block.md` for measured sizes.
    pub max_chunk_samples: usize,
    /// Store a timestamp column identical to one already in the block once
    /// (every series of one scrape target has the same timestamps), up to
    /// [`TS_DEDUP_BYTES`] of distinct columns remembered.
    pub share_timestamps: bool,
}

/// Bytes of distinct timestamp columns the writer remembers for sharing;
/// beyond it new columns are stored whole. 64 MiB is ~100k targets' 2 h
/// columns at one chunk per series.
pub const TS_DEDUP_BYTES: usize = 64 << 20;

/// 2 h at a 15 s scrape: a head-sized block keeps one chunk per series. A
/// compaction's output should cut longer ones ([`BlockOptions::compacted`]).
pub const DEFAULT_MAX_CHUNK_SAMPLES: usize = 480;

/// Samples per chunk of a compaction's output: 8 h at a 15 s scrape.
const COMPACTED_MAX_CHUNK_SAMPLES: usize = 1920;

impl BlockOptions {
    /// What a compaction's output should use (pass it to [`compact`]): a
    /// chunk's fixed costs (28-byte header, CRC, index reference, the value
    /// column's preamble: ~45 bytes) are 0.09 bytes a sample at 480 samples
    /// and 0.02 at 1920, while a read that needs one sample decodes at most
    /// 1920 (~20 µs). Measured in `docs/format/block.md`.
    ///
    /// [`compact`]: super::compact
    pub fn compacted() -> BlockOptions {
        BlockOptions {
            max_chunk_samples: COMPACTED_MAX_CHUNK_SAMPLES,
            ..BlockOptions::default()
        }
    }
}

impl Default for BlockOptions {
    fn default() -> Self {
        BlockOptions {
            max_chunk_samples: DEFAULT_MAX_CHUNK_SAMPLES,
            share_timestamps: true,
        }
    }
}

/// A series waiting for the index: labels as provisional symbol ids (final
/// ids are the sorted order, known only at the end) and its encoded chunk
/// references.
pub(super) struct Pending {
    pub(super) labels: Box<[(u32, u32)]>,
    pub(super) n_chunks: u32,
    pub(super) chunk_refs: Box<[u8]>,
}

/// Encodes a series' chunk references (see the series entry layout in
/// `docs/format/block.md`).
#[derive(Default)]
struct ChunkRefs {
    buf: Vec<u8>,
    n: u32,
    prev_max_t: i64,
    prev_end: u64,
    /// The series' samples and time range, added to the block's only when
    /// the series is complete (a failed series leaves just dead bytes).
    samples: u64,
    min_t: i64,
}

impl ChunkRefs {
    fn push(&mut self, min_t: i64, max_t: i64, offset: u64, len: u32, ts_back: u64) {
        if self.n == 0 {
            put_varint(&mut self.buf, min_t);
        } else {
            put_uvarint(&mut self.buf, min_t.wrapping_sub(self.prev_max_t) as u64);
        }
        put_uvarint(&mut self.buf, max_t.wrapping_sub(min_t) as u64);
        put_uvarint(
            &mut self.buf,
            if self.n == 0 {
                offset
            } else {
                offset - self.prev_end
            },
        );
        put_uvarint(&mut self.buf, u64::from(len));
        put_uvarint(&mut self.buf, ts_back);
        if self.n == 0 {
            self.min_t = min_t;
        }
        self.n += 1;
        self.prev_max_t = max_t;
        self.prev_end = offset + u64::from(len) + 4;
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.n = 0;
        self.samples = 0;
    }
}

/// Writes one block. Dropping it unfinished removes the `.tmp` directory.
pub struct BlockWriter {
    dir: PathBuf,
    tmp: PathBuf,
    opts: BlockOptions,
    chunks: BufWriter<File>,
    chunks_pos: u64,
    sym_ids: HashMap<Box<str>, u32>,
    syms: Vec<Box<str>>,
    series: Vec<Pending>,
    postings: HashMap<(u32, u32), RoaringBitmap>,
    prev: Option<Labels>,
    builder: ChunkBuilder,
    refs: ChunkRefs,
    /// Timestamp column bytes → their offset in `chunks`, for sharing.
    ts_cols: HashMap<Box<[u8]>, u64>,
    ts_cols_bytes: usize,
    stats: BlockStats,
    min_time: i64,
    max_time: i64,
    compaction: Option<CompactionMeta>,
    done: bool,
}

impl BlockWriter {
    /// Starts a block that [`finish`](Self::finish) will make visible as
    /// `dir`; until then it lives in `<dir>.tmp`, which is replaced if a
    /// crash left one.
    pub fn create(dir: impl Into<PathBuf>, opts: BlockOptions) -> Result<BlockWriter, BlockError> {
        let dir = dir.into();
        if dir.exists() {
            return Err(BlockError::AlreadyExists { dir });
        }
        let mut tmp = dir.clone().into_os_string();
        tmp.push(TMP_SUFFIX);
        let tmp = PathBuf::from(tmp);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(BlockError::io("remove leftover", &tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(BlockError::io("create dir", &tmp))?;
        let path = tmp.join(CHUNKS_FILE);
        let file = File::create(&path).map_err(BlockError::io("create", &path))?;
        let mut chunks = BufWriter::with_capacity(1 << 20, file);
        let mut header = [0u8; 8];
        header[..4].copy_from_slice(&CHUNKS_MAGIC);
        header[4] = FORMAT_VERSION;
        chunks
            .write_all(&header)
            .map_err(BlockError::io("write", &path))?;
        Ok(BlockWriter {
            dir,
            tmp,
            opts: BlockOptions {
                max_chunk_samples: opts.max_chunk_samples.clamp(1, u32::MAX as usize),
                ..opts
            },
            chunks,
            chunks_pos: header.len() as u64,
            sym_ids: HashMap::new(),
            syms: Vec::new(),
            series: Vec::new(),
            postings: HashMap::new(),
            prev: None,
            builder: ChunkBuilder::new(),
            refs: ChunkRefs::default(),
            ts_cols: HashMap::new(),
            ts_cols_bytes: 0,
            stats: BlockStats::default(),
            min_time: i64::MAX,
            max_time: i64::MIN,
            compaction: None,
            done: false,
        })
    }

    /// Records this block as a compaction's output (default: level 1, its
    /// own name as the only source).
    pub fn set_compaction(&mut self, level: u32, mut sources: Vec<String>) {
        sources.sort();
        sources.dedup();
        self.compaction = Some(CompactionMeta { level, sources });
    }

    /// The directory the block will have once finished.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a series and its samples (strictly increasing timestamps),
    /// encoding chunks of up to `max_chunk_samples`. Series must come in
    /// strictly increasing label order; one with no samples is left out.
    /// On an error the series is not added and the writer stays usable.
    pub fn add_series(
        &mut self,
        labels: &Labels,
        samples: impl IntoIterator<Item = Sample>,
    ) -> Result<(), BlockError> {
        self.check_order(labels)?;
        self.refs.reset();
        let mut prev_t = i64::MIN;
        let mut first = true;
        for s in samples {
            if !first && s.t <= prev_t {
                // Drop the half-built chunk: the series is not added.
                self.builder.seal();
                return Err(self.sample_out_of_order(labels, s.t, prev_t));
            }
            first = false;
            prev_t = s.t;
            if self.builder.len() >= self.opts.max_chunk_samples {
                self.cut_chunk()?;
            }
            self.builder.append(s.t, s.v);
        }
        if !self.builder.is_empty() {
            self.cut_chunk()?;
        }
        self.finish_series(labels);
        Ok(())
    }

    /// Adds a series from already encoded chunks (e.g. the head's sealed
    /// chunks), copied byte for byte. Chunks must not overlap in time and
    /// come in time order; empty ones are skipped.
    pub fn add_series_chunks<'c>(
        &mut self,
        labels: &Labels,
        chunks: impl IntoIterator<Item = ChunkRef<'c>>,
    ) -> Result<(), BlockError> {
        self.check_order(labels)?;
        self.refs.reset();
        let mut prev_t = None::<i64>;
        for c in chunks {
            if c.is_empty() {
                continue;
            }
            if let Some(p) = prev_t
                && c.min_t() <= p
            {
                return Err(self.sample_out_of_order(labels, c.min_t(), p));
            }
            prev_t = Some(c.max_t());
            self.write_chunk(c.as_bytes(), c.min_t(), c.max_t(), c.len() as u64)?;
        }
        self.finish_series(labels);
        Ok(())
    }

    fn check_order(&mut self, labels: &Labels) -> Result<(), BlockError> {
        if let Some(prev) = &self.prev
            && labels <= prev
        {
            return Err(BlockError::SeriesOutOfOrder {
                dir: self.dir.clone(),
                labels: labels.to_string(),
                prev: prev.to_string(),
            });
        }
        Ok(())
    }

    fn sample_out_of_order(&self, labels: &Labels, t: i64, prev_t: i64) -> BlockError {
        BlockError::SampleOutOfOrder {
            dir: self.dir.clone(),
            labels: labels.to_string(),
            t,
            prev_t,
        }
    }

    fn cut_chunk(&mut self) -> Result<(), BlockError> {
        // A block is written once and read for its whole retention: worth
        // the slower search for the smallest encoding.
        let c = self.builder.seal_smallest();
        self.write_chunk(c.as_bytes(), c.min_t(), c.max_t(), c.len() as u64)
    }

    fn write_chunk(
        &mut self,
        bytes: &[u8],
        min_t: i64,
        max_t: i64,
        samples: u64,
    ) -> Result<(), BlockError> {
        let len = u32::try_from(bytes.len()).map_err(|_| BlockError::BadInput {
            dir: self.dir.clone(),
            reason: format!(
                "a chunk of {} bytes exceeds the 4 GiB chunk limit",
                bytes.len()
            ),
        })?;
        // The CRC is always of the logical chunk, so a shared column is
        // checked by every chunk that uses it.
        let crc = crc32c::crc32c(bytes);
        let ts_len = u32::from_le_bytes(bytes[24..28].try_into().expect("chunk header")) as usize;
        let ts = &bytes[HEADER_LEN..HEADER_LEN + ts_len];
        // Tiny columns are not worth the back reference.
        let shared = if self.opts.share_timestamps && ts_len >= MIN_SHARED_TS {
            match self.ts_cols.get(ts) {
                Some(&at) => Some(at),
                None => {
                    if self.ts_cols_bytes + ts_len <= TS_DEDUP_BYTES {
                        self.ts_cols
                            .insert(ts.into(), self.chunks_pos + HEADER_LEN as u64);
                        self.ts_cols_bytes += ts_len;
                    }
                    None
                }
            }
        } else {
            None
        };
        let path = || self.tmp.join(CHUNKS_FILE);
        let (stored, ts_back) = match shared {
            None => {
                self.chunks
                    .write_all(bytes)
                    .map_err(|e| BlockError::io("write", path())(e))?;
                (len, 0)
            }
            Some(at) => {
                self.chunks
                    .write_all(&bytes[..HEADER_LEN])
                    .and_then(|()| self.chunks.write_all(&bytes[HEADER_LEN + ts_len..]))
                    .map_err(|e| BlockError::io("write", path())(e))?;
                (len - ts_len as u32, self.chunks_pos - at)
            }
        };
        self.chunks
            .write_all(&crc.to_le_bytes())
            .map_err(|e| BlockError::io("write", path())(e))?;
        self.refs
            .push(min_t, max_t, self.chunks_pos, stored, ts_back);
        self.chunks_pos += u64::from(stored) + 4;
        self.refs.samples += samples;
        Ok(())
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.sym_ids.get(s) {
            return id;
        }
        let id = self.syms.len() as u32;
        self.syms.push(s.into());
        self.sym_ids.insert(s.into(), id);
        id
    }

    fn finish_series(&mut self, labels: &Labels) {
        self.prev = Some(labels.clone());
        if self.refs.n == 0 {
            return;
        }
        self.stats.chunks += u64::from(self.refs.n);
        self.stats.samples += self.refs.samples;
        self.min_time = self.min_time.min(self.refs.min_t);
        self.max_time = self.max_time.max(self.refs.prev_max_t);
        let id = self.series.len() as u32;
        let mut pairs = Vec::with_capacity(labels.len());
        for l in labels {
            let pair = (self.intern(&l.name), self.intern(&l.value));
            // Ids are assigned in increasing order, so `try_push` appends.
            let _ = self.postings.entry(pair).or_default().try_push(id);
            pairs.push(pair);
        }
        self.series.push(Pending {
            labels: pairs.into_boxed_slice(),
            n_chunks: self.refs.n,
            chunk_refs: self.refs.buf.as_slice().into(),
        });
        self.stats.series += 1;
    }

    /// Writes the index and `meta.json`, fsyncs everything and renames the
    /// block into place. Refuses a block without series.
    pub fn finish(mut self) -> Result<BlockMeta, BlockError> {
        if self.series.is_empty() {
            return Err(BlockError::Empty {
                dir: self.dir.clone(),
            });
        }
        let chunks_path = self.tmp.join(CHUNKS_FILE);
        self.chunks
            .flush()
            .map_err(BlockError::io("write", &chunks_path))?;
        self.chunks
            .get_ref()
            .sync_all()
            .map_err(BlockError::io("fsync", &chunks_path))?;
        super::index_writer::write_index(
            &self.tmp,
            &self.dir,
            &self.syms,
            &self.series,
            std::mem::take(&mut self.postings),
        )?;
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let meta = BlockMeta {
            version: u32::from(FORMAT_VERSION),
            min_time: self.min_time,
            max_time: self.max_time,
            stats: self.stats,
            compaction: self.compaction.take().unwrap_or(CompactionMeta {
                level: 1,
                sources: vec![name],
            }),
        };
        let meta_path = self.tmp.join(META_FILE);
        let json = serde_json::to_vec_pretty(&meta).expect("block meta serializes");
        write_synced(&meta_path, &json)?;
        sync_dir(&self.tmp)?;
        fs::rename(&self.tmp, &self.dir).map_err(BlockError::io("rename into place", &self.dir))?;
        if let Some(parent) = self.dir.parent() {
            sync_dir(parent)?;
        }
        self.done = true;
        Ok(meta)
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: a leftover is also removed by `cleanup_tmp`.
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BlockError> {
    let mut f = File::create(path).map_err(BlockError::io("create", path))?;
    f.write_all(bytes).map_err(BlockError::io("write", path))?;
    f.sync_all().map_err(BlockError::io("fsync", path))
}

/// Fsyncs a directory so the names in it (a new file, a rename) survive a
/// power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BlockError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BlockError::io("fsync dir", dir))
}
