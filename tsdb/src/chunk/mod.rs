//! Chunks: the compressed, columnar samples of one series over a time range.
//!
//! A chunk holds two bit-packed columns, timestamps (delta-of-delta) and
//! values (Gorilla XOR, or scaled decimal integers when every value is a
//! short decimal, or, in blocks, scaled integers under a code fitted to the
//! chunk), behind a fixed 28-byte header carrying the sample count, `min_t`
//! and `max_t`, so a reader can skip a chunk outside its time range without
//! decoding it. The byte layout is specified in `docs/format/chunk.md`.
//!
//! Start from [`ChunkBuilder`] (the head's open chunk), which seals into a
//! [`Chunk`] (owned bytes): quickly with `seal` (the head), or as small as
//! it can with `seal_smallest` (block writers); [`ChunkRef`] is the same
//! read API over borrowed bytes such as an mmap'd block, and [`ChunkIter`]
//! decodes both.

mod bstream;
mod builder;
mod fitted;
mod iter;
pub mod prom_xor;
mod timestamps;
mod values;

#[cfg(test)]
mod tests;

pub use builder::ChunkBuilder;
pub use iter::ChunkIter;
pub use values::{MAX_DECIMALS, ValueEncoding};

/// The bucket-width tables of the decimal value modes, for tools that
/// inspect chunks.
pub fn int_bucket_widths(table: u8) -> Option<&'static [u32]> {
    values::INT_TABLES.get(table as usize).map(|b| b.widths)
}

/// Format version written in byte 0. Version 2 added value encoding 3
/// (`ValueEncoding::Fitted`) and changed nothing else, so a version 1 chunk
/// reads as it always did; readers reject any other version.
pub const VERSION: u8 = 2;

/// Oldest format version readers accept.
pub const MIN_VERSION: u8 = 1;

/// Checks header bytes 0..4 (version and value encoding) as every reader
/// must, whether the chunk is contiguous or its timestamp column is shared.
pub fn parse_version_and_encoding(b: [u8; 4]) -> Result<ValueEncoding, ChunkError> {
    if !(MIN_VERSION..=VERSION).contains(&b[0]) {
        return Err(ChunkError::UnsupportedVersion { found: b[0] });
    }
    let enc = ValueEncoding::from_bytes([b[1], b[2], b[3]]).map_err(|offset| {
        ChunkError::BadValueEncoding {
            offset,
            found: b[offset],
        }
    })?;
    if b[0] < 2 && matches!(enc, ValueEncoding::Fitted { .. }) {
        return Err(ChunkError::BadValueEncoding {
            offset: 1,
            found: b[1],
        });
    }
    Ok(enc)
}

/// Bytes before the timestamp column.
pub const HEADER_LEN: usize = 28;

/// Why bytes are not a chunk this build can read. Offsets are byte offsets
/// into the chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk is {len} bytes, shorter than its {HEADER_LEN}-byte header")]
    TooShort { len: usize },
    #[error(
        "chunk byte 0: format version {found} is not supported (this build reads {MIN_VERSION} to {VERSION})"
    )]
    UnsupportedVersion { found: u8 },
    #[error("chunk byte {offset}: invalid value encoding byte {found}")]
    BadValueEncoding { offset: usize, found: u8 },
    #[error(
        "chunk bytes 8..24: min_t {min_t} and max_t {max_t} are impossible for {count} samples"
    )]
    BadTimeRange { min_t: i64, max_t: i64, count: u32 },
    #[error(
        "chunk bytes 24..28: timestamp column of {ts_len} bytes overruns the {available} bytes after the header"
    )]
    TimestampColumnOverrun { ts_len: usize, available: usize },
    #[error("chunk bytes 4..8: {count} samples cannot fit a timestamp column of {ts_len} bytes")]
    CountExceedsColumn { count: u32, ts_len: usize },
}

/// The parsed fixed header.
#[derive(Debug, Clone, Copy)]
struct Header {
    enc: ValueEncoding,
    count: u32,
    min_t: i64,
    max_t: i64,
    ts_len: usize,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}

