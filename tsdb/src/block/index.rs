//! Reading the `index` file of a block: table of contents, symbols, series
//! entries, postings and the label index, all in place over the mmap.
//!
//! [`Index::open`] checks the TOC, every section's CRC32C and the
//! structure of the fixed-width tables (offsets in bounds and increasing,
//! symbols sorted UTF-8, ids in range), so later lookups only re-check what
//! is cheap; a variable-length series entry that does not parse is still a
//! `Corrupt` error with its offset, never a panic.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use roaring::RoaringBitmap;

use super::bytes::{u32_at, u64_at};
use super::series::SeriesEntry;
use super::{BlockError, FORMAT_VERSION};

pub(crate) const INDEX_MAGIC: [u8; 4] = *b"TIDX";
pub(crate) const CHUNKS_MAGIC: [u8; 4] = *b"TCHK";
pub(crate) const HEADER_LEN: usize = 8;
/// Sections in file and TOC order: symbols, series, postings, label index.
pub(crate) const SECTIONS: usize = 4;
const SECTION_NAMES: [&str; SECTIONS] = ["symbols", "series", "postings", "label index"];
/// 4 × (offset u64, length u64, crc u32), the TOC's CRC, the magic.
pub(crate) const TOC_LEN: usize = SECTIONS * 20 + 8;

/// Maps a file read-only. Blocks are never written after they are renamed
/// into place, so the bytes do not change under the map.
pub(crate) fn map_file(path: &Path, min_len: usize) -> Result<Mmap, BlockError> {
    let file = File::open(path).map_err(BlockError::io("open", path))?;
    let len = file.metadata().map_err(BlockError::io("stat", path))?.len();
    if len < min_len as u64 {
        return Err(BlockError::corrupt(
            path,
            len,
            format!("file is {len} bytes, shorter than the smallest valid one ({min_len})"),
        ));
    }
    // SAFETY: the map is read-only and block files are immutable once
    // renamed into place; the only hazard is another process truncating
    // the file (SIGBUS), which nothing in Tessera does to a live block.
    unsafe { Mmap::map(&file) }.map_err(BlockError::io("mmap", path))
}

/// Checks the 8-byte header shared by `index` and `chunks`.
pub(crate) fn check_header(path: &Path, b: &[u8], magic: [u8; 4]) -> Result<(), BlockError> {
    if b[..4] != magic {
        return Err(BlockError::corrupt(
            path,
            0,
            format!("bad magic {:02x?}, want {:02x?}", &b[..4], magic),
        ));
    }
    if b[4] != FORMAT_VERSION {
        return Err(BlockError::corrupt(
            path,
            4,
            format!(
                "format version {} is not supported (this build reads {FORMAT_VERSION})",
                b[4]
            ),
        ));
    }
    Ok(())
}

/// The opened index: the map and the validated section bounds.
pub(crate) struct Index {
    pub(crate) path: PathBuf,
    map: Mmap,
    symbols: Range<usize>,
    series: Range<usize>,
    postings: Range<usize>,
    labels: Range<usize>,
    pub(crate) n_symbols: u32,
    pub(crate) n_series: u32,
    n_names: u32,
}

/// One name of the label index: its symbol and its value table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameEntry {
    pub(crate) name: u32,
    n_values: u32,
    /// Absolute file offset of the value table.
    values_at: usize,
}

impl NameEntry {
    pub(crate) fn len(&self) -> usize {
        self.n_values as usize
    }
}

impl Index {
    pub(crate) fn open(path: PathBuf) -> Result<Index, BlockError> {
        let map = map_file(&path, HEADER_LEN + TOC_LEN)?;
        check_header(&path, &map, INDEX_MAGIC)?;
        let b: &[u8] = &map;
        let toc_at = b.len() - TOC_LEN;
        let toc = &b[toc_at..];
        if toc[TOC_LEN - 4..] != INDEX_MAGIC {
            return Err(BlockError::corrupt(
                &path,
                (b.len() - 4) as u64,
                "trailing magic missing: the file is truncated or not a block index",
            ));
        }
        let want = u32_at(toc, SECTIONS * 20).unwrap_or_default();
        let got = crc32c::crc32c(&toc[..SECTIONS * 20]);
        if want != got {
            return Err(BlockError::corrupt(
                &path,
                toc_at as u64,
                format!("table of contents CRC32C {got:#010x}, stored {want:#010x}"),
            ));
        }
        let mut ranges = [0..0, 0..0, 0..0, 0..0];
        for (i, r) in ranges.iter_mut().enumerate() {
            let at = i * 20;
            let (off, len) = (
                u64_at(toc, at).unwrap_or(0),
                u64_at(toc, at + 8).unwrap_or(0),
            );
            let end = off
                .checked_add(len)
                .filter(|&e| off >= HEADER_LEN as u64 && e <= toc_at as u64);
            let Some(end) = end else {
                return Err(BlockError::corrupt(
                    &path,
                    (toc_at + at) as u64,
                    format!(
                        "{} section {off}+{len} lies outside the file's {HEADER_LEN}..{toc_at} data bytes",
                        SECTION_NAMES[i]
                    ),
                ));
            };
            *r = off as usize..end as usize;
            let crc = crc32c::crc32c(&b[r.clone()]);
            let stored = u32_at(toc, at + 16).unwrap_or_default();
            if crc != stored {
                return Err(BlockError::corrupt(
                    &path,
                    off,
                    format!(
                        "{} section CRC32C {crc:#010x}, stored {stored:#010x}",
                        SECTION_NAMES[i]
                    ),
                ));
            }
        }
        let [symbols, series, postings, labels] = ranges;
        let mut idx = Index {
            path,
            map,
            symbols,
            series,
            postings,
            labels,
            n_symbols: 0,
            n_series: 0,
            n_names: 0,
        };
        idx.check_symbols()?;
        idx.check_series_table()?;
        idx.check_label_index()?;
        Ok(idx)
    }

