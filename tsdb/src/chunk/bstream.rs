//! Bit streams under the chunk columns, and the two integer codes the
//! columns share (LEB128 varints and bucketed signed integers).
//!
//! Columns are bit-packed most significant bit first, so the byte layout is
//! independent of the host and a column can be read straight out of an
//! mmap'd block. The writer appends in place to its `Vec<u8>` with no hidden
//! accumulator, because the head reads an open chunk while it is still being
//! written. The reader loads eight bytes at a time so most reads are one
//! load, one shift and one compare; every read is bounds-checked and returns
//! `None` past the end, which is how corrupted chunks end iteration early
//! instead of panicking.

/// Appends bits to a byte vector, most significant bit first.
#[derive(Debug, Clone, Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    /// Unused low bits of the last byte (0 when it is full or there is none).
    free: u32,
}

impl BitWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn with_capacity(bytes: usize) -> Self {
        BitWriter {
            bytes: Vec::with_capacity(bytes),
            free: 0,
        }
    }

    /// Continues after the bytes already in `bytes`, starting byte aligned.
    /// Sealing uses it to write a column straight after the header.
    pub(crate) fn from_vec(bytes: Vec<u8>) -> Self {
        BitWriter { bytes, free: 0 }
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.bytes
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    #[cfg(test)]
    pub(crate) fn bit_len(&self) -> usize {
        self.bytes.len() * 8 - self.free as usize
    }

    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Empties the stream but keeps its allocation: the next chunk of the
    /// same series will need about as many bytes again.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.free = 0;
    }

    #[inline]
    pub(crate) fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        self.free -= 1;
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << self.free;
        }
    }

    /// Writes the low `n` bits of `v` (`n <= 64`), most significant first.
    #[inline(always)]
    pub(crate) fn write_bits(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        // Left-align the n bits, so the top bit is the next one written.
        let mut v = v << (64 - n);
        let mut n = n;
        if self.free > 0 {
            let take = n.min(self.free);
            let last = self.bytes.len() - 1;
            self.bytes[last] |= (v >> (64 - self.free)) as u8;
            self.free -= take;
            n -= take;
            if n == 0 {
                return;
            }
            v <<= take;
        }
        // Byte aligned now: append the remaining bits as whole bytes in one
        // copy; the unused low bits of the last byte are already zero.
        let whole = n.div_ceil(8) as usize;
        self.bytes.extend_from_slice(&v.to_be_bytes()[..whole]);
        self.free = whole as u32 * 8 - n;
    }
}

/// Where an encoder's bits go: a [`BitWriter`], or a [`BitCounter`] when
/// sealing only needs to know what an encoding would cost.
pub(crate) trait BitSink {
    fn put_bit(&mut self, bit: bool);
    fn put_bits(&mut self, v: u64, n: u32);
}

impl BitSink for BitWriter {
    #[inline(always)]
    fn put_bit(&mut self, bit: bool) {
        self.write_bit(bit);
    }

    #[inline(always)]
    fn put_bits(&mut self, v: u64, n: u32) {
        self.write_bits(v, n);
    }
}

/// Counts bits instead of storing them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BitCounter(pub(crate) u64);

impl BitSink for BitCounter {
    #[inline(always)]
    fn put_bit(&mut self, _bit: bool) {
        self.0 += 1;
    }

    #[inline(always)]
    fn put_bits(&mut self, _v: u64, n: u32) {
        self.0 += u64::from(n);
    }
}

