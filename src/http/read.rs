//! Running one admitted read (a PromQL query or a metadata call) under its
//! context: admission, deadline, cancellation on client disconnect, the
//! blocking pool, and the accounting every read shares.
//!
//! The work runs on the blocking pool (sized from the CPU budget) and checks
//! the context's token at fine grain. When the client goes away, hyper drops
//! the handler's future; the [`CancelOnDrop`] guard then fires the token and
//! the blocking work stops at its next check and frees its memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::Response;
use tessera_query::{CancelToken, QueryContext};
use tessera_tsdb::Db;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::admission::truncate;
use super::api::{ApiError, ErrorType, Params, parse_duration};
use super::{AppState, stream};
use crate::fleet::Fleet;
use crate::metrics::METRICS;

/// Fires the token when dropped; counts a client cancellation when the
/// request was abandoned before the work finished.
struct CancelOnDrop {
    token: CancelToken,
    endpoint: &'static str,
    finished: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.token.cancel();
        if !self.finished {
            METRICS.query_cancellations.inc(&[self.endpoint, "client"]);
        }
    }
}

/// The request's `timeout`, capped by the server's `--query.timeout`.
pub(super) fn timeout(p: &Params, default: Duration) -> Result<Duration, ApiError> {
    match p.get("timeout") {
        None => Ok(default),
        Some(s) => {
            let ms = parse_duration(s)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"timeout\": {e}")))?;
            Ok(Duration::from_millis(ms.max(0) as u64).min(default))
        }
    }
}

/// Where a read goes: this server's database (`serve`) or the partitions
/// behind a query tier (`query`).
pub(super) enum Source {
    Local(Arc<Db>),
    Fleet(Arc<Fleet>),
}

/// Runs `f` as an admitted read of `endpoint` with `text` as its listing.
pub(super) async fn run<T, F>(
    state: &Arc<AppState>,
    endpoint: &'static str,
    text: &str,
    p: &Params,
    f: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&AppState, &Source, &QueryContext) -> Result<T, ApiError> + Send + 'static,
{
    let source = match &state.fleet {
        Some(f) => Source::Fleet(f.clone()),
        None => Source::Local(state.db()?.clone()),
    };
    let timeout = timeout(p, state.engine.options().default_timeout)?;
    let ticket = state.admission.enter(endpoint, text).await?;
    run_admitted(state, source, endpoint, text, timeout, ticket, f).await
}

/// Runs `f` under `timeout` once a gate has let it in: `ticket` (the gate's
/// permit) moves onto the blocking pool with the work and is dropped when
/// the work really ends.
pub(super) async fn run_admitted<S, T, F, G>(
    state: &Arc<AppState>,
    source: S,
    endpoint: &'static str,
    text: &str,
    timeout: Duration,
    ticket: G,
    f: F,
) -> Result<T, ApiError>
where
    S: Send + 'static,
    T: Send + 'static,
    F: FnOnce(&AppState, &S, &QueryContext) -> Result<T, ApiError> + Send + 'static,
    G: Send + 'static,
{
    let ctx = QueryContext::new(timeout);
    let mut guard = CancelOnDrop {
        token: ctx.cancel_token(),
        endpoint,
        finished: false,
    };
    let st = state.clone();
    let started = Instant::now();
    let r = tokio::task::spawn_blocking(move || {
        let r = f(&st, &source, &ctx);
        drop(ticket);
        r
    })
    .await
    .map_err(|e| ApiError::new(ErrorType::Internal, format!("read task failed: {e}")))?;
    guard.finished = true;
    METRICS
        .read_duration
        .observe(&[endpoint], started.elapsed());
    if let Err(e) = &r {
        account_stop(endpoint, text, e);
    }
    r
}

/// Counts and logs a read that a limit, a deadline or the client stopped.
fn account_stop(endpoint: &'static str, text: &str, e: &ApiError) {
    let reason = match e.kind {
        ErrorType::Timeout => Some("timeout"),
        ErrorType::Canceled => Some("client"),
        ErrorType::Execution if e.message.contains("--") => Some("budget"),
        _ => None,
    };
    if let Some(reason) = reason {
        METRICS.query_cancellations.inc(&[endpoint, reason]);
        let mut q = text.to_string();
        truncate(&mut q, 200);
        warn!(endpoint, reason, query = %q, error = %e.message, "read stopped by a limit");
    }
}

/// Where a streamed read ([`stream`]) sends its body.
pub(super) struct Sink {
    /// Tells the handler the answer is a 200 (taken at the first send).
    ready: Option<oneshot::Sender<Result<(), ApiError>>>,
    tx: mpsc::Sender<stream::Chunk>,
}

