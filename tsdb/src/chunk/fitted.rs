//! Value encoding 3: scaled integers coded against a per-chunk model.
//!
//! The decimal modes of version 1 (`values.rs`) pick one of four fixed
//! bucket tables and predict each integer from the last one (delta) or the
//! last two (delta-of-delta). That leaves bits on the table where blocks
//! are concerned: a counter growing ~900 a scrape with ±180 of noise pays
//! for the 900 in every delta, a constant series pays a bit a sample, and a
//! fixed table rarely matches the spread of a given series. A block is
//! written once and read many times, so its writer can afford to look at
//! the whole chunk first:
//!
//! * **scale**: `v = i / 10^k` (text parsed into a double, as v1) or
//!   `v = i * 10^-k` (an exporter multiplying a tick count by its
//!   resolution, `ticks * 0.01`), whichever reproduces every value bit for
//!   bit; values neither reproduces (a staleness marker) are stored raw as
//!   exceptions, a few per chunk at most;
//! * **common factor**: deltas are divided by their greatest common divisor
//!   (512-byte sectors, 4 KiB pages, kHz reported in Hz);
//! * **predictor**: delta minus a per-chunk `base` (the counter's typical
//!   increase; 0 for gauges), or delta-of-delta;
//! * **bucket table**: up to eight widths chosen for this chunk's residuals
//!   by a small dynamic program over their bit lengths, stored in the column
//!   (3 + 7 bits a width). A chunk whose residuals are all zero (a constant,
//!   or a counter at an exact rate) gets the table `[0]`: no bits at all per
//!   sample.
//!
//! Only block writers ask for it (`ChunkBuilder::seal_smallest`): the head
//! seals millions of short chunks and keeps its cheaper choice among the v1
//! modes.

use super::bstream::{
    BitReader, BitSink, read_uvarint, signed_len, unzigzag, write_uvarint, zigzag,
};
use super::values::{MAX_DECIMALS, decimal_int, decimal_value, widen_decimals};

/// Most widths a fitted table holds: 3 bits store `m - 1`.
pub(crate) const MAX_WIDTHS: usize = 8;

/// `10^-k` as the nearest double, for the multiplying scale.
const NEG_POW10: [f64; MAX_DECIMALS as usize + 1] =
    [1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9];

/// Integers up to 2^53 convert to f64 exactly; it also keeps every delta
/// and delta-of-delta far from i64 overflow.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// The value of scaled integer `i` with `decimals` places, divided
/// (`mul == false`, as v1) or multiplied by the nearest double to `10^-k`.
#[inline]
pub(crate) fn scaled_value(i: i64, decimals: u8, mul: bool) -> f64 {
    if mul {
        i as f64 * NEG_POW10[decimals as usize]
    } else {
        decimal_value(i, decimals)
    }
}

/// `i` whose [`scaled_value`] has exactly the bits of `v`.
#[inline]
fn mul_int(v: f64, decimals: u8) -> Option<i64> {
    let x = v / NEG_POW10[decimals as usize];
    if x.is_nan() || x.abs() > MAX_EXACT {
        return None;
    }
    // Rounding by hand as `decimal_int` does; the check below decides.
    let i = (x + 0.5f64.copysign(x)) as i64;
    (scaled_value(i, decimals, true).to_bits() == v.to_bits()).then_some(i)
}

/// The integers of `values` under the multiplying scale with the fewest
/// decimals that reproduces all of them, or `None`. Unlike division, an
/// exact product at `k` places says nothing about `k + 1`, so every `k` is
/// tracked until one value rules it out.
pub(crate) fn mul_ints(values: &[f64]) -> Option<(u8, Vec<i64>)> {
    let mut alive: u16 = (1 << (MAX_DECIMALS + 1)) - 1;
    for &v in values {
        let mut m = alive;
        while m != 0 {
            let k = m.trailing_zeros() as u8;
            m &= m - 1;
            if mul_int(v, k).is_none() {
                alive &= !(1 << k);
            }
        }
        if alive == 0 {
            return None;
        }
    }
    let k = alive.trailing_zeros() as u8;
    let ints = values
        .iter()
        .map(|&v| mul_int(v, k))
        .collect::<Option<Vec<_>>>()?;
    Some((k, ints))
}

/// A fitted column takes at most one exception per this many samples:
/// each costs 64 bits and a gap, so beyond that XOR is about as small.
const SAMPLES_PER_EXCEPTION: usize = 8;

