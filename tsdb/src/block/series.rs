//! Series entries of the index: a series' labels (symbol ids) and its
//! chunk references, decoded lazily from the mapped bytes without
//! allocating (layout in `docs/format/block.md`, "Series").

use super::BlockError;
use super::bytes::{uvarint, varint};
use super::index::Index;
use crate::{Label, Labels};

/// Where one chunk of a series lives in the `chunks` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkMeta {
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    /// Byte offset of the chunk in the `chunks` file.
    pub(crate) offset: u64,
    /// Stored length in bytes, without the 4-byte CRC.
    pub(crate) len: u32,
    /// 0 when the chunk is stored whole; otherwise its timestamp column is
    /// not stored with it but `ts_back` bytes before `offset`.
    pub(crate) ts_back: u64,
}

/// A parsed series entry: its labels (as symbol ids) and chunk references,
/// decoded lazily from the mapped bytes.
#[derive(Clone, Copy)]
pub(crate) struct SeriesEntry<'a> {
    /// Absolute file offset of `bytes`, for error messages.
    at: usize,
    bytes: &'a [u8],
    n_labels: usize,
    labels_start: usize,
    n_chunks: u64,
    chunks_start: usize,
}

impl<'a> SeriesEntry<'a> {
    pub(super) fn parse(idx: &Index, at: usize, bytes: &'a [u8]) -> Result<Self, BlockError> {
        let mut pos = 0;
        let bad = |pos: usize, what: &str| idx.corrupt(at + pos, format!("series entry: {what}"));
        let n_labels = uvarint(bytes, &mut pos).ok_or_else(|| bad(pos, "truncated label count"))?;
        if n_labels > bytes.len() as u64 {
            return Err(bad(0, "label count exceeds the entry"));
        }
        let labels_start = pos;
        for _ in 0..n_labels * 2 {
            uvarint(bytes, &mut pos).ok_or_else(|| bad(pos, "truncated label"))?;
        }
        let n_chunks = uvarint(bytes, &mut pos).ok_or_else(|| bad(pos, "truncated chunk count"))?;
        if n_chunks == 0 || n_chunks > bytes.len() as u64 {
            return Err(bad(pos, "impossible chunk count"));
        }
        Ok(SeriesEntry {
            at,
            bytes,
            n_labels: n_labels as usize,
            labels_start,
            n_chunks,
            chunks_start: pos,
        })
    }

    /// The (name, value) symbol ids, in name order.
    pub(crate) fn label_ids(&self) -> impl Iterator<Item = Option<(u32, u32)>> + 'a {
        let b = self.bytes;
        let mut pos = self.labels_start;
        (0..self.n_labels).map(move |_| {
            let n = u32::try_from(uvarint(b, &mut pos)?).ok()?;
            let v = u32::try_from(uvarint(b, &mut pos)?).ok()?;
            Some((n, v))
        })
    }

    pub(crate) fn labels(&self, idx: &Index) -> Result<Labels, BlockError> {
        let mut v = Vec::with_capacity(self.n_labels);
        for pair in self.label_ids() {
            let (n, val) =
                pair.ok_or_else(|| idx.corrupt(self.at, "series entry: bad label ids"))?;
            v.push(Label::new(idx.symbol(n)?, idx.symbol(val)?));
        }
        if !v.windows(2).all(|w| w[0].name < w[1].name) {
            return Err(idx.corrupt(self.at, "series entry: label names not sorted and unique"));
        }
        Ok(Labels::from_sorted_unchecked(v))
    }

    /// The chunk references, in time order; `None` items are corruption.
    pub(crate) fn chunks(&self) -> ChunkMetas<'a> {
        ChunkMetas {
            b: self.bytes,
            pos: self.chunks_start,
            left: self.n_chunks,
            first: true,
            prev_max_t: 0,
            prev_end: 0,
            at: self.at,
        }
    }

    /// `[min_t, max_t]` of the whole series.
    pub(crate) fn bounds(&self, idx: &Index) -> Result<(i64, i64), BlockError> {
        let mut it = self.chunks();
        let mut lo_hi = None::<(i64, i64)>;
        for c in &mut it {
            let c = c.ok_or_else(|| idx.corrupt(self.at, "series entry: bad chunk reference"))?;
            lo_hi = Some((lo_hi.map_or(c.min_t, |(lo, _)| lo), c.max_t));
        }
        lo_hi.ok_or_else(|| idx.corrupt(self.at, "series entry without chunks"))
    }

    pub(crate) fn file_offset(&self) -> u64 {
        self.at as u64
    }
}

/// Decodes chunk references without allocating. A `None` item means the
/// entry is corrupt (truncated, or times that do not increase).
pub(crate) struct ChunkMetas<'a> {
    b: &'a [u8],
    pos: usize,
    left: u64,
    first: bool,
    prev_max_t: i64,
    prev_end: u64,
    at: usize,
}

impl ChunkMetas<'_> {
    fn decode(&mut self) -> Option<ChunkMeta> {
        let (min_t, offset);
        if self.first {
            min_t = varint(self.b, &mut self.pos)?;
        } else {
            let d = uvarint(self.b, &mut self.pos)?;
            min_t = self.prev_max_t.checked_add_unsigned(d).filter(|_| d > 0)?;
        }
        let span = uvarint(self.b, &mut self.pos)?;
        let max_t = min_t.checked_add_unsigned(span)?;
        let o = uvarint(self.b, &mut self.pos)?;
        offset = if self.first {
            o
        } else {
            self.prev_end.checked_add(o)?
        };
        let len = u32::try_from(uvarint(self.b, &mut self.pos)?).ok()?;
        let ts_back = uvarint(self.b, &mut self.pos)?;
        self.first = false;
        self.prev_max_t = max_t;
        self.prev_end = offset.checked_add(u64::from(len) + 4)?;
        Some(ChunkMeta {
            min_t,
            max_t,
            offset,
            len,
            ts_back,
        })
    }

    /// Absolute file offset of the entry, for errors.
    pub(crate) fn entry_offset(&self) -> u64 {
        self.at as u64
    }
}

impl Iterator for ChunkMetas<'_> {
    type Item = Option<ChunkMeta>;

    fn next(&mut self) -> Option<Option<ChunkMeta>> {
        if self.left == 0 {
            return None;
        }
        let m = self.decode();
        // Stop after a corrupt reference: its successors cannot be trusted.
        self.left = if m.is_some() { self.left - 1 } else { 0 };
        Some(m)
    }
}