impl Sink {
    /// Queues `chunk` for the client, waiting while [`stream::CHANNEL_CHUNKS`]
    /// are queued; fails when the client has gone (its body was dropped).
    pub(super) fn send(&mut self, chunk: String) -> Result<(), ApiError> {
        if let Some(ready) = self.ready.take() {
            // The handler may be gone too; the send below then fails.
            let _ = ready.send(Ok(()));
        }
        self.tx
            .blocking_send(Ok(chunk.into()))
            .map_err(|_| ApiError::new(ErrorType::Canceled, "the client went away"))
    }
}

/// Runs `f` as an admitted read of `endpoint` on this server's database
/// whose answer streams: `f` decides any error status before its first
/// [`Sink::send`] (the handler waits for that), then renders the body a
/// chunk at a time. The admission slot is held until `f` returns, so
/// the in-flight gauge counts the rendering; a client that leaves fails the
/// next send and cancels the context, so the work stops within a chunk.
/// An error after the first byte aborts the connection.
pub(super) async fn stream<F>(
    state: &Arc<AppState>,
    endpoint: &'static str,
    text: &str,
    p: &Params,
    f: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(&Db, &QueryContext, &mut Sink) -> Result<(), ApiError> + Send + 'static,
{
    let db = state.db()?.clone();
    let timeout = timeout(p, state.engine.options().default_timeout)?;
    let ticket = state.admission.enter(endpoint, text).await?;
    let ctx = QueryContext::new(timeout);
    let mut guard = CancelOnDrop {
        token: ctx.cancel_token(),
        endpoint,
        finished: false,
    };
    let (tx, rx) = mpsc::channel(stream::CHANNEL_CHUNKS);
    let (ready, first) = oneshot::channel();
    let text = text.to_string();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut sink = Sink {
            ready: Some(ready),
            tx,
        };
        let r = f(&db, &ctx, &mut sink);
        drop(ticket);
        METRICS
            .read_duration
            .observe(&[endpoint], started.elapsed());
        match (r, sink.ready.take()) {
            (Ok(()), Some(ready)) => {
                let _ = ready.send(Ok(()));
            }
            (Ok(()), None) => {}
            (Err(e), ready) => {
                // A client that left is counted by the handler's guard.
                if e.kind != ErrorType::Canceled || !ctx.cancel_token().is_cancelled() {
                    account_stop(endpoint, &text, &e);
                }
                match ready {
                    Some(ready) => {
                        let _ = ready.send(Err(e));
                    }
                    None => {
                        let _ = sink.tx.blocking_send(Err(std::io::Error::other(e.message)));
                    }
                }
            }
        }
    });
    match first.await {
        Ok(Ok(())) => Ok(stream::channel_json(rx, move |ended| {
            guard.finished = ended;
            drop(guard);
        })),
        Ok(Err(e)) => {
            guard.finished = true;
            Err(e)
        }
        Err(_) => {
            guard.finished = true;
            Err(ApiError::new(ErrorType::Internal, "read task failed"))
        }
    }
}

/// Maps a storage read stop to the API error, naming the flag to raise.
pub(super) fn read_error(
    e: tessera_tsdb::ReadError,
    ctx: &QueryContext,
    what: &str,
    max_series_flag: &str,
) -> ApiError {
    match e {
        tessera_tsdb::ReadError::Stopped => match ctx.check("read") {
            Err(tessera_query::QueryError::Timeout(_)) => {
                METRICS.query_limit_hits.inc(&["query.timeout"]);
                ApiError::new(
                    ErrorType::Timeout,
                    format!(
                        "{what} timed out; narrow match[] or the time range, or raise --query.timeout"
                    ),
                )
            }
            _ => ApiError::new(ErrorType::Canceled, format!("{what} was canceled")),
        },
        tessera_tsdb::ReadError::TooManySeries { limit } => {
            METRICS
                .query_limit_hits
                .inc(&[max_series_flag.trim_start_matches('-')]);
            ApiError::new(
                ErrorType::Execution,
                format!(
                    "the {what} matched more than {limit} series; narrow match[] or the time range, \
                     pass a smaller limit, or raise {max_series_flag}"
                ),
            )
        }
        tessera_tsdb::ReadError::Corrupt {
            path,
            offset,
            message,
        } => {
            tracing::error!(file = %path.display(), ?offset, %message, "a read met damaged storage");
            ApiError::new(ErrorType::Internal, format!("the {what} failed: {message}"))
        }
        tessera_tsdb::ReadError::TooManySamples { limit } => {
            METRICS.query_limit_hits.inc(&["query.max-samples"]);
            ApiError::new(
                ErrorType::Execution,
                format!(
                    "the {what} would load more than {limit} samples; narrow the selectors or the time range, \
                     or raise --query.max-samples"
                ),
            )
        }
    }
}