/// `values` as scaled integers under the scale that reproduces the most of
/// them, the others as exceptions; `None` when too many would be.
pub(crate) fn scale(values: &[f64]) -> Option<Scaled> {
    if let Some((decimals, ints)) = mul_ints(values) {
        return Some(Scaled {
            decimals,
            mul: true,
            ints,
            exceptions: Vec::new(),
        });
    }
    let max_exceptions = values.len() / SAMPLES_PER_EXCEPTION;
    // Values whose fewest dividing decimals are k (exact at every k above
    // too), and values exact under multiplication at k.
    let mut div_from = [0usize; MAX_DECIMALS as usize + 1];
    let mut mul_at = [0usize; MAX_DECIMALS as usize + 1];
    let mut neither = 0;
    for &v in values {
        let div = widen_decimals(v, 0);
        let mut scaled = div.is_some();
        if let Some(k) = div {
            div_from[k as usize] += 1;
        }
        for (k, n) in mul_at.iter_mut().enumerate() {
            if mul_int(v, k as u8).is_some() {
                *n += 1;
                scaled = true;
            }
        }
        if !scaled {
            // Random floats (durations, sums) leave here early.
            neither += 1;
            if neither > max_exceptions {
                return None;
            }
        }
    }
    let mut best = (0usize, 0u8, false);
    let mut div_up_to = 0;
    for k in 0..=MAX_DECIMALS {
        div_up_to += div_from[k as usize];
        if div_up_to > best.0 {
            best = (div_up_to, k, false);
        }
    }
    // On a tie the scale with fewer decimals wins: its integers (and so
    // its residuals) are smaller. A value like 4194714.600000001 is exact
    // as 41947146 × 0.1 and as 4194714600000001 / 10⁹; the first costs a
    // few bits per sample, the second about thirty.
    for k in 0..=MAX_DECIMALS {
        let n = mul_at[k as usize];
        if n > best.0 || (n == best.0 && n > 0 && k < best.1) {
            best = (n, k, true);
        }
    }
    let (_, decimals, mul) = best;
    let mut s = Scaled {
        decimals,
        mul,
        ints: Vec::with_capacity(values.len()),
        exceptions: Vec::new(),
    };
    for (n, &v) in values.iter().enumerate() {
        let i = if mul {
            mul_int(v, decimals)
        } else {
            decimal_int(v, decimals)
        };
        match i {
            Some(i) => s.ints.push(i),
            None => s.exceptions.push((n as u32, v.to_bits())),
        }
    }
    (!s.ints.is_empty() && s.exceptions.len() <= max_exceptions).then_some(s)
}

/// A chunk's bucket table: `m` strictly increasing widths in `0..=64`.
/// Bucket `i` is `i` one bits and a zero, except the last (`m - 1` ones, no
/// zero), then `widths[i]` bits of two's complement. The last width need not
/// be 64: the encoder only uses a table every residual fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table {
    m: u8,
    widths: [u8; MAX_WIDTHS],
}

impl Table {
    /// The table with one zero-width bucket: every residual is 0.
    const ZERO: Table = Table {
        m: 1,
        widths: [0; MAX_WIDTHS],
    };

    fn widths(&self) -> &[u8] {
        &self.widths[..self.m as usize]
    }

    /// Bits of the table in the column: `m - 1` in 3 bits, 7 bits a width.
    fn header_bits(&self) -> u64 {
        3 + 7 * u64::from(self.m)
    }

    /// Prefix bits of bucket `i`.
    #[inline]
    fn prefix(&self, i: u32) -> u32 {
        if i + 1 == u32::from(self.m) { i } else { i + 1 }
    }

