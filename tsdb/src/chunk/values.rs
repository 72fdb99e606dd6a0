//! The value column: Gorilla XOR, or scaled decimal integers.
//!
//! XOR (as in Prometheus' chunkenc) is exact for every bit pattern and cheap
//! for values that repeat, but a value that moves by a decimal step (a
//! counter of `x.xx` CPU seconds, a power reading of `63.451` W) flips most
//! mantissa bits and costs 40-60 bits a sample. Such values were parsed from
//! decimal text, so they are `i / 10^k` for a small integer `i`: the decimal
//! modes store `i` as a delta (gauges that wander) or delta-of-delta
//! (counters that climb at a steady rate) in bucketed widths.
//!
//! A decimal mode is used only when decoding reproduces every value bit for
//! bit: the decoder computes `(i as f64) / 10^k` (one correctly rounded IEEE
//! division, which is exactly what parsing the decimal text gave), and the
//! encoder checks that expression against the original bits. NaNs, ±Inf,
//! -0.0 and anything else that fails the check keep the chunk in XOR mode.

use super::bstream::{
    BitReader, BitSink, Buckets, read_bucketed, read_uvarint, signed_len, unzigzag, write_bucketed,
    write_uvarint, zigzag,
};

/// How a chunk's value column is encoded (header bytes 1 to 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueEncoding {
    /// Gorilla XOR of consecutive bit patterns; exact for any value.
    Xor,
    /// Values are `i / 10^decimals`; the column holds deltas of `i` in the
    /// bucket widths [`int_bucket_widths`](super::int_bucket_widths)`(table)`.
    DecimalDelta { decimals: u8, table: u8 },
    /// Values are `i / 10^decimals`; the column holds deltas-of-deltas of
    /// `i` in the bucket widths [`int_bucket_widths`](super::int_bucket_widths)`(table)`.
    DecimalDod { decimals: u8, table: u8 },
    /// Values are `i / 10^decimals`, or `i * 10^-decimals` (the nearest
    /// double) when `mul`; the column starts with its own bucket table and
    /// a base, then holds deltas of `i` minus the base, or
    /// deltas-of-deltas when `dod`. Chunk format version 2 only; block
    /// writers choose it (`fitted.rs`).
    Fitted { decimals: u8, mul: bool, dod: bool },
}

impl ValueEncoding {
    pub(crate) fn to_bytes(self) -> [u8; 3] {
        match self {
            ValueEncoding::Xor => [0, 0, 0],
            ValueEncoding::DecimalDelta { decimals, table } => [1, decimals, table],
            ValueEncoding::DecimalDod { decimals, table } => [2, decimals, table],
            ValueEncoding::Fitted { decimals, mul, dod } => {
                [3, decimals, u8::from(mul) | u8::from(dod) << 1]
            }
        }
    }

    /// Parses header bytes 1..4; `Err` carries the offset of the invalid byte.
    pub(crate) fn from_bytes(b: [u8; 3]) -> Result<Self, usize> {
        let [kind, decimals, table] = b;
        let enc = match kind {
            0 if decimals != 0 => return Err(2),
            0 if table != 0 => return Err(3),
            0 => return Ok(ValueEncoding::Xor),
            1 => ValueEncoding::DecimalDelta { decimals, table },
            2 => ValueEncoding::DecimalDod { decimals, table },
            3 if decimals > MAX_DECIMALS => return Err(2),
            3 if table > 3 => return Err(3),
            3 => {
                return Ok(ValueEncoding::Fitted {
                    decimals,
                    mul: table & 1 != 0,
                    dod: table & 2 != 0,
                });
            }
            _ => return Err(1),
        };
        if decimals > MAX_DECIMALS {
            return Err(2);
        }
        if table as usize >= INT_TABLES.len() {
            return Err(3);
        }
        Ok(enc)
    }
}

/// Most decimal places the decimal modes try. Nine covers nanosecond
/// fractions; beyond that the integers outgrow 2^53 for most magnitudes.
pub const MAX_DECIMALS: u8 = 9;

