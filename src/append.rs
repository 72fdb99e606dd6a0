//! The server's one path into storage, shared by remote write and the
//! recording rules: [`tessera_ingest::append`] (the WAL, then the head),
//! then [`count_appended`] into the `tessera_ingest_*` self-metrics.
//!
//! - Remote write: `http/write.rs` calls [`tessera_ingest::write`]
//!   (relabel, append, metadata) and counts the report's append stats with
//!   [`count_appended`].
//! - Recording rules: `tessera_query::rules` writes through the
//!   [`IngestAppender`] it is started with, which does the same.
//!
//! Ingest relabeling and request validation are remote write's alone (see
//! the ingest crate's append module for why).

use std::sync::Arc;

use tessera_query::rules::Appender;
use tessera_tsdb::{AppendStats, Db, DbError, Labels, Sample};

use crate::metrics::METRICS;

/// Rule results into the database through the remote-write append path.
pub(crate) struct IngestAppender(pub Arc<Db>);

impl Appender for IngestAppender {
    fn append(&self, series: &[(&Labels, &[Sample])]) -> Result<AppendStats, DbError> {
        let stats = tessera_ingest::append(&self.0, series.iter().copied())?;
        count_appended(&stats);
        Ok(stats)
    }
}

/// Adds one append's outcome to the ingest counters: samples appended,
/// series created, and samples the storage refused, by reason.
pub(crate) fn count_appended(a: &AppendStats) {
    METRICS
        .ingest_samples
        .inc_by(&[], a.samples_appended as f64);
    METRICS
        .ingest_series_created
        .inc_by(&[], a.series_created as f64);
    for (reason, n) in [
        ("out_of_order", a.out_of_order),
        ("out_of_bounds", a.out_of_bounds),
        ("duplicate_timestamp", a.duplicate_timestamp),
    ] {
        if n > 0 {
            METRICS.ingest_samples_rejected.inc_by(&[reason], n as f64);
        }
    }
}
