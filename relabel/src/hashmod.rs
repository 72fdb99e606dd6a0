//! The `hashmod` action's hash, bit-for-bit Prometheus'.
//!
//! Prometheus shards scrape targets and remote writes with `hashmod`, so a
//! Tessera instance that computes a different shard for the same series
//! would silently split or duplicate a fleet's data. The value is: the MD5
//! of the joined source values, its last 8 bytes read as a big-endian `u64`,
//! modulo `modulus` (`model/relabel/relabel.go`; the last 8 bytes rather
//! than the first keep the result of Prometheus releases before 2.0).

use md5::{Digest, Md5};

/// The shard `hashmod` assigns to `value` (the source values joined with
/// the separator). `modulus` must be non-zero: config validation rejects a
/// hashmod rule without one.
pub fn hashmod(value: &[u8], modulus: u64) -> u64 {
    let digest = Md5::digest(value);
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest[8..16]);
    u64::from_be_bytes(tail) % modulus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_values_prometheus_computes() {
        // Expected values from Prometheus' model/relabel/relabel_test.go,
        // which real Prometheus computed.
        let f = |value: &str, modulus: u64, want: u64| {
            assert_eq!(
                hashmod(value.as_bytes(), modulus),
                want,
                "{value:?} % {modulus}"
            );
        };
        f("baz", 1000, 976);
        f("foo\nbar", 1000, 734);
    }

    #[test]
    fn uses_the_low_half_of_the_digest() {
        // md5("") = d41d8cd98f00b204 e9800998ecf8427e: the result must come
        // from the second half, not the first.
        let low = 0xe980_0998_ecf8_427e_u64;
        assert_eq!(hashmod(b"", u64::MAX), low % u64::MAX);
        assert_ne!(hashmod(b"", u64::MAX), 0xd41d_8cd9_8f00_b204_u64);
    }
}
