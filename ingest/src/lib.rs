//! Remote-write ingestion for Tessera.
//!
//! Owns decoding (snappy block format + protobuf), validation of what a
//! client sent, relabeling at ingest, and the append path into
//! [`tessera_tsdb`]. It knows nothing of HTTP: the binary maps its errors to
//! status codes.
//!
//! Start from [`decode_v1`] (body → [`remote_write::proto::WriteRequest`],
//! or an [`IngestError`] whose [`IngestError::status_class`] picks the HTTP
//! status) and [`validate()`] (request → [`ValidatedWrite`]: label sets and
//! samples ready to append, plus the [`Rejections`] to report).

pub mod append;
pub mod error;
pub mod metadata;
pub mod relabel;
pub mod remote_write;
pub mod validate;

pub use error::{IngestError, ProtobufError, StatusClass};
pub use remote_write::v1::{DecodeLimits, decode_v1};
pub use validate::{Rejections, SeriesError, ValidSeries, ValidatedWrite, validate};
