//! The open chunk: [`ChunkBuilder`] appends samples and seals them into an
//! immutable [`Chunk`].
//!
//! The head keeps one open chunk per active series, so its size is memory
//! per series. While every value so far is a short decimal, the open value
//! column is already in a decimal mode (delta-of-delta, bucket table 1; at
//! sample 16 it switches once to whichever mode and table would have been
//! cheapest so far): for `x.xxx` watts or `x.xx` CPU seconds that is under
//! half the XOR size. The first value that is not a short decimal (NaN,
//! -0.0, 0.1+0.2, ...) moves the column to XOR for good; one that needs more
//! decimal places rescales it. Each switch re-encodes the column once, a few
//! times per chunk at most, and the column is readable in its current mode
//! at every moment.
//!
//! Sealing picks the cheapest of every decimal mode and table (and XOR, when
//! the decimal column is expensive enough for XOR to stand a chance) from
//! bit counts over the open column, and re-encodes only if that is not the
//! open mode. Block writers seal with `seal_smallest` instead, which also
//! weighs the fitted encoding (`fitted.rs`): slower, but a block is written
//! once.

use super::bstream::{BitCounter, BitReader, BitSink, BitWriter};
use super::fitted;
use super::iter::ChunkIter;
use super::timestamps::TsEncoder;
use super::values::{
    IntCost, IntDecoder, IntEncoder, MAX_DECIMALS, ValueEncoding, XorEncoder, decimal_int,
    decimal_value, widen_decimals,
};
use super::{Chunk, HEADER_LEN, VERSION};

/// The open column's first decimal mode: delta-of-delta suits counters and
/// costs gauges little; table 1 spans percentages to small counters.
const OPEN_DOD: bool = true;
const OPEN_TABLE: u8 = 1;

/// After this many samples the open decimal column switches once to the
/// mode that would have been cheapest so far, if it saves a tenth: byte
/// counters want table 3, gauges plain deltas. Early enough to matter for
/// the head's memory, late enough to have seen the series' habits.
const RETUNE_AT: u32 = 16;

/// Chunks up to this many samples keep their integers on the stack (2 KiB)
/// while sealing, so the open column is decoded once; longer ones decode it
/// again for each pass.
const STACK_INTS: usize = 256;

/// Sealing only counts what XOR would cost when the best decimal mode spends
/// more than this many bits a sample. Below it XOR practically never wins
/// (a changed value costs XOR 8 bits or more unless it differs in a single
/// mantissa bit), and counting costs a division per value.
const XOR_WORTH_COUNTING_BITS: u64 = 12;

/// The open value column's encoder.
#[derive(Debug, Clone, Copy)]
enum OpenValues {
    /// Every value so far is `i / 10^decimals`.
    Decimal {
        decimals: u8,
        enc: IntEncoder,
    },
    Xor(XorEncoder),
}

impl OpenValues {
    fn encoding(&self) -> ValueEncoding {
        match *self {
            OpenValues::Decimal { decimals, enc } => match enc.mode() {
                (true, table) => ValueEncoding::DecimalDod { decimals, table },
                (false, table) => ValueEncoding::DecimalDelta { decimals, table },
            },
            OpenValues::Xor(_) => ValueEncoding::Xor,
        }
    }
}

/// An open, appendable chunk of one series.
#[derive(Debug, Clone)]
pub struct ChunkBuilder {
    ts: BitWriter,
    vals: BitWriter,
    ts_enc: TsEncoder,
    open: OpenValues,
    count: u32,
    min_t: i64,
}

impl Default for ChunkBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn decimal_start() -> OpenValues {
    OpenValues::Decimal {
        decimals: 0,
        enc: IntEncoder::new(OPEN_DOD, OPEN_TABLE),
    }
}

