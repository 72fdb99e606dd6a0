//! The open chunk: [`ChunkBuilder`] appends samples and seals them into an
//! immutable [`Chunk`].
//!
//! While open, values are written as XOR, the one encoding that accepts any
//! value, so the head can read the chunk at any moment. Alongside, the
//! builder tracks the fewest decimal places that represent every value so
//! far (one multiply, round and divide per append, no allocation). Sealing
//! then re-encodes the value column in the cheaper decimal mode when every
//! value qualifies and it is smaller; that cost is paid once per chunk.

use super::bstream::{BitReader, BitWriter};
use super::iter::ChunkIter;
use super::timestamps::TsEncoder;
use super::values::{
    IntCost, IntEncoder, ValueEncoding, XorDecoder, XorEncoder, decimal_int, widen_decimals,
};
use super::{Chunk, HEADER_LEN, VERSION};

/// An open, appendable chunk of one series.
#[derive(Debug, Clone)]
pub struct ChunkBuilder {
    ts: BitWriter,
    vals: BitWriter,
    ts_enc: TsEncoder,
    xor: XorEncoder,
    count: u32,
    min_t: i64,
    /// Fewest decimal places that represent every value appended so far;
    /// `None` once a value has none (NaN, -0.0, 0.1+0.2, ...).
    decimals: Option<u8>,
}

impl Default for ChunkBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkBuilder {
    pub fn new() -> Self {
        ChunkBuilder {
            ts: BitWriter::new(),
            vals: BitWriter::new(),
            ts_enc: TsEncoder::default(),
            xor: XorEncoder::default(),
            count: 0,
            min_t: 0,
            decimals: Some(0),
        }
    }

    /// Appends a sample. The caller guarantees `t` is greater than the
    /// previous timestamp (the head rejects out-of-order samples before
    /// they get here) and cuts chunks long before 2^32 samples.
    #[inline]
    pub fn append(&mut self, t: i64, v: f64) {
        debug_assert!(
            self.count == 0 || t > self.ts_enc.last(),
            "timestamps must increase"
        );
        debug_assert!(self.count < u32::MAX, "chunk sample count overflows u32");
        let n = self.count;
        if n == 0 {
            self.min_t = t;
        }
        self.ts_enc.push(&mut self.ts, n, t);
        self.xor.push(&mut self.vals, n, v);
        if let Some(k) = self.decimals
            && decimal_int(v, k).is_none()
        {
            self.decimals = widen_decimals(v, k + 1);
        }
        self.count = n + 1;
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// First timestamp; meaningless when empty.
    pub fn min_t(&self) -> i64 {
        self.min_t
    }

    /// Last timestamp; meaningless when empty.
    pub fn max_t(&self) -> i64 {
        self.ts_enc.last()
    }

    /// The last sample appended, without decoding.
    pub fn last(&self) -> Option<(i64, f64)> {
        (self.count > 0).then(|| (self.ts_enc.last(), self.xor.last()))
    }

    /// Reads the samples appended so far without sealing.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(
            self.ts.bytes(),
            self.vals.bytes(),
            ValueEncoding::Xor,
            self.count,
            self.min_t,
            self.max_t(),
        )
    }

    /// Heap bytes held (column buffer capacities), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.ts.capacity() + self.vals.capacity()
    }

    /// Bytes the chunk would take if sealed now in XOR mode, an upper bound
    /// (sealing may pick a smaller decimal mode); lets a caller cut chunks
    /// by size as well as by sample count.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.ts.bytes().len() + self.vals.bytes().len()
    }

    /// Returns the immutable chunk and resets `self` to empty, keeping its
    /// buffers for the next chunk.
    pub fn seal(&mut self) -> Chunk {
        let (enc, val_bytes) = self.choose_value_encoding();
        let ts = self.ts.bytes();
        let mut out = Vec::with_capacity(HEADER_LEN + ts.len() + val_bytes);
        out.push(VERSION);
        out.extend_from_slice(&enc.to_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.min_t.to_le_bytes());
        out.extend_from_slice(&self.max_t().to_le_bytes());
        // Columns are far below 4 GiB: the head cuts chunks at ~120 samples.
        out.extend_from_slice(&(ts.len() as u32).to_le_bytes());
        out.extend_from_slice(ts);
        match enc {
            ValueEncoding::Xor => out.extend_from_slice(self.vals.bytes()),
            ValueEncoding::DecimalDelta { decimals, table }
            | ValueEncoding::DecimalDod { decimals, table } => {
                let dod = matches!(enc, ValueEncoding::DecimalDod { .. });
                let mut w = BitWriter::from_vec(out);
                let mut e = IntEncoder::new(dod, table);
                for (n, v) in self.xor_values().enumerate() {
                    // Checked by choose_value_encoding.
                    let i = decimal_int(v, decimals).unwrap_or_default();
                    e.push(&mut w, n as u32, i);
                }
                out = w.into_vec();
            }
        }
        debug_assert_eq!(out.len(), out.capacity());
        let chunk = Chunk::from_sealed(out.into_boxed_slice());
        self.reset();
        chunk
    }

    fn reset(&mut self) {
        self.ts.clear();
        self.vals.clear();
        self.ts_enc = TsEncoder::default();
        self.xor = XorEncoder::default();
        self.count = 0;
        self.min_t = 0;
        self.decimals = Some(0);
    }

    fn xor_values(&self) -> impl Iterator<Item = f64> + '_ {
        let mut r = BitReader::new(self.vals.bytes());
        let mut d = XorDecoder::default();
        (0..self.count).map_while(move |n| d.next(&mut r, n))
    }

    /// Picks the smallest value encoding that reproduces every value bit for
    /// bit, and the byte length of its column.
    fn choose_value_encoding(&self) -> (ValueEncoding, usize) {
        let xor = (ValueEncoding::Xor, self.vals.bytes().len());
        let Some(decimals) = self.decimals else {
            return xor;
        };
        let mut cost = IntCost::default();
        for (n, v) in self.xor_values().enumerate() {
            // The per-append tracking is a hint; this is the authoritative
            // check (it also catches integers that outgrew 2^53 when the
            // decimal count was raised).
            let Some(i) = decimal_int(v, decimals) else {
                return xor;
            };
            cost.push(n as u32, i);
        }
        let (dod, table, bits) = cost.best();
        let enc = if dod {
            ValueEncoding::DecimalDod { decimals, table }
        } else {
            ValueEncoding::DecimalDelta { decimals, table }
        };
        let bytes = bits.div_ceil(8) as usize;
        if bytes < xor.1 { (enc, bytes) } else { xor }
    }
}
