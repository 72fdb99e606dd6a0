//! Prometheus' XOR float chunk (`tsdb/chunkenc/xor.go`), byte for byte: what
//! remote read's `STREAMED_XOR_CHUNKS` response carries (chunk type 1).
//!
//! This is not Tessera's own chunk format (`docs/format/chunk.md`); it is
//! the wire format other Prometheus-compatible systems decode, so it must
//! match Prometheus bit for bit:
//!
//! - a 2-byte big-endian sample count;
//! - the first sample: its timestamp as a signed (zig-zag) varint, its value
//!   as 64 raw bits;
//! - the second: the time delta as an unsigned varint, then the value
//!   XOR-coded;
//! - every later one: the delta-of-delta of its timestamp as `0`,
//!   `10`+14 bits, `110`+17 bits, `1110`+20 bits or `1111`+64 bits (two's
//!   complement), then the value XOR-coded;
//! - a value is XOR-coded against the previous one as `0` (same bits), as
//!   `10` then the meaningful bits inside the previous leading/trailing-zero
//!   window, or as `11` then 5 bits of leading zeros (clamped to 31), 6 bits
//!   of meaningful-bit count (64 written as 0) and those bits;
//! - the last byte is zero-padded.
//!
//! Values are carried as raw bits, so NaN payloads (the staleness marker
//! among them), infinities and -0.0 survive exactly. [`encode_chunks`] cuts
//! a series into chunks of at most [`MAX_SAMPLES`] samples and
//! [`MAX_BYTES`] bytes, Prometheus' limits for float chunks.

use super::bstream::{BitReader, BitWriter, read_uvarint, unzigzag, write_uvarint, zigzag};
use crate::Sample;

/// Most samples in one chunk: Prometheus' head cuts float chunks at 120.
pub const MAX_SAMPLES: usize = 120;

/// Largest chunk in bytes, Prometheus' limit for a chunk.
pub const MAX_BYTES: usize = 1024;

/// The most bytes one sample can add: a `1111` delta-of-delta with 64 bits
/// (68 bits) and a fresh XOR window (2 + 5 + 6 + 64 = 77 bits), rounded up.
const MAX_SAMPLE_BYTES: usize = 19;

/// Appends samples to one Prometheus XOR chunk.
#[derive(Debug, Clone)]
pub struct PromXorEncoder {
    w: BitWriter,
    count: u16,
    t: i64,
    t_delta: u64,
    v: u64,
    /// Leading and trailing zeros of the current XOR window; `leading` is
    /// 0xff until the first window is written, as in Prometheus.
    leading: u8,
    trailing: u8,
}

impl Default for PromXorEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl PromXorEncoder {
    pub fn new() -> Self {
        PromXorEncoder {
            w: BitWriter::new(),
            count: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            leading: 0xff,
            trailing: 0,
        }
    }

    /// Samples appended so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the chunk so far in bytes, the sample count included.
    pub fn byte_len(&self) -> usize {
        2 + self.w.bytes().len()
    }

    /// Could one more sample be appended within [`MAX_SAMPLES`] and
    /// [`MAX_BYTES`] whatever its value?
    pub fn has_room(&self) -> bool {
        self.len() < MAX_SAMPLES && self.byte_len() + MAX_SAMPLE_BYTES <= MAX_BYTES
    }

