//! `POST /api/v1/read`: the Prometheus remote read server, so a Prometheus
//! with `remote_read` (`read_recent: true`), a Thanos sidecar or a query
//! tier can read this server's raw series.
//!
//! Both response types are served: `SAMPLES` (one snappy-compressed
//! `ReadResponse`, what Prometheus before 2.55 always asks for) and
//! `STREAMED_XOR_CHUNKS` (CRC-checked frames of Prometheus XOR chunks, one
//! series per frame). The wire work is in `tessera_ingest::remote_read`;
//! this file is the HTTP side and the limits, which follow Prometheus':
//!
//! - `--storage.remote.read-concurrent-limit`: a gate of its own, not the
//!   query admission gate, as in Prometheus. Extra requests wait (no queue
//!   limit, no timeout: the client's `remote_timeout` bounds the wait, and a
//!   client that leaves stops waiting). Dashboards' queries and a global
//!   Prometheus' reads thus cannot starve each other.
//! - `--storage.remote.read-sample-limit`: samples per query of a `SAMPLES`
//!   answer; over it, 400 `exceeded sample limit (N)`.
//! - `--storage.remote.read-max-bytes-in-frame`: the target frame size of a
//!   streamed answer.
//! - A request body of at most 32 MiB, its snappy header's decoded length
//!   checked before anything is allocated.
//! - `--query.timeout` and client hang-up stop the read (`read.rs`).
//!
//! Every malformed request (bad snappy or protobuf, one that would expand
//! past its memory budget, unknown response type or matcher type, invalid
//! regex) is a 400 with a plain-text reason, as in Prometheus. Every query's selection is made before the first byte is
//! sent, so an error still sets the status code; a streamed answer then
//! encodes its frames as the client reads them, freeing each series once
//! sent, and holds the gate until its last frame is out. Its selections are
//! bounded by `--query.max-samples` per query (Prometheus' streamed reads
//! have no sample limit, but Tessera holds a query's selection in memory).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tessera_ingest::remote_read::{self, MAX_READ_REQUEST_BYTES, ResponseType, frame};
use tessera_tsdb::{Db, Matcher, ReadControl, ReadError, SeriesSamples};
use tokio::sync::Semaphore;

use super::api::{ApiError, ErrorType};
use super::{AppStateRef, read, stream};
use crate::metrics::METRICS;

/// The remote-read gate and its in-flight count.
pub(crate) struct RemoteReadGate {
    sem: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
}

impl RemoteReadGate {
    pub(crate) fn new(concurrent_limit: usize) -> Self {
        RemoteReadGate {
            sem: Arc::new(Semaphore::new(concurrent_limit.max(1))),
            in_flight: Arc::default(),
        }
    }

    /// Remote-read requests being answered or waiting for the gate.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Counts a request in flight from arrival until its work ends.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(n: &Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut msg = msg.into();
    msg.push('\n');
    (status, msg).into_response()
}

fn bad_request(msg: impl Into<String>) -> Response {
    METRICS.remote_read_refused.inc(&["bad_request"]);
    text(StatusCode::BAD_REQUEST, msg)
}

/// One query of the request, ready for storage.
struct Query {
    mint: i64,
    maxt: i64,
    matchers: Vec<Matcher>,
}

impl Query {
    /// The query's series, sorted by labels. No matchers select nothing,
    /// as in Prometheus (whose postings for an empty matcher list are
    /// empty), rather than every series.
    fn select(&self, db: &Db, ctl: &ReadControl<'_>) -> Result<Vec<SeriesSamples>, ReadError> {
        if self.matchers.is_empty() {
            return Ok(Vec::new());
        }
        db.select_with(&self.matchers, self.mint, self.maxt, ctl)
    }
}