impl Header {
    fn parse(b: &[u8]) -> Result<Header, ChunkError> {
        if b.len() < HEADER_LEN {
            return Err(ChunkError::TooShort { len: b.len() });
        }
        let enc = parse_version_and_encoding([b[0], b[1], b[2], b[3]])?;
        let h = Header::parse_fields(b, enc);
        let range_ok = match h.count {
            0 | 1 => h.min_t == h.max_t,
            _ => h.min_t < h.max_t,
        };
        if !range_ok {
            return Err(ChunkError::BadTimeRange {
                min_t: h.min_t,
                max_t: h.max_t,
                count: h.count,
            });
        }
        let available = b.len() - HEADER_LEN;
        if h.ts_len > available {
            return Err(ChunkError::TimestampColumnOverrun {
                ts_len: h.ts_len,
                available,
            });
        }
        // Every sample after the first takes at least one timestamp bit, so
        // a corrupt count cannot promise more samples than the bytes hold.
        if u64::from(h.count) > 1 + h.ts_len as u64 * 8 {
            return Err(ChunkError::CountExceedsColumn {
                count: h.count,
                ts_len: h.ts_len,
            });
        }
        Ok(h)
    }

    /// Reads the fields of a header already validated (or just written).
    fn parse_fields(b: &[u8], enc: ValueEncoding) -> Header {
        Header {
            enc,
            count: le_u32(b, 4),
            min_t: le_i64(b, 8),
            max_t: le_i64(b, 16),
            ts_len: le_u32(b, 24) as usize,
        }
    }
}

/// An immutable chunk owning its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Always holds a valid header: checked by `from_bytes` or written by
    /// `ChunkBuilder::seal`.
    bytes: Box<[u8]>,
}

impl Chunk {
    /// Takes ownership of chunk bytes, validating the header.
    pub fn from_bytes(b: Box<[u8]>) -> Result<Chunk, ChunkError> {
        Header::parse(&b)?;
        Ok(Chunk { bytes: b })
    }

    pub(crate) fn from_sealed(b: Box<[u8]>) -> Chunk {
        debug_assert!(Header::parse(&b).is_ok());
        Chunk { bytes: b }
    }

    pub fn as_ref(&self) -> ChunkRef<'_> {
        let b = &self.bytes;
        // The header was validated on construction; re-reading its fixed
        // fields is a few loads, cheaper than storing them per chunk.
        let enc = ValueEncoding::from_bytes([b[1], b[2], b[3]]).unwrap_or(ValueEncoding::Xor);
        ChunkRef {
            bytes: b,
            header: Header::parse_fields(b, enc),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Box<[u8]> {
        self.bytes
    }

    pub fn len(&self) -> usize {
        le_u32(&self.bytes, 4) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn min_t(&self) -> i64 {
        le_i64(&self.bytes, 8)
    }

    pub fn max_t(&self) -> i64 {
        le_i64(&self.bytes, 16)
    }

    pub fn value_encoding(&self) -> ValueEncoding {
        self.as_ref().value_encoding()
    }

    pub fn iter(&self) -> ChunkIter<'_> {
        self.as_ref().iter()
    }
}

/// A zero-copy view of chunk bytes, e.g. inside an mmap'd block.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRef<'a> {
    bytes: &'a [u8],
    header: Header,
}

impl<'a> ChunkRef<'a> {
    /// Validates the header of `b`, which must hold exactly one chunk.
    pub fn new(b: &'a [u8]) -> Result<Self, ChunkError> {
        Ok(ChunkRef {
            bytes: b,
            header: Header::parse(b)?,
        })
    }

    pub fn len(&self) -> usize {
        self.header.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.header.count == 0
    }

    pub fn min_t(&self) -> i64 {
        self.header.min_t
    }

    pub fn max_t(&self) -> i64 {
        self.header.max_t
    }

    pub fn value_encoding(&self) -> ValueEncoding {
        self.header.enc
    }

    /// True when the chunk may hold a sample in `[mint, maxt]`.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        !self.is_empty() && self.header.min_t <= maxt && mint <= self.header.max_t
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn iter(&self) -> ChunkIter<'a> {
        let h = &self.header;
        let ts_end = HEADER_LEN + h.ts_len;
        ChunkIter::new(
            &self.bytes[HEADER_LEN..ts_end],
            &self.bytes[ts_end..],
            h.enc,
            h.count,
            h.min_t,
            h.max_t,
        )
    }
}