    /// Chooses the table that codes residuals with bit lengths `hist`
    /// (`hist[l]` residuals of [`signed_len`] `l`) in the fewest bits, and
    /// those bits (without the table's own).
    ///
    /// A width strictly between two lengths that occur holds no more
    /// residuals than the shorter of them and costs more bits, so widths
    /// are chosen among the lengths present, the last being the longest.
    /// `cost[j][t]` is the cost of buckets `0..=j` (none of them last)
    /// covering lengths up to `lens[t]` with bucket `j` of width `lens[t]`;
    /// closing with a last bucket gives the cost of each table size.
    /// O(8 × r²) for `r` distinct lengths.
    pub(crate) fn fit(hist: &[u64; 65]) -> (Table, u64) {
        let mut lens = [0u8; 65];
        let mut cum = [0u64; 66];
        let mut r = 0;
        for (l, &h) in hist.iter().enumerate() {
            if h > 0 {
                lens[r] = l as u8;
                cum[r + 1] = cum[r] + h;
                r += 1;
            }
        }
        if r == 0 {
            return (Table::ZERO, 0);
        }
        // Residuals with lengths lens[a..=b].
        let count = |a: usize, b: usize| cum[b + 1] - cum[a];
        let last = lens[r - 1];
        let mut best_table = Table {
            m: 1,
            widths: [last, 0, 0, 0, 0, 0, 0, 0],
        };
        let mut best_bits = count(0, r - 1) * u64::from(last);
        let mut cost = [[u64::MAX; 65]; MAX_WIDTHS];
        let mut from = [[0u8; 65]; MAX_WIDTHS];
        for t in 0..r {
            cost[0][t] = count(0, t) * (1 + u64::from(lens[t]));
        }
        for m in 2..=MAX_WIDTHS {
            // Close with the last bucket (index m - 1, prefix m - 1) after a
            // non-last bucket m - 2 ending at lens[s].
            let j = m - 2;
            let close = cost[j][..r - 1]
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c != u64::MAX)
                .map(|(s, &c)| {
                    (
                        c + count(s + 1, r - 1) * ((m as u64 - 1) + u64::from(last)),
                        s,
                    )
                })
                .min_by_key(|&(c, _)| c)
                .unwrap_or((u64::MAX, 0));
            if close.0 < best_bits {
                let mut widths = [0u8; MAX_WIDTHS];
                widths[m - 1] = last;
                let mut t = close.1;
                for b in (0..=j).rev() {
                    widths[b] = lens[t];
                    t = from[b][t] as usize;
                }
                best_bits = close.0;
                best_table = Table { m: m as u8, widths };
            }
            // Extend: bucket m - 1 as a non-last one (prefix m).
            if m < MAX_WIDTHS {
                for t in 1..r {
                    let (c, s) = cost[j][..t]
                        .iter()
                        .enumerate()
                        .filter(|&(_, &c)| c != u64::MAX)
                        .map(|(s, &c)| (c + count(s + 1, t) * (m as u64 + u64::from(lens[t])), s))
                        .min_by_key(|&(c, _)| c)
                        .unwrap_or((u64::MAX, 0));
                    cost[m - 1][t] = c;
                    from[m - 1][t] = s as u8;
                }
            }
        }
        (best_table, best_bits)
    }

    fn write(&self, w: &mut impl BitSink) {
        w.put_bits(u64::from(self.m - 1), 3);
        for &wd in self.widths() {
            w.put_bits(u64::from(wd), 7);
        }
    }

    /// Reads a table, `None` unless its widths strictly increase and stay
    /// within 64.
    fn read(r: &mut BitReader<'_>) -> Option<Table> {
        let m = r.read_bits(3)? as u8 + 1;
        let mut widths = [0u8; MAX_WIDTHS];
        for i in 0..m as usize {
            let wd = r.read_bits(7)? as u8;
            if wd > 64 || (i > 0 && wd <= widths[i - 1]) {
                return None;
            }
            widths[i] = wd;
        }
        Some(Table { m, widths })
    }
}

/// How a fitted column codes its integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Delta-of-delta (`true`) or delta minus `base`.
    pub(crate) dod: bool,
    /// Every delta is a multiple of `g` (≥ 1) and is coded divided by it:
    /// byte counters of 512-byte sectors, memory in 4 KiB pages, clocks in
    /// kHz reported in Hz.
    g: u64,
    /// Subtracted from every reduced delta (delta mode) or from the first.
    base: i64,
    table: Table,
}

/// Bits of an LEB128 varint of `x` in the bit stream.
fn uvarint_bits(x: u64) -> u64 {
    8 * (1 + u64::from((64 - x.leading_zeros()).saturating_sub(1) / 7))
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The residual of regular integer `n >= 1` given the reduced deltas of
/// `n` and `n - 1`.
#[inline]
fn residual(dod: bool, base: i64, n: usize, delta: i64, prev_delta: i64) -> i64 {
    if dod && n >= 2 {
        delta.wrapping_sub(prev_delta)
    } else {
        delta.wrapping_sub(base)
    }
}

/// A chunk's values as scaled integers: the integers of the values the
/// scale reproduces, in order, and the others ("exceptions": a staleness
/// marker, a NaN, a value parsed with more digits) as `(sample index, raw
/// bits)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scaled {
    pub(crate) decimals: u8,
    pub(crate) mul: bool,
    pub(crate) ints: Vec<i64>,
    pub(crate) exceptions: Vec<(u32, u64)>,
}

