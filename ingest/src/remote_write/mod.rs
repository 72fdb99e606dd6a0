//! Remote write receivers: 1.0 (`v1`) and 2.0 (`v2`), both read with the
//! shared protobuf reader in `wire`.

pub mod proto;
pub(crate) mod v1;
mod wire;