/// Reads bits written by [`BitWriter`] from a borrowed slice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    /// Next bit to read; never more than `bytes.len() * 8`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, pos: 0 }
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() * 8 - self.pos
    }

    /// The 64 bits starting at the current bit, zero-padded past the end.
    #[inline(always)]
    pub(crate) fn peek64(&self) -> u64 {
        let i = self.pos / 8;
        let word = match self.bytes.get(i..i + 8) {
            Some(b) => {
                let mut buf = [0u8; 8];
                buf.copy_from_slice(b);
                u64::from_be_bytes(buf)
            }
            None => {
                let rest = self.bytes.get(i..).unwrap_or(&[]);
                let mut buf = [0u8; 8];
                buf[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(buf)
            }
        };
        word << (self.pos % 8)
    }

    /// Consumes `n` bits the caller has checked are [`remaining`](Self::remaining).
    #[inline(always)]
    pub(crate) fn skip(&mut self, n: u32) {
        debug_assert!(n as usize <= self.remaining());
        self.pos += n as usize;
    }

    /// Reads `n <= 64` bits, or `None` if fewer remain.
    #[inline(always)]
    pub(crate) fn read_bits(&mut self, n: u32) -> Option<u64> {
        debug_assert!(n <= 64);
        if n == 0 {
            return Some(0);
        }
        if n > 56 {
            // One 8-byte load holds at least 57 bits past the current one.
            let hi = self.read_bits(n - 32)?;
            let lo = self.read_bits(32)?;
            return Some((hi << 32) | lo);
        }
        if n as usize > self.remaining() {
            return None;
        }
        let v = self.peek64() >> (64 - n);
        self.pos += n as usize;
        Some(v)
    }

    #[inline]
    pub(crate) fn read_bit(&mut self) -> Option<bool> {
        self.read_bits(1).map(|b| b == 1)
    }

    /// Reads a unary prefix: up to `max` one bits, then the terminating zero
    /// unless `max` ones were read. Returns the number of ones.
    #[inline(always)]
    pub(crate) fn read_unary(&mut self, max: u32) -> Option<u32> {
        debug_assert!(max <= 32);
        let ones = self.peek64().leading_ones().min(max);
        let used = if ones == max { max } else { ones + 1 };
        // The peeked word is zero-padded, so a terminator past the end is
        // padding, not data: check the real length.
        if used as usize > self.remaining() {
            return None;
        }
        self.pos += used as usize;
        Some(ones)
    }
}

/// Writes `x` as an LEB128 varint, 8 bits per group.
pub(crate) fn write_uvarint(w: &mut impl BitSink, mut x: u64) {
    loop {
        let group = x & 0x7f;
        x >>= 7;
        if x == 0 {
            w.put_bits(group, 8);
            return;
        }
        w.put_bits(group | 0x80, 8);
    }
}

/// Reads an LEB128 varint; `None` if truncated or longer than 10 groups.
pub(crate) fn read_uvarint(r: &mut BitReader<'_>) -> Option<u64> {
    let mut x = 0u64;
    let mut shift = 0;
    while shift < 64 {
        let group = r.read_bits(8)?;
        x |= (group & 0x7f) << shift;
        if group & 0x80 == 0 {
            return Some(x);
        }
        shift += 7;
    }
    None
}

pub(crate) fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Bits needed to hold `v` in two's complement; 0 for zero alone.
#[inline]
pub(crate) fn signed_len(v: i64) -> usize {
    if v == 0 {
        0
    } else {
        65 - (v ^ (v >> 63)).leading_zeros() as usize
    }
}

/// A table of bucket widths for signed integers. Bucket `i` is written as
/// `i` one bits and a zero (the last bucket drops the zero), then
/// `widths[i]` bits of two's complement; a value goes in the first bucket it
/// fits. A width of 0 holds only zero and the last width is 64, so every
/// value fits. Lookups by [`signed_len`] make encoding and costing O(1).
#[derive(Debug)]
pub(crate) struct Buckets {
    pub(crate) widths: &'static [u32],
    bucket_of_len: [u8; 65],
    cost_of_len: [u8; 65],
}

impl Buckets {
    pub(crate) const fn new(widths: &'static [u32]) -> Buckets {
        assert!(widths.len() >= 2 && widths.len() <= 16 && widths[widths.len() - 1] == 64);
        let last = widths.len() - 1;
        let mut bucket_of_len = [0u8; 65];
        let mut cost_of_len = [0u8; 65];
        let mut len = 0;
        while len <= 64 {
            let mut i = 0;
            while (widths[i] as usize) < len {
                i += 1;
            }
            let prefix = if i == last { i } else { i + 1 };
            bucket_of_len[len] = i as u8;
            cost_of_len[len] = (prefix as u32 + widths[i]) as u8;
            len += 1;
        }
        Buckets {
            widths,
            bucket_of_len,
            cost_of_len,
        }
    }

    /// Bits [`write_bucketed`] spends on a value of [`signed_len`] `len`.
    #[inline]
    pub(crate) fn cost_of_len(&self, len: usize) -> u64 {
        u64::from(self.cost_of_len[len])
    }

    /// Bits [`write_bucketed`] spends on `v`.
    #[cfg(test)]
    pub(crate) fn cost(&self, v: i64) -> u64 {
        self.cost_of_len(signed_len(v))
    }
}

#[inline]
pub(crate) fn write_bucketed(w: &mut impl BitSink, b: &Buckets, v: i64) {
    let i = b.bucket_of_len[signed_len(v)] as u32;
    if i as usize == b.widths.len() - 1 {
        w.put_bits((1u64 << i) - 1, i);
    } else {
        w.put_bits(((1u64 << i) - 1) << 1, i + 1);
    }
    w.put_bits(v as u64, b.widths[i as usize]);
}

