//! Remote read protobuf messages (`prometheus/prompb`), hand-written with
//! prost like the remote-write ones, whose `Label`, `Sample` and
//! `TimeSeries` they share.
//!
//! Field numbers follow `prompb/remote.proto` and `prompb/types.proto`
//! (Prometheus v2.42.0). Enums are carried as `i32` so an unknown value
//! decodes and can be refused with a message instead of failing the decode.

pub use crate::remote_write::proto::{Label, Sample, TimeSeries};

/// `ReadRequest.ResponseType.SAMPLES`: one snappy-compressed
/// [`ReadResponse`].
pub const SAMPLES: i32 = 0;
/// `ReadRequest.ResponseType.STREAMED_XOR_CHUNKS`: framed
/// [`ChunkedReadResponse`]s.
pub const STREAMED_XOR_CHUNKS: i32 = 1;

/// `LabelMatcher.Type` values.
pub const MATCH_EQ: i32 = 0;
pub const MATCH_NEQ: i32 = 1;
pub const MATCH_RE: i32 = 2;
pub const MATCH_NRE: i32 = 3;

/// `Chunk.Encoding.XOR`, Prometheus' float chunk.
pub const CHUNK_XOR: i32 = 1;

/// `prometheus.ReadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRequest {
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// Response types the client accepts, in order of preference; empty
    /// means [`SAMPLES`].
    #[prost(int32, repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// `prometheus.Query`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Query {
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelMatcher {
    /// [`MATCH_EQ`], [`MATCH_NEQ`], [`MATCH_RE`] or [`MATCH_NRE`].
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `prometheus.ReadHints`: advisory only; a server returns raw data.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadHints {
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    #[prost(string, tag = "2")]
    pub func: String,
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
    #[prost(string, repeated, tag = "5")]
    pub grouping: Vec<String>,
    #[prost(bool, tag = "6")]
    pub by: bool,
    #[prost(int64, tag = "7")]
    pub range_ms: i64,
}

/// `prometheus.ReadResponse`: one result per query, in query order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

/// `prometheus.QueryResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryResult {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.ChunkedReadResponse`: the message of one streamed frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub chunked_series: Vec<ChunkedSeries>,
    /// Index of the query in the request this frame answers.
    #[prost(int64, tag = "2")]
    pub query_index: i64,
}

/// `prometheus.ChunkedSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedSeries {
    /// Sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// In start-time order.
    #[prost(message, repeated, tag = "2")]
    pub chunks: Vec<Chunk>,
}

/// `prometheus.Chunk`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Chunk {
    /// Inclusive.
    #[prost(int64, tag = "1")]
    pub min_time_ms: i64,
    /// Inclusive.
    #[prost(int64, tag = "2")]
    pub max_time_ms: i64,
    /// [`CHUNK_XOR`] for float chunks.
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}