const POW10: [f64; MAX_DECIMALS as usize + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// Integers up to 2^53 convert to f64 exactly, which the exactness argument
/// needs; it also keeps deltas and dods far from i64 overflow.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// Bucket widths for integer deltas and dods, one table per magnitude of
/// change; sealing picks the cheapest per chunk. Documented in
/// docs/format/chunk.md: changing one changes the format.
pub(crate) static INT_TABLES: [Buckets; 4] = [
    // Slow gauges: temperatures, clocks, mostly 0 or ±1.
    Buckets::new(&[0, 2, 4, 7, 10, 14, 24, 64]),
    // Percentages and small counters.
    Buckets::new(&[0, 4, 7, 10, 14, 20, 32, 64]),
    // Milliwatts, CPU ticks, packet counters.
    Buckets::new(&[0, 8, 12, 16, 20, 26, 32, 64]),
    // Byte counters.
    Buckets::new(&[0, 14, 20, 24, 28, 32, 40, 64]),
];

/// The decoded value of scaled integer `i`.
#[inline]
pub(crate) fn decimal_value(i: i64, decimals: u8) -> f64 {
    i as f64 / POW10[decimals as usize]
}

/// `i` such that [`decimal_value`]`(i, decimals)` has exactly the bits of `v`.
#[inline]
pub(crate) fn decimal_int(v: f64, decimals: u8) -> Option<i64> {
    let x = v * POW10[decimals as usize];
    if x.is_nan() || x.abs() > MAX_EXACT {
        return None;
    }
    // Round half away from zero by hand: `f64::round` is a libm call on
    // baseline x86-64 and was 13 % of encode time. A value that is not
    // within half a unit of an integer fails the exactness check below
    // whichever way it rounds.
    let i = (x + 0.5f64.copysign(x)) as i64;
    (decimal_value(i, decimals).to_bits() == v.to_bits()).then_some(i)
}

/// The fewest decimals, at least `from`, that represent `v` exactly. A value
/// exact at `k` decimals is also exact at more (same rational, one correctly
/// rounded division) as long as the integer stays below 2^53, which sealing
/// re-checks.
#[inline]
pub(crate) fn widen_decimals(v: f64, from: u8) -> Option<u8> {
    (from..=MAX_DECIMALS).find(|&k| decimal_int(v, k).is_some())
}

/// Marks "no previous XOR window" (chunkenc's 0xff).
const NO_WINDOW: u8 = 0xff;

/// Gorilla XOR encoder state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct XorEncoder {
    prev: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorEncoder {
    fn default() -> Self {
        XorEncoder {
            prev: 0,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }
}

impl XorEncoder {
    pub(crate) fn last(&self) -> f64 {
        f64::from_bits(self.prev)
    }

    /// Appends value number `n` (0-based).
    #[inline]
    pub(crate) fn push(&mut self, w: &mut impl BitSink, n: u32, v: f64) {
        let bits = v.to_bits();
        if n == 0 {
            w.put_bits(bits, 64);
            self.prev = bits;
            return;
        }
        let xor = bits ^ self.prev;
        self.prev = bits;
        if xor == 0 {
            w.put_bit(false);
            return;
        }
        w.put_bit(true);
        // Leading zeros are stored in 5 bits; a longer run is partly spent
        // as significant bits.
        let leading = xor.leading_zeros().min(31) as u8;
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != NO_WINDOW && leading >= self.leading && trailing >= self.trailing {
            // Fits the previous window: no need to restate its bounds.
            w.put_bit(false);
            let sig = 64 - self.leading as u32 - self.trailing as u32;
            w.put_bits(xor >> self.trailing, sig);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            let sig = 64 - leading as u32 - trailing as u32;
            w.put_bit(true);
            w.put_bits(leading as u64, 5);
            // 64 significant bits do not fit 6 bits; 0 stands for 64.
            w.put_bits((sig & 63) as u64, 6);
            w.put_bits(xor >> trailing, sig);
        }
    }
}

/// Gorilla XOR decoder; mirrors [`XorEncoder`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct XorDecoder {
    prev: u64,
    leading: u8,
    trailing: u8,
    has_window: bool,
}

impl XorDecoder {
    #[inline]
    pub(crate) fn next(&mut self, r: &mut BitReader<'_>, n: u32) -> Option<f64> {
        if n == 0 {
            self.prev = r.read_bits(64)?;
            return Some(f64::from_bits(self.prev));
        }
        // Fast paths: control bits, window and payload from one 8-byte load
        // (57 usable bits). Anything else, including every truncated or
        // corrupt case, takes the bit-by-bit path below.
        let word = r.peek64();
        let avail = r.remaining();
        match word >> 62 {
            0 | 1 if avail >= 1 => {
                r.skip(1);
                return Some(f64::from_bits(self.prev));
            }
            2 if self.has_window => {
                let sig = 64 - self.leading as u32 - self.trailing as u32;
                let total = 2 + sig;
                if total <= 57 && total as usize <= avail {
                    self.prev ^= ((word << 2) >> (64 - sig)) << self.trailing;
                    r.skip(total);
                    return Some(f64::from_bits(self.prev));
                }
            }
            3 => {
                let leading = ((word >> 57) & 31) as u32;
                let sig = match ((word >> 51) & 63) as u32 {
                    0 => 64,
                    s => s,
                };
                let total = 13 + sig;
                if leading + sig <= 64 && total <= 57 && total as usize <= avail {
                    let trailing = 64 - leading - sig;
                    self.leading = leading as u8;
                    self.trailing = trailing as u8;
                    self.has_window = true;
                    self.prev ^= ((word << 13) >> (64 - sig)) << trailing;
                    r.skip(total);
                    return Some(f64::from_bits(self.prev));
                }
            }
            _ => {}
        }
        if r.read_bit()? {
            if r.read_bit()? {
                let leading = r.read_bits(5)? as u32;
                let sig = match r.read_bits(6)? as u32 {
                    0 => 64,
                    s => s,
                };
                // A window wider than 64 bits can only come from corruption.
                let trailing = 64u32.checked_sub(leading + sig)?;
                self.leading = leading as u8;
                self.trailing = trailing as u8;
                self.has_window = true;
            } else if !self.has_window {
                return None;
            }
            let sig = 64 - self.leading as u32 - self.trailing as u32;
            let xor = r.read_bits(sig)? << self.trailing;
            self.prev ^= xor;
        }
        Some(f64::from_bits(self.prev))
    }
}

/// Encodes scaled integers as deltas (`dod == false`) or deltas-of-deltas.
/// The first integer is a zigzag varint; in dod mode the second is a delta.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IntEncoder {
    dod: bool,
    /// Index into [`INT_TABLES`]; an index rather than a reference keeps
    /// the open builder, one per active series, small.
    table: u8,
    prev: i64,
    delta: i64,
}

