//! Reading a block: [`Block::open`] maps `index` and `chunks` and checks
//! them; queries select series through the on-disk postings and decode
//! chunks in place, with `Db::select`'s semantics.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use roaring::RoaringBitmap;

use super::index::{
    CHUNKS_MAGIC, ChunkMeta, HEADER_LEN, Index, SeriesEntry, check_header, map_file,
};
use super::meta::BlockMeta;
use super::view::BlockChunk;
use super::{BlockError, CHUNKS_FILE, INDEX_FILE};
use crate::chunk::{ChunkIter, ChunkRef};
use crate::matcher::{MatchOp, Matcher};
use crate::read::{CHECK_EVERY, ReadControl};
use crate::{Labels, Sample, SeriesSamples};

/// An open, immutable block.
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: Index,
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

    /// Series ids matching all matchers (all series with none), ascending,
    /// i.e. in label order.
    pub fn postings(&self, matchers: &[Matcher]) -> Result<RoaringBitmap, BlockError> {
        // Most selective first, as the head does: equality is a direct
        // lookup, and an empty intersection skips the expensive scans.
        let mut order: Vec<&Matcher> = matchers.iter().collect();
        order.sort_by_key(|m| match (m.op, m.matches_empty()) {
            (MatchOp::Equal, false) => 0,
            (MatchOp::RegexMatch, false) => 1,
            (_, false) => 2,
            (_, true) => 3,
        });
        let mut acc: Option<RoaringBitmap> = None;
        for m in order {
            let ids = self.postings_for(m)?;
            let a = match acc {
                None => ids,
                Some(a) => a & ids,
            };
            let empty = a.is_empty();
            acc = Some(a);
            if empty {
                break;
            }
        }
        Ok(acc.unwrap_or_else(|| self.all_ids()))
    }

    fn all_ids(&self) -> RoaringBitmap {
        let mut all = RoaringBitmap::new();
        all.insert_range(0..self.index.n_series);
        all
    }

    /// Series whose value for the matcher's label satisfies it; a series
    /// without the label has the empty value.
    fn postings_for(&self, m: &Matcher) -> Result<RoaringBitmap, BlockError> {
        let idx = &self.index;
        let entry = idx.find_name(&m.name)?;
        if m.matches_empty() {
            let mut out = self.all_ids();
            if let Some(e) = entry {
                for j in 0..e.len() {
                    let (v, p) = idx.value_entry(&e, j)?;
                    if !m.matches(idx.symbol(v)?) {
                        out -= idx.postings(p)?;
                    }
                }
            }
            return Ok(out);
        }
        let Some(e) = entry else {
            return Ok(RoaringBitmap::new());
        };
        let lookup = |value: &str| -> Result<Option<RoaringBitmap>, BlockError> {
            let j = idx.lower_bound(&e, value)?;
            if j < e.len() {
                let (v, p) = idx.value_entry(&e, j)?;
                if idx.symbol(v)? == value {
                    return idx.postings(p).map(Some);
                }
            }
            Ok(None)
        };
        if m.op == MatchOp::Equal {
            return Ok(lookup(&m.value)?.unwrap_or_default());
        }
        let mut out = RoaringBitmap::new();
        if let Some(set) = m.set_matches() {
            for v in set {
                if let Some(ids) = lookup(&v)? {
                    out |= ids;
                }
            }
            return Ok(out);
        }
        // Values are sorted, so a literal prefix narrows the scan to one run.
        let (from, prefix) = match m.literal_prefix() {
            Some(p) => (idx.lower_bound(&e, p)?, p),
            None => (0, ""),
        };
        for j in from..e.len() {
            let (v, p) = idx.value_entry(&e, j)?;
            let s = idx.symbol(v)?;
            if !s.starts_with(prefix) {
                break;
            }
            if m.matches(s) {
                out |= idx.postings(p)?;
            }
        }
        Ok(out)
    }

    /// Matching ids whose series has a sample bound inside `[mint, maxt]`
    /// (the head's rule: series-level bounds, not exact samples), checking
    /// the stop signal while it filters.
    fn select_ids(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<RoaringBitmap, BlockError> {
        ctl.check()?;
        if !self.meta.overlaps(mint, maxt) {
            return Ok(RoaringBitmap::new());
        }
        let mut ids = self.postings(matchers)?;
        if self.within(mint, maxt) {
            return Ok(ids);
        }
        let mut err = None;
        let mut seen = 0usize;
        ids.retain(|id| {
            if err.is_some() {
                return false;
            }
            seen += 1;
            if seen.is_multiple_of(CHECK_EVERY)
                && let Err(e) = ctl.check()
            {
                err = Some(e.into());
                return false;
            }
            match self
                .index
                .series_entry(id)
                .and_then(|e| e.bounds(&self.index))
            {
                Ok((lo, hi)) => lo <= maxt && mint <= hi,
                Err(e) => {
                    err = Some(e);
                    false
                }
            }
        });
        err.map_or(Ok(ids), Err)
    }

    fn entry(&self, id: u32) -> Result<SeriesEntry<'_>, BlockError> {
        self.index.series_entry(id)
    }

    /// The chunks of series `id` overlapping `[mint, maxt]`, checked.
    fn chunks_of<'b>(
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

    /// Series matching all `matchers` with their samples in `[mint, maxt]`
    /// (inclusive), sorted by labels; series with no sample in range are
    /// omitted. The same contract as `Db::select`. Unbounded: see
    /// [`select_with`](Self::select_with).
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesSamples>, BlockError> {
        self.select_with(matchers, mint, maxt, &ReadControl::unlimited())
    }

    /// [`select`](Self::select) under the budgets and stop signal of `ctl`,
    /// counted as the head counts them (`Db::select_with`).
    pub fn select_with(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<Vec<SeriesSamples>, BlockError> {
        let ids = self.select_ids(matchers, mint, maxt, ctl)?;
        ctl.add_series(ids.len() as usize)?;
        let mut out = Vec::new();
        let mut chunks = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if i.is_multiple_of(CHECK_EVERY) {
                ctl.check()?;
            }
            let e = self.entry(id)?;
            chunks.clear();
            self.chunks_of(&e, mint, maxt, &mut chunks)?;
            if chunks.is_empty() {
                continue;
            }
            let mut samples = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
            for c in &chunks {
                collect(c.iter(), mint, maxt, &mut samples);
            }
            ctl.add_samples(samples.len())?;
            if !samples.is_empty() {
                out.push(SeriesSamples {
                    labels: e.labels(&self.index)?,
                    samples,
                });
            }
        }
        Ok(out)
    }

    /// Like [`select_with`](Self::select_with) but returns the chunks
    /// overlapping the range undecoded (they may hold samples outside it),
    /// for callers that merge blocks with the head or stream. Counts series
    /// against `ctl`, and the samples of the chunks returned.
    pub fn select_chunks(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<Vec<SeriesChunks<'_>>, BlockError> {
        let ids = self.select_ids(matchers, mint, maxt, ctl)?;
        ctl.add_series(ids.len() as usize)?;
        let mut out = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if i.is_multiple_of(CHECK_EVERY) {
                ctl.check()?;
            }
            let s = self.series_chunks(id, mint, maxt)?;
            ctl.add_samples(s.chunks.iter().map(|c| c.len()).sum())?;
            if !s.chunks.is_empty() {
                out.push(s);
            }
        }
        Ok(out)
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

    /// Label sets of the matching series with a sample in range, sorted.
    /// Unbounded: see [`series_with`](Self::series_with).
    pub fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, BlockError> {
        Ok(self
            .series_with(matchers, mint, maxt, 0, &ReadControl::unlimited())?
            .0)
    }

    /// [`series`](Self::series) under `ctl`, building at most `limit` label
    /// sets (0: all); also returns how many series matched in all.
    pub fn series_with(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        limit: usize,
        ctl: &ReadControl<'_>,
    ) -> Result<(Vec<Labels>, u64), BlockError> {
        let ids = self.select_ids(matchers, mint, maxt, ctl)?;
        let matched = ids.len();
        let n = if limit == 0 {
            matched as usize
        } else {
            limit.min(matched as usize)
        };
        // Count first: a call over the budget fails before building anything.
        ctl.add_series(n)?;
        let mut out = Vec::with_capacity(n);
        for (i, id) in ids.iter().take(n).enumerate() {
            if i.is_multiple_of(CHECK_EVERY) {
                ctl.check()?;
            }
            out.push(self.entry(id)?.labels(&self.index)?);
        }
        Ok((out, matched))
    }

    /// Sorted, unique label names of the matching series. Unbounded: see
    /// [`label_names_with`](Self::label_names_with).
    pub fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, BlockError> {
        self.label_names_with(matchers, mint, maxt, &ReadControl::unlimited())
    }

    /// [`label_names`](Self::label_names) under `ctl`.
    pub fn label_names_with(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<Vec<String>, BlockError> {
        let idx = &self.index;
        if matchers.is_empty() && self.within(mint, maxt) {
            // Names are stored sorted: no series is touched.
            return (0..idx.n_names())
                .map(|i| Ok(idx.symbol(idx.name_entry(i)?.name)?.to_string()))
                .collect();
        }
        let ids = self.select_ids(matchers, mint, maxt, ctl)?;
        ctl.add_series(ids.len() as usize)?;
        let mut names = BTreeSet::new();
        for (i, id) in ids.iter().enumerate() {
            if i.is_multiple_of(CHECK_EVERY) {
                ctl.check()?;
            }
            let e = self.entry(id)?;
            for pair in e.label_ids() {
                let (n, _) = pair.ok_or_else(|| {
                    BlockError::corrupt(&idx.path, e.file_offset(), "series entry: bad label ids")
                })?;
                names.insert(n);
            }
        }
        // Symbol ids sort like their strings.
        names
            .into_iter()
            .map(|n| Ok(idx.symbol(n)?.to_string()))
            .collect()
    }

    /// Sorted, unique values of label `name` among the matching series.
    /// Unbounded: see [`label_values_with`](Self::label_values_with).
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, BlockError> {
        self.label_values_with(name, matchers, mint, maxt, &ReadControl::unlimited())
    }

    /// [`label_values`](Self::label_values) under `ctl`.
    pub fn label_values_with(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        ctl: &ReadControl<'_>,
    ) -> Result<Vec<String>, BlockError> {
        let idx = &self.index;
        let Some(e) = idx.find_name(name)? else {
            return Ok(Vec::new());
        };
        let ids = if matchers.is_empty() && self.within(mint, maxt) {
            None
        } else {
            let ids = self.select_ids(matchers, mint, maxt, ctl)?;
            ctl.add_series(ids.len() as usize)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            Some(ids)
        };
        let mut out = Vec::new();
        for j in 0..e.len() {
            if j.is_multiple_of(CHECK_EVERY) {
                ctl.check()?;
            }
            let (v, p) = idx.value_entry(&e, j)?;
            let hit = match &ids {
                // Every stored value has at least one series.
                None => true,
                Some(ids) => !idx.postings(p)?.is_disjoint(ids),
            };
            if hit {
                out.push(idx.symbol(v)?.to_string());
            }
        }
        Ok(out)
    }

    /// True when the whole block lies inside `[mint, maxt]`.
    fn within(&self, mint: i64, maxt: i64) -> bool {
        mint <= self.meta.min_time && self.meta.max_time <= maxt
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

/// Pushes the samples of `it` in `[mint, maxt]` onto `out`.
fn collect(mut it: ChunkIter<'_>, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
    let mut cur = it.seek(mint);
    while let Some((t, v)) = cur {
        if t > maxt {
            break;
        }
        out.push(Sample { t, v });
        cur = it.next();
    }
}
