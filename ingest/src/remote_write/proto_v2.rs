//! Remote write 2.0 protobuf messages (`io.prometheus.write.v2`, Prometheus'
//! `prompb/io/prometheus/write/v2/types.proto`), hand-written with prost so
//! no `protoc` is needed at build time.
//!
//! The server decodes the hot messages with its own reader
//! (`remote_write::v2`); these types are what it decodes into, what tests
//! build payloads from, and the reference it is checked against
//! (`ingest/tests/decode_v2_differential.rs`).
//!
//! Start timestamps are decoded in both places senders have put them:
//! [`TimeSeries::created_timestamp`] (field 6, Prometheus 2.54–3.7) and
//! [`Sample::start_timestamp`] / [`Histogram::start_timestamp`] (3.8+, after
//! the field 6 was reserved). Tessera accepts them and does not store them.
//! Native histograms and exemplars are decoded far enough to count them (they
//! are refused per item, as in 1.0).

/// `io.prometheus.write.v2.Request`. Fields 1–3 are reserved (they were
/// 1.0's), so a 1.0 body read as 2.0 is an empty request, not garbage.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// Every string of the request, referenced by index; entry 0 must be
    /// the empty string. Bytes rather than `String` so a non-UTF-8 label is
    /// a per-series validation error, as in 1.0, not a failed request.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub symbols: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<TimeSeries>,
}

/// `io.prometheus.write.v2.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// (name, value) pairs of indexes into [`Request::symbols`].
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub histograms: Vec<Histogram>,
    #[prost(message, repeated, tag = "4")]
    pub exemplars: Vec<Exemplar>,
    #[prost(message, optional, tag = "5")]
    pub metadata: Option<Metadata>,
    /// Prometheus 2.54–3.7 only (reserved since 3.8); 0 = unset.
    #[prost(int64, tag = "6")]
    pub created_timestamp: i64,
}

/// `io.prometheus.write.v2.Sample`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
    /// Prometheus 3.8+; 0 = unset.
    #[prost(int64, tag = "3")]
    pub start_timestamp: i64,
}

/// `io.prometheus.write.v2.Histogram`, reduced to its timestamps: native
/// histograms are counted and refused for now, so the bucket fields
/// (1–14, 16) are skipped by prost.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    /// Prometheus 3.8+; 0 = unset.
    #[prost(int64, tag = "17")]
    pub start_timestamp: i64,
}

/// `io.prometheus.write.v2.Exemplar` (counted and refused for now).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `io.prometheus.write.v2.Metadata`: the series' metric family's type,
/// help and unit (the family name is the series' `__name__`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    /// `MetricType`: the same numbers as 1.0's (0 unspecified, 1 counter, 2
    /// gauge, 3 histogram, 4 gaugehistogram, 5 summary, 6 info, 7 stateset).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(uint32, tag = "3")]
    pub help_ref: u32,
    #[prost(uint32, tag = "4")]
    pub unit_ref: u32,
}