impl IntEncoder {
    pub(crate) fn new(dod: bool, table: u8) -> Self {
        debug_assert!((table as usize) < INT_TABLES.len());
        IntEncoder {
            dod,
            table,
            prev: 0,
            delta: 0,
        }
    }

    /// The last integer pushed.
    pub(crate) fn last(&self) -> i64 {
        self.prev
    }

    /// `(dod, table)`: what [`IntEncoder::new`] was given.
    pub(crate) fn mode(&self) -> (bool, u8) {
        (self.dod, self.table)
    }

    #[inline]
    pub(crate) fn push(&mut self, w: &mut impl BitSink, n: u32, i: i64) {
        let table = &INT_TABLES[self.table as usize];
        let delta = i.wrapping_sub(self.prev);
        match n {
            0 => write_uvarint(w, zigzag(i)),
            1 => write_bucketed(w, table, delta),
            _ if self.dod => write_bucketed(w, table, delta.wrapping_sub(self.delta)),
            _ => write_bucketed(w, table, delta),
        }
        self.delta = delta;
        self.prev = i;
    }
}

/// Bits every decimal mode (delta or dod, each table) would spend,
/// accumulated one integer at a time so sealing can choose without
/// buffering the integers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IntCost {
    delta_bits: [u64; INT_TABLES.len()],
    dod_bits: [u64; INT_TABLES.len()],
    prev: i64,
    delta: i64,
}