    /// Appends a sample. Timestamps should increase, as Prometheus' do; the
    /// format itself carries any sequence of `i64` timestamps exactly.
    /// Panics past `u16::MAX` samples (the count field's range).
    pub fn append(&mut self, t: i64, v: f64) {
        let v = v.to_bits();
        match self.count {
            0 => {
                write_uvarint(&mut self.w, zigzag(t));
                self.w.write_bits(v, 64);
            }
            1 => {
                let delta = t.wrapping_sub(self.t) as u64;
                write_uvarint(&mut self.w, delta);
                self.write_value(v);
                self.t_delta = delta;
            }
            _ => {
                let delta = t.wrapping_sub(self.t) as u64;
                let dod = delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.w.write_bit(false);
                } else if fits(dod, 14) {
                    self.w.write_bits(0b10, 2);
                    self.w.write_bits(dod as u64 & mask(14), 14);
                } else if fits(dod, 17) {
                    self.w.write_bits(0b110, 3);
                    self.w.write_bits(dod as u64 & mask(17), 17);
                } else if fits(dod, 20) {
                    self.w.write_bits(0b1110, 4);
                    self.w.write_bits(dod as u64 & mask(20), 20);
                } else {
                    self.w.write_bits(0b1111, 4);
                    self.w.write_bits(dod as u64, 64);
                }
                self.write_value(v);
                self.t_delta = delta;
            }
        }
        self.t = t;
        self.v = v;
        self.count = self.count.checked_add(1).expect("more than 65535 samples");
    }

    fn write_value(&mut self, v: u64) {
        let delta = v ^ self.v;
        if delta == 0 {
            self.w.write_bit(false);
            return;
        }
        self.w.write_bit(true);
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.w.write_bit(false);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.w.write_bits(delta >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.w.write_bit(true);
        self.w.write_bits(u64::from(leading), 5);
        let sig = 64 - u32::from(leading) - u32::from(trailing);
        // 64 meaningful bits do not fit in 6 bits; they are written as 0.
        self.w.write_bits(u64::from(sig) & 0x3f, 6);
        self.w.write_bits(delta >> trailing, sig);
    }

    /// The chunk's bytes: the sample count, then the bit stream.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(self.w.bytes());
        out
    }
}

/// Is `x` in the range Prometheus' `bitRange(x, n)` accepts for an `n`-bit
/// delta-of-delta? Note the asymmetry: `-(2^(n-1) - 1) ..= 2^(n-1)`.
fn fits(x: i64, n: u32) -> bool {
    -((1i64 << (n - 1)) - 1) <= x && x <= 1i64 << (n - 1)
}

fn mask(n: u32) -> u64 {
    (1u64 << n) - 1
}

/// One encoded chunk of a series, with the inclusive time range it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromXorChunk {
    pub min_t: i64,
    pub max_t: i64,
    pub data: Vec<u8>,
}

/// Encodes time-ordered samples as consecutive chunks of at most
/// [`MAX_SAMPLES`] samples and [`MAX_BYTES`] bytes each.
pub fn encode_chunks(samples: &[Sample]) -> Vec<PromXorChunk> {
    let mut out = Vec::new();
    let mut enc = PromXorEncoder::new();
    let mut min_t = 0;
    let mut max_t = 0;
    for s in samples {
        if !enc.has_room() {
            let full = std::mem::take(&mut enc);
            out.push(PromXorChunk {
                min_t,
                max_t,
                data: full.finish(),
            });
        }
        if enc.is_empty() {
            min_t = s.t;
        }
        enc.append(s.t, s.v);
        max_t = s.t;
    }
    if !enc.is_empty() {
        out.push(PromXorChunk {
            min_t,
            max_t,
            data: enc.finish(),
        });
    }
    out
}

/// Why bytes are not a Prometheus XOR chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromXorError {
    #[error("XOR chunk is {len} bytes, shorter than its 2-byte sample count")]
    TooShort { len: usize },
    #[error("XOR chunk declares {declared} samples but its bits end after {decoded}")]
    Truncated { declared: usize, decoded: usize },
}

