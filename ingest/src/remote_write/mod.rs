//! Remote write receivers.

pub mod proto;
pub mod v1;
