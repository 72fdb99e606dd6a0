//! WAL record bodies and their framing: what a Series or Samples record
//! looks like in bytes, and nothing about files.
//!
//! Frame: `[u32 LE body length][u32 LE crc32c(body)][body]`; body:
//! `[u8 type][entries...]` with no count (entries run to the end of the body),
//! so the encoder can split a large batch into several ~1 MiB records without
//! patching a count. Layout tables: `docs/format/wal.md`.

use crate::{Label, Labels};

/// Bytes of the frame header (length + crc).
pub(crate) const FRAME_HEADER_LEN: usize = 8;

/// Largest record body a reader accepts. Writers split batches at
/// [`TARGET_RECORD_BYTES`], so only a single absurd label set can hit it;
/// the bound keeps a damaged length field from making a reader allocate GiBs.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// A batch is split into records of about this size: big enough to amortise
/// the header and CRC setup, small enough to keep decode buffers cache-warm.
pub(crate) const TARGET_RECORD_BYTES: usize = 1 << 20;

pub(crate) const TYPE_SERIES: u8 = 1;
pub(crate) const TYPE_SAMPLES: u8 = 2;

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

/// Appends one frame holding `rec`'s entries from `from` on, stopping once the
/// body passes [`TARGET_RECORD_BYTES`]. Returns how many entries it took (at
/// least one when any are left).
pub(crate) fn append_frame(
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
            let mut n = 0;
            for (r, labels) in &entries[from..] {
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
        RecordRef::Samples(entries) => {
            out.push(TYPE_SAMPLES);
            let entries = &entries[from..];
            // Worst case per entry: two 10-byte varints + 8 value bytes; cap
            // the count so one frame stays near the target size.
            let n = entries.len().min(TARGET_RECORD_BYTES / 28 + 1);
            out.reserve(24 + n * 28);
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
    let body_len = out.len() - body_start;
    if body_len > MAX_RECORD_BYTES {
        out.truncate(start);
        return Err(super::WalError::RecordTooLarge { bytes: body_len });
    }
    let crc = crc32c::crc32c(&out[body_start..]);
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(taken)
}

/// Why a CRC-valid body did not decode: a writer bug or a format mismatch,
/// reported by the caller as corruption at the record's offset.
pub(crate) type DecodeError = &'static str;

/// Decodes one body into the reusable output vectors (cleared first) and
/// returns its type. Only the vector of that type is touched.
pub(crate) fn decode(
    body: &[u8],
    series: &mut Vec<(u64, Labels)>,
    samples: &mut Vec<(u64, i64, f64)>,
) -> Result<u8, DecodeError> {
    let (&ty, mut b) = body.split_first().ok_or("empty record body")?;
    match ty {
        TYPE_SERIES => {
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
            Ok(TYPE_SERIES)
        }
        TYPE_SAMPLES => {
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
            Ok(TYPE_SAMPLES)
        }
        _ => Err("unknown record type"),
    }
}

/// True when `t` is a record type this version knows; the resync scan that
/// tells a torn tail from mid-file corruption uses it to reject noise cheaply.
pub(crate) fn is_known_type(t: u8) -> bool {
    t == TYPE_SERIES || t == TYPE_SAMPLES
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[inline]
fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

#[inline]
fn get_uvarint(b: &mut &[u8]) -> Result<u64, DecodeError> {
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
fn get_varint(b: &mut &[u8]) -> Result<i64, DecodeError> {
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

    fn encode_all(rec: RecordRef<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut from = 0;
        while from < rec.len() {
            from += append_frame(&rec, from, &mut out).unwrap();
        }
        out
    }

    /// Splits concatenated frames and decodes each, checking the CRC.
    fn decode_all(mut buf: &[u8]) -> Vec<WalRecord> {
        let (mut se, mut sa) = (Vec::new(), Vec::new());
        let mut out = Vec::new();
        while !buf.is_empty() {
            let len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
            let body = &buf[8..8 + len];
            assert_eq!(crc, crc32c::crc32c(body));
            match decode(body, &mut se, &mut sa).unwrap() {
                TYPE_SERIES => out.push(WalRecord::Series(se.clone())),
                _ => out.push(WalRecord::Samples(sa.clone())),
            }
            buf = &buf[8 + len..];
        }
        out
    }

    #[test]
    fn samples_with_extreme_deltas_round_trip() {
        let s = vec![
            (5, 1000, 1.5),
            (0, i64::MIN, f64::NAN),
            (u64::MAX, i64::MAX, -0.0),
            (5, 999, crate::stale_nan()),
        ];
        let got = decode_all(&encode_all(RecordRef::Samples(&s)));
        let WalRecord::Samples(got) = &got[0] else {
            panic!("want samples")
        };
        // Compare bits so NaN payloads (the staleness marker) are checked too.
        let bits = |v: &[(u64, i64, f64)]| {
            v.iter()
                .map(|e| (e.0, e.1, e.2.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(got), bits(&s));
    }

    #[test]
    fn samples_encode_compactly_for_close_refs_and_times() {
        let s: Vec<_> = (0..500)
            .map(|i| (1000 + i, 1_700_000_000_000 + i as i64, 1.0))
            .collect();
        let bytes = encode_all(RecordRef::Samples(&s));
        // 8 header + 1 type + 24 base + 499 * (2 + 2 + 8)
        assert!(
            bytes.len() <= 8 + 1 + 24 + 499 * 12,
            "{} bytes",
            bytes.len()
        );
    }

    #[test]
    fn large_batches_split_into_records_near_the_target_size() {
        let s: Vec<_> = (0..200_000u64).map(|i| (i, i as i64, 0.5)).collect();
        let recs = decode_all(&encode_all(RecordRef::Samples(&s)));
        assert!(recs.len() > 1);
        let flat: Vec<_> = recs
            .into_iter()
            .flat_map(|r| match r {
                WalRecord::Samples(v) => v,
                WalRecord::Series(_) => panic!("want samples"),
            })
            .collect();
        assert_eq!(flat, s);
    }

    #[test]
    fn decode_rejects_malformed_bodies() {
        let (mut se, mut sa) = (Vec::new(), Vec::new());
        let f = |body: &[u8], se: &mut Vec<_>, sa: &mut Vec<_>, want: &str| {
            assert_eq!(decode(body, se, sa), Err(want), "{body:?}");
        };
        f(&[], &mut se, &mut sa, "empty record body");
        f(&[9], &mut se, &mut sa, "unknown record type");
        f(
            &[TYPE_SAMPLES, 1, 2],
            &mut se,
            &mut sa,
            "samples record shorter than its 24-byte base entry",
        );
        f(
            &[TYPE_SERIES, 1, 0x80],
            &mut se,
            &mut sa,
            "varint truncated",
        );
        f(
            &[TYPE_SERIES, 1, 1, 5, b'a'],
            &mut se,
            &mut sa,
            "label string runs past the record",
        );
        f(
            &[TYPE_SERIES, 1, 2, 1, b'b', 1, b'x', 1, b'a', 1, b'y'],
            &mut se,
            &mut sa,
            "series labels not sorted by name or not unique",
        );
    }

    fn labels_strategy() -> impl Strategy<Value = Labels> {
        proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{1,12}", 0..6)
            .prop_map(Labels::from_pairs)
    }

    proptest! {
        #[test]
        fn any_series_batch_round_trips(
            batch in proptest::collection::vec((any::<u64>(), labels_strategy()), 1..40)
        ) {
            let refs: Vec<(u64, &Labels)> = batch.iter().map(|(r, l)| (*r, l)).collect();
            let got = decode_all(&encode_all(RecordRef::Series(&refs)));
            prop_assert_eq!(got, vec![WalRecord::Series(batch)]);
        }

        #[test]
        fn decoding_arbitrary_bytes_errors_instead_of_panicking(
            ty in 1u8..=2,
            rest in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            let mut body = vec![ty];
            body.extend(rest);
            let (mut se, mut sa) = (Vec::new(), Vec::new());
            let _ = decode(&body, &mut se, &mut sa);
        }

        #[test]
        fn any_samples_batch_round_trips_bit_exact(
            batch in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<u64>()), 1..300)
        ) {
            let s: Vec<(u64, i64, f64)> = batch.iter().map(|&(r, t, v)| (r, t, f64::from_bits(v))).collect();
            let got = decode_all(&encode_all(RecordRef::Samples(&s)));
            let WalRecord::Samples(got) = &got[0] else { panic!("want samples") };
            let got: Vec<_> = got.iter().map(|&(r, t, v)| (r, t, v.to_bits())).collect();
            prop_assert_eq!(got, batch);
        }
    }
}