/// Column bits of the exceptions: their count, then each one's 64 bits and
/// the gap before it (the first one's gap sits in the preamble).
fn exception_bits(exceptions: &[(u32, u64)]) -> u64 {
    let mut bits = uvarint_bits(exceptions.len() as u64);
    let mut next = 0u32;
    for &(at, _) in exceptions {
        bits += 64 + uvarint_bits(u64::from(at - next));
        next = at + 1;
    }
    bits
}

/// Column bits of `s` under a predictor over the reduced deltas `red`, with
/// the best table for it.
fn cost_of(s: &Scaled, red: &[i64], g: u64, dod: bool, base: i64) -> (Plan, u64) {
    let mut hist = [0u64; 65];
    let mut prev_delta = 0;
    for (n, &delta) in red.iter().enumerate() {
        hist[signed_len(residual(dod, base, n + 1, delta, prev_delta))] += 1;
        prev_delta = delta;
    }
    let (table, bits) = Table::fit(&hist);
    let total = table.header_bits()
        + uvarint_bits(g)
        + uvarint_bits(zigzag(base))
        + exception_bits(&s.exceptions)
        + s.ints.first().map_or(0, |&i| uvarint_bits(zigzag(i)))
        + bits;
    (
        Plan {
            dod,
            g,
            base,
            table,
        },
        total,
    )
}

/// The cheapest plan for `s` and its column bits. Deltas are divided by
/// their greatest common divisor, then coded as delta minus the median
/// delta (a counter's typical step; 0 for a gauge that mostly holds),
/// minus the midpoint of their range (best when the noise is uniform),
/// minus nothing, or as delta-of-delta (counters whose rate drifts).
pub(crate) fn plan(s: &Scaled) -> (Plan, u64) {
    // No overflow: integers are within ±2^53.
    let deltas: Vec<i64> = s.ints.windows(2).map(|w| w[1] - w[0]).collect();
    let g = deltas
        .iter()
        .fold(0u64, |g, &d| gcd(g, d.unsigned_abs()))
        .max(1);
    let red: Vec<i64> = deltas.iter().map(|&d| d / g as i64).collect();
    let Some(&first) = red.first() else {
        return cost_of(s, &red, g, false, 0);
    };
    let (lo, hi) = red
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &d| (lo.min(d), hi.max(d)));
    let mut sorted = red.clone();
    let mid = sorted.len() / 2;
    let median = *sorted.select_nth_unstable(mid).1;
    let midrange = lo + (hi - lo) / 2;
    let candidates = [
        (false, median),
        (false, midrange),
        (false, 0),
        (true, first),
    ];
    let mut best = cost_of(s, &red, g, false, median);
    for (i, &(dod, base)) in candidates.iter().enumerate().skip(1) {
        if candidates[..i].contains(&(dod, base)) {
            continue;
        }
        let c = cost_of(s, &red, g, dod, base);
        if c.1 < best.1 {
            best = c;
        }
    }
    best
}

