//! Prometheus remote read (`POST /api/v1/read`): the protobuf messages
//! ([`proto`]), request decoding, response-type negotiation, and both
//! response encodings: `SAMPLES` ([`samples_response`], one snappy block)
//! and `STREAMED_XOR_CHUNKS` ([`frame`], CRC-checked frames of Prometheus
//! XOR chunks built by [`chunked_series`]).
//!
//! It lives beside remote write because the two share messages (`Label`,
//! `Sample`, `TimeSeries`) and the bounded snappy decoding, and because both
//! the server (the binary's handler) and a client (a query tier reading raw
//! series from stores) need the same code. It knows nothing of HTTP.

pub mod frame;
pub mod proto;

use prost::Message;
use tessera_tsdb::chunk::prom_xor;
use tessera_tsdb::{Labels, MatchOp, Matcher, SeriesSamples};

use crate::snappy::{SnappyError, decompress_bounded};

/// Largest read request accepted, compressed or decoded: Prometheus'
/// `decodeReadLimit` (32 MiB). Real requests are a few hundred bytes.
pub const MAX_READ_REQUEST_BYTES: usize = 32 << 20;

/// The `Content-Type` of a `SAMPLES` response (and of requests); the body
/// is snappy-compressed (`Content-Encoding: snappy`).
pub const SAMPLES_CONTENT_TYPE: &str = "application/x-protobuf";

/// Why a read request is refused. Prometheus answers all of these with 400.
#[derive(Debug, thiserror::Error)]
pub enum ReadRequestError {
    #[error("read request is {size} bytes, over the limit of {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },
    #[error("{0}")]
    Snappy(#[from] SnappyError),
    #[error("invalid protobuf ReadRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid protobuf ReadRequest: {0}")]
    Wire(String),
    #[error(
        "read request would take {need} bytes of memory once decoded, over the limit of {limit}: \
         it holds implausibly many tiny queries, matchers or response types"
    )]
    ExpandsTooMuch { need: usize, limit: usize },
    #[error(
        "none of the accepted response types {0:?} is supported (0 = SAMPLES, 1 = STREAMED_XOR_CHUNKS)"
    )]
    UnsupportedResponseTypes(Vec<i32>),
    #[error("query {query}: unknown label matcher type {kind} for label {name:?}")]
    UnknownMatcherType {
        query: usize,
        kind: i32,
        name: String,
    },
    #[error("query {query}: {source}")]
    BadMatcher {
        query: usize,
        source: tessera_tsdb::MatcherError,
    },
}

/// The answer chosen for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseType {
    Samples,
    StreamedXorChunks,
}

/// Decodes a snappy-compressed `ReadRequest` of at most
/// [`MAX_READ_REQUEST_BYTES`], checking the declared length before
/// allocating.
pub fn decode_read_request(body: &[u8]) -> Result<proto::ReadRequest, ReadRequestError> {
    if body.len() > MAX_READ_REQUEST_BYTES {
        return Err(ReadRequestError::BodyTooLarge {
            size: body.len(),
            limit: MAX_READ_REQUEST_BYTES,
        });
    }
    let raw = decompress_bounded(body, MAX_READ_REQUEST_BYTES)?;
    let limit = MIN_STRUCT_BUDGET.max(raw.len().saturating_mul(crate::MAX_STRUCT_EXPANSION));
    let need = wire::decoded_size(&raw).map_err(ReadRequestError::Wire)?;
    if need > limit {
        return Err(ReadRequestError::ExpandsTooMuch { need, limit });
    }
    Ok(proto::ReadRequest::decode(raw.as_slice())?)
}

/// Memory a decoded request may always take, however small its protobuf:
/// a real request (one query, a few matchers) takes a few hundred bytes of
/// structs for a few dozen on the wire.
const MIN_STRUCT_BUDGET: usize = 1 << 20;

/// Sizing a `ReadRequest` before decoding it. An empty `Query` is 2 bytes on
/// the wire and over 100 in memory, so 32 MiB of them would take gigabytes;
/// like remote write (`MAX_STRUCT_EXPANSION`), the memory the decoded
/// structs will take is counted from the wire first.
mod wire {
    use std::mem::size_of;

    use prost::bytes::Buf;
    use prost::encoding::{WireType, decode_key, decode_varint};

    use super::proto::{LabelMatcher, Query, ReadRequest};

    /// What [`fields`] calls for each field.
    type OnField<'a> = dyn FnMut(u32, WireType, &[u8]) -> Result<(), String> + 'a;

