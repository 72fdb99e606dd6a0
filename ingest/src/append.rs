//! The append path: a validated write into the database.
//!
//! Everything that has to happen between "the request decoded" and "the
//! client may be told 2xx" is here, so the HTTP handler and the recording
//! rules share one path into storage.

use tessera_tsdb::{AppendStats, Db, DbError};

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

/// Relabels a validated write, appends it and records its metadata. An
/// error means the samples may not be durable: the caller must not
/// acknowledge them.
pub fn write(
    db: &Db,
    metadata: &MetadataStore,
    relabel: &IngestRelabel,
    mut w: ValidatedWrite,
) -> Result<WriteReport, DbError> {
    let relabel = relabel.apply(&mut w.series, &mut w.rejected);
    let append = db.append_batch(w.series.iter().map(|s| (&s.labels, s.samples.as_slice())))?;
    let metadata_received = w.metadata.len();
    metadata.record(&w.metadata);
    Ok(WriteReport {
        append,
        validation: w.rejected,
        relabel,
        metadata_received,
    })
}