impl IntCost {
    #[inline]
    pub(crate) fn push(&mut self, n: u32, i: i64) {
        let delta = i.wrapping_sub(self.prev);
        match n {
            0 => {
                let bits =
                    8 * (1 + u64::from((64 - zigzag(i).leading_zeros()).saturating_sub(1) / 7));
                for t in 0..INT_TABLES.len() {
                    self.delta_bits[t] += bits;
                    self.dod_bits[t] += bits;
                }
            }
            _ => {
                let dl = signed_len(delta);
                let ol = if n == 1 {
                    dl
                } else {
                    signed_len(delta.wrapping_sub(self.delta))
                };
                for (t, table) in INT_TABLES.iter().enumerate() {
                    self.delta_bits[t] += table.cost_of_len(dl);
                    self.dod_bits[t] += table.cost_of_len(ol);
                }
            }
        }
        self.delta = delta;
        self.prev = i;
    }

    /// The cheapest mode: `(dod, table, bits)`.
    pub(crate) fn best(&self) -> (bool, u8, u64) {
        let mut best = (false, 0, u64::MAX);
        for t in 0..INT_TABLES.len() {
            for (dod, bits) in [(false, self.delta_bits[t]), (true, self.dod_bits[t])] {
                if bits < best.2 {
                    best = (dod, t as u8, bits);
                }
            }
        }
        best
    }

    /// Bits of one mode.
    pub(crate) fn bits(&self, dod: bool, table: u8) -> u64 {
        if dod {
            self.dod_bits[table as usize]
        } else {
            self.delta_bits[table as usize]
        }
    }
}

/// Decodes scaled integers; mirrors [`IntEncoder`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct IntDecoder {
    dod: bool,
    decimals: u8,
    table: &'static Buckets,
    prev: i64,
    delta: i64,
}

impl IntDecoder {
    pub(crate) fn new(dod: bool, decimals: u8, table: u8) -> Self {
        IntDecoder {
            dod,
            decimals,
            // The header parser rejects tables out of range.
            table: &INT_TABLES[table as usize % INT_TABLES.len()],
            prev: 0,
            delta: 0,
        }
    }

    #[inline]
    pub(crate) fn next(&mut self, r: &mut BitReader<'_>, n: u32) -> Option<f64> {
        self.next_int(r, n).map(|i| decimal_value(i, self.decimals))
    }

