//! Remote write receivers: 1.0 (`v1`) and 2.0 (`v2`, then `resolve` into
//! 1.0 series), both read with the shared protobuf reader in `wire`;
//! `negotiate` picks the version from the request's headers.

pub(crate) mod negotiate;
pub mod proto;
pub mod proto_v2;
pub(crate) mod resolve;
pub(crate) mod v1;
pub(crate) mod v2;
mod wire;