/// Writes the fitted column of `s` under `plan`: the preamble (table, `g`,
/// base, exception count and the first one's index), then sample by sample
/// either an exception (64 raw bits, then the gap to the next one if any),
/// the first integer (zigzag varint) or a residual in the table's buckets.
pub(crate) fn write(w: &mut impl BitSink, plan: &Plan, s: &Scaled, count: usize) {
    let t = &plan.table;
    t.write(w);
    write_uvarint(w, plan.g);
    write_uvarint(w, zigzag(plan.base));
    write_uvarint(w, s.exceptions.len() as u64);
    let mut exc = s.exceptions.iter().peekable();
    if let Some(&&(at, _)) = exc.peek() {
        write_uvarint(w, u64::from(at));
    }
    let mut bucket_of_len = [0u8; 65];
    let mut b = 0;
    for (len, slot) in bucket_of_len.iter_mut().enumerate() {
        while b + 1 < t.m as usize && (t.widths[b] as usize) < len {
            b += 1;
        }
        *slot = b as u8;
    }
    let mut ints = s.ints.iter().enumerate();
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    for n in 0..count as u32 {
        if let Some(&(at, bits)) = exc.next_if(|e| e.0 == n) {
            w.put_bits(bits, 64);
            if let Some(&&(next, _)) = exc.peek() {
                write_uvarint(w, u64::from(next - at - 1));
            }
            continue;
        }
        let Some((k, &i)) = ints.next() else {
            debug_assert!(false, "fewer integers than samples");
            return;
        };
        if k == 0 {
            write_uvarint(w, zigzag(i));
            prev = i;
            continue;
        }
        let delta = (i - prev) / plan.g as i64;
        let r = residual(plan.dod, plan.base, k, delta, prev_delta);
        (prev, prev_delta) = (i, delta);
        let b = u32::from(bucket_of_len[signed_len(r)]);
        debug_assert!(signed_len(r) <= t.widths[b as usize] as usize);
        let prefix = t.prefix(b);
        // `b` ones, then a zero unless it is the last bucket.
        w.put_bits(((1u64 << b) - 1) << (prefix - b), prefix);
        w.put_bits(r as u64, u32::from(t.widths[b as usize]));
    }
}

/// Decodes a fitted column; mirrors [`write`]. The preamble is read with
/// the first sample, so a corrupt one ends iteration there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FittedDecoder {
    decimals: u8,
    mul: bool,
    dod: bool,
    table: Table,
    g: i64,
    base: i64,
    /// Exceptions not yet read, and the sample index of the next one.
    exc_left: u64,
    next_exc: u64,
    /// The first integer has been read.
    started: bool,
    prev: i64,
    delta: i64,
}

impl FittedDecoder {
    pub(crate) fn new(decimals: u8, mul: bool, dod: bool) -> Self {
        FittedDecoder {
            decimals,
            mul,
            dod,
            table: Table::ZERO,
            g: 1,
            base: 0,
            exc_left: 0,
            next_exc: 0,
            started: false,
            prev: 0,
            delta: 0,
        }
    }

    /// Value number `n`; `None` when the column is cut short or corrupt.
    /// Inlined into the chunk iterator with the rare steps (preamble,
    /// exceptions, first integer) kept out of line.
    #[inline(always)]
    pub(crate) fn next(&mut self, r: &mut BitReader<'_>, n: u32) -> Option<f64> {
        if n == 0 {
            self.start(r)?;
        }
        if self.exc_left > 0 && u64::from(n) == self.next_exc {
            return self.exception(r);
        }
        let i = if self.started {
            let x = self.read_residual(r)?;
            // Wrapping: corrupt input must not panic. In dod mode `delta`
            // starts at `base * g`, so the first residual, coded against
            // the base, needs no case of its own.
            self.delta = if self.dod {
                self.delta.wrapping_add(x.wrapping_mul(self.g))
            } else {
                x.wrapping_add(self.base).wrapping_mul(self.g)
            };
            self.prev = self.prev.wrapping_add(self.delta);
            self.prev
        } else {
            self.first(r)?
        };
        Some(scaled_value(i, self.decimals, self.mul))
    }

    /// Reads the preamble.
    #[cold]
    #[inline(never)]
    fn start(&mut self, r: &mut BitReader<'_>) -> Option<()> {
        self.table = Table::read(r)?;
        self.g = read_uvarint(r)? as i64;
        self.base = unzigzag(read_uvarint(r)?);
        self.exc_left = read_uvarint(r)?;
        if self.exc_left > 0 {
            self.next_exc = read_uvarint(r)?;
        }
        Some(())
    }

    #[cold]
    #[inline(never)]
    fn exception(&mut self, r: &mut BitReader<'_>) -> Option<f64> {
        let bits = r.read_bits(64)?;
        self.exc_left -= 1;
        if self.exc_left > 0 {
            self.next_exc = self
                .next_exc
                .checked_add(read_uvarint(r)?)?
                .checked_add(1)?;
        }
        Some(f64::from_bits(bits))
    }

    #[inline(never)]
    fn first(&mut self, r: &mut BitReader<'_>) -> Option<i64> {
        self.prev = unzigzag(read_uvarint(r)?);
        self.delta = self.base.wrapping_mul(self.g);
        self.started = true;
        Some(self.prev)
    }

