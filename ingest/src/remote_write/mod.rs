//! Remote write receivers.

pub mod proto;
pub(crate) mod v1;