    /// Calls `f` with each field of a message: number, wire type and, for
    /// length-delimited fields, the payload.
    fn fields(mut buf: &[u8], f: &mut OnField<'_>) -> Result<(), String> {
        while !buf.is_empty() {
            let (tag, wire) = decode_key(&mut buf).map_err(|e| e.to_string())?;
            let skip = match wire {
                WireType::Varint => {
                    decode_varint(&mut buf).map_err(|e| e.to_string())?;
                    0
                }
                WireType::SixtyFourBit => 8,
                WireType::ThirtyTwoBit => 4,
                WireType::LengthDelimited => {
                    decode_varint(&mut buf).map_err(|e| e.to_string())? as usize
                }
                WireType::StartGroup | WireType::EndGroup => {
                    return Err(format!("field {tag}: groups are not supported"));
                }
            };
            if skip > buf.len() {
                return Err(format!(
                    "field {tag} needs {skip} bytes, only {} left",
                    buf.len()
                ));
            }
            f(tag, wire, &buf[..skip])?;
            buf.advance(skip);
        }
        Ok(())
    }

    /// Bytes the decoded request's structs and strings will take, at most.
    pub(super) fn decoded_size(raw: &[u8]) -> Result<usize, String> {
        let mut total = size_of::<ReadRequest>();
        fields(raw, &mut |tag, wire, payload| {
            match (tag, wire) {
                (1, WireType::LengthDelimited) => {
                    total += size_of::<Query>();
                    fields(payload, &mut |tag, wire, payload| {
                        match (tag, wire) {
                            (3, WireType::LengthDelimited) => {
                                total += size_of::<LabelMatcher>() + payload.len();
                            }
                            (4, WireType::LengthDelimited) => {
                                // ReadHints: its repeated `grouping` strings.
                                total += payload.len();
                                fields(payload, &mut |tag, wire, _| {
                                    if (tag, wire) == (5, WireType::LengthDelimited) {
                                        total += size_of::<String>();
                                    }
                                    Ok(())
                                })?;
                            }
                            _ => {}
                        }
                        Ok(())
                    })?;
                }
                // accepted_response_types: an i32 per varint, packed or not.
                (2, WireType::Varint) => total += size_of::<i32>(),
                (2, WireType::LengthDelimited) => total += size_of::<i32>() * payload.len(),
                _ => {}
            }
            Ok(())
        })?;
        Ok(total)
    }
}

/// The first accepted type the server supports, `SAMPLES` when the list is
/// empty (Prometheus' `NegotiateResponseType`).
pub fn negotiate(accepted: &[i32]) -> Result<ResponseType, ReadRequestError> {
    if accepted.is_empty() {
        return Ok(ResponseType::Samples);
    }
    accepted
        .iter()
        .find_map(|&t| match t {
            proto::SAMPLES => Some(ResponseType::Samples),
            proto::STREAMED_XOR_CHUNKS => Some(ResponseType::StreamedXorChunks),
            _ => None,
        })
        .ok_or_else(|| ReadRequestError::UnsupportedResponseTypes(accepted.to_vec()))
}

/// The storage matchers of query number `index`; regexes are fully
/// anchored, as in Prometheus.
pub fn matchers(index: usize, q: &proto::Query) -> Result<Vec<Matcher>, ReadRequestError> {
    q.matchers
        .iter()
        .map(|m| {
            let op = match m.r#type {
                proto::MATCH_EQ => MatchOp::Equal,
                proto::MATCH_NEQ => MatchOp::NotEqual,
                proto::MATCH_RE => MatchOp::RegexMatch,
                proto::MATCH_NRE => MatchOp::RegexNoMatch,
                kind => {
                    return Err(ReadRequestError::UnknownMatcherType {
                        query: index,
                        kind,
                        name: m.name.clone(),
                    });
                }
            };
            Matcher::new(op, m.name.as_str(), m.value.as_str()).map_err(|source| {
                ReadRequestError::BadMatcher {
                    query: index,
                    source,
                }
            })
        })
        .collect()
}

/// A label set as protobuf labels (already sorted and valid in storage).
pub fn labels_to_proto(labels: &Labels) -> Vec<proto::Label> {
    labels
        .iter()
        .map(|l| proto::Label {
            name: l.name.as_bytes().to_vec(),
            value: l.value.as_bytes().to_vec(),
        })
        .collect()
}