#[inline(always)]
pub(crate) fn read_bucketed(r: &mut BitReader<'_>, b: &Buckets) -> Option<i64> {
    let max = b.widths.len() as u32 - 1;
    // Fast path: prefix and payload from one 8-byte load, which holds at
    // least 57 bits past the current one. Every bucket but a 64-bit one fits.
    let word = r.peek64();
    let i = word.leading_ones().min(max);
    let prefix = if i == max { max } else { i + 1 };
    let width = b.widths[i as usize];
    let total = prefix + width;
    if total <= 57 && (total as usize) <= r.remaining() {
        r.pos += total as usize;
        return Some(match width {
            0 => 0,
            // Shift the payload to the top, then sign-extend it down.
            w => ((word << prefix) as i64) >> (64 - w),
        });
    }
    let i = r.read_unary(max)? as usize;
    let width = b.widths[i];
    let raw = r.read_bits(width)?;
    Some(sign_extend(raw, width))
}

/// The low `width` bits of `raw` as a two's-complement integer.
#[inline(always)]
pub(crate) fn sign_extend(raw: u64, width: u32) -> i64 {
    match width {
        0 => 0,
        64 => raw as i64,
        w => ((raw << (64 - w)) as i64) >> (64 - w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static WIDTHS: Buckets = Buckets::new(&[0, 4, 12, 64]);

    #[test]
    fn bits_read_back_in_the_order_written_across_byte_boundaries() {
        let mut w = BitWriter::new();
        let items: [(u64, u32); 8] = [
            (1, 1),
            (0b101, 3),
            (0x1ff, 9),
            (u64::MAX, 64),
            (0, 5),
            (0xdead_beef, 32),
            (0x1234_5678_9abc_def0, 61),
            (1, 57),
        ];
        for &(v, n) in &items {
            w.write_bits(v, n);
        }
        assert_eq!(
            w.bit_len(),
            items.iter().map(|i| i.1 as usize).sum::<usize>()
        );
        let mut r = BitReader::new(w.bytes());
        for &(v, n) in &items {
            let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
            assert_eq!(r.read_bits(n), Some(v & mask), "{n} bits");
        }
    }

    #[test]
    fn reading_past_the_end_returns_none_not_padding() {
        let mut w = BitWriter::new();
        w.write_bits(0b1, 1);
        let mut r = BitReader::new(w.bytes());
        assert_eq!(r.read_bits(8), Some(0x80));
        assert_eq!(r.read_bits(1), None);
        assert_eq!(r.read_unary(3), None);
    }

    #[test]
    fn unary_prefix_stops_at_max_without_a_terminator() {
        let mut w = BitWriter::new();
        w.write_bits(0b1110, 4);
        w.write_bits(0b111, 3);
        let mut r = BitReader::new(w.bytes());
        assert_eq!(r.read_unary(3), Some(3));
        assert_eq!(r.read_unary(3), Some(0));
        assert_eq!(r.read_unary(3), Some(3));
    }

    #[test]
    fn varints_and_bucketed_integers_round_trip_at_their_extremes() {
        let mut w = BitWriter::new();
        let uv = [0u64, 1, 127, 128, 1 << 35, u64::MAX];
        let iv = [
            0i64,
            1,
            -1,
            7,
            -8,
            8,
            -9,
            2047,
            -2048,
            2048,
            i64::MIN,
            i64::MAX,
        ];
        for &x in &uv {
            write_uvarint(&mut w, x);
        }
        let before = w.bit_len();
        let mut cost = 0;
        for &x in &iv {
            write_bucketed(&mut w, &WIDTHS, x);
            cost += WIDTHS.cost(x);
        }
        assert_eq!((w.bit_len() - before) as u64, cost);
        let mut r = BitReader::new(w.bytes());
        for &x in &uv {
            assert_eq!(read_uvarint(&mut r), Some(x));
        }
        for &x in &iv {
            assert_eq!(read_bucketed(&mut r, &WIDTHS), Some(x));
        }
        for x in [0, 1, -1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(x)), x);
        }
        let f = |v: i64, len: usize| assert_eq!(signed_len(v), len, "{v}");
        f(0, 0);
        f(-1, 1);
        f(1, 2);
        f(7, 4);
        f(-8, 4);
        f(8, 5);
        f(i64::MIN, 64);
        f(i64::MAX, 64);
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let mut w = BitWriter::new();
        for _ in 0..11 {
            w.write_bits(0xff, 8);
        }
        assert_eq!(read_uvarint(&mut BitReader::new(w.bytes())), None);
    }
}
