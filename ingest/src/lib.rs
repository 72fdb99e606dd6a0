//! Remote-write ingestion for Tessera.
//!
//! Owns decoding (snappy block format + protobuf), validation of what a
//! client sent, relabeling at ingest, and the append path into
//! [`tessera_tsdb`]. It knows nothing of HTTP: the binary maps its errors to
//! status codes.

pub mod remote_write;