    /// Decodes integer number `n` without scaling it.
    #[inline]
    pub(crate) fn next_int(&mut self, r: &mut BitReader<'_>, n: u32) -> Option<i64> {
        match n {
            0 => self.prev = unzigzag(read_uvarint(r)?),
            1 => {
                self.delta = read_bucketed(r, self.table)?;
                self.prev = self.prev.wrapping_add(self.delta);
            }
            _ => {
                let x = read_bucketed(r, self.table)?;
                if self.dod {
                    self.delta = self.delta.wrapping_add(x);
                } else {
                    self.delta = x;
                }
                self.prev = self.prev.wrapping_add(self.delta);
            }
        }
        Some(self.prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::bstream::BitWriter;

    #[test]
    fn decimal_detection_accepts_parsed_decimals_and_rejects_the_rest() {
        let f = |v: f64, want: Option<u8>| assert_eq!(widen_decimals(v, 0), want, "{v:?}");
        f(0.0, Some(0));
        f(42.0, Some(0));
        f(-17.0, Some(0));
        f(63.451, Some(3));
        f(12345.67, Some(2));
        f(0.1, Some(1));
        f(-0.0, None);
        f(f64::NAN, None);
        f(f64::INFINITY, None);
        f(f64::NEG_INFINITY, None);
        f(0.1 + 0.2, None);
        f(1e300, None);
        f(f64::from_bits(1), None);
        f(f64::from_bits(crate::sample::STALE_NAN_BITS), None);
    }

    #[test]
    fn a_decimal_stays_exact_when_more_decimals_are_used() {
        for v in [0.5, 12345.67, 63.451, -3.25, 99.0] {
            let k = widen_decimals(v, 0).unwrap();
            for more in k..=MAX_DECIMALS {
                let i = decimal_int(v, more).unwrap();
                assert_eq!(decimal_value(i, more).to_bits(), v.to_bits());
            }
        }
    }

    #[test]
    fn int_cost_matches_bits_written_in_every_mode_and_table() {
        let ints = [
            1234567i64,
            1234600,
            1234640,
            1234690,
            1234690,
            1000,
            -5,
            i64::from(i32::MAX),
        ];
        let mut cost = IntCost::default();
        for (n, &i) in ints.iter().enumerate() {
            cost.push(n as u32, i);
        }
        for dod in [false, true] {
            for table in 0..INT_TABLES.len() as u8 {
                let mut w = BitWriter::new();
                let mut e = IntEncoder::new(dod, table);
                for (n, &i) in ints.iter().enumerate() {
                    e.push(&mut w, n as u32, i);
                }
                assert_eq!(
                    w.bit_len() as u64,
                    cost.bits(dod, table),
                    "dod={dod} table={table}"
                );
                let mut r = BitReader::new(w.bytes());
                let mut d = IntDecoder::new(dod, 0, table);
                for (n, &i) in ints.iter().enumerate() {
                    assert_eq!(d.next(&mut r, n as u32), Some(i as f64));
                }
            }
        }
        let (dod, table, bits) = cost.best();
        assert!((0..4).all(|t| bits <= cost.bits(false, t) && bits <= cost.bits(true, t)));
        assert_eq!(bits, cost.bits(dod, table));
    }

    #[test]
    fn xor_round_trips_every_window_width_and_position() {
        // Windows of every width at every offset, so both the one-load fast
        // paths and the bit-by-bit path decode them, with reuse and repeats.
        let mut vals = vec![0x4059_0000_0000_0000u64];
        for width in 1..=64u32 {
            for shift in (0..=64 - width).step_by(7) {
                let mask = if width == 64 {
                    u64::MAX
                } else {
                    ((1u64 << width) - 1) << shift
                };
                let last = *vals.last().unwrap();
                vals.push(last ^ mask);
                vals.push(last ^ mask);
                vals.push(last ^ (mask & (mask >> 1)).max(1 << shift));
            }
        }
        let mut w = BitWriter::new();
        let mut e = XorEncoder::default();
        for (n, &v) in vals.iter().enumerate() {
            e.push(&mut w, n as u32, f64::from_bits(v));
        }
        let mut r = BitReader::new(w.bytes());
        let mut d = XorDecoder::default();
        for (n, &v) in vals.iter().enumerate() {
            assert_eq!(
                d.next(&mut r, n as u32).map(f64::to_bits),
                Some(v),
                "value {n}"
            );
        }
    }

    #[test]
    fn corrupt_xor_window_ends_decoding() {
        // Control bits "11", leading 31, sig 63: a 94-bit window.
        let mut w = BitWriter::new();
        w.write_bits(0, 64);
        w.write_bits(0b11, 2);
        w.write_bits(31, 5);
        w.write_bits(63, 6);
        w.write_bits(0, 64);
        let mut r = BitReader::new(w.bytes());
        let mut d = XorDecoder::default();
        assert_eq!(d.next(&mut r, 0), Some(0.0));
        assert_eq!(d.next(&mut r, 1), None);
        // "10" with no window stated yet.
        let mut w = BitWriter::new();
        w.write_bits(0, 64);
        w.write_bits(0b10, 2);
        w.write_bits(0, 32);
        let mut r = BitReader::new(w.bytes());
        let mut d = XorDecoder::default();
        assert_eq!(d.next(&mut r, 0), Some(0.0));
        assert_eq!(d.next(&mut r, 1), None);
    }
}