pub(super) async fn remote_read(state: AppStateRef, body: Body) -> Response {
    let db = match state.db() {
        Ok(db) => db.clone(),
        Err(e) => return text(e.kind.status(), e.message),
    };
    let in_flight = InFlight::new(&state.remote_read.in_flight);
    let bytes = match Limited::new(body, MAX_READ_REQUEST_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return bad_request(format!(
                "remote-read request body exceeds {MAX_READ_REQUEST_BYTES} bytes"
            ));
        }
        Err(e) => return bad_request(format!("reading request body: {e}")),
    };
    let req = match remote_read::decode_read_request(&bytes) {
        Ok(r) => r,
        Err(e) => return bad_request(e.to_string()),
    };
    drop(bytes);
    let kind = match remote_read::negotiate(&req.accepted_response_types) {
        Ok(k) => k,
        Err(e) => return bad_request(e.to_string()),
    };
    let mut queries = Vec::with_capacity(req.queries.len());
    for (i, q) in req.queries.iter().enumerate() {
        match remote_read::matchers(i, q) {
            Ok(matchers) => queries.push(Query {
                mint: q.start_timestamp_ms,
                maxt: q.end_timestamp_ms,
                matchers,
            }),
            Err(e) => return bad_request(e.to_string()),
        }
    }
    let listing = describe(&queries);

    // Waits as long as the client does: dropping this future (hang-up)
    // abandons the wait.
    let Ok(permit) = state.remote_read.sem.clone().acquire_owned().await else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "remote-read gate closed");
    };
    // Listed in /api/v1/status/queries with the other reads while it runs.
    let listed = state.admission.list_only("remote_read", &listing);
    let timeout = state.engine.options().default_timeout;
    let sample_limit = state.opts.remote_read_sample_limit;
    let max_samples = state.engine.options().max_samples;
    let frame_bytes = state.opts.remote_read_max_bytes_in_frame;
    // The gate's permit and the in-flight count go with the storage work
    // (freed when it really ends, even if the client left), then with the
    // answer until it is sent (a streamed body holds them while it
    // streams); the status listing ends with the storage work.
    let hold = (permit, in_flight);
    let r = read::run_admitted(
        &state,
        db,
        "remote_read",
        &listing,
        timeout,
        listed,
        move |_, db, ctx| {
            let stop = || ctx.check("remote read").is_err();
            let mut results = Vec::with_capacity(queries.len());
            for q in &queries {
                let series = match kind {
                    ResponseType::Samples => {
                        let ctl = ReadControl::new(0, sample_limit, &stop);
                        q.select(db, &ctl).map_err(|e| sample_limit_error(e, ctx))?
                    }
                    ResponseType::StreamedXorChunks => {
                        let ctl = ReadControl::new(0, max_samples, &stop);
                        q.select(db, &ctl).map_err(|e| {
                            read::read_error(e, ctx, "remote read", "--api.max-series")
                        })?
                    }
                };
                results.push(series);
            }
            let answer = match kind {
                ResponseType::Samples => Answer::Samples(remote_read::samples_response(results)),
                ResponseType::StreamedXorChunks => Answer::Streamed(results),
            };
            Ok((answer, hold))
        },
    )
    .await;
    match r {
        Ok((Answer::Samples(body), hold)) => {
            let mut resp = body.into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(remote_read::SAMPLES_CONTENT_TYPE),
            );
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
            drop(hold);
            resp
        }
        Ok((Answer::Streamed(results), hold)) => stream::bytes_stream(
            frame::STREAMED_CONTENT_TYPE,
            frames(results, frame_bytes, hold),
        ),
        Err(e) => {
            if e.kind == ErrorType::BadData {
                METRICS.remote_read_refused.inc(&["sample_limit"]);
            }
            text(e.kind.status(), e.message)
        }
    }
}

/// What the storage work hands back: a finished SAMPLES body, or the
/// selections a streamed body encodes as it is sent.
enum Answer {
    Samples(Vec<u8>),
    Streamed(Vec<Vec<SeriesSamples>>),
}

/// The frames of a streamed answer, encoded as the client reads them
/// ([`stream::CHUNK_BYTES`] at a time, whole frames) rather than built
/// whole: each series is freed once encoded, and a client that hangs up
/// drops the rest. `hold` (the gate's permit) is released when the last
/// frame is out or the body is dropped.
fn frames(
    results: Vec<Vec<SeriesSamples>>,
    max_bytes_in_frame: usize,
    hold: impl Send + 'static,
) -> impl Iterator<Item = Bytes> + Send + 'static {
    let mut series = results
        .into_iter()
        .enumerate()
        .flat_map(|(i, v)| v.into_iter().map(move |s| (i as i64, s)));
    let mut hold = Some(hold);
    std::iter::from_fn(move || {
        let mut out = Vec::new();
        for (i, s) in series.by_ref() {
            remote_read::chunked_series(&mut out, i, &s, max_bytes_in_frame);
            if out.len() >= stream::CHUNK_BYTES {
                return Some(Bytes::from(out));
            }
        }
        drop(hold.take());
        (!out.is_empty()).then(|| Bytes::from(out))
    })
}

/// A `SAMPLES` read stopped by the sample limit is Prometheus' 400
/// `exceeded sample limit (N)`; other stops as for any read.
fn sample_limit_error(e: ReadError, ctx: &tessera_query::QueryContext) -> ApiError {
    match e {
        ReadError::TooManySamples { limit } => {
            METRICS
                .query_limit_hits
                .inc(&["storage.remote.read-sample-limit"]);
            ApiError::bad_data(format!("exceeded sample limit ({limit})"))
        }
        e => read::read_error(e, ctx, "remote read", "--api.max-series"),
    }
}

/// The listing of a request in `/api/v1/status/queries`: its selectors.
fn describe(queries: &[Query]) -> String {
    queries
        .iter()
        .map(|q| {
            let m: Vec<String> = q.matchers.iter().map(|m| m.to_string()).collect();
            format!("{{{}}}[{}..{}]", m.join(","), q.mint, q.maxt)
        })
        .collect::<Vec<_>>()
        .join(" ")
}
