//! The protobuf reader both remote-write versions decode their hot messages
//! with, and the body checks (size, snappy header) they share.
//!
//! Why not prost for all: prost fills a `bytes` field through
//! `Buf::copy_to_bytes`, which on a slice makes a temporary copy before the
//! copy into the field's `Vec<u8>` (two allocations per label name and
//! value), and grows each repeated field by doubling. These readers copy each
//! string once and size every vector exactly from a cheap pre-count of its
//! fields. They follow prost's rules for what is malformed (varints, keys,
//! wire types, lengths, groups, the recursion limit) so both accept the same
//! inputs; `ingest/tests/decode_differential.rs` and
//! `ingest/tests/decode_v2_differential.rs` hold them to that. Rare messages
//! (exemplars, histograms, metadata) go to prost through [`with_prost`].

use std::mem::size_of;

use prost::Message;

use super::v1::DecodeLimits;
use crate::error::{IngestError, ProtobufError};
use crate::snappy::SnappyError;

/// Memory the decoded request's structs may take, as a multiple of
/// [`DecodeLimits::max_decoded_bytes`]. Protobuf is dense: an empty series is
/// 2 bytes on the wire and 96 in memory, so 32 MiB of them would take
/// 1.5 GiB. Realistic requests take about 2x their protobuf size (the dcgm
/// bench request: 1.3 MB of structs for 0.65 MB), far under this.
pub const MAX_STRUCT_EXPANSION: usize = 4;

/// Checks the body's size and its snappy header against `limits` before
/// allocating, then decompresses it.
pub(super) fn decompress(body: &[u8], limits: &DecodeLimits) -> Result<Vec<u8>, IngestError> {
    if body.len() > limits.max_compressed_bytes {
        return Err(IngestError::BodyTooLarge {
            size: body.len(),
            limit: limits.max_compressed_bytes,
        });
    }
    crate::snappy::decompress_bounded(body, limits.max_decoded_bytes).map_err(|e| match e {
        SnappyError::TooLarge { declared, limit } => {
            IngestError::DecodedTooLarge { declared, limit }
        }
        e => IngestError::InvalidSnappy(e),
    })
}

/// The struct budget of one request: [`MAX_STRUCT_EXPANSION`] times its
/// decoded-size limit.
pub(super) fn budget_for(limits: &DecodeLimits) -> Budget {
    Budget::new(
        limits
            .max_decoded_bytes
            .saturating_mul(MAX_STRUCT_EXPANSION),
    )
}

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

impl Fail {
    /// The request-level error, for a protobuf of `decoded` bytes read under
    /// a budget of `limit` bytes.
    pub(super) fn into_error(self, limit: usize, decoded: usize) -> IngestError {
        match self {
            Fail::Malformed(e) => IngestError::InvalidProtobuf(e),
            Fail::OverBudget { offset } => IngestError::ExpandsTooMuch {
                limit,
                offset,
                decoded,
            },
        }
    }
}

/// Bytes of vectors (series, labels, samples, ...) the request may still
/// allocate. Charged before each allocation, from the exact field counts.
pub(super) struct Budget {
    total: usize,
    left: usize,
}

impl Budget {
    pub(super) fn new(total: usize) -> Self {
        Budget { total, left: total }
    }

    /// The budget it started with.
    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// Charges `count` values of `T`.
    pub(super) fn charge<T>(&mut self, count: usize, offset: usize) -> Result<(), Fail> {
        self.charge_bytes(count.saturating_mul(size_of::<T>()), offset)
    }

    /// Charges `bytes` of heap (strings copied out of the request).
    pub(super) fn charge_bytes(&mut self, bytes: usize, offset: usize) -> Result<(), Fail> {
        self.left = self
            .left
            .checked_sub(bytes)
            .ok_or(Fail::OverBudget { offset })?;
        Ok(())
    }
}

pub(super) const VARINT: u8 = 0;
pub(super) const FIXED64: u8 = 1;
pub(super) const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// prost's recursion limit: message nesting plus nested groups in skipped
/// fields.
const RECURSION_LIMIT: usize = 100;

/// A read position inside `buf[..end]`; `end` is the end of the message
/// being read, so nothing can read into its parent.
#[derive(Clone, Copy)]
pub(super) struct Cursor<'a> {
    buf: &'a [u8],
    pub(super) pos: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor over the whole of `buf`.
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    pub(super) fn has_more(&self) -> bool {
        self.pos < self.end
    }

    pub(super) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..self.end]
    }

    #[inline]
    pub(super) fn varint(&mut self) -> Result<u64, ProtobufError> {
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
    pub(super) fn key(&mut self) -> Result<(u32, u8, usize), ProtobufError> {
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
    pub(super) fn sub(&mut self, what: &'static str) -> Result<Cursor<'a>, ProtobufError> {
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

    pub(super) fn fixed64(&mut self, what: &'static str) -> Result<u64, ProtobufError> {
        let b = self.fixed(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Skips an unknown field whose key was just read; `depth` is how
    /// deep its message (or group) sits, for the recursion limit.
    pub(super) fn skip(
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

pub(super) fn expect(
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
pub(super) fn count_fields<const N: usize>(mut c: Cursor<'_>, fields: [u32; N]) -> [usize; N] {
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
pub(super) fn with_prost<M: Message + Default>(
    message: &'static str,
    c: Cursor<'_>,
) -> Result<M, ProtobufError> {
    M::decode(c.rest()).map_err(|source| ProtobufError::Nested {
        message,
        offset: c.pos,
        source,
    })
}

/// A `Sample` message (the same fields 1 and 2 in both versions): value,
/// timestamp and, with `start_field` (remote write 2.0, Prometheus 3.8+),
/// the start timestamp of field 3 (0 when absent). Version 1 has no field
/// 3, so there it is skipped as an unknown field, as prost does.
#[inline]
pub(super) fn sample(
    mut c: Cursor<'_>,
    start_field: bool,
) -> Result<(f64, i64, i64), ProtobufError> {
    let (mut value, mut timestamp, mut start) = (0.0, 0, 0);
    while c.has_more() {
        let (field, wire_type, offset) = c.key()?;
        match field {
            1 => {
                expect("Sample", field, wire_type, FIXED64, offset)?;
                // from_bits keeps NaN payloads (the staleness marker).
                value = f64::from_bits(c.fixed64("Sample.value")?);
            }
            2 => {
                expect("Sample", field, wire_type, VARINT, offset)?;
                // int64 is a two's-complement varint: the cast is the decoding.
                timestamp = c.varint()? as i64;
            }
            3 if start_field => {
                expect("Sample", field, wire_type, VARINT, offset)?;
                start = c.varint()? as i64;
            }
            _ => c.skip(field, wire_type, offset, 2)?,
        }
    }
    Ok((value, timestamp, start))
}
