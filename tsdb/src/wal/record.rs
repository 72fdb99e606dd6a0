//! WAL record bodies and their framing: what a Series or Samples record
//! looks like in bytes, and nothing about files.
//!
//! Frame: `[u32 LE body length][u32 LE crc32c(body)][body]`; body:
//! `[u8 type][payload]`. A type with [`FLAG_SNAPPY`] set has its payload
//! snappy-compressed (raw block format); writers set it only when that
//! makes the record smaller. Series payloads carry no count (entries run to
//! the end), so the encoder can split a large batch into several ~1 MiB
//! records; Samples payloads (format version 2, type 3) are columnar, see
//! [`super::samples`]. Layout tables: `docs/format/wal.md`.

use super::samples::{MAX_ENTRY_BYTES, get_samples, put_samples};
use crate::{Label, Labels};

/// Bytes of the frame header (length + crc).
pub(crate) const FRAME_HEADER_LEN: usize = 8;

/// Largest record body a reader accepts, compressed or not. Writers split
/// batches at [`TARGET_RECORD_BYTES`], so only a single absurd label set can
/// hit it; the bound keeps a damaged length field from making a reader
/// allocate GiBs.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// A batch is split into records of about this size (before compression):
/// big enough to amortise the header and CRC setup, small enough to keep
/// decode buffers cache-warm.
pub(crate) const TARGET_RECORD_BYTES: usize = 1 << 20;

pub(crate) const TYPE_SERIES: u8 = 1;
/// Version-1 Samples (row layout, raw f64 values): read, no longer written.
pub(crate) const TYPE_SAMPLES_V1: u8 = 2;
/// Version-2 columnar Samples.
pub(crate) const TYPE_SAMPLES: u8 = 3;
/// Set in the type byte when the payload is snappy-compressed.
pub(crate) const FLAG_SNAPPY: u8 = 0x80;

/// Bodies shorter than this are not worth a compression attempt.
const MIN_COMPRESS_BYTES: usize = 64;

/// A record to write, borrowing the caller's data.
#[derive(Clone, Copy, Debug)]
pub enum RecordRef<'a> {
    /// New series: (per-shard series ref, its labels).
    Series(&'a [(u64, &'a Labels)]),
    /// Samples: (series ref, timestamp ms, value).
    Samples(&'a [(u64, i64, f64)]),
}

impl RecordRef<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            RecordRef::Series(s) => s.len(),
            RecordRef::Samples(s) => s.len(),
        }
    }
}

/// An owned decoded record, for callers that keep records (tests, tools).
/// Replay should use [`super::ReadRecord`], which reuses buffers.
#[derive(Clone, Debug, PartialEq)]
pub enum WalRecord {
    Series(Vec<(u64, Labels)>),
    Samples(Vec<(u64, i64, f64)>),
}

/// Frame encoder state reused across records: the compression scratch buffer.
pub(crate) struct FrameEncoder {
    compress: bool,
    snappy: snap::raw::Encoder,
    scratch: Vec<u8>,
}

impl FrameEncoder {
    /// `compress`: try snappy on each body (the writer always does; tests
    /// turn it off to cover uncompressed records).
    pub(crate) fn new(compress: bool) -> FrameEncoder {
        FrameEncoder {
            compress,
            snappy: snap::raw::Encoder::new(),
            scratch: Vec::new(),
        }
    }

