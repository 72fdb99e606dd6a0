//! Tessera's time-series store.
//!
//! Owns the data model ([`Labels`], [`Sample`], [`Matcher`]), the sharded
//! head, chunk codecs, the WAL, blocks and compaction. It knows nothing of
//! HTTP, PromQL or remote write: callers hand it validated label sets and
//! samples, and ask it for series by matchers and time range.
//!
//! # Where to start
//!
//! A caller opens a [`Db`] with [`Db::open`] and a [`DbOptions`] (data dir,
//! shard count, [`WalOptions`](wal::WalOptions), [`BlockPolicy`], replay
//! threads and a [`ReplayProgress`] to watch), or [`Db::in_memory`] for
//! tests. Writes go through [`Db::append_batch`]; reads through
//! [`Db::select_with`], [`Db::select_batches`], [`Db::series_with`] and the
//! label listings, each under a [`ReadControl`] (budgets and a stop
//! signal). A [`Maintainer`] runs [`Db::maintain`] (cuts, compaction,
//! retention) in the background. [`layout`] names every path in a data dir;
//! [`block`] and [`wal`] are also used directly by the offline tools.
//!
//! # Inside
//!
//! `db/` is the hub (open, append, read, stats, maintain); it drives
//! `shard` (a head + WAL under one lock, and a block list), `replay`
//! (parallel WAL replay at open), `shard_cut` (head range → block) and
//! `shard_compaction` (which blocks merge, retention). None of those
//! import from `db/`. `head/` is the in-memory part of one shard; `chunk/`
//! the sample codecs.

pub mod analyze;
pub mod block;
pub mod chunk;
pub mod labels;
pub mod layout;
pub mod matcher;
pub mod sample;
pub mod wal;

mod db;
mod error;
mod head;
mod maintainer;
mod parallel;
mod read;
mod replay;
mod shard;
mod shard_compaction;
mod shard_cut;

pub use db::{
    BlockPolicy, BlockStats, Db, DbOptions, MaintenanceCounters, MaintenanceReport, SeriesListing,
};
pub use error::{DbError, ReadError};
pub use head::{AppendStats, HeadStats};
pub use labels::{Label, Labels, LabelsError, METRIC_NAME};
pub use maintainer::Maintainer;
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use read::{CHECK_EVERY, ReadControl};
pub use replay::{ReplayProgress, ReplaySnapshot};
pub use sample::{Sample, SeriesSamples, is_stale_nan, stale_nan};
pub use shard_compaction::CompactionReport;
pub use shard_cut::CutReport;