/// The body of a `SAMPLES` answer: one result per query, in query order,
/// as a snappy block.
pub fn samples_response(results: Vec<Vec<SeriesSamples>>) -> Vec<u8> {
    let resp = proto::ReadResponse {
        results: results
            .into_iter()
            .map(|series| proto::QueryResult {
                timeseries: series
                    .into_iter()
                    .map(|s| proto::TimeSeries {
                        labels: labels_to_proto(&s.labels),
                        samples: s
                            .samples
                            .iter()
                            .map(|x| proto::Sample {
                                value: x.v,
                                timestamp: x.t,
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&resp.encode_to_vec())
        .expect("snappy compresses any buffer under 4 GiB")
}

/// Appends the frames of one series of query `query_index` to a streamed
/// body: its samples as Prometheus XOR chunks, split into frames at
/// `max_bytes_in_frame`.
pub fn chunked_series(
    out: &mut Vec<u8>,
    query_index: i64,
    series: &SeriesSamples,
    max_bytes_in_frame: usize,
) {
    let chunks = prom_xor::encode_chunks(&series.samples)
        .into_iter()
        .map(|c| proto::Chunk {
            min_time_ms: c.min_t,
            max_time_ms: c.max_t,
            r#type: proto::CHUNK_XOR,
            data: c.data,
        })
        .collect();
    frame::write_series(
        out,
        query_index,
        &labels_to_proto(&series.labels),
        chunks,
        max_bytes_in_frame,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(req: &proto::ReadRequest) -> Vec<u8> {
        body_of(&req.encode_to_vec())
    }

    fn body_of(raw: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(raw).unwrap()
    }

    fn query(ms: Vec<(i32, &str, &str)>) -> proto::Query {
        proto::Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: 10,
            matchers: ms
                .into_iter()
                .map(|(t, n, v)| proto::LabelMatcher {
                    r#type: t,
                    name: n.into(),
                    value: v.into(),
                })
                .collect(),
            hints: None,
        }
    }

    #[test]
    fn negotiation_takes_the_first_supported_type() {
        assert_eq!(negotiate(&[]).unwrap(), ResponseType::Samples);
        assert_eq!(negotiate(&[1, 0]).unwrap(), ResponseType::StreamedXorChunks);
        assert_eq!(negotiate(&[7, 0]).unwrap(), ResponseType::Samples);
        assert!(matches!(
            negotiate(&[2, 9]),
            Err(ReadRequestError::UnsupportedResponseTypes(_))
        ));
    }

    #[test]
    fn decodes_a_request_and_refuses_malformed_ones() {
        let req = proto::ReadRequest {
            queries: vec![query(vec![(proto::MATCH_RE, "job", "a|b")])],
            accepted_response_types: vec![1, 0],
        };
        assert_eq!(decode_read_request(&body(&req)).unwrap(), req);
        let m = matchers(0, &req.queries[0]).unwrap();
        // Anchored: "ab" is not "a" or "b".
        assert!(m[0].matches("a") && !m[0].matches("ab"));
        assert!(matches!(
            decode_read_request(b"garbage!"),
            Err(ReadRequestError::Snappy(_))
        ));
        // A header declaring 4 GiB - 1: refused before allocating.
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert!(matches!(
            decode_read_request(&bomb),
            Err(ReadRequestError::Snappy(SnappyError::TooLarge { .. }))
        ));
        let junk = snap::raw::Encoder::new()
            .compress_vec(&[0x0a, 0x05, 0xff])
            .unwrap();
        assert!(matches!(
            decode_read_request(&junk),
            Err(ReadRequestError::Wire(_))
        ));
        // 1 MiB of empty queries (2 bytes each, >100 in memory): refused
        // before decoding. A normal request is far inside the budget.
        let bomb: Vec<u8> = [0x0a, 0x00].repeat(1 << 19);
        assert!(matches!(
            decode_read_request(&body_of(&bomb)),
            Err(ReadRequestError::ExpandsTooMuch { .. })
        ));
        let many = proto::ReadRequest {
            queries: vec![query(vec![(proto::MATCH_EQ, "job", "x")]); 1000],
            accepted_response_types: vec![],
        };
        assert_eq!(decode_read_request(&body(&many)).unwrap(), many);
        // A group (wire type 3) is refused rather than skipped unsized.
        assert!(matches!(
            decode_read_request(&body_of(&[0x0b, 0x0c])),
            Err(ReadRequestError::Wire(_))
        ));
        assert!(matches!(
            matchers(2, &query(vec![(4, "a", "b")])),
            Err(ReadRequestError::UnknownMatcherType {
                query: 2,
                kind: 4,
                ..
            })
        ));
        assert!(matches!(
            matchers(0, &query(vec![(proto::MATCH_NRE, "a", "(")])),
            Err(ReadRequestError::BadMatcher { .. })
        ));
    }
}
