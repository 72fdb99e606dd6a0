//! PromQL evaluation for Tessera.
//!
//! Owns parsing (via `promql-parser`), evaluation with Prometheus 3
//! semantics, per-query limits (deadline, cancellation, sample budget) and
//! the [`Storage`] seam to the store. It does not own HTTP or JSON: the root
//! package renders [`QueryResult`]s and maps [`QueryError::error_type`] to
//! status codes.
//!
//! Start from [`Engine`] (with [`EngineOptions`]), a [`QueryContext`] per
//! query, and a [`Storage`] such as [`tessera_tsdb::Db`]. [`rules`] runs
//! recording and alerting rules; [`format`] prints floats exactly as Go does; [`time`] owns the calendar, RFC 3339 formatting and the
//! Prometheus duration grammar that the binary shares.

mod context;
pub mod counters;
mod engine;
mod error;
mod eval;
pub mod format;
mod parse_error;
pub mod rules;
pub mod split;
mod storage;
pub mod time;
mod value;
pub mod window;

pub use context::{CancelToken, QueryContext};
pub use engine::{Engine, EngineOptions, MAX_POINTS_PER_SERIES, check_resolution, parse};
pub use error::QueryError;
pub use storage::{SelectStop, Storage, VecStorage};
pub use value::{QueryResult, Value, VectorSample};
