//! Test support for the rule engine.

use std::ops::Deref;

use tessera_query::rules::Appender;
use tessera_tsdb::{AppendStats, Db, DbError, Labels, Sample};

/// Rule results straight into a test database (storage only). The server
/// injects the remote-write append path instead, with its counters; this
/// stand-in exists only in tests, so the library has no second path.
pub(crate) struct Direct<D>(pub D);

impl<D: Deref<Target = Db> + Send + Sync> Appender for Direct<D> {
    fn append(&self, series: &[(&Labels, &[Sample])]) -> Result<AppendStats, DbError> {
        self.0.append_batch(series.iter().copied())
    }
}