    /// Appends one frame holding `rec`'s entries from `from` on, stopping once
    /// the body passes [`TARGET_RECORD_BYTES`]. Returns how many entries it
    /// took (at least one when any are left).
    pub(crate) fn append_frame(
        &mut self,
        rec: &RecordRef<'_>,
        from: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize, super::WalError> {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        let body_start = out.len();
        let taken = match rec {
            RecordRef::Series(entries) => {
                out.push(TYPE_SERIES);
                put_series(out, &entries[from..], body_start)
            }
            RecordRef::Samples(entries) => {
                out.push(TYPE_SAMPLES);
                let entries = &entries[from..];
                // Cap the count so one frame stays near the target size.
                let n = entries.len().min(TARGET_RECORD_BYTES / MAX_ENTRY_BYTES + 1);
                out.reserve(20 + n * 6);
                put_samples(out, &entries[..n]);
                n
            }
        };
        let body_len = out.len() - body_start;
        if body_len > MAX_RECORD_BYTES {
            out.truncate(start);
            return Err(super::WalError::RecordTooLarge { bytes: body_len });
        }
        if self.compress && body_len >= MIN_COMPRESS_BYTES {
            self.try_compress(out, body_start);
        }
        finish_frame(out, start);
        Ok(taken)
    }

    /// Replaces the payload after `out[body_start]` by its snappy block if
    /// that is smaller.
    fn try_compress(&mut self, out: &mut Vec<u8>, body_start: usize) {
        let payload = &out[body_start + 1..];
        self.scratch
            .resize(snap::raw::max_compress_len(payload.len()), 0);
        let Ok(n) = self.snappy.compress(payload, &mut self.scratch) else {
            return;
        };
        if n < payload.len() {
            out.truncate(body_start + 1);
            out[body_start] |= FLAG_SNAPPY;
            out.extend_from_slice(&self.scratch[..n]);
        }
    }
}

/// Writes the length and CRC of the frame starting at `start` (its body
/// runs to the end of `out`).
fn finish_frame(out: &mut [u8], start: usize) {
    let body = &out[start + FRAME_HEADER_LEN..];
    let (len, crc) = (body.len() as u32, crc32c::crc32c(body));
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Series entries until the body (from `body_start`) passes the target size.
fn put_series(out: &mut Vec<u8>, entries: &[(u64, &Labels)], body_start: usize) -> usize {
    let mut n = 0;
    for (r, labels) in entries {
        put_uvarint(out, *r);
        put_uvarint(out, labels.len() as u64);
        for l in labels.iter() {
            put_bytes(out, l.name.as_bytes());
            put_bytes(out, l.value.as_bytes());
        }
        n += 1;
        if out.len() - body_start >= TARGET_RECORD_BYTES {
            break;
        }
    }
    n
}

/// The version-1 encoder (row Samples, no compression), kept so tests can
/// write the segments older builds wrote.
#[cfg(test)]
pub(crate) fn append_frame_v1(rec: &RecordRef<'_>, from: usize, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    let body_start = out.len();
    let taken = match rec {
        RecordRef::Series(entries) => {
            out.push(TYPE_SERIES);
            put_series(out, &entries[from..], body_start)
        }
        RecordRef::Samples(entries) => {
            out.push(TYPE_SAMPLES_V1);
            let entries = &entries[from..];
            let n = entries.len().min(TARGET_RECORD_BYTES / 28 + 1);
            let (base_ref, base_t, v0) = entries[0];
            out.extend_from_slice(&base_ref.to_le_bytes());
            out.extend_from_slice(&base_t.to_le_bytes());
            out.extend_from_slice(&v0.to_bits().to_le_bytes());
            for &(r, t, v) in &entries[1..n] {
                put_varint(out, r.wrapping_sub(base_ref) as i64);
                put_varint(out, t.wrapping_sub(base_t));
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            n
        }
    };
    finish_frame(out, start);
    taken
}

/// Why a CRC-valid body did not decode: a writer bug or a format mismatch,
/// reported by the caller as corruption at the record's offset.
pub(crate) type DecodeError = &'static str;

/// Decodes one body into the reusable output vectors (cleared first) and
/// returns [`TYPE_SERIES`] or [`TYPE_SAMPLES`] (for either Samples layout).
/// Only the vector of that type is touched; `scratch` holds a decompressed
/// payload.
pub(crate) fn decode(
    body: &[u8],
    series: &mut Vec<(u64, Labels)>,
    samples: &mut Vec<(u64, i64, f64)>,
    scratch: &mut Vec<u8>,
) -> Result<u8, DecodeError> {
    let (&ty, mut b) = body.split_first().ok_or("empty record body")?;
    if !is_known_type(ty) {
        return Err("unknown record type");
    }
    if ty & FLAG_SNAPPY != 0 {
        let n = snap::raw::decompress_len(b).map_err(|_| "bad snappy length header")?;
        // The declared length is checked before allocating: a damaged
        // header must not make replay allocate GiBs.
        if n > MAX_RECORD_BYTES {
            return Err("snappy payload declares more than the record size limit");
        }
        scratch.resize(n, 0);
        let got = snap::raw::Decoder::new()
            .decompress(b, scratch)
            .map_err(|_| "snappy payload does not decompress")?;
        if got != n {
            return Err("snappy payload shorter than its declared length");
        }
        b = &scratch[..n];
    }
    match ty & !FLAG_SNAPPY {
        TYPE_SERIES => {
            get_series(b, series)?;
            Ok(TYPE_SERIES)
        }
        TYPE_SAMPLES_V1 => {
            get_samples_v1(b, samples)?;
            Ok(TYPE_SAMPLES)
        }
        _ => {
            get_samples(b, samples)?;
            Ok(TYPE_SAMPLES)
        }
    }
}

fn get_series(mut b: &[u8], series: &mut Vec<(u64, Labels)>) -> Result<(), DecodeError> {
    series.clear();
    while !b.is_empty() {
        let r = get_uvarint(&mut b)?;
        let n = get_uvarint(&mut b)? as usize;
        // Each label takes at least 2 bytes; a larger count is damage,
        // and checking first keeps a bad count from a huge allocation.
        if n > b.len() / 2 {
            return Err("series label count exceeds record size");
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let name = get_str(&mut b)?;
            let value = get_str(&mut b)?;
            if v.last().is_some_and(|l: &Label| l.name.as_str() >= name) {
                return Err("series labels not sorted by name or not unique");
            }
            v.push(Label::new(name, value));
        }
        series.push((r, Labels::from_sorted_unchecked(v)));
    }
    Ok(())
}

fn get_samples_v1(mut b: &[u8], samples: &mut Vec<(u64, i64, f64)>) -> Result<(), DecodeError> {
    samples.clear();
    if b.len() < 24 {
        return Err("samples record shorter than its 24-byte base entry");
    }
    let base_ref = u64::from_le_bytes(b[0..8].try_into().unwrap());
    let base_t = i64::from_le_bytes(b[8..16].try_into().unwrap());
    let v0 = f64::from_bits(u64::from_le_bytes(b[16..24].try_into().unwrap()));
    samples.push((base_ref, base_t, v0));
    b = &b[24..];
    while !b.is_empty() {
        let dr = get_varint(&mut b)?;
        let dt = get_varint(&mut b)?;
        if b.len() < 8 {
            return Err("samples entry truncated inside its value");
        }
        let v = f64::from_bits(u64::from_le_bytes(b[..8].try_into().unwrap()));
        b = &b[8..];
        samples.push((base_ref.wrapping_add(dr as u64), base_t.wrapping_add(dt), v));
    }
    Ok(())
}

/// True when `t` is a record type this version knows; the resync scan that
/// tells a torn tail from mid-file corruption uses it to reject noise cheaply.
pub(crate) fn is_known_type(t: u8) -> bool {
    matches!(
        t & !FLAG_SNAPPY,
        TYPE_SERIES | TYPE_SAMPLES_V1 | TYPE_SAMPLES
    )
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[inline]
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

#[inline]
pub(crate) fn get_uvarint(b: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut x = 0u64;
    for (i, &c) in b.iter().enumerate().take(10) {
        if i == 9 && c > 1 {
            return Err("varint overflows 64 bits");
        }
        x |= u64::from(c & 0x7f) << (7 * i);
        if c < 0x80 {
            *b = &b[i + 1..];
            return Ok(x);
        }
    }
    Err("varint truncated")
}

#[inline]
pub(crate) fn get_varint(b: &mut &[u8]) -> Result<i64, DecodeError> {
    let u = get_uvarint(b)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

fn get_str<'a>(b: &mut &'a [u8]) -> Result<&'a str, DecodeError> {
    let n = get_uvarint(b)? as usize;
    if n > b.len() {
        return Err("label string runs past the record");
    }
    let (s, rest) = b.split_at(n);
    *b = rest;
    std::str::from_utf8(s).map_err(|_| "label string is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_all(rec: RecordRef<'_>, compress: bool) -> Vec<u8> {
        let mut enc = FrameEncoder::new(compress);
        let mut out = Vec::new();
        let mut from = 0;
        while from < rec.len() {
            from += enc.append_frame(&rec, from, &mut out).unwrap();
        }
        out
    }

    fn encode_all_v1(rec: RecordRef<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut from = 0;
        while from < rec.len() {
            from += append_frame_v1(&rec, from, &mut out);
        }
        out
    }

    /// Splits concatenated frames, checking each CRC: the bodies.
    fn bodies(mut buf: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
            let body = &buf[8..8 + len];
            assert_eq!(crc, crc32c::crc32c(body));
            out.push(body);
            buf = &buf[8 + len..];
        }
        out
    }

    fn decode_all(buf: &[u8]) -> Vec<WalRecord> {
        let (mut se, mut sa, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
        bodies(buf)
            .into_iter()
            .map(
                |body| match decode(body, &mut se, &mut sa, &mut scratch).unwrap() {
                    TYPE_SERIES => WalRecord::Series(se.clone()),
                    _ => WalRecord::Samples(sa.clone()),
                },
            )
            .collect()
    }

    fn type_bytes(buf: &[u8]) -> Vec<u8> {
        bodies(buf).iter().map(|b| b[0]).collect()
    }

    /// Compare bits so NaN payloads (the staleness marker) are checked too.
    fn bits(v: &[(u64, i64, f64)]) -> Vec<(u64, i64, u64)> {
        v.iter().map(|e| (e.0, e.1, e.2.to_bits())).collect()
    }

    fn labels(i: u64) -> Labels {
        Labels::from_pairs([
            ("__name__", "DCGM_FI_DEV_POWER_USAGE".to_string()),
            ("gpu", (i % 8).to_string()),
            ("instance", format!("gpu-node-{}:9400", i / 8)),
            ("job", "dcgm-exporter".to_string()),
        ])
    }

    #[test]
    fn every_record_kind_round_trips_compressed_uncompressed_and_v1() {
        let owned: Vec<(u64, Labels)> = (0..300).map(|i| (i * 3, labels(i))).collect();
        let series: Vec<(u64, &Labels)> = owned.iter().map(|(r, l)| (*r, l)).collect();
        let samples: Vec<(u64, i64, f64)> = (0..2000u64)
            .map(|i| {
                (
                    i + i / 64,
                    1_700_000_000_000 + (i / 64) as i64,
                    (i % 101) as f64 * 0.125,
                )
            })
            .collect();
        let f = |rec: RecordRef<'_>, want: WalRecord, base: u8| {
            for (buf, ty) in [
                (encode_all(rec, true), base | FLAG_SNAPPY),
                (encode_all(rec, false), base),
            ] {
                assert_eq!(type_bytes(&buf), vec![ty]);
                assert_eq!(decode_all(&buf), vec![want.clone()]);
            }
            let v1 = encode_all_v1(rec);
            let v1_type = if base == TYPE_SERIES {
                TYPE_SERIES
            } else {
                TYPE_SAMPLES_V1
            };
            assert_eq!(type_bytes(&v1), vec![v1_type]);
            assert_eq!(decode_all(&v1), vec![want]);
        };
        f(
            RecordRef::Series(&series),
            WalRecord::Series(owned.clone()),
            TYPE_SERIES,
        );
        f(
            RecordRef::Samples(&samples),
            WalRecord::Samples(samples.clone()),
            TYPE_SAMPLES,
        );
        // A tiny record is never compressed.
        let one = [(7, 1, 2.5)];
        assert_eq!(
            type_bytes(&encode_all(RecordRef::Samples(&one), true)),
            vec![TYPE_SAMPLES]
        );
    }

    #[test]
    fn samples_with_extreme_deltas_round_trip() {
        let s = vec![
            (5, 1000, 1.5),
            (0, i64::MIN, f64::NAN),
            (u64::MAX, i64::MAX, -0.0),
            (5, 999, crate::stale_nan()),
            (6, 0, -9_007_199_254_740_991.0),
            (7, 0, 9_007_199_254_740_991.0),
            (8, 0, -1e-6),
            (9, 0, f64::NEG_INFINITY),
        ];
        for buf in [
            encode_all(RecordRef::Samples(&s), true),
            encode_all(RecordRef::Samples(&s), false),
            encode_all_v1(RecordRef::Samples(&s)),
        ] {
            let got = decode_all(&buf);
            let WalRecord::Samples(got) = &got[0] else {
                panic!("want samples")
            };
            assert_eq!(bits(got), bits(&s));
        }
    }

    #[test]
    fn scrape_shaped_samples_take_under_two_bytes_each() {
        // Consecutive refs, one timestamp, small integer gauges.
        let s: Vec<_> = (0..2000)
            .map(|i| (1000 + i, 1_700_000_000_000, (i % 7) as f64))
            .collect();
        let bytes = encode_all(RecordRef::Samples(&s), true).len();
        assert!(bytes < 2 * 2000, "{bytes} bytes");
    }

    #[test]
    fn large_batches_split_into_records_near_the_target_size() {
        let s: Vec<_> = (0..200_000u64)
            .map(|i| (i, i as i64, f64::from_bits(i * 0x9e37_79b9)))
            .collect();
        for compress in [false, true] {
            let recs = decode_all(&encode_all(RecordRef::Samples(&s), compress));
            assert!(recs.len() > 1);
            let flat: Vec<_> = recs
                .into_iter()
                .flat_map(|r| match r {
                    WalRecord::Samples(v) => v,
                    WalRecord::Series(_) => panic!("want samples"),
                })
                .collect();
            assert_eq!(bits(&flat), bits(&s));
        }
    }

    #[test]
    fn decode_rejects_malformed_bodies() {
        let (mut se, mut sa, mut sc) = (Vec::new(), Vec::new(), Vec::new());
        let mut f = |body: &[u8], want: &str| {
            assert_eq!(
                decode(body, &mut se, &mut sa, &mut sc),
                Err(want),
                "{body:?}"
            );
        };
        f(&[], "empty record body");
        f(&[9], "unknown record type");
        f(&[0x89], "unknown record type");
        f(
            &[TYPE_SAMPLES_V1, 1, 2],
            "samples record shorter than its 24-byte base entry",
        );
        f(
            &[TYPE_SAMPLES, 0],
            "samples count is zero or exceeds the record size",
        );
        f(
            &[TYPE_SAMPLES, 9, 1, 2],
            "samples count is zero or exceeds the record size",
        );
        f(&[TYPE_SAMPLES, 1, 1, 2, 7, 0], "samples value truncated");
        f(&[TYPE_SAMPLES, 1, 1, 2, 15], "samples value has a bad tag");
        f(
            &[TYPE_SAMPLES, 1, 1, 2, 0, 0],
            "trailing bytes after the last sample",
        );
        f(&[TYPE_SERIES, 1, 0x80], "varint truncated");
        f(
            &[TYPE_SERIES, 1, 1, 5, b'a'],
            "label string runs past the record",
        );
        f(
            &[TYPE_SERIES, 1, 2, 1, b'b', 1, b'x', 1, b'a', 1, b'y'],
            "series labels not sorted by name or not unique",
        );
        let snappy = TYPE_SAMPLES | FLAG_SNAPPY;
        f(&[snappy], "snappy payload does not decompress");
        f(
            &[snappy, 0xff, 0xff, 0xff, 0xff, 0x0f, 0],
            "snappy payload declares more than the record size limit",
        );
        f(
            &[snappy, 20, 0xff, 0xff],
            "snappy payload does not decompress",
        );
        // A real compressed body cut short.
        let s: Vec<_> = (0..500).map(|i| (i, 0, 1.0)).collect();
        let buf = encode_all(RecordRef::Samples(&s), true);
        let body = bodies(&buf)[0];
        assert_eq!(body[0], snappy);
        f(
            &body[..body.len() - 3],
            "snappy payload does not decompress",
        );
    }

    fn labels_strategy() -> impl Strategy<Value = Labels> {
        proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{1,12}", 0..6)
            .prop_map(Labels::from_pairs)
    }

    /// Mostly decimal values (the common case), some arbitrary bit patterns.
    fn value_strategy() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            (any::<i32>(), 0u32..8)
                .prop_map(|(x, k)| (f64::from(x) / 10f64.powi(k as i32)).to_bits()),
            (-1000i64..1000).prop_map(|x| (x as f64).to_bits()),
        ]
    }

