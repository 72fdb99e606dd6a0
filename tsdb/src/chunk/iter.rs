//! Decoding a chunk: [`ChunkIter`] walks both columns in step.
//!
//! The iterator borrows the column bytes (of a sealed chunk, an mmap'd block
//! or an open builder) and decodes in place with no allocation. Corrupted
//! bytes end the iteration early: a read past a column's end, an impossible
//! XOR window, or a timestamp that does not increase or passes the header's
//! `max_t` all stop it, so a damaged chunk yields a shorter prefix, never a
//! panic and never out-of-order samples.

use super::bstream::BitReader;
use super::fitted::FittedDecoder;
use super::timestamps::TsDecoder;
use super::values::{IntDecoder, ValueEncoding, XorDecoder};

#[derive(Debug, Clone, Copy)]
enum ValueDecoder {
    Xor(XorDecoder),
    Int(IntDecoder),
    Fitted(FittedDecoder),
}

/// Iterates a chunk's samples as `(timestamp_ms, value)` in time order.
#[derive(Debug, Clone)]
pub struct ChunkIter<'a> {
    ts: BitReader<'a>,
    vals: BitReader<'a>,
    ts_dec: TsDecoder,
    val_dec: ValueDecoder,
    /// Samples returned so far.
    n: u32,
    count: u32,
    max_t: i64,
    prev_t: i64,
}

impl<'a> ChunkIter<'a> {
    pub(crate) fn new(
        ts: &'a [u8],
        vals: &'a [u8],
        enc: ValueEncoding,
        count: u32,
        min_t: i64,
        max_t: i64,
    ) -> Self {
        let val_dec = match enc {
            ValueEncoding::Xor => ValueDecoder::Xor(XorDecoder::default()),
            ValueEncoding::DecimalDelta { decimals, table } => {
                ValueDecoder::Int(IntDecoder::new(false, decimals, table))
            }
            ValueEncoding::DecimalDod { decimals, table } => {
                ValueDecoder::Int(IntDecoder::new(true, decimals, table))
            }
            ValueEncoding::Fitted { decimals, mul, dod } => {
                ValueDecoder::Fitted(FittedDecoder::new(decimals, mul, dod))
            }
        };
        ChunkIter {
            ts: BitReader::new(ts),
            vals: BitReader::new(vals),
            ts_dec: TsDecoder::new(min_t),
            val_dec,
            n: 0,
            count,
            max_t,
            prev_t: min_t,
        }
    }

    #[inline]
    fn decode(&mut self) -> Option<(i64, f64)> {
        let n = self.n;
        let t = self.ts_dec.next(&mut self.ts, n)?;
        if n > 0 && (t <= self.prev_t || t > self.max_t) {
            return None;
        }
        let v = match &mut self.val_dec {
            ValueDecoder::Xor(d) => d.next(&mut self.vals, n)?,
            ValueDecoder::Int(d) => d.next(&mut self.vals, n)?,
            ValueDecoder::Fitted(d) => d.next(&mut self.vals, n)?,
        };
        self.prev_t = t;
        Some((t, v))
    }

    /// Advances to the first remaining sample with timestamp `>= t` and
    /// returns it (consumed: the next `next()` returns the sample after it).
    /// `None` when no remaining sample is that late; the iterator is then
    /// exhausted.
    pub fn seek(&mut self, t: i64) -> Option<(i64, f64)> {
        if t > self.max_t {
            // The header bounds the chunk: skip decoding entirely.
            self.n = self.count;
            return None;
        }
        self.find(|&(ts, _)| ts >= t)
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        if self.n >= self.count {
            return None;
        }
        match self.decode() {
            Some(s) => {
                self.n += 1;
                Some(s)
            }
            None => {
                // Corrupted or truncated: stop for good.
                self.n = self.count;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Corruption can end iteration early, so only the upper bound is known.
        (0, Some((self.count - self.n) as usize))
    }
}

impl std::iter::FusedIterator for ChunkIter<'_> {}
