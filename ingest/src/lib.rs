//! Remote-write ingestion for Tessera, and the remote-read wire format.
//!
//! Owns decoding (snappy block format + protobuf), validation of what a
//! client sent, relabeling at ingest, and the append path into
//! [`tessera_tsdb`]. It knows nothing of HTTP: the binary maps its errors to
//! status codes.
//!
//! Start from [`negotiate`] (a request's headers → remote write 1.0 or
//! 2.0), [`decode_v1`] (body → [`proto::WriteRequest`], or an
//! [`IngestError`] whose [`IngestError::status_class`] picks the HTTP
//! status), [`validate()`] (request → [`ValidatedWrite`]: label sets and
//! samples ready to append, plus the [`Rejections`] to report), their 2.0
//! twins [`decode_v2`] (→ [`proto_v2::Request`]) and [`validate_v2`]
//! (symbol references resolved per series, then [`validate()`]), and
//! [`write()`] (a validated write into the database, through [`append()`],
//! which the server's recording rules use too). Everything public is
//! re-exported here; the modules themselves are private, except
//! [`remote_read`] (messages, request decoding and both response encodings
//! of `POST /api/v1/read`, for servers and clients alike) and [`snappy`]
//! (block decompression with the declared length checked first).

mod append;
mod error;
mod metadata;
mod relabel;
pub mod remote_read;
mod remote_write;
pub mod snappy;
mod validate;

pub use append::{WriteReport, append, write};
pub use error::{IngestError, ProtobufError, StatusClass};
pub use metadata::{MetadataEntry, MetadataStore};
pub use relabel::{IngestRelabel, RelabelLoadError, RelabelStats};
pub use remote_write::negotiate::{NegotiationError, Protocol, negotiate};
pub use remote_write::resolve::validate_v2;
pub use remote_write::v1::{DecodeLimits, MAX_STRUCT_EXPANSION, decode_v1};
pub use remote_write::v2::decode_v2;
pub use remote_write::{proto, proto_v2};
pub use validate::{MAX_EXAMPLES, Rejections, SeriesError, ValidSeries, ValidatedWrite, validate};
