//! Remote write 1.0 decoding: snappy block format, then protobuf.
//!
//! [`decode_v1`] turns an HTTP body into a [`proto::WriteRequest`] under the
//! size limits of [`DecodeLimits`]; [`crate::validate::validate`] then turns
//! that into label sets and samples. The decoded length is read from the
//! snappy header and checked before any buffer is sized, so a small body that
//! declares gigabytes (a decompression bomb) costs nothing.

use bytes::Bytes;
use prost::Message;

use super::proto;
use crate::error::IngestError;

/// Size limits applied while decoding and validating one request.
///
/// The defaults leave Prometheus' own client far inside them: with
/// `max_samples_per_send: 2000` (its default) a dcgm-exporter request is
/// about 0.6 MiB decoded and 0.1 MiB compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest HTTP body accepted, in bytes, before decompression.
    pub max_compressed_bytes: usize,
    /// Largest decoded protobuf accepted, in bytes, as declared by the snappy
    /// header.
    pub max_decoded_bytes: usize,
    /// Most labels one series may carry, `__name__` included.
    pub max_labels_per_series: usize,
    /// Longest label name, in bytes.
    pub max_label_name_bytes: usize,
    /// Longest label value, in bytes.
    pub max_label_value_bytes: usize,
}

impl Default for DecodeLimits {
    /// - 32 MiB decoded: the size Prometheus itself caps a decoded remote-read
    ///   body at, ~50x a default-sized remote-write request, and small enough
    ///   that a handful of concurrent requests cannot exhaust memory.
    /// - 32 MiB compressed: equal to the decoded limit because real bodies
    ///   compress 5-10x; a larger body cannot hold a request under the decoded
    ///   limit (snappy expands incompressible input by at most 1/6), so a
    ///   separate larger number would only delay the refusal.
    /// - 128 labels: above Mimir's default of 30 on purpose, because
    ///   kube-state-metrics' `kube_pod_labels` routinely carries dozens and
    ///   a Prometheus-compatible receiver must not drop them by default.
    /// - 1024-byte names and 4096-byte values: Mimir defaults to 1024 and
    ///   2048; values get more room for long image references and URLs.
    fn default() -> Self {
        DecodeLimits {
            max_compressed_bytes: 32 << 20,
            max_decoded_bytes: 32 << 20,
            max_labels_per_series: 128,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 4096,
        }
    }
}

/// Upper bound of decoded bytes per compressed byte in snappy's block format.
const MAX_SNAPPY_EXPANSION: usize = 22;

/// Decodes a remote write 1.0 body (snappy block format around a protobuf
/// `prometheus.WriteRequest`).
///
/// Refuses with [`IngestError::BodyTooLarge`] or
/// [`IngestError::DecodedTooLarge`] before decompressing anything, and with
/// [`IngestError::InvalidSnappy`] or [`IngestError::InvalidProtobuf`] for
/// malformed input. A request with no series is valid.
pub fn decode_v1(body: &[u8], limits: &DecodeLimits) -> Result<proto::WriteRequest, IngestError> {
    if body.len() > limits.max_compressed_bytes {
        return Err(IngestError::BodyTooLarge {
            size: body.len(),
            limit: limits.max_compressed_bytes,
        });
    }
    let declared = match snap::raw::decompress_len(body) {
        Ok(n) => n,
        // snap refuses headers above u32::MAX itself; that is a bomb too, not
        // a malformed block, so it gets the same answer as our own limit.
        Err(snap::Error::TooBig { given, .. }) => {
            return Err(IngestError::DecodedTooLarge {
                declared: given,
                limit: limits.max_decoded_bytes,
            });
        }
        Err(e) => return Err(IngestError::InvalidSnappy(e)),
    };
    if declared > limits.max_decoded_bytes {
        return Err(IngestError::DecodedTooLarge {
            declared: declared as u64,
            limit: limits.max_decoded_bytes,
        });
    }
    // Snappy's densest element, a 3-byte copy of 64 bytes, expands 64/3 < 22
    // times. A header declaring more is corrupt; refusing it here keeps a
    // 10-byte body from making us zero-fill a max_decoded_bytes buffer.
    if declared > body.len().saturating_mul(MAX_SNAPPY_EXPANSION) {
        return Err(IngestError::ImpossibleSnappyLength {
            declared,
            compressed: body.len(),
        });
    }
    let mut raw = vec![0u8; declared];
    let n = snap::raw::Decoder::new()
        .decompress(body, &mut raw)
        .map_err(IngestError::InvalidSnappy)?;
    raw.truncate(n);
    // Decode from `Bytes`, not `&[u8]`: prost fills each `bytes` field (every
    // label name and value) through `Buf::copy_to_bytes`, which on a slice
    // allocates a temporary copy before the copy into the field's `Vec<u8>`,
    // while on `Bytes` it is a zero-copy split. Half the allocations of the
    // whole decode; see `decode_from_slice` in benches/benches/remote_write.rs.
    proto::WriteRequest::decode(Bytes::from(raw)).map_err(IngestError::InvalidProtobuf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn densest_snappy_stays_under_the_expansion_bound() {
        // Long runs compress best (all 64-byte copies); they must still pass
        // the plausibility check with room to spare.
        let raw = vec![0u8; 1 << 20];
        let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let ratio = raw.len() as f64 / body.len() as f64;
        assert!(
            ratio > 20.0 && ratio < MAX_SNAPPY_EXPANSION as f64,
            "{ratio}"
        );
        // Zeros are not a valid WriteRequest (field number 0), so the error
        // must come from protobuf: snappy and the bound let the body through.
        assert!(matches!(
            decode_v1(&body, &DecodeLimits::default()),
            Err(IngestError::InvalidProtobuf(_))
        ));
    }
}
