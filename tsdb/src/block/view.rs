//! [`BlockChunk`]: a zero-copy view of one chunk of a block, whose
//! timestamp column may be shared with an earlier chunk.
//!
//! Every series scraped from one target carries the same timestamps, so a
//! block stores an identical timestamp column once and later chunks point
//! back at it (see `docs/format/block.md`). Such a chunk is not contiguous
//! bytes and so not a [`ChunkRef`]; this view decodes both kinds in place.

use crate::chunk::{ChunkIter, ChunkRef, HEADER_LEN, ValueEncoding, parse_version_and_encoding};

/// One chunk of a block, checked (CRC32C over header, timestamp column and
/// value column; header fields), decoded in place.
#[derive(Clone, Copy, Debug)]
pub struct BlockChunk<'a> {
    ts: &'a [u8],
    vals: &'a [u8],
    enc: ValueEncoding,
    count: u32,
    min_t: i64,
    max_t: i64,
    /// The contiguous chunk when its timestamp column is its own.
    whole: Option<ChunkRef<'a>>,
}

impl<'a> BlockChunk<'a> {
    pub(crate) fn whole(c: ChunkRef<'a>) -> Self {
        let b = c.as_bytes();
        let ts_len = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")) as usize;
        BlockChunk {
            ts: &b[HEADER_LEN..HEADER_LEN + ts_len],
            vals: &b[HEADER_LEN + ts_len..],
            enc: c.value_encoding(),
            count: c.len() as u32,
            min_t: c.min_t(),
            max_t: c.max_t(),
            whole: Some(c),
        }
    }

    /// A chunk stored as `header ‖ vals` whose timestamp column is `ts`
    /// elsewhere; checks the header as `ChunkRef::new` would. `Err` is the
    /// reason, for the caller to wrap with file and offset.
    pub(crate) fn split(header: &'a [u8], ts: &'a [u8], vals: &'a [u8]) -> Result<Self, String> {
        let h: &[u8; HEADER_LEN] = header
            .try_into()
            .map_err(|_| "short chunk header".to_string())?;
        let enc =
            parse_version_and_encoding([h[0], h[1], h[2], h[3]]).map_err(|e| e.to_string())?;
        let count = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
        let min_t = i64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
        let max_t = i64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
        let ts_len = u32::from_le_bytes(h[24..28].try_into().expect("4 bytes")) as usize;
        let range_ok = match count {
            0 | 1 => min_t == max_t,
            _ => min_t < max_t,
        };
        if !range_ok || ts_len != ts.len() || u64::from(count) > 1 + ts.len() as u64 * 8 {
            return Err(format!(
                "chunk header (count {count}, min_t {min_t}, max_t {max_t}, ts_len {ts_len}) \
                 does not fit its shared timestamp column of {} bytes",
                ts.len()
            ));
        }
        Ok(BlockChunk {
            ts,
            vals,
            enc,
            count,
            min_t,
            max_t,
            whole: None,
        })
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn min_t(&self) -> i64 {
        self.min_t
    }

    pub fn max_t(&self) -> i64 {
        self.max_t
    }

    pub fn value_encoding(&self) -> ValueEncoding {
        self.enc
    }

    /// Byte lengths of the timestamp and value columns.
    pub fn column_lens(&self) -> (usize, usize) {
        (self.ts.len(), self.vals.len())
    }

    /// The chunk as contiguous `tsdb::chunk` bytes, unless its timestamp
    /// column is shared (then use [`iter`](Self::iter), or re-encode).
    pub fn as_chunk_ref(&self) -> Option<ChunkRef<'a>> {
        self.whole
    }

    pub fn iter(&self) -> ChunkIter<'a> {
        ChunkIter::new(
            self.ts, self.vals, self.enc, self.count, self.min_t, self.max_t,
        )
    }
}
