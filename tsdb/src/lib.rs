//! Tessera's time-series store.
//!
//! Owns the data model ([`Labels`], [`Sample`], [`Matcher`]), the sharded
//! head, chunk codecs, the WAL, blocks and compaction. It knows nothing of
//! HTTP, PromQL or remote write: callers hand it validated label sets and
//! samples, and ask it for series by matchers and time range.

pub mod block;
pub mod chunk;
pub mod labels;
pub mod matcher;
pub mod sample;
pub mod wal;

pub use labels::{Label, Labels, LabelsError, METRIC_NAME};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use sample::{Sample, SeriesSamples, is_stale_nan, stale_nan};

pub mod analyze;
pub mod compaction;
pub mod cut;
pub mod db;
mod head;
pub mod maintain;
mod parallel;
pub mod read;
pub mod replay;
mod shard;

pub use db::{
    BlockPolicy, BlockStats, Db, DbError, DbOptions, MaintenanceCounters, MaintenanceReport,
};
pub use head::{AppendStats, HeadStats};
pub use read::{ReadControl, ReadError};