    proptest! {
        #[test]
        fn any_series_batch_round_trips(
            batch in proptest::collection::vec((any::<u64>(), labels_strategy()), 1..40),
            compress in any::<bool>(),
        ) {
            let refs: Vec<(u64, &Labels)> = batch.iter().map(|(r, l)| (*r, l)).collect();
            let got = decode_all(&encode_all(RecordRef::Series(&refs), compress));
            prop_assert_eq!(got, vec![WalRecord::Series(batch)]);
        }

        #[test]
        fn decoding_arbitrary_bytes_errors_instead_of_panicking(
            ty in prop::sample::select(vec![1u8, 2, 3, 0x81, 0x82, 0x83]),
            rest in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            let mut body = vec![ty];
            body.extend(rest);
            let (mut se, mut sa, mut sc) = (Vec::new(), Vec::new(), Vec::new());
            let _ = decode(&body, &mut se, &mut sa, &mut sc);
        }

        #[test]
        fn flipping_any_byte_of_a_compressed_body_never_panics(
            n in 20usize..300, at in any::<prop::sample::Index>(), x in 1u8..=255
        ) {
            let s: Vec<_> = (0..n as u64).map(|i| (i, 5, (i % 9) as f64)).collect();
            let buf = encode_all(RecordRef::Samples(&s), true);
            let mut body = bodies(&buf)[0].to_vec();
            let i = 1 + at.index(body.len() - 1);
            body[i] ^= x;
            let (mut se, mut sa, mut sc) = (Vec::new(), Vec::new(), Vec::new());
            let _ = decode(&body, &mut se, &mut sa, &mut sc);
        }

        #[test]
        fn any_samples_batch_round_trips_bit_exact(
            batch in proptest::collection::vec((any::<u64>(), any::<i64>(), value_strategy()), 1..300),
            compress in any::<bool>(),
        ) {
            let s: Vec<(u64, i64, f64)> = batch.iter().map(|&(r, t, v)| (r, t, f64::from_bits(v))).collect();
            let got = decode_all(&encode_all(RecordRef::Samples(&s), compress));
            let WalRecord::Samples(got) = &got[0] else { panic!("want samples") };
            prop_assert_eq!(bits(got), batch);
        }
    }
}