impl ChunkBuilder {
    pub fn new() -> Self {
        ChunkBuilder {
            ts: BitWriter::new(),
            vals: BitWriter::new(),
            ts_enc: TsEncoder::default(),
            open: decimal_start(),
            count: 0,
            min_t: 0,
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
        match &mut self.open {
            OpenValues::Xor(x) => x.push(&mut self.vals, n, v),
            OpenValues::Decimal { decimals, enc } => match decimal_int(v, *decimals) {
                Some(i) => enc.push(&mut self.vals, n, i),
                None => self.reencode_for(n, v),
            },
        }
        self.count = n + 1;
        if self.count == RETUNE_AT {
            self.retune();
        }
    }

    /// Switches the open decimal column to the cheapest mode so far.
    #[cold]
    fn retune(&mut self) {
        let OpenValues::Decimal { decimals, enc } = self.open else {
            return;
        };
        let mut cost = IntCost::default();
        for (n, i) in self.open_ints().enumerate() {
            cost.push(n as u32, i);
        }
        let (dod, table, bits) = cost.best();
        let (cur_dod, cur_table) = enc.mode();
        if bits * 10 > cost.bits(cur_dod, cur_table) * 9 {
            return;
        }
        let mut w = BitWriter::with_capacity(self.vals.capacity());
        let mut wide = IntEncoder::new(dod, table);
        for (n, i) in self.open_ints().enumerate() {
            wide.push(&mut w, n as u32, i);
        }
        self.vals = w;
        self.open = OpenValues::Decimal {
            decimals,
            enc: wide,
        };
    }

    /// Value `v` (number `n`) does not fit the open decimal column: rescale
    /// the column to more decimal places, or move it to XOR.
    #[cold]
    fn reencode_for(&mut self, n: u32, v: f64) {
        let OpenValues::Decimal { decimals, .. } = self.open else {
            return;
        };
        if n == 0 {
            // Nothing to re-encode (the usual case: a chunk of `x.xxx`
            // values starts at 0 places): pick the mode in place.
            self.vals.clear();
            self.open = match widen_decimals(v, decimals + 1) {
                Some(wider) => {
                    let mut enc = IntEncoder::new(OPEN_DOD, OPEN_TABLE);
                    enc.push(&mut self.vals, 0, decimal_int(v, wider).unwrap_or_default());
                    OpenValues::Decimal {
                        decimals: wider,
                        enc,
                    }
                }
                None => {
                    let mut x = XorEncoder::default();
                    x.push(&mut self.vals, 0, v);
                    OpenValues::Xor(x)
                }
            };
            return;
        }
        let mut w = BitWriter::with_capacity(self.vals.capacity());
        if let Some(wider) = widen_decimals(v, decimals + 1)
            && let Some(mut enc) = self.rescaled(decimals, wider, &mut w)
        {
            // `widen_decimals` found `v` exact at `wider` places.
            enc.push(&mut w, n, decimal_int(v, wider).unwrap_or_default());
            self.open = OpenValues::Decimal {
                decimals: wider,
                enc,
            };
        } else {
            w.clear();
            let mut x = XorEncoder::default();
            for (m, old) in self.values().enumerate() {
                x.push(&mut w, m as u32, old);
            }
            x.push(&mut w, n, v);
            self.open = OpenValues::Xor(x);
        }
        self.vals = w;
    }

    /// Re-encodes the open integers at `wider` decimal places into `w`, or
    /// `None` if one no longer converts exactly (it outgrew 2^53).
    fn rescaled(&self, decimals: u8, wider: u8, w: &mut BitWriter) -> Option<IntEncoder> {
        debug_assert!(decimals < wider && wider <= MAX_DECIMALS);
        let OpenValues::Decimal { enc: open, .. } = self.open else {
            return None;
        };
        let factor = 10i64.pow(u32::from(wider - decimals));
        let (dod, table) = open.mode();
        let mut enc = IntEncoder::new(dod, table);
        for (m, i) in self.open_ints().enumerate() {
            let wide = i.checked_mul(factor)?;
            // Same rational, so the same f64 while below 2^53; checked
            // rather than trusted because the column must stay exact.
            let exact =
                decimal_value(wide, wider).to_bits() == decimal_value(i, decimals).to_bits();
            if !exact || wide.unsigned_abs() > 1 << 53 {
                return None;
            }
            enc.push(w, m as u32, wide);
        }
        Some(enc)
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
        if self.count == 0 {
            return None;
        }
        let v = match self.open {
            OpenValues::Decimal { decimals, enc } => decimal_value(enc.last(), decimals),
            OpenValues::Xor(x) => x.last(),
        };
        Some((self.ts_enc.last(), v))
    }

    /// Reads the samples appended so far without sealing.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(
            self.ts.bytes(),
            self.vals.bytes(),
            self.open.encoding(),
            self.count,
            self.min_t,
            self.max_t(),
        )
    }

    /// Heap bytes held (column buffer capacities), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.ts.capacity() + self.vals.capacity()
    }

    /// Bytes the chunk would take if sealed in its open encoding, an upper
    /// bound on what [`seal`](Self::seal) returns; lets a caller cut chunks
    /// by size as well as by sample count.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.ts.bytes().len() + self.vals.bytes().len()
    }

    /// The value encoding of the open column (sealing may pick another).
    pub fn open_encoding(&self) -> ValueEncoding {
        self.open.encoding()
    }

    /// Returns the immutable chunk and resets `self` to empty, keeping its
    /// buffers for the next chunk.
    pub fn seal(&mut self) -> Chunk {
        let mut buf = [0i64; STACK_INTS];
        let (enc, val_bytes) = self.choose_value_encoding(&mut buf);
        let mut out = self.header_and_timestamps(enc, val_bytes);
        if enc == self.open.encoding() {
            out.extend_from_slice(self.vals.bytes());
        } else if let OpenValues::Decimal { decimals, .. } = self.open {
            // Only a decimal open column is ever re-encoded.
            let mut w = BitWriter::from_vec(out);
            match buf.get(..self.count as usize) {
                Some(ints) => write_values(&mut w, enc, decimals, ints.iter().copied()),
                None => write_values(&mut w, enc, decimals, self.open_ints()),
            }
            out = w.into_vec();
        }
        debug_assert_eq!(out.len(), out.capacity());
        let chunk = Chunk::from_sealed(out.into_boxed_slice());
        self.reset();
        chunk
    }

    /// Like [`seal`](Self::seal), but spends more time to find the smallest
    /// value column, including the per-chunk fitted encoding (format version
    /// 2, `fitted.rs`) and the multiplying decimal scale, which `seal` never
    /// writes. For block writers: a block is written once and kept for
    /// weeks, while the head seals millions of short chunks and wants
    /// `seal`'s speed. Allocates a few buffers of the chunk's length.
    pub fn seal_smallest(&mut self) -> Chunk {
        if self.count < 2 {
            // Nothing to fit: the open column is a lone varint or 64 bits.
            return self.seal();
        }
        // The chunk's integers and their scale, when there are any: the
        // open decimal column holds them (dividing scale, fewest places);
        // an XOR column may still be exact under the multiplying scale, or
        // all but a few values (a staleness marker) may be.
        let scaled = match self.open {
            OpenValues::Decimal { decimals, .. } => Some(fitted::Scaled {
                decimals,
                mul: false,
                ints: self.open_ints().collect(),
                exceptions: Vec::new(),
            }),
            OpenValues::Xor(_) => {
                let values: Vec<f64> = self.values().collect();
                fitted::scale(&values)
            }
        };
        let Some(s) = scaled else {
            return self.seal();
        };
        enum Choice {
            Open,
            Rewrite(ValueEncoding),
            Fitted(fitted::Plan),
        }
        let mut best = (Choice::Open, self.vals.bytes().len() as u64);
        let mut consider = |c: Choice, bits: u64| {
            if bits.div_ceil(8) < best.1 {
                best = (c, bits.div_ceil(8));
            }
        };
        let (plan, fitted_bits) = fitted::plan(&s);
        if !s.mul && s.exceptions.is_empty() {
            // Version 1's fixed tables can beat a fitted table's few bytes
            // of preamble on short chunks; XOR can win on odd integers. It
            // is counted whenever `seal` counts it, so this chunk is never
            // larger than `seal`'s.
            let mut cost = IntCost::default();
            for (n, &i) in s.ints.iter().enumerate() {
                cost.push(n as u32, i);
            }
            let (dod, table, bits) = cost.best();
            let decimals = s.decimals;
            let enc = if dod {
                ValueEncoding::DecimalDod { decimals, table }
            } else {
                ValueEncoding::DecimalDelta { decimals, table }
            };
            consider(Choice::Rewrite(enc), bits);
            if bits > XOR_WORTH_COUNTING_BITS * u64::from(self.count) {
                let mut xor = BitCounter::default();
                write_values(
                    &mut xor,
                    ValueEncoding::Xor,
                    decimals,
                    s.ints.iter().copied(),
                );
                consider(Choice::Rewrite(ValueEncoding::Xor), xor.0);
            }
        }
        consider(Choice::Fitted(plan), fitted_bits);
        let (choice, bytes) = best;
        let out = match choice {
            Choice::Open => return self.seal_open(),
            Choice::Rewrite(enc) => {
                let mut w = BitWriter::from_vec(self.header_and_timestamps(enc, bytes as usize));
                write_values(&mut w, enc, s.decimals, s.ints.iter().copied());
                w.into_vec()
            }
            Choice::Fitted(plan) => {
                let enc = ValueEncoding::Fitted {
                    decimals: s.decimals,
                    mul: s.mul,
                    dod: plan.dod,
                };
                let mut w = BitWriter::from_vec(self.header_and_timestamps(enc, bytes as usize));
                fitted::write(&mut w, &plan, &s, self.count as usize);
                w.into_vec()
            }
        };
        let chunk = Chunk::from_sealed(out.into_boxed_slice());
        self.reset();
        chunk
    }

    /// Seals the open column as it is.
    fn seal_open(&mut self) -> Chunk {
        let mut out = self.header_and_timestamps(self.open.encoding(), self.vals.bytes().len());
        out.extend_from_slice(self.vals.bytes());
        let chunk = Chunk::from_sealed(out.into_boxed_slice());
        self.reset();
        chunk
    }

    /// The header for value encoding `enc` and the timestamp column, with
    /// room for `val_bytes` more.
    fn header_and_timestamps(&self, enc: ValueEncoding, val_bytes: usize) -> Vec<u8> {
        let ts = self.ts.bytes();
        let mut out = Vec::with_capacity(HEADER_LEN + ts.len() + val_bytes);
        out.push(VERSION);
        out.extend_from_slice(&enc.to_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.min_t.to_le_bytes());
        out.extend_from_slice(&self.max_t().to_le_bytes());
        // Columns are far below 4 GiB: chunks are cut at thousands of
        // samples at most.
        out.extend_from_slice(&(ts.len() as u32).to_le_bytes());
        out.extend_from_slice(ts);
        out
    }

    fn reset(&mut self) {
        self.ts.clear();
        self.vals.clear();
        self.ts_enc = TsEncoder::default();
        self.open = decimal_start();
        self.count = 0;
        self.min_t = 0;
    }

    /// The open column's integers; empty unless it is in decimal mode.
    fn open_ints(&self) -> impl Iterator<Item = i64> + '_ {
        let mut r = BitReader::new(self.vals.bytes());
        let (count, d) = match self.open {
            OpenValues::Decimal { decimals, enc } => {
                let (dod, table) = enc.mode();
                (self.count, IntDecoder::new(dod, decimals, table))
            }
            OpenValues::Xor(_) => (0, IntDecoder::new(false, 0, 0)),
        };
        let mut d = d;
        (0..count).map_while(move |n| d.next_int(&mut r, n))
    }

    /// The values appended so far, decoded from the open column.
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// Picks the smallest value encoding for the sealed chunk and the byte
    /// length of its column, leaving the first [`STACK_INTS`] integers of a
    /// decimal open column in `buf`. Every encoding considered is exact: the
    /// open decimal column only ever holds exactly representable values.
    fn choose_value_encoding(&self, buf: &mut [i64; STACK_INTS]) -> (ValueEncoding, usize) {
        let open = (self.open.encoding(), self.vals.bytes().len());
        let OpenValues::Decimal { decimals, .. } = self.open else {
            return open;
        };
        let mut cost = IntCost::default();
        for (n, i) in self.open_ints().enumerate() {
            if let Some(slot) = buf.get_mut(n) {
                *slot = i;
            }
            cost.push(n as u32, i);
        }
        let (dod, table, bits) = cost.best();
        let mut best = if dod {
            ValueEncoding::DecimalDod { decimals, table }
        } else {
            ValueEncoding::DecimalDelta { decimals, table }
        };
        let mut best_bytes = bits.div_ceil(8) as usize;
        if bits > XOR_WORTH_COUNTING_BITS * u64::from(self.count) {
            let mut counter = BitCounter::default();
            match buf.get(..self.count as usize) {
                Some(ints) => write_values(
                    &mut counter,
                    ValueEncoding::Xor,
                    decimals,
                    ints.iter().copied(),
                ),
                None => write_values(&mut counter, ValueEncoding::Xor, decimals, self.open_ints()),
            }
            let xor_bytes = counter.0.div_ceil(8) as usize;
            if xor_bytes < best_bytes {
                (best, best_bytes) = (ValueEncoding::Xor, xor_bytes);
            }
        }
        if best_bytes >= open.1 {
            open
        } else {
            (best, best_bytes)
        }
    }
}

