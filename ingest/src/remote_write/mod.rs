//! Remote write receivers.

pub mod proto;
