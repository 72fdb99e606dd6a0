//! The append path: the one way samples enter storage, for remote write
//! and recording rules alike.
//!
//! [`append`] is the database's batch append (the WAL first, then the head,
//! with its out-of-order, duplicate and out-of-bounds checks); everything
//! that stores samples calls it:
//! - [`write`], for a remote-write request: ingest relabeling, then
//!   [`append`], then the metric metadata;
//! - the server's recording rules, through the `tessera_query::rules::Appender`
//!   the binary implements with [`append`] (the query crate cannot depend
//!   on this one).
//!
//! The binary counts the [`AppendStats`] both return in the same
//! self-metrics, so storage limits, counters and WAL behaviour are the same
//! for both. What is remote write's alone happens before this point:
//! validation of what a client sent (label limits, `--ingest.max-future`)
//! and ingest relabeling. Rule output is not relabeled, as Prometheus never
//! applies `metric_relabel_configs` to rule results: the relabel config
//! shapes what senders send, a rule's inputs were relabeled on their way in,
//! and its output is named by the operator's rule file.

use tessera_tsdb::{AppendStats, Db, DbError, Labels, Sample};

use crate::metadata::MetadataStore;
use crate::relabel::{IngestRelabel, RelabelStats};
use crate::validate::{Rejections, ValidatedWrite};

/// What one write did, for the response, the log and self-metrics.
#[derive(Debug, Default)]
pub struct WriteReport {
    pub append: AppendStats,
    pub validation: Rejections,
    pub relabel: RelabelStats,
    pub metadata_received: usize,
}

impl WriteReport {
    /// True when anything the client sent was refused.
    pub fn has_rejections(&self) -> bool {
        self.append.rejected() > 0 || !self.validation.is_empty()
    }

    /// One line for the HTTP 400 body and the log, or `None` when all of the
    /// request was kept.
    pub fn rejection_message(&self) -> Option<String> {
        if !self.has_rejections() {
            return None;
        }
        let mut parts = Vec::new();
        let a = &self.append;
        if a.rejected() > 0 {
            parts.push(format!(
                "rejected {} samples ({} out of order, {} duplicate timestamp with a different value, \
                 {} out of bounds)",
                a.rejected(),
                a.out_of_order,
                a.duplicate_timestamp,
                a.out_of_bounds
            ));
            if let Some(first) = &a.first_rejection {
                parts.push(format!("first: {first}"));
            }
        }
        if !self.validation.is_empty() {
            parts.push(self.validation.summary());
        }
        Some(format!(
            "accepted {} samples; {}",
            a.samples_appended,
            parts.join("; ")
        ))
    }
}

/// Relabels a validated write, [`append`]s it and records its metadata. An
/// error means the samples may not be durable: the caller must not
/// acknowledge them.
pub fn write(
    db: &Db,
    metadata: &MetadataStore,
    relabel: &IngestRelabel,
    mut w: ValidatedWrite,
) -> Result<WriteReport, DbError> {
    let relabel = relabel.apply(&mut w.series, &mut w.rejected);
    let stored = append(
        db,
        w.series.iter().map(|s| (&s.labels, s.samples.as_slice())),
    )?;
    let metadata_received = w.metadata.len();
    metadata.record(&w.metadata);
    Ok(WriteReport {
        append: stored,
        validation: w.rejected,
        relabel,
        metadata_received,
    })
}

/// Appends series to the database: the storage step of every write (see
/// the module doc). Returns only after the accepted samples are in the WAL
/// (when the database has one); an error means they may not be durable and
/// must not be acknowledged. Samples refused one by one (out of order, out
/// of bounds, ...) are counted in the stats, not errors.
pub fn append<'a>(
    db: &Db,
    series: impl IntoIterator<Item = (&'a Labels, &'a [Sample])>,
) -> Result<AppendStats, DbError> {
    db.append_batch(series)
}