/// Writes (or counts, into a [`BitCounter`]) a value column in `enc` from
/// the integers of a decimal column with `decimals` places.
fn write_values<S: BitSink>(
    w: &mut S,
    enc: ValueEncoding,
    decimals: u8,
    ints: impl Iterator<Item = i64>,
) {
    match enc {
        ValueEncoding::Xor => {
            let mut x = XorEncoder::default();
            for (n, i) in ints.enumerate() {
                x.push(w, n as u32, decimal_value(i, decimals));
            }
        }
        ValueEncoding::DecimalDelta { table, .. } | ValueEncoding::DecimalDod { table, .. } => {
            let dod = matches!(enc, ValueEncoding::DecimalDod { .. });
            let mut e = IntEncoder::new(dod, table);
            for (n, i) in ints.enumerate() {
                e.push(w, n as u32, i);
            }
        }
        ValueEncoding::Fitted { .. } => {
            unreachable!("a fitted column needs its plan: seal_smallest writes it")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_column_moves_from_decimal_to_wider_decimal_to_xor() {
        let mut b = ChunkBuilder::new();
        let f = |b: &ChunkBuilder, want: ValueEncoding| assert_eq!(b.open_encoding(), want);
        b.append(1, 5.0);
        f(
            &b,
            ValueEncoding::DecimalDod {
                decimals: 0,
                table: OPEN_TABLE,
            },
        );
        b.append(2, 5.25);
        f(
            &b,
            ValueEncoding::DecimalDod {
                decimals: 2,
                table: OPEN_TABLE,
            },
        );
        b.append(3, 63.451);
        f(
            &b,
            ValueEncoding::DecimalDod {
                decimals: 3,
                table: OPEN_TABLE,
            },
        );
        b.append(4, f64::NAN);
        f(&b, ValueEncoding::Xor);
        b.append(5, 7.0);
        f(&b, ValueEncoding::Xor);
        let got: Vec<(i64, u64)> = b.iter().map(|(t, v)| (t, v.to_bits())).collect();
        let want: Vec<(i64, u64)> = [(1, 5.0), (2, 5.25), (3, 63.451), (4, f64::NAN), (5, 7.0)]
            .iter()
            .map(|&(t, v)| (t, v.to_bits()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn sealing_keeps_the_open_column_when_it_is_already_cheapest() {
        // A steady counter: delta-of-delta in table 1 is what sealing picks.
        let mut b = ChunkBuilder::new();
        for i in 0..120 {
            b.append(i * 15_000, (100 + i * 3) as f64);
        }
        let open = b.open_encoding();
        let len = b.encoded_len();
        let c = b.seal();
        assert_eq!(c.value_encoding(), open);
        assert_eq!(c.as_bytes().len(), len);
    }

    #[test]
    fn open_column_retunes_to_a_wide_table_for_byte_counters() {
        let mut b = ChunkBuilder::new();
        let mut bytes = 1i64 << 40;
        for i in 0..RETUNE_AT as i64 + 4 {
            // ~20 MB per scrape with ±25 % noise: 22-bit deltas.
            bytes += 20_000_000 + (i * 7_919 % 10_000_000) - 5_000_000;
            b.append(i * 15_000, bytes as f64);
            if (i as u32) < RETUNE_AT - 1 {
                assert_eq!(
                    b.open_encoding(),
                    ValueEncoding::DecimalDod {
                        decimals: 0,
                        table: OPEN_TABLE
                    }
                );
            }
        }
        assert!(
            matches!(
                b.open_encoding(),
                ValueEncoding::DecimalDelta { table: 3, .. }
                    | ValueEncoding::DecimalDod { table: 3, .. }
            ),
            "{:?}",
            b.open_encoding()
        );
        assert_eq!(b.iter().count(), RETUNE_AT as usize + 4);
        assert_eq!(b.last().map(|s| s.1), Some(bytes as f64));
    }

    #[test]
    fn integers_that_xor_well_seal_as_xor() {
        // Alternating 2^52 and 2^52 + 2^40: each delta needs a 40-bit
        // bucket, while the XOR of the two differs in one bit (3 bits a
        // sample once the window is set).
        let mut b = ChunkBuilder::new();
        for i in 0..120 {
            let v = (1i64 << 52) + if i % 2 == 0 { 0 } else { 1 << 40 };
            b.append(i, v as f64);
        }
        assert!(matches!(
            b.open_encoding(),
            ValueEncoding::DecimalDod { .. }
        ));
        let c = b.seal();
        assert_eq!(c.value_encoding(), ValueEncoding::Xor);
    }
}
