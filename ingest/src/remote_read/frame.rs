//! The framing of a `STREAMED_XOR_CHUNKS` response (Prometheus
//! `storage/remote/chunked.go`): each frame is
//!
//! ```text
//! uvarint(len(msg)) | CRC32-Castagnoli(msg) as 4 bytes big-endian | msg
//! ```
//!
//! where `msg` is a marshalled [`ChunkedReadResponse`] holding chunks of
//! exactly one series. A series longer than the frame budget is split over
//! consecutive frames ([`write_series`]); a new series never goes back to an
//! earlier one. [`FrameReader`] is the client side, with Prometheus' checks.

use prost::Message;

use super::proto::{Chunk, ChunkedReadResponse, ChunkedSeries, Label};

/// The `Content-Type` of a streamed response. Clients match it as a prefix,
/// so the space after `;` matters.
pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

/// The largest frame Prometheus' client accepts by default
/// (`DefaultChunkedReadLimit`, 50 MB).
pub const DEFAULT_CHUNKED_READ_LIMIT: u64 = 50 << 20;

/// Appends one frame holding `msg`.
pub fn write_frame(out: &mut Vec<u8>, msg: &ChunkedReadResponse) {
    let body = msg.encode_to_vec();
    prost::encoding::encode_varint(body.len() as u64, out);
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
}

/// Appends the frames of one series: its chunks in order, a new frame
/// started once the current one reaches `max_bytes_in_frame` (labels
/// included; a frame may overshoot by one chunk, as in Prometheus'
/// `StreamChunkedReadResponses`). A series with no chunks writes nothing.
pub fn write_series(
    out: &mut Vec<u8>,
    query_index: i64,
    labels: &[Label],
    chunks: Vec<Chunk>,
    max_bytes_in_frame: usize,
) {
    // Counted as Prometheus' chunked.go counts them (gogo `Size()`: each
    // message's own bytes, without its field key and length), so frames
    // split where Prometheus' would.
    let label_bytes: usize = labels.iter().map(Message::encoded_len).sum();
    let mut pending = Vec::new();
    let mut left = max_bytes_in_frame as i64 - label_bytes as i64;
    let n = chunks.len();
    for (i, c) in chunks.into_iter().enumerate() {
        left -= c.encoded_len() as i64;
        pending.push(c);
        if left > 0 && i + 1 < n {
            continue;
        }
        let msg = ChunkedReadResponse {
            chunked_series: vec![ChunkedSeries {
                labels: labels.to_vec(),
                chunks: std::mem::take(&mut pending),
            }],
            query_index,
        };
        write_frame(out, &msg);
        left = max_bytes_in_frame as i64 - label_bytes as i64;
    }
}

/// Why a streamed body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame at byte {offset}: truncated length varint")]
    TruncatedLength { offset: usize },
    #[error("frame at byte {offset}: {size} bytes, over the limit of {limit}")]
    TooLarge {
        offset: usize,
        size: u64,
        limit: u64,
    },
    #[error("frame at byte {offset}: needs {needed} bytes, only {available} left")]
    Truncated {
        offset: usize,
        needed: u64,
        available: usize,
    },
    #[error(
        "frame at byte {offset}: CRC32C mismatch (frame says {want:#010x}, data is {got:#010x})"
    )]
    Checksum { offset: usize, want: u32, got: u32 },
    #[error("frame at byte {offset}: invalid ChunkedReadResponse: {source}")]
    Protobuf {
        offset: usize,
        source: prost::DecodeError,
    },
}

/// Reads the frames of a streamed body in order, as Prometheus' client
/// does: size limit first, then the checksum, then the message.
pub struct FrameReader<'a> {
    buf: &'a [u8],
    pos: usize,
    limit: u64,
}

impl<'a> FrameReader<'a> {
    /// Frames larger than `limit` bytes are an error.
    pub fn new(buf: &'a [u8], limit: u64) -> Self {
        FrameReader { buf, pos: 0, limit }
    }

