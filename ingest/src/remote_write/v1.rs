//! Remote write 1.0 decoding: snappy block format, then protobuf.
//!
//! [`decode_v1`] turns an HTTP body into a [`proto::WriteRequest`] under the
//! size limits of [`DecodeLimits`]; [`crate::validate::validate`] then turns
//! that into label sets and samples. The decoded length is read from the
//! snappy header and checked before any buffer is sized, so a small body that
//! declares gigabytes (a decompression bomb) costs nothing. The protobuf
//! itself is read by the hand-written decoder in the private `wire` module below.

use super::proto;
use crate::error::IngestError;
use crate::snappy::SnappyError;

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

/// Memory the decoded request's structs may take, as a multiple of
/// [`DecodeLimits::max_decoded_bytes`]. Protobuf is dense: an empty series is
/// 2 bytes on the wire and 96 in memory, so 32 MiB of them would take
/// 1.5 GiB. Realistic requests take about 2x their protobuf size (the dcgm
/// bench request: 1.3 MB of structs for 0.65 MB), far under this.
pub const MAX_STRUCT_EXPANSION: usize = 4;

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
    if body.len() > limits.max_compressed_bytes {
        return Err(IngestError::BodyTooLarge {
            size: body.len(),
            limit: limits.max_compressed_bytes,
        });
    }
    let raw =
        crate::snappy::decompress_bounded(body, limits.max_decoded_bytes).map_err(|e| match e {
            SnappyError::TooLarge { declared, limit } => {
                IngestError::DecodedTooLarge { declared, limit }
            }
            e => IngestError::InvalidSnappy(e),
        })?;
    let n = raw.len();
    let budget = limits
        .max_decoded_bytes
        .saturating_mul(MAX_STRUCT_EXPANSION);
    wire::decode_write_request(&raw[..n], budget).map_err(|fail| match fail {
        wire::Fail::Malformed(e) => IngestError::InvalidProtobuf(e),
        wire::Fail::OverBudget { offset } => IngestError::ExpandsTooMuch {
            limit: budget,
            offset,
            decoded: n,
        },
    })
}

/// A hand-written reader for the four hot messages of `WriteRequest`
/// (`WriteRequest`, `TimeSeries`, `Label`, `Sample`); the rare ones
/// (`Exemplar`, `Histogram`, `MetricMetadata`) go to prost.
///
/// Why not prost for all: prost fills a `bytes` field through
/// `Buf::copy_to_bytes`, which on a slice makes a temporary copy before the
/// copy into the field's `Vec<u8>` (two allocations per label name and
/// value), and grows each repeated field by doubling. This reader copies each
/// label once and sizes every vector exactly from a cheap pre-count of its
/// fields. It follows prost's rules for what is malformed (varints, keys,
/// wire types, lengths, groups, the recursion limit) so both accept the same
/// inputs; `ingest/tests/decode_differential.rs` holds it to that.
mod wire {
    use std::mem::size_of;

    use prost::Message;

    use super::proto;
    use crate::error::ProtobufError;

    /// Why decoding stopped.
    pub(super) enum Fail {
        Malformed(ProtobufError),
        /// The decoded structs would exceed the memory budget; `offset` is
        /// where in the protobuf the budget ran out.
        OverBudget {
            offset: usize,
        },
    }

    impl From<ProtobufError> for Fail {
        fn from(e: ProtobufError) -> Self {
            Fail::Malformed(e)
        }
    }

    /// Bytes of vectors (series, labels, samples, ...) the request may still
    /// allocate. Charged before each allocation, from the exact field counts.
    struct Budget(usize);

    impl Budget {
        fn charge<T>(&mut self, count: usize, offset: usize) -> Result<(), Fail> {
            let bytes = count.saturating_mul(size_of::<T>());
            self.0 = self
                .0
                .checked_sub(bytes)
                .ok_or(Fail::OverBudget { offset })?;
            Ok(())
        }
    }

    const VARINT: u8 = 0;
    const FIXED64: u8 = 1;
    const LEN: u8 = 2;
    const START_GROUP: u8 = 3;
    const END_GROUP: u8 = 4;
    const FIXED32: u8 = 5;

    /// prost's recursion limit: message nesting plus nested groups in skipped
    /// fields.
    const RECURSION_LIMIT: usize = 100;