/// Decodes a whole chunk into its samples, checking that it holds as many
/// as its header declares.
pub fn decode(data: &[u8]) -> Result<Vec<Sample>, PromXorError> {
    if data.len() < 2 {
        return Err(PromXorError::TooShort { len: data.len() });
    }
    let declared = u16::from_be_bytes([data[0], data[1]]) as usize;
    let mut r = BitReader::new(&data[2..]);
    let mut out = Vec::with_capacity(declared);
    let mut t = 0i64;
    let mut t_delta = 0u64;
    let mut v = 0u64;
    let mut leading = 0u32;
    let mut trailing = 0u32;
    let truncated = |decoded| PromXorError::Truncated { declared, decoded };
    for i in 0..declared {
        let step = (|| -> Option<()> {
            match i {
                0 => {
                    t = unzigzag(read_uvarint(&mut r)?);
                    v = r.read_bits(64)?;
                }
                1 => {
                    t_delta = read_uvarint(&mut r)?;
                    t = t.wrapping_add(t_delta as i64);
                    read_value(&mut r, &mut v, &mut leading, &mut trailing)?;
                }
                _ => {
                    let ones = r.read_unary(4)?;
                    let dod = match ones {
                        0 => 0,
                        1 => signed(r.read_bits(14)?, 14),
                        2 => signed(r.read_bits(17)?, 17),
                        3 => signed(r.read_bits(20)?, 20),
                        _ => r.read_bits(64)? as i64,
                    };
                    t_delta = t_delta.wrapping_add(dod as u64);
                    t = t.wrapping_add(t_delta as i64);
                    read_value(&mut r, &mut v, &mut leading, &mut trailing)?;
                }
            }
            Some(())
        })();
        step.ok_or_else(|| truncated(i))?;
        out.push(Sample::new(t, f64::from_bits(v)));
    }
    Ok(out)
}

/// Prometheus' reading of an `n`-bit delta-of-delta: above `2^(n-1)` is
/// negative.
fn signed(bits: u64, n: u32) -> i64 {
    if bits > 1u64 << (n - 1) {
        bits as i64 - (1i64 << n)
    } else {
        bits as i64
    }
}

