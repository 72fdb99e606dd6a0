//! Remote write 2.0 decoding: snappy block format, then the protobuf
//! `io.prometheus.write.v2.Request`, under the same limits as 1.0.
//!
//! [`decode_v2`] checks the body and its snappy header before allocating
//! (the shared [`super::wire::decompress`]), reads the request with the
//! shared hand-written reader under the same struct budget as 1.0 (symbols
//! are charged for their bytes too, so a huge symbols table is refused with
//! 413 like any other oversized request) and refuses a symbols table that
//! does not start with the empty string (400). Resolving the references is
//! [`crate::remote_write::resolve`]'s job, series by series.

use prost::Message;

use super::proto_v2 as pb;
use super::v1::DecodeLimits;
use super::wire::{self, Budget, Cursor, Fail, LEN, VARINT, count_fields, expect, with_prost};
use crate::error::{IngestError, ProtobufError};

/// Decodes a remote write 2.0 body (snappy block format around a protobuf
/// `io.prometheus.write.v2.Request`).
///
/// Refuses as [`crate::decode_v1`] does (413 for a body, snappy header or
/// decoded structs over the limits, 400 for malformed snappy or protobuf),
/// and with [`IngestError::SymbolsStart`] when the symbols table does not
/// start with the empty string. References are not checked here: a bad one
/// refuses only its series ([`crate::validate_v2`]).
pub fn decode_v2(body: &[u8], limits: &DecodeLimits) -> Result<pb::Request, IngestError> {
    let raw = wire::decompress(body, limits)?;
    let mut budget = wire::budget_for(limits);
    let req =
        decode_request(&raw, &mut budget).map_err(|f| f.into_error(budget.total(), raw.len()))?;
    if let Some(first) = req.symbols.first()
        && !first.is_empty()
    {
        return Err(IngestError::SymbolsStart {
            first: String::from_utf8_lossy(&first[..first.len().min(64)]).into_owned(),
        });
    }
    Ok(req)
}

fn decode_request(buf: &[u8], budget: &mut Budget) -> Result<pb::Request, Fail> {
    let mut c = Cursor::new(buf);
    let [n_symbols, n_series] = count_fields(c, [4, 5]);
    budget.charge::<Vec<u8>>(n_symbols, 0)?;
    budget.charge::<pb::TimeSeries>(n_series, 0)?;
    let mut req = pb::Request {
        symbols: Vec::with_capacity(n_symbols),
        timeseries: Vec::with_capacity(n_series),
    };
    while c.has_more() {
        let (field, wire_type, offset) = c.key()?;
        match field {
            4 => {
                expect("Request", field, wire_type, LEN, offset)?;
                let s = c.sub("Request.symbols")?.rest();
                budget.charge_bytes(s.len(), offset)?;
                req.symbols.push(s.to_vec());
            }
            5 => {
                expect("Request", field, wire_type, LEN, offset)?;
                let sub = c.sub("TimeSeries")?;
                req.timeseries.push(time_series(sub, budget)?);
            }
            _ => c.skip(field, wire_type, offset, 0)?,
        }
    }
    Ok(req)
}

fn time_series(mut c: Cursor<'_>, budget: &mut Budget) -> Result<pb::TimeSeries, Fail> {
    let [n_samples] = count_fields(c, [2]);
    budget.charge::<pb::Sample>(n_samples, c.pos)?;
    let mut ts = pb::TimeSeries {
        samples: Vec::with_capacity(n_samples),
        ..Default::default()
    };
    while c.has_more() {
        let (field, wire_type, offset) = c.key()?;
        match field {
            1 => refs(&mut c, wire_type, offset, &mut ts.labels_refs, budget)?,
            2 => {
                expect("TimeSeries", field, wire_type, LEN, offset)?;
                let (value, timestamp, start_timestamp) = wire::sample(c.sub("Sample")?, true)?;
                ts.samples.push(pb::Sample {
                    value,
                    timestamp,
                    start_timestamp,
                });
            }
            3 => {
                expect("TimeSeries", field, wire_type, LEN, offset)?;
                budget.charge::<pb::Histogram>(1, offset)?;
                ts.histograms
                    .push(with_prost("Histogram", c.sub("Histogram")?)?);
            }
            4 => {
                expect("TimeSeries", field, wire_type, LEN, offset)?;
                budget.charge::<pb::Exemplar>(1, offset)?;
                ts.exemplars
                    .push(with_prost("Exemplar", c.sub("Exemplar")?)?);
            }
            5 => {
                expect("TimeSeries", field, wire_type, LEN, offset)?;
                let sub = c.sub("Metadata")?;
                // A message field given twice is merged, as protobuf (and
                // prost) define it.
                ts.metadata
                    .get_or_insert_with(pb::Metadata::default)
                    .merge(sub.rest())
                    .map_err(|source| ProtobufError::Nested {
                        message: "Metadata",
                        offset: sub.pos,
                        source,
                    })?;
            }
            6 => {
                expect("TimeSeries", field, wire_type, VARINT, offset)?;
                ts.created_timestamp = c.varint()? as i64;
            }
            _ => c.skip(field, wire_type, offset, 1)?,
        }
    }
    Ok(ts)
}

/// `labels_refs`: packed (what every encoder writes for proto3) or one
/// varint per key (which parsers must accept as well). A value over
/// `u32::MAX` is truncated, as prost and Go's protobuf do for `uint32`.
fn refs(
    c: &mut Cursor<'_>,
    wire_type: u8,
    offset: usize,
    out: &mut Vec<u32>,
    budget: &mut Budget,
) -> Result<(), Fail> {
    match wire_type {
        LEN => {
            let mut sub = c.sub("TimeSeries.labels_refs")?;
            // Every varint ends in one byte under 0x80: an exact count.
            let n = sub.rest().iter().filter(|&&b| b < 0x80).count();
            budget.charge::<u32>(n, offset)?;
            out.reserve_exact(n);
            while sub.has_more() {
                out.push(sub.varint()? as u32);
            }
        }
        VARINT => {
            budget.charge::<u32>(1, offset)?;
            out.push(c.varint()? as u32);
        }
        _ => expect("TimeSeries", 1, wire_type, LEN, offset)?,
    }
    Ok(())
}
