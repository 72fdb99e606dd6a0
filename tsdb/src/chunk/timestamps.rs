//! The timestamp column: delta-of-delta in bucketed widths.
//!
//! The first timestamp lives in the chunk header (as `min_t`), so the column
//! starts with the first delta as a varint, then one delta-of-delta per
//! sample. Scrapes arrive at a fixed interval with a few milliseconds of
//! jitter, so the buckets are sized for that: exactly on time costs 1 bit,
//! jitter within ±8 ms costs 6 bits, within ±128 ms 11 bits. (Prometheus'
//! chunkenc starts at a 14-bit bucket, 16 bits for any jitter at all.)
//!
//! All arithmetic is wrapping on 64 bits: a delta between `i64::MIN` and
//! `i64::MAX` does not fit an `i64`, but modulo 2^64 it decodes exactly, and
//! corrupted input cannot trigger an overflow panic.

use super::bstream::{
    BitReader, BitWriter, Buckets, read_bucketed, read_uvarint, write_bucketed, write_uvarint,
};

/// Bit widths of the delta-of-delta buckets; documented in docs/format/chunk.md.
pub(crate) static DOD_BUCKETS: Buckets = Buckets::new(&[0, 4, 8, 14, 20, 32, 64]);

/// Appends timestamps to the column; holds the last timestamp and delta.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TsEncoder {
    prev: i64,
    delta: u64,
}

impl TsEncoder {
    pub(crate) fn last(&self) -> i64 {
        self.prev
    }

    /// Appends `t` as sample number `n` (0-based). Sample 0 writes nothing:
    /// it is the header's `min_t`.
    #[inline]
    pub(crate) fn push(&mut self, w: &mut BitWriter, n: u32, t: i64) {
        let delta = t.wrapping_sub(self.prev) as u64;
        match n {
            0 => {}
            1 => write_uvarint(w, delta),
            _ => write_bucketed(w, &DOD_BUCKETS, delta.wrapping_sub(self.delta) as i64),
        }
        self.delta = delta;
        self.prev = t;
    }
}

/// Reads the column back; mirrors [`TsEncoder`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct TsDecoder {
    t: i64,
    delta: u64,
}

impl TsDecoder {
    pub(crate) fn new(min_t: i64) -> Self {
        TsDecoder { t: min_t, delta: 0 }
    }

    /// Decodes sample number `n`; `None` when the column is cut short.
    #[inline]
    pub(crate) fn next(&mut self, r: &mut BitReader<'_>, n: u32) -> Option<i64> {
        match n {
            0 => return Some(self.t),
            1 => self.delta = read_uvarint(r)?,
            _ => {
                self.delta = self
                    .delta
                    .wrapping_add(read_bucketed(r, &DOD_BUCKETS)? as u64)
            }
        }
        self.t = self.t.wrapping_add(self.delta as i64);
        Some(self.t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(ts: &[i64]) -> (Vec<i64>, usize) {
        let mut w = BitWriter::new();
        let mut e = TsEncoder::default();
        for (n, &t) in ts.iter().enumerate() {
            e.push(&mut w, n as u32, t);
        }
        let mut r = BitReader::new(w.bytes());
        let mut d = TsDecoder::new(ts[0]);
        let out = (0..ts.len() as u32)
            .map_while(|n| d.next(&mut r, n))
            .collect();
        (out, w.bit_len())
    }

    #[test]
    fn timestamps_spanning_the_whole_i64_range_round_trip() {
        let ts = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
        assert_eq!(round_trip(&ts).0, ts);
        let ts = [i64::MIN, i64::MAX];
        assert_eq!(round_trip(&ts).0, ts);
    }

    #[test]
    fn regular_scrapes_cost_one_bit_and_ms_jitter_at_most_eleven() {
        let on_time: Vec<i64> = (0..121).map(|i| 1_700_000_000_000 + i * 15_000).collect();
        let (out, bits) = round_trip(&on_time);
        assert_eq!(out, on_time);
        // 15000 as a varint is 2 bytes, then 119 one-bit dods.
        assert_eq!(bits, 16 + 119);

        let jitter = [0, 3, -2, 5, -7, 1];
        let ts: Vec<i64> = (0..121)
            .map(|i| i * 15_000 + jitter[i as usize % 6])
            .collect();
        let (out, bits) = round_trip(&ts);
        assert_eq!(out, ts);
        // |dod| <= 8 costs 6 bits, <= 128 costs 11: never the 16 of chunkenc.
        assert!(bits <= 16 + 119 * 11, "{bits} bits");
    }
}