    pub(crate) fn size_bytes(&self) -> u64 {
        self.map.len() as u64
    }

    pub(super) fn corrupt(&self, offset: usize, reason: impl Into<String>) -> BlockError {
        BlockError::corrupt(&self.path, offset as u64, reason)
    }

    /// A u32 at an absolute offset inside `r`.
    fn u32_in(&self, r: &Range<usize>, at: usize, what: &str) -> Result<u32, BlockError> {
        if at < r.start || at + 4 > r.end {
            return Err(self.corrupt(at, format!("{what} lies outside its section")));
        }
        Ok(u32_at(&self.map, at).unwrap_or_default())
    }

    fn u64_in(&self, r: &Range<usize>, at: usize, what: &str) -> Result<u64, BlockError> {
        if at < r.start || at + 8 > r.end {
            return Err(self.corrupt(at, format!("{what} lies outside its section")));
        }
        Ok(u64_at(&self.map, at).unwrap_or_default())
    }

    fn check_symbols(&mut self) -> Result<(), BlockError> {
        let r = self.symbols.clone();
        let n = self.u32_in(&r, r.start, "symbol count")?;
        let data = (r.start as u64 + 4 + 4 * (u64::from(n) + 1)) as usize;
        if data > r.end {
            return Err(self.corrupt(r.start, format!("{n} symbol offsets overrun the section")));
        }
        self.n_symbols = n;
        let mut prev: Option<&str> = None;
        for i in 0..n {
            let s = self.symbol(i)?;
            if prev.is_some_and(|p| p >= s) {
                return Err(self.corrupt(
                    r.start + 4 + 4 * i as usize,
                    format!("symbol {i} {s:?} is not after the previous one; symbols must be sorted and unique"),
                ));
            }
            prev = Some(s);
        }
        let last = self.u32_in(&r, r.start + 4 + 4 * n as usize, "symbol offset")?;
        if data + last as usize != r.end {
            return Err(self.corrupt(data, "symbol data does not end at the section end"));
        }
        Ok(())
    }

    /// The string of symbol `id`.
    pub(crate) fn symbol(&self, id: u32) -> Result<&str, BlockError> {
        if id >= self.n_symbols {
            return Err(self.corrupt(
                self.symbols.start,
                format!("symbol id {id} out of range ({} symbols)", self.n_symbols),
            ));
        }
        let r = &self.symbols;
        let at = r.start + 4 + 4 * id as usize;
        let (lo, hi) = (
            self.u32_in(r, at, "symbol offset")?,
            self.u32_in(r, at + 4, "symbol offset")?,
        );
        let data = r.start + 4 + 4 * (self.n_symbols as usize + 1);
        let (lo, hi) = (data + lo as usize, data + hi as usize);
        if lo > hi || hi > r.end {
            return Err(self.corrupt(
                at,
                format!("symbol {id} spans {lo}..{hi}, outside the section"),
            ));
        }
        std::str::from_utf8(&self.map[lo..hi])
            .map_err(|e| self.corrupt(lo + e.valid_up_to(), format!("symbol {id} is not UTF-8")))
    }

    fn check_series_table(&mut self) -> Result<(), BlockError> {
        let r = self.series.clone();
        let n = self.u32_in(&r, r.start, "series count")?;
        let entries = r.start as u64 + 4 + 8 * u64::from(n);
        if entries > r.end as u64 {
            return Err(self.corrupt(r.start, format!("{n} series offsets overrun the section")));
        }
        self.n_series = n;
        let mut prev = entries - r.start as u64;
        for i in 0..n as usize {
            let at = r.start + 4 + 8 * i;
            let off = self.u64_in(&r, at, "series offset")?;
            // Every entry takes at least 3 bytes (label count, chunk count, a chunk).
            if off < prev || (r.start as u64).saturating_add(off) >= r.end as u64 {
                return Err(self.corrupt(
                    at,
                    format!("series {i} offset {off} is out of order or outside the section"),
                ));
            }
            prev = off + 1;
        }
        Ok(())
    }