fn read_value(
    r: &mut BitReader<'_>,
    v: &mut u64,
    leading: &mut u32,
    trailing: &mut u32,
) -> Option<()> {
    if !r.read_bit()? {
        return Some(());
    }
    if r.read_bit()? {
        *leading = r.read_bits(5)? as u32;
        let mut sig = r.read_bits(6)? as u32;
        if sig == 0 {
            sig = 64;
        }
        // A corrupt window (leading + sig > 64) cannot be a real chunk.
        *trailing = 64u32.checked_sub(*leading + sig)?;
    }
    let sig = 64 - *leading - *trailing;
    let bits = r.read_bits(sig)?;
    *v ^= bits << *trailing;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bits(s: &[Sample]) -> Vec<(i64, u64)> {
        s.iter().map(|s| (s.t, s.v.to_bits())).collect()
    }

    fn roundtrip(samples: &[Sample]) {
        let mut enc = PromXorEncoder::new();
        for s in samples {
            enc.append(s.t, s.v);
        }
        let data = enc.finish();
        assert_eq!(bits(&decode(&data).unwrap()), bits(samples));
    }

    #[test]
    fn special_values_survive_bit_exact() {
        let vals = [
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            crate::stale_nan(),
            f64::NAN,
            f64::from_bits(0x7ff8_dead_beef_0001),
            f64::from_bits(0xfff0_0000_0000_0001),
            f64::MIN_POSITIVE,
            f64::MAX,
            1.0,
            1.0,
            -3.5,
        ];
        let samples: Vec<Sample> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample::new(1_700_000_000_000 + i as i64 * 15_000, v))
            .collect();
        roundtrip(&samples);
    }

    #[test]
    fn every_delta_of_delta_width_and_its_edges() {
        let mut t = -5_000_000_000i64;
        let mut samples = vec![Sample::new(t, 1.0)];
        let mut delta = 1000i64;
        for dod in [
            0,
            1,
            -1,
            8192,
            -8191,
            8193,
            -8192,
            65536,
            -65535,
            65537,
            524_288,
            -524_287,
            524_289,
            -524_288,
            1 << 40,
            -(1 << 41),
            i32::MAX as i64,
        ] {
            delta += dod;
            t += delta;
            samples.push(Sample::new(t, t as f64));
        }
        roundtrip(&samples);
        // Timestamps going backwards and the extremes of i64 are carried too.
        roundtrip(&[
            Sample::new(i64::MAX, 1.0),
            Sample::new(i64::MIN, 2.0),
            Sample::new(0, 3.0),
            Sample::new(i64::MAX, 4.0),
        ]);
    }

    #[test]
    fn header_counts_samples_and_the_first_sample_is_varint_then_raw_float() {
        // Prometheus 2.42 answered a streamed read of 40 samples with a chunk
        // starting 0x00 0x28, then the varint timestamp and the float 1.0
        // (docs: shared research note, section 1.3).
        let mut enc = PromXorEncoder::new();
        for i in 0..40 {
            enc.append(1000 + i * 1000, 1.0);
        }
        let data = enc.finish();
        assert_eq!(&data[..2], &[0x00, 0x28]);
        // zigzag(1000) = 2000 = 0xd0 0x0f as a varint.
        assert_eq!(&data[2..4], &[0xd0, 0x0f]);
        assert_eq!(&data[4..12], &1.0f64.to_bits().to_be_bytes());
        // Second: delta 1000 as a uvarint, then one 0 bit for the same value;
        // the 38 later samples are one 0 bit (dod) and one 0 bit (value) each.
        assert_eq!(&data[12..14], &[0xe8, 0x07]);
        assert_eq!(data.len(), 14 + (1 + 38 * 2usize).div_ceil(8));
        assert!(data[14..].iter().all(|&b| b == 0));
    }

    /// A chunk Prometheus 2.42 served (captured from a streamed remote
    /// read of these 40 samples, remote-written to it; the end-to-end test
    /// `streamed_chunks_are_byte_identical_to_what_prometheus_serves`
    /// repeats the comparison live).
    #[test]
    fn encodes_exactly_the_bytes_prometheus_served() {
        const PROMETHEUS: &[u8] = &[
            0x00, 0x28, 0xd0, 0xdf, 0xbc, 0xd3, 0xc8, 0x68, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0xe9, 0x07, 0xc4, 0x4f, 0xfe, 0xff, 0xfb, 0x09, 0x5f, 0xfc, 0x00, 0x46,
            0xb1, 0x26, 0x04, 0x97, 0x50, 0xb9, 0xbd, 0xda, 0xc4, 0x57, 0xfb, 0x01, 0xf5, 0x84,
            0xbf, 0xfe, 0xc2, 0x67, 0xff, 0xb1, 0x1b, 0xff, 0x18, 0x00, 0x15, 0xff, 0xf4, 0x00,
            0x28, 0x00, 0x8c, 0x27, 0x7f, 0xef, 0x02, 0x4b, 0x7f, 0xe1, 0x7b, 0xb5, 0x00, 0x31,
            0x01, 0xf5, 0x00, 0x32, 0x80, 0x09, 0x5f, 0xf8, 0x40, 0x00, 0xcf, 0xf8, 0x5f, 0xff,
            0x4f, 0xf8, 0x40, 0x04, 0x5f, 0xf8, 0x40, 0x92, 0xc0, 0x04, 0xde, 0xed, 0x40, 0x0c,
            0xc0, 0x7d, 0x40, 0x0c, 0x2f, 0xfc, 0x17, 0xfe, 0xf0, 0x00, 0x30, 0x00, 0x57, 0xff,
            0xc8, 0x00, 0x88, 0x00, 0x28, 0x12, 0x5b, 0xff, 0x7b, 0xdd, 0xab, 0xff, 0x08, 0x0f,
            0xa8, 0x01, 0x84, 0x00, 0xca, 0x00, 0x26, 0x00, 0x06, 0xff, 0xc2, 0xff, 0xfa, 0x7f,
            0xc2, 0x00, 0x22, 0x7f, 0xc2, 0x04, 0x96, 0xff, 0xc2, 0xf7, 0x6a, 0x00, 0x26, 0x03,
            0xea, 0x00, 0x65, 0x00, 0x30,
        ];
        let jitter = [0, 1, -1, 7, 300, -250, 0, 0];
        let mut t = 1_796_457_600_000i64;
        let samples: Vec<Sample> = (0..40usize)
            .map(|k| {
                t += 1000 + jitter[k % 8];
                let v = match k {
                    5 => f64::INFINITY,
                    6 => 0.0,
                    7 => f64::NAN,
                    _ => ((k * k) % 17) as f64 * 0.5,
                };
                Sample::new(t, v)
            })
            .collect();
        let chunks = encode_chunks(&samples);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].data, PROMETHEUS);
        assert_eq!(bits(&decode(PROMETHEUS).unwrap()), bits(&samples));
    }

    #[test]
    fn chunks_are_cut_at_120_samples_and_1024_bytes() {
        let regular: Vec<Sample> = (0..1000)
            .map(|i| Sample::new(i * 15_000, (i % 7) as f64))
            .collect();
        let chunks = encode_chunks(&regular);
        assert_eq!(chunks.len(), 1000usize.div_ceil(MAX_SAMPLES));
        assert_eq!((chunks[0].min_t, chunks[0].max_t), (0, 119 * 15_000));
        // Random bits and jittered times: the byte limit cuts first.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noisy: Vec<Sample> = (0..2000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                Sample::new(i * 1_000_000 + (x % 900_000) as i64, f64::from_bits(x))
            })
            .collect();
        let chunks = encode_chunks(&noisy);
        let mut back = Vec::new();
        for c in &chunks {
            assert!(c.data.len() <= MAX_BYTES, "{}", c.data.len());
            let s = decode(&c.data).unwrap();
            assert!(s.len() <= MAX_SAMPLES);
            assert_eq!((s[0].t, s[s.len() - 1].t), (c.min_t, c.max_t));
            back.extend(s);
        }
        assert!(
            chunks
                .iter()
                .any(|c| c.data.len() > MAX_BYTES - MAX_SAMPLE_BYTES)
        );
        assert_eq!(bits(&back), bits(&noisy));
        assert!(encode_chunks(&[]).is_empty());
    }

    #[test]
    fn truncated_or_corrupt_chunks_are_errors_not_panics() {
        let mut enc = PromXorEncoder::new();
        for i in 0..50 {
            enc.append(i * 1000 + (i * i) % 7, i as f64 * 1.1);
        }
        let data = enc.finish();
        assert_eq!(decode(&data[..1]), Err(PromXorError::TooShort { len: 1 }));
        for cut in 2..data.len() - 1 {
            assert!(decode(&data[..cut]).is_err(), "cut at {cut}");
        }
        let mut x = 1u64;
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..40)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect();
            let _ = decode(&junk);
        }
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(
            start in any::<i64>(),
            steps in proptest::collection::vec((any::<i64>(), any::<u64>(), 0u8..4), 1..300),
        ) {
            let mut t = start;
            let samples: Vec<Sample> = steps
                .iter()
                .map(|&(dt, v, kind)| {
                    // Mix small regular steps (the common case) with any i64.
                    t = match kind {
                        0 => t.wrapping_add(15_000),
                        1 => t.wrapping_add(dt % 100_000),
                        _ => t.wrapping_add(dt),
                    };
                    let v = if kind == 0 { (v % 100) as f64 } else { f64::from_bits(v) };
                    Sample::new(t, v)
                })
                .collect();
            let mut enc = PromXorEncoder::new();
            for s in &samples {
                enc.append(s.t, s.v);
            }
            prop_assert_eq!(bits(&decode(&enc.finish()).unwrap()), bits(&samples));
            let mut back = Vec::new();
            for c in encode_chunks(&samples) {
                prop_assert!(c.data.len() <= MAX_BYTES);
                back.extend(decode(&c.data).unwrap());
            }
            prop_assert_eq!(bits(&back), bits(&samples));
        }
    }
}
