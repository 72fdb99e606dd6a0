//! Where rule results go: an [`Appender`] the embedder injects.
//!
//! This crate reads the database but does not write rule results into it
//! itself: the server injects the path remote write takes into storage
//! (`tessera_ingest::append`, its WAL and its counters), so storage limits,
//! self-metrics and durability are the same for both. The query crate
//! cannot depend on the ingest crate (they are peers above tsdb), hence the
//! trait.

use tessera_tsdb::{AppendStats, DbError, Labels, Sample};

/// Stores rule results and staleness markers.
pub trait Appender: Send + Sync {
    /// Appends each series' samples. As [`tessera_tsdb::Db::append_batch`]:
    /// samples refused one by one (out of order, out of bounds, duplicate
    /// timestamp) are counted in the stats; an `Err` means the batch may
    /// not be durable.
    fn append(&self, series: &[(&Labels, &[Sample])]) -> Result<AppendStats, DbError>;
}