    /// The bytes of series `id`'s entry.
    pub(crate) fn series_entry(&self, id: u32) -> Result<SeriesEntry<'_>, BlockError> {
        if id >= self.n_series {
            return Err(self.corrupt(
                self.series.start,
                format!("series id {id} out of range ({} series)", self.n_series),
            ));
        }
        let r = &self.series;
        let at = r.start + 4 + 8 * id as usize;
        let start = r.start + self.u64_in(r, at, "series offset")? as usize;
        let end = if id + 1 < self.n_series {
            r.start + self.u64_in(r, at + 8, "series offset")? as usize
        } else {
            r.end
        };
        SeriesEntry::parse(self, start, &self.map[start..end])
    }

    fn check_label_index(&mut self) -> Result<(), BlockError> {
        let r = self.labels.clone();
        let n = self.u32_in(&r, r.start, "label name count")?;
        if r.start as u64 + 4 + 16 * u64::from(n) > r.end as u64 {
            return Err(self.corrupt(r.start, format!("{n} label names overrun the section")));
        }
        self.n_names = n;
        let mut prev_name = None;
        for i in 0..n {
            let e = self.name_entry(i as usize)?;
            if prev_name.is_some_and(|p| p >= e.name) || e.name >= self.n_symbols {
                return Err(self.corrupt(
                    self.name_at(i as usize),
                    "label names are not sorted symbol ids",
                ));
            }
            prev_name = Some(e.name);
            let mut prev_value = None;
            for j in 0..e.len() {
                let (v, p) = self.value_entry(&e, j)?;
                if prev_value.is_some_and(|pv| pv >= v) || v >= self.n_symbols {
                    return Err(self.corrupt(
                        e.values_at + 16 * j,
                        "label values are not sorted symbol ids",
                    ));
                }
                prev_value = Some(v);
                if p.end > self.postings.len() {
                    return Err(self.corrupt(
                        e.values_at + 16 * j,
                        "postings lie outside the postings section",
                    ));
                }
            }
        }
        Ok(())
    }

    fn name_at(&self, i: usize) -> usize {
        self.labels.start + 4 + 16 * i
    }

    pub(crate) fn n_names(&self) -> usize {
        self.n_names as usize
    }

    pub(crate) fn name_entry(&self, i: usize) -> Result<NameEntry, BlockError> {
        let r = &self.labels;
        let at = self.name_at(i);
        let name = self.u32_in(r, at, "label name")?;
        let n_values = self.u32_in(r, at + 4, "label value count")?;
        let rel = self.u64_in(r, at + 8, "label values offset")?;
        let values_at = (r.start as u64).saturating_add(rel);
        if values_at.saturating_add(16 * u64::from(n_values)) > r.end as u64 {
            return Err(self.corrupt(at, format!("{n_values} label values overrun the section")));
        }
        Ok(NameEntry {
            name,
            n_values,
            values_at: values_at as usize,
        })
    }

    /// The label name entry for `name`, by binary search.
    pub(crate) fn find_name(&self, name: &str) -> Result<Option<NameEntry>, BlockError> {
        let (mut lo, mut hi) = (0usize, self.n_names());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.name_entry(mid)?;
            match self.symbol(e.name)?.cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(e)),
            }
        }
        Ok(None)
    }

    /// Value `j` of a name: its symbol and its postings' range relative to
    /// the postings section.
    pub(crate) fn value_entry(
        &self,
        e: &NameEntry,
        j: usize,
    ) -> Result<(u32, Range<usize>), BlockError> {
        let r = &self.labels;
        let at = e.values_at + 16 * j;
        let v = self.u32_in(r, at, "label value")?;
        let len = self.u32_in(r, at + 4, "postings length")? as usize;
        let off = self.u64_in(r, at + 8, "postings offset")? as usize;
        Ok((v, off..off.saturating_add(len)))
    }

    /// First value index of `e` whose string is `>= s`.
    pub(crate) fn lower_bound(&self, e: &NameEntry, s: &str) -> Result<usize, BlockError> {
        let (mut lo, mut hi) = (0usize, e.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (v, _) = self.value_entry(e, mid)?;
            if self.symbol(v)? < s {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Decodes a postings list (series ids).
    pub(crate) fn postings(&self, rel: Range<usize>) -> Result<RoaringBitmap, BlockError> {
        let at = self.postings.start + rel.start;
        let bytes = self
            .map
            .get(at..self.postings.start + rel.end)
            .filter(|_| rel.end <= self.postings.len())
            .ok_or_else(|| self.corrupt(at, "postings lie outside the postings section"))?;
        let ids = RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| self.corrupt(at, format!("postings do not decode: {e}")))?;
        if ids.max().is_some_and(|m| m >= self.n_series) {
            return Err(self.corrupt(
                at,
                format!(
                    "postings name a series id beyond the {} series",
                    self.n_series
                ),
            ));
        }
        Ok(ids)
    }
}