    /// A read position inside `buf[..end]`; `end` is the end of the message
    /// being read, so nothing can read into its parent.
    #[derive(Clone, Copy)]
    struct Cursor<'a> {
        buf: &'a [u8],
        pos: usize,
        end: usize,
    }

    impl<'a> Cursor<'a> {
        fn has_more(&self) -> bool {
            self.pos < self.end
        }

        fn rest(&self) -> &'a [u8] {
            &self.buf[self.pos..self.end]
        }

        #[inline]
        fn varint(&mut self) -> Result<u64, ProtobufError> {
            let offset = self.pos;
            let mut value = 0u64;
            for (i, &b) in self.rest().iter().take(10).enumerate() {
                value |= u64::from(b & 0x7f) << (7 * i);
                if b < 0x80 {
                    // The 10th byte holds only the top bit of a u64.
                    if i == 9 && b > 1 {
                        return Err(ProtobufError::OverlongVarint { offset });
                    }
                    self.pos += i + 1;
                    return Ok(value);
                }
            }
            if self.end - offset >= 10 {
                Err(ProtobufError::OverlongVarint { offset })
            } else {
                Err(ProtobufError::TruncatedVarint { offset })
            }
        }

        /// Field number, wire type and the offset of the key.
        #[inline]
        fn key(&mut self) -> Result<(u32, u8, usize), ProtobufError> {
            let offset = self.pos;
            let key = self.varint()?;
            let wire_type = (key & 7) as u8;
            if key > u64::from(u32::MAX) || wire_type > FIXED32 || key >> 3 == 0 {
                return Err(ProtobufError::InvalidKey { key, offset });
            }
            Ok(((key >> 3) as u32, wire_type, offset))
        }

        /// A length-delimited field's contents as a cursor of their own.
        #[inline]
        fn sub(&mut self, what: &'static str) -> Result<Cursor<'a>, ProtobufError> {
            let offset = self.pos;
            let len = self.varint()?;
            let available = self.end - self.pos;
            if len > available as u64 {
                return Err(ProtobufError::Truncated {
                    what,
                    needed: len,
                    available,
                    offset,
                });
            }
            let sub = Cursor {
                buf: self.buf,
                pos: self.pos,
                end: self.pos + len as usize,
            };
            self.pos = sub.end;
            Ok(sub)
        }

        fn fixed(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProtobufError> {
            let available = self.end - self.pos;
            if n > available {
                return Err(ProtobufError::Truncated {
                    what,
                    needed: n as u64,
                    available,
                    offset: self.pos,
                });
            }
            let b = &self.buf[self.pos..self.pos + n];
            self.pos += n;
            Ok(b)
        }

        fn fixed64(&mut self, what: &'static str) -> Result<u64, ProtobufError> {
            let b = self.fixed(8, what)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(u64::from_le_bytes(a))
        }

        /// Skips an unknown field whose key was just read; `depth` is how
        /// deep its message (or group) sits, for the recursion limit.
        fn skip(
            &mut self,
            field: u32,
            wire_type: u8,
            offset: usize,
            depth: usize,
        ) -> Result<(), ProtobufError> {
            if depth >= RECURSION_LIMIT {
                return Err(ProtobufError::TooDeep { offset });
            }
            match wire_type {
                VARINT => {
                    self.varint()?;
                }
                FIXED64 => {
                    self.fixed(8, "64-bit field")?;
                }
                LEN => {
                    self.sub("length-delimited field")?;
                }
                FIXED32 => {
                    self.fixed(4, "32-bit field")?;
                }
                START_GROUP => loop {
                    let (f, w, o) = self.key()?;
                    if w == END_GROUP {
                        if f != field {
                            return Err(ProtobufError::UnexpectedEndGroup {
                                field: f,
                                offset: o,
                            });
                        }
                        break;
                    }
                    self.skip(f, w, o, depth + 1)?;
                },
                _ => return Err(ProtobufError::UnexpectedEndGroup { field, offset }),
            }
            Ok(())
        }
    }

    fn expect(
        message: &'static str,
        field: u32,
        got: u8,
        want: u8,
        offset: usize,
    ) -> Result<(), ProtobufError> {
        if got == want {
            return Ok(());
        }
        Err(ProtobufError::WrongWireType {
            message,
            field,
            got,
            want,
            offset,
        })
    }

    /// How often each of `fields` occurs in the message, so its vectors are
    /// allocated once at their final size. Stops quietly at malformed input:
    /// the decoding pass that follows reports it with its offset.
    fn count_fields<const N: usize>(mut c: Cursor<'_>, fields: [u32; N]) -> [usize; N] {
        let mut n = [0; N];
        while c.has_more() {
            let Ok((field, wire_type, offset)) = c.key() else {
                break;
            };
            if let Some(i) = fields.iter().position(|&f| f == field) {
                n[i] += 1;
            }
            if c.skip(field, wire_type, offset, 0).is_err() {
                break;
            }
        }
        n
    }

    /// A rare message, decoded by prost from its own bytes.
    fn with_prost<M: Message + Default>(
        message: &'static str,
        c: Cursor<'_>,
    ) -> Result<M, ProtobufError> {
        M::decode(c.rest()).map_err(|source| ProtobufError::Nested {
            message,
            offset: c.pos,
            source,
        })
    }

    pub(super) fn decode_write_request(
        buf: &[u8],
        budget_bytes: usize,
    ) -> Result<proto::WriteRequest, Fail> {
        let mut budget = Budget(budget_bytes);
        let mut c = Cursor {
            buf,
            pos: 0,
            end: buf.len(),
        };
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
                    req.timeseries.push(time_series(sub, &mut budget)?);
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
                    ts.samples.push(sample(c.sub("Sample")?)?);
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

    fn sample(mut c: Cursor<'_>) -> Result<proto::Sample, ProtobufError> {
        let mut s = proto::Sample::default();
        while c.has_more() {
            let (field, wire_type, offset) = c.key()?;
            match field {
                1 => {
                    expect("Sample", field, wire_type, FIXED64, offset)?;
                    // from_bits keeps NaN payloads (the staleness marker).
                    s.value = f64::from_bits(c.fixed64("Sample.value")?);
                }
                2 => {
                    expect("Sample", field, wire_type, VARINT, offset)?;
                    // int64 is a two's-complement varint: the cast is the decoding.
                    s.timestamp = c.varint()? as i64;
                }
                _ => c.skip(field, wire_type, offset, 2)?,
            }
        }
        Ok(s)
    }
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