    fn next_frame(&mut self) -> Result<ChunkedReadResponse, FrameError> {
        let offset = self.pos;
        let mut rest = &self.buf[self.pos..];
        let size = prost::encoding::decode_varint(&mut rest)
            .map_err(|_| FrameError::TruncatedLength { offset })?;
        if size > self.limit {
            return Err(FrameError::TooLarge {
                offset,
                size,
                limit: self.limit,
            });
        }
        let needed = size + 4;
        if needed > rest.len() as u64 {
            return Err(FrameError::Truncated {
                offset,
                needed,
                available: rest.len(),
            });
        }
        let want = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let msg = &rest[4..needed as usize];
        let got = crc32c::crc32c(msg);
        if got != want {
            return Err(FrameError::Checksum { offset, want, got });
        }
        self.pos = self.buf.len() - rest.len() + needed as usize;
        ChunkedReadResponse::decode(msg).map_err(|source| FrameError::Protobuf { offset, source })
    }
}

impl Iterator for FrameReader<'_> {
    type Item = Result<ChunkedReadResponse, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let r = self.next_frame();
        if r.is_err() {
            // Framing is lost after an error: stop.
            self.pos = self.buf.len();
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(i: i64, len: usize) -> Chunk {
        Chunk {
            min_time_ms: i,
            max_time_ms: i,
            r#type: super::super::proto::CHUNK_XOR,
            data: vec![i as u8; len],
        }
    }

    #[test]
    fn frames_are_length_crc_message_and_split_at_the_budget() {
        let labels = vec![Label {
            name: b"__name__".to_vec(),
            value: b"up".to_vec(),
        }];
        let mut out = Vec::new();
        write_series(
            &mut out,
            3,
            &labels,
            (0..10).map(|i| chunk(i, 100)).collect(),
            250,
        );
        // Exact bytes of the first frame's head.
        let first = ChunkedReadResponse {
            chunked_series: vec![ChunkedSeries {
                labels: labels.clone(),
                chunks: (0..3).map(|i| chunk(i, 100)).collect(),
            }],
            query_index: 3,
        }
        .encode_to_vec();
        let mut head = Vec::new();
        prost::encoding::encode_varint(first.len() as u64, &mut head);
        head.extend_from_slice(&crc32c::crc32c(&first).to_be_bytes());
        assert_eq!(&out[..head.len()], &head[..]);
        let frames: Vec<_> = FrameReader::new(&out, DEFAULT_CHUNKED_READ_LIMIT)
            .collect::<Result<_, _>>()
            .unwrap();
        // 250 bytes minus the labels leave room for two 100-byte chunks and
        // a third that overshoots: 3 + 3 + 3 + 1.
        let sizes: Vec<usize> = frames
            .iter()
            .map(|f| f.chunked_series[0].chunks.len())
            .collect();
        assert_eq!(sizes, [3, 3, 3, 1]);
        assert!(frames.iter().all(|f| f.query_index == 3
            && f.chunked_series.len() == 1
            && f.chunked_series[0].labels == labels));
        let times: Vec<i64> = frames
            .iter()
            .flat_map(|f| f.chunked_series[0].chunks.iter().map(|c| c.min_time_ms))
            .collect();
        assert_eq!(times, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn reader_refuses_bad_crc_oversized_and_truncated_frames() {
        let mut out = Vec::new();
        write_series(&mut out, 0, &[], vec![chunk(1, 50)], 1 << 20);
        let mut bad = out.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            FrameReader::new(&bad, 1 << 20).next(),
            Some(Err(FrameError::Checksum { .. }))
        ));
        assert!(matches!(
            FrameReader::new(&out, 10).next(),
            Some(Err(FrameError::TooLarge { .. }))
        ));
        assert!(matches!(
            FrameReader::new(&out[..out.len() - 1], 1 << 20).next(),
            Some(Err(FrameError::Truncated { .. }))
        ));
        assert!(matches!(
            FrameReader::new(&[0x80], 1 << 20).next(),
            Some(Err(FrameError::TruncatedLength { .. }))
        ));
        let mut it = FrameReader::new(&bad, 1 << 20);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }
}
