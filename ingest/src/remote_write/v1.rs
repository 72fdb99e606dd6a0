//! Remote write 1.0 decoding: snappy block format, then protobuf.
//!
//! [`decode_v1`] turns an HTTP body into a [`proto::WriteRequest`] under the
//! size limits of [`DecodeLimits`]; [`crate::validate::validate`] then turns
//! that into label sets and samples. The decoded length is read from the
//! snappy header and checked before any buffer is sized, so a small body that
//! declares gigabytes (a decompression bomb) costs nothing. The protobuf
//! itself is read by hand with the shared [`super::wire`] reader.

use super::proto;
pub use super::wire::MAX_STRUCT_EXPANSION;
use super::wire::{self, Budget, Cursor, Fail, LEN, count_fields, expect, with_prost};
use crate::error::{IngestError, ProtobufError};

/// Size limits applied while decoding and validating one request.
///
/// The defaults leave Prometheus' own client far inside them: with
/// `max_samples_per_send: 2000` (its default) a dcgm-exporter request is
/// about 0.6 MiB decoded and 0.05 MiB compressed (benches/benches/remote_write.rs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest HTTP body accepted, in bytes, before decompression.
    pub max_compressed_bytes: usize,
    /// Largest decoded protobuf accepted, in bytes, as declared by the snappy
    /// header. Also bounds the memory of the decoded request: its vectors of
    /// series, labels and samples may take at most [`MAX_STRUCT_EXPANSION`]
    /// times this.
    pub max_decoded_bytes: usize,
    /// Most labels one series may carry, `__name__` included.
    pub max_labels_per_series: usize,
    /// Longest label name, in bytes.
    pub max_label_name_bytes: usize,
    /// Longest label value, in bytes.
    pub max_label_value_bytes: usize,
    /// Samples stamped more than this many milliseconds after the wall
    /// clock are refused (`None`: no check). One sample from a client with
    /// a broken clock would otherwise stretch the head to that time, and
    /// the block cuts that follow would move the head's lower bound past
    /// every honest sample, which would then be refused as out of bounds.
    pub max_future_ms: Option<i64>,
}

impl Default for DecodeLimits {
    /// - 32 MiB decoded: the size Prometheus itself caps a decoded remote-read
    ///   body at, ~50x a default-sized remote-write request, and small enough
    ///   that a handful of concurrent requests cannot exhaust memory.
    /// - 32 MiB compressed: equal to the decoded limit. Real bodies compress
    ///   5-10x, so only an incompressible one (snappy expands those by at most
    ///   1/6) could be refused here yet decode under the decoded limit.
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
            max_future_ms: None,
        }
    }
}

/// Decodes a remote write 1.0 body (snappy block format around a protobuf
/// `prometheus.WriteRequest`).
///
/// Refuses with [`IngestError::BodyTooLarge`], [`IngestError::DecodedTooLarge`]
/// or [`IngestError::InvalidSnappy`] (a header declaring more than the body
/// can hold) before allocating anything, with
/// [`IngestError::ExpandsTooMuch`] before allocating vectors past the memory
/// budget ([`MAX_STRUCT_EXPANSION`]), and with [`IngestError::InvalidSnappy`]
/// or [`IngestError::InvalidProtobuf`] for malformed input. A request with no
/// series is valid.
///
/// The decompression buffer is allocated per request: reusing a thread-local
/// one measured no faster (snappy is ~2% of decode time; see
/// benches/benches/remote_write.rs), so the simpler code stays.
pub fn decode_v1(body: &[u8], limits: &DecodeLimits) -> Result<proto::WriteRequest, IngestError> {
    let raw = wire::decompress(body, limits)?;
    let mut budget = wire::budget_for(limits);
    decode_write_request(&raw, &mut budget).map_err(|f| f.into_error(budget.total(), raw.len()))
}

// The hot messages of `WriteRequest` (`WriteRequest`, `TimeSeries`,
// `Label`, `Sample`) are read by hand (see the `wire` module for why); the
// rare ones (`Exemplar`, `Histogram`, `MetricMetadata`) go to prost.

fn decode_write_request(buf: &[u8], budget: &mut Budget) -> Result<proto::WriteRequest, Fail> {
    let mut c = Cursor::new(buf);
    let [n_series] = count_fields(c, [1]);
    budget.charge::<proto::TimeSeries>(n_series, 0)?;
    let mut req = proto::WriteRequest {
        timeseries: Vec::with_capacity(n_series),
        metadata: Vec::new(),
    };
    while c.has_more() {
        let (field, wire_type, offset) = c.key()?;
        match field {
            1 => {
                expect("WriteRequest", field, wire_type, LEN, offset)?;
                let sub = c.sub("TimeSeries")?;
                req.timeseries.push(time_series(sub, budget)?);
            }
            3 => {
                expect("WriteRequest", field, wire_type, LEN, offset)?;
                let sub = c.sub("MetricMetadata")?;
                budget.charge::<proto::MetricMetadata>(1, offset)?;
                req.metadata.push(with_prost("MetricMetadata", sub)?);
            }
            _ => c.skip(field, wire_type, offset, 0)?,
        }
    }
    Ok(req)
}

fn time_series(mut c: Cursor<'_>, budget: &mut Budget) -> Result<proto::TimeSeries, Fail> {
    let [n_labels, n_samples] = count_fields(c, [1, 2]);
    budget.charge::<proto::Label>(n_labels, c.pos)?;
    budget.charge::<proto::Sample>(n_samples, c.pos)?;
    let mut ts = proto::TimeSeries {
        labels: Vec::with_capacity(n_labels),
        samples: Vec::with_capacity(n_samples),
        exemplars: Vec::new(),
        histograms: Vec::new(),
    };
    while c.has_more() {
        let (field, wire_type, offset) = c.key()?;
        match field {
            1 => {
                expect("TimeSeries", field, wire_type, LEN, offset)?;
                ts.labels.push(label(c.sub("Label")?)?);
            }
            2 => {
                expect("TimeSeries", field, wire_type, LEN, offset)?;
                let (value, timestamp, _) = wire::sample(c.sub("Sample")?, false)?;
                ts.samples.push(proto::Sample { value, timestamp });
            }
            3 => {
                expect("TimeSeries", field, wire_type, LEN, offset)?;
                budget.charge::<proto::Exemplar>(1, offset)?;
                ts.exemplars
                    .push(with_prost("Exemplar", c.sub("Exemplar")?)?);
            }
            4 => {
                expect("TimeSeries", field, wire_type, LEN, offset)?;
                budget.charge::<proto::Histogram>(1, offset)?;
                ts.histograms
                    .push(with_prost("Histogram", c.sub("Histogram")?)?);
            }
            _ => c.skip(field, wire_type, offset, 1)?,
        }
    }
    Ok(ts)
}

fn label(mut c: Cursor<'_>) -> Result<proto::Label, ProtobufError> {
    let mut l = proto::Label::default();
    while c.has_more() {
        let (field, wire_type, offset) = c.key()?;
        match field {
            // A repeated scalar field keeps its last value (protobuf's
            // "last one wins"), as prost does.
            1 => {
                expect("Label", field, wire_type, LEN, offset)?;
                l.name = c.sub("Label.name")?.rest().to_vec();
            }
            2 => {
                expect("Label", field, wire_type, LEN, offset)?;
                l.value = c.sub("Label.value")?.rest().to_vec();
            }
            _ => c.skip(field, wire_type, offset, 2)?,
        }
    }
    Ok(l)
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
            ratio > 20.0 && ratio < crate::snappy::MAX_SNAPPY_EXPANSION as f64,
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
