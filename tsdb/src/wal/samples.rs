//! The columnar Samples body of format version 2 (record type 3): refs,
//! then timestamps, then values, each column small because a remote-write
//! batch is many series at nearly the same instant. Layout table:
//! `docs/format/wal.md`.
//!
//! Values are stored as decimals when that is exact: Prometheus values are
//! mostly parsed from decimal text (`37`, `245.123`, `1.7e9`), so `v` is
//! usually `x / 10^k` for a small integer `x` and `k <= 6`. Such a value is
//! a varint of `x` minus the previous `x` of the same `k` in the record,
//! with `k` in its low 3 bits; anything else (NaN staleness markers, binary
//! fractions) is tag 7 plus the raw 8 bytes. The encoder checks that
//! decoding gives back the exact bits, so the round trip is bit-exact.

use super::record::{DecodeError, get_uvarint, get_varint, put_uvarint, put_varint, zigzag};

/// Value tag for a raw f64 (8 LE bytes follow).
const TAG_RAW: u64 = 7;
/// Decimal scales: tag `k` means `v = x / 10^k`.
const SCALE: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];
/// Integers of at most this magnitude convert to f64 exactly.
const EXACT: f64 = (1u64 << 53) as f64;

/// Most bytes one entry can take: ref and t varints plus a raw value.
pub(crate) const MAX_ENTRY_BYTES: usize = 10 + 10 + 9;

/// `(tag, x)` with `x / 10^tag == v` bit for bit, or `None`.
#[inline]
fn as_decimal(v: f64) -> Option<(usize, i64)> {
    for (k, &p) in SCALE.iter().enumerate() {
        let x = (v * p).round();
        // NaN and infinities are not finite.
        if !x.is_finite() || x.abs() >= EXACT {
            return None;
        }
        // Check what the decoder computes, from the integer: this rejects -0.0.
        let x = x as i64;
        if (x as f64 / p).to_bits() == v.to_bits() {
            return Some((k, x));
        }
    }
    None
}

/// Appends the columnar encoding of `entries` (at least one) to `out`.
pub(crate) fn put_samples(out: &mut Vec<u8>, entries: &[(u64, i64, f64)]) {
    let (r0, t0, _) = entries[0];
    put_uvarint(out, entries.len() as u64);
    put_uvarint(out, r0);
    put_varint(out, t0);
    let mut prev = r0;
    for &(r, _, _) in &entries[1..] {
        put_varint(out, r.wrapping_sub(prev) as i64);
        prev = r;
    }
    for &(_, t, _) in &entries[1..] {
        put_varint(out, t.wrapping_sub(t0));
    }
    let mut last = [0i64; SCALE.len()];
    for &(_, _, v) in entries {
        match as_decimal(v) {
            Some((k, x)) => {
                // |x| < 2^53, so the zigzag delta fits in 55 bits and the shift is lossless.
                let d = zigzag(x.wrapping_sub(last[k]));
                put_uvarint(out, (d << 3) | k as u64);
                last[k] = x;
            }
            None => {
                out.push(TAG_RAW as u8);
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
        }
    }
}

/// Decodes a columnar Samples payload (after the type byte) into `samples`
/// (cleared first).
pub(crate) fn get_samples(
    mut b: &[u8],
    samples: &mut Vec<(u64, i64, f64)>,
) -> Result<(), DecodeError> {
    samples.clear();
    let n = get_uvarint(&mut b)? as usize;
    // Every entry takes at least one byte (its value); checking first keeps
    // a damaged count from a huge allocation.
    if n == 0 || n > b.len() {
        return Err("samples count is zero or exceeds the record size");
    }
    samples.reserve(n);
    let mut r = get_uvarint(&mut b)?;
    let t0 = get_varint(&mut b)?;
    samples.push((r, t0, 0.0));
    for _ in 1..n {
        r = r.wrapping_add(get_varint(&mut b)? as u64);
        samples.push((r, t0, 0.0));
    }
    for s in &mut samples[1..] {
        s.1 = t0.wrapping_add(get_varint(&mut b)?);
    }
    let mut last = [0i64; SCALE.len()];
    for s in samples.iter_mut() {
        let u = get_uvarint(&mut b)?;
        let k = (u & 7) as usize;
        if u == TAG_RAW {
            let raw = b.get(..8).ok_or("samples value truncated")?;
            s.2 = f64::from_bits(u64::from_le_bytes(raw.try_into().unwrap()));
            b = &b[8..];
        } else if k >= SCALE.len() {
            return Err("samples value has a bad tag");
        } else {
            let d = u >> 3;
            let x = last[k].wrapping_add(((d >> 1) as i64) ^ -((d & 1) as i64));
            last[k] = x;
            s.2 = x as f64 / SCALE[k];
        }
    }
    if !b.is_empty() {
        return Err("trailing bytes after the last sample");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_values_take_few_bytes_and_others_stay_raw() {
        let f = |v: f64, want_len: usize| {
            let mut out = Vec::new();
            put_samples(&mut out, &[(5, 10, v)]);
            // count, ref, t: 3 bytes
            assert_eq!(out.len() - 3, want_len, "{v}");
            let mut got = Vec::new();
            get_samples(&out, &mut got).unwrap();
            assert_eq!(got[0].2.to_bits(), v.to_bits(), "{v}");
        };
        f(0.0, 1);
        f(37.0, 2);
        f(245.123, 4);
        f(1.7e9, 5);
        f(-0.0, 9);
        f(f64::NAN, 9);
        f(f64::from_bits(0x7ff0_0000_0000_0002), 9);
        f(f64::INFINITY, 9);
        f(0.1 + 0.2, 9);
        f(1e300, 9);
        f(f64::MIN_POSITIVE, 9);
    }
}