    #[inline(always)]
    fn read_residual(&self, r: &mut BitReader<'_>) -> Option<i64> {
        let t = &self.table;
        if t.widths[0] == 0 && t.m == 1 {
            // Every residual is zero and the column may have ended: no
            // read at all (peeking past the end is the slow path).
            return Some(0);
        }
        let last = u32::from(t.m) - 1;
        // One 8-byte load holds the prefix and payload of every bucket up
        // to 57 bits, as in `read_bucketed`.
        let word = r.peek64();
        let i = word.leading_ones().min(last);
        // `i` ones and a terminating zero, except for the last bucket.
        let prefix = i + u32::from(i < last);
        let width = u32::from(t.widths[i as usize]);
        let total = prefix + width;
        if total <= 57 && (total as usize) <= r.remaining() {
            r.skip(total);
            return Some(match width {
                0 => 0,
                w => ((word << prefix) as i64) >> (64 - w),
            });
        }
        let i = r.read_unary(last)?;
        let width = u32::from(t.widths[i as usize]);
        let raw = r.read_bits(width)?;
        Some(crate::chunk::bstream::sign_extend(raw, width))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::bstream::{BitCounter, BitWriter};

    /// Writes `s` (counted and for real), decodes it and checks every value
    /// bit for bit; returns the column's bits.
    fn round_trip_scaled(s: &Scaled, count: usize) -> u64 {
        let (p, bits) = plan(s);
        let mut w = BitWriter::new();
        write(&mut w, &p, s, count);
        let mut c = BitCounter::default();
        write(&mut c, &p, s, count);
        assert_eq!(c.0, bits, "plan's cost equals the bits written");
        assert_eq!(w.bit_len() as u64, bits);
        let mut r = BitReader::new(w.bytes());
        let mut d = FittedDecoder::new(s.decimals, s.mul, p.dod);
        let (mut ints, mut exc) = (s.ints.iter(), s.exceptions.iter().peekable());
        for n in 0..count as u32 {
            let want = match exc.next_if(|e| e.0 == n) {
                Some(&(_, bits)) => bits,
                None => scaled_value(*ints.next().unwrap(), s.decimals, s.mul).to_bits(),
            };
            assert_eq!(
                d.next(&mut r, n).map(f64::to_bits),
                Some(want),
                "sample {n} of {s:?}"
            );
        }
        bits
    }

    fn round_trip(ints: &[i64]) -> u64 {
        let s = Scaled {
            decimals: 0,
            mul: false,
            ints: ints.to_vec(),
            exceptions: Vec::new(),
        };
        round_trip_scaled(&s, ints.len())
    }

    #[test]
    fn constant_and_exact_rate_columns_cost_nothing_per_sample() {
        let constant = vec![539i64; 480];
        // Table [0], g, base, exception count, the value: 6 bytes for all.
        assert_eq!(round_trip(&constant), 3 + 7 + 8 + 8 + 8 + 16);
        let rate: Vec<i64> = (0..480).map(|i| 1_000_000 + i * 1500).collect();
        assert_eq!(round_trip(&rate), 3 + 7 + 8 + 16 + 8 + 24);
    }

    #[test]
    fn noisy_counter_pays_for_its_noise_not_its_rate() {
        // ~900 a step with ±180 of noise: 9-bit residuals around the base.
        let mut x = 0i64;
        let ints: Vec<i64> = (0..480)
            .map(|i| {
                x += 900 + (i * 7919 % 361) - 180;
                x
            })
            .collect();
        let bits = round_trip(&ints);
        assert!(bits < 480 * 11, "{bits} bits");
    }

    #[test]
    fn extreme_integers_round_trip() {
        let m = 1i64 << 53;
        for ints in [
            vec![m, -m, m, -m, 0, m],
            vec![-m],
            vec![0, 1, 0, 1, m, m, m, -m],
        ] {
            round_trip(&ints);
        }
    }

    #[test]
    fn fitted_table_is_optimal_against_brute_force() {
        // Every increasing table of up to 3 widths over the lengths present,
        // for a few histograms: the DP matches the best of them.
        let hists: [&[(usize, u64)]; 4] = [
            &[(0, 240), (7, 100), (9, 130), (20, 10)],
            &[(10, 479)],
            &[(0, 1), (1, 1), (2, 1), (30, 1), (64, 3)],
            &[(3, 50), (4, 50), (5, 50), (6, 50), (8, 3)],
        ];
        for h in hists {
            let mut hist = [0u64; 65];
            for &(l, c) in h {
                hist[l] = c;
            }
            let (t, bits) = Table::fit(&hist);
            let cost = |widths: &[u8]| -> u64 {
                let m = widths.len() as u32;
                let mut total = 0;
                for (l, &c) in hist.iter().enumerate() {
                    if c == 0 {
                        continue;
                    }
                    let Some(i) = widths.iter().position(|&w| w as usize >= l) else {
                        return u64::MAX;
                    };
                    let p = if i as u32 + 1 == m {
                        i as u64
                    } else {
                        i as u64 + 1
                    };
                    total += c * (p + u64::from(widths[i]));
                }
                total
            };
            assert_eq!(cost(t.widths()), bits);
            let lens: Vec<u8> = h.iter().map(|&(l, _)| l as u8).collect();
            let mut brute = u64::MAX;
            for a in 0..lens.len() {
                brute = brute.min(cost(&[lens[a]]));
                for b in a + 1..lens.len() {
                    brute = brute.min(cost(&[lens[a], lens[b]]));
                    for c in b + 1..lens.len() {
                        brute = brute.min(cost(&[lens[a], lens[b], lens[c]]));
                    }
                }
            }
            assert!(bits <= brute, "{bits} > {brute} for {h:?}");
        }
    }

    #[test]
    fn common_factors_are_divided_out() {
        // Memory in 4 KiB pages reported in bytes: the residuals lose their
        // 12 zero bits.
        let mut x = 1i64 << 36;
        let pages: Vec<i64> = (0..480)
            .map(|i| {
                x += 4096 * ((i * 7919 % 2001) - 1000);
                x
            })
            .collect();
        let unit: Vec<i64> = pages.iter().map(|p| p / 4096).collect();
        // Only the preamble grows (g and the first value's varint).
        let (p, u) = (round_trip(&pages), round_trip(&unit));
        assert!(u < p && p <= u + 32, "{p} vs {u}");
    }

    #[test]
    fn exceptions_round_trip_anywhere_in_the_chunk() {
        let odd = [
            f64::NAN.to_bits(),
            crate::sample::STALE_NAN_BITS,
            (-0.0f64).to_bits(),
            f64::INFINITY.to_bits(),
            f64::NEG_INFINITY.to_bits(),
            0x7ff8_dead_beef_0001,
            (0.1f64 + 0.2).to_bits(),
        ];
        for positions in [
            vec![0],
            vec![479],
            vec![0, 1, 2],
            vec![5, 6, 100, 479],
            vec![240],
        ] {
            let mut values: Vec<f64> = (0..480).map(|i| (1000 + i * 3) as f64 / 100.0).collect();
            for (j, &p) in positions.iter().enumerate() {
                values[p] = f64::from_bits(odd[j % odd.len()]);
            }
            let s = scale(&values).expect("a few exceptions");
            assert_eq!(s.exceptions.len(), positions.len());
            assert_eq!((s.decimals, s.mul), (2, false));
            round_trip_scaled(&s, values.len());
        }
        // Too many odd values: XOR's business.
        let values: Vec<f64> = (0..80)
            .map(|i| if i % 4 == 0 { f64::NAN } else { i as f64 })
            .collect();
        assert!(scale(&values).is_none());
    }

    #[test]
    fn multiplied_resolutions_are_found() {
        // What `ticks as f64 * 0.01` gives: not always what parsing the
        // two-decimal text gives, but exact under the multiplying scale.
        let vals: Vec<f64> = (0..200)
            .map(|i| (123_456_789 + i * 977) as f64 * 0.01)
            .collect();
        assert!(
            vals.iter().any(|&v| decimal_int(v, 2).is_none()),
            "some products differ from quotients"
        );
        let (k, ints) = mul_ints(&vals).expect("exact under multiplication");
        assert_eq!(k, 2);
        for (&v, &i) in vals.iter().zip(&ints) {
            assert_eq!(scaled_value(i, k, true).to_bits(), v.to_bits());
        }
        // Exactness is all that counts: 0.1 + 0.2 is exactly 3 × 0.1.
        assert_eq!(mul_ints(&[0.1 + 0.2]), Some((1, vec![3])));
        assert!(mul_ints(&[f64::NAN]).is_none());
        assert!(mul_ints(&[-0.0]).is_none());
    }
}
