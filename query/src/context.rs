//! Per-query limits: deadline, cancellation and the sample budget.
//!
//! The evaluator calls [`QueryContext::check`] per series batch and per step,
//! so a cancelled or timed-out query stops within milliseconds instead of
//! running to completion after the client has gone (the failure the
//! architecture page lists first).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{QueryError, Result};

/// A cloneable handle that cancels the query it was taken from.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Deadline, cancellation flag and sample budget of one query.
#[derive(Debug)]
pub struct QueryContext {
    deadline: Instant,
    cancel: CancelToken,
    /// Overrides the engine's `max_samples` when set.
    max_samples: Option<usize>,
}

impl QueryContext {
    /// A context whose deadline is `timeout` from now.
    pub fn new(timeout: Duration) -> Self {
        let now = Instant::now();
        QueryContext {
            deadline: now
                .checked_add(timeout)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
            cancel: CancelToken::default(),
            max_samples: None,
        }
    }

    /// Limits this query to `n` samples in memory (instead of the engine default).
    pub fn with_max_samples(mut self, n: usize) -> Self {
        self.max_samples = Some(n);
        self
    }

    /// A handle the HTTP layer cancels when the client disconnects.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The query's own sample budget, when it overrides the engine's.
    pub fn max_samples(&self) -> Option<usize> {
        self.max_samples
    }

    /// Fails when the query was cancelled or its deadline has passed. The
    /// evaluator calls it per batch of series or steps; reading the clock
    /// costs tens of nanoseconds, far below a batch's work.
    pub fn check(&self, env: &'static str) -> Result<()> {
        if self.cancel.is_cancelled() {
            return Err(QueryError::Canceled(env));
        }
        if Instant::now() >= self.deadline {
            return Err(QueryError::Timeout(env));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_token_cancels_the_query() {
        let ctx = QueryContext::new(Duration::from_secs(60));
        assert!(ctx.check("t").is_ok());
        ctx.cancel_token().cancel();
        assert_eq!(ctx.check("t"), Err(QueryError::Canceled("t")));
    }

    #[test]
    fn passed_deadline_times_out() {
        let ctx = QueryContext::new(Duration::ZERO);
        assert_eq!(ctx.check("t"), Err(QueryError::Timeout("t")));
    }
}
