//! `POST /api/v1/write`: the Prometheus remote write 1.0 and 2.0 receiver.
//!
//! The version comes from the headers (`tessera_ingest::negotiate`); both
//! are decoded by the ingest crate into the same validated write and stored
//! through the one append path (`tessera_ingest::write`).
//!
//! Status codes are chosen for how Prometheus' sender reacts to them: 2xx is
//! done, 5xx is retried with backoff, 4xx drops the batch (429 is retried
//! only when the sender opts in). So: 204 when everything was kept; 400 when
//! some or all of the request can never be stored (the valid rest *is* kept,
//! and the body says what was refused); 413 for bodies over the limits; 415
//! for a Content-Type or Content-Encoding that is neither version (the body
//! names what is accepted); 503 + `Retry-After` when the server is
//! overloaded or still starting.
//!
//! Every answer carries `X-Prometheus-Remote-Write-Samples-Written`,
//! `-Histograms-Written` and `-Exemplars-Written`: what was stored. New
//! senders treat a 2xx without them for a non-empty 2.0 request as a
//! receiver that ignored the Content-Type, and read them on 1.0 too.

use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tessera_ingest::{
    Protocol, StatusClass, decode_v1, decode_v2, negotiate, validate, validate_v2,
};
use tracing::warn;

use super::AppStateRef;
use crate::metrics::METRICS;

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut msg = msg.into();
    msg.push('\n');
    (status, msg).into_response()
}

fn overloaded(reason: &str, msg: &str) -> Response {
    METRICS.ingest_requests_refused.inc(&[reason]);
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, msg);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// What one request stored, for the `X-Prometheus-Remote-Write-*-Written`
/// headers.
#[derive(Clone, Copy, Debug, Default)]
struct Written {
    samples: u64,
    /// Native histogram samples: none until they are stored.
    histograms: u64,
    /// Exemplars: none until they are stored.
    exemplars: u64,
}

pub(super) async fn remote_write(state: AppStateRef, headers: HeaderMap, body: Body) -> Response {
    let (mut response, written) = receive(state, headers, body).await;
    let h = response.headers_mut();
    for (name, n) in [
        ("x-prometheus-remote-write-samples-written", written.samples),
        (
            "x-prometheus-remote-write-histograms-written",
            written.histograms,
        ),
        (
            "x-prometheus-remote-write-exemplars-written",
            written.exemplars,
        ),
    ] {
        h.insert(name, HeaderValue::from(n));
    }
    response
}

async fn receive(state: AppStateRef, headers: HeaderMap, body: Body) -> (Response, Written) {
    let nothing = Written::default();
    let Ok(db) = state.db() else {
        return (
            overloaded(
                "not_ready",
                "Tessera is starting (replaying its WAL); retry shortly",
            ),
            nothing,
        );
    };
    // A header that is not text is passed on as such, so it is refused by name.
    let get = |name| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("(not text)"))
    };
    let protocol = match negotiate(get(header::CONTENT_TYPE), get(header::CONTENT_ENCODING)) {
        Ok(p) => p,
        Err(e) => {
            METRICS
                .ingest_requests_refused
                .inc(&["unsupported_media_type"]);
            warn!(error = %e, "refused remote-write request");
            return (
                text(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()),
                nothing,
            );
        }
    };
    let limits = &state.opts.decode_limits;

    // Wait in line briefly rather than refusing a burst outright; a sender
    // that cannot get in within the queue timeout backs off on the 503.
    let permit = match tokio::time::timeout(
        state.opts.ingest_queue_timeout,
        state.ingest_gate.acquire(),
    )
    .await
    {
        Ok(Ok(p)) => p,
        _ => {
            return (
                overloaded(
                    "overloaded",
                    "too many concurrent remote-write requests; retry later (raise --ingest.max-inflight if the CPU allows)",
                ),
                nothing,
            );
        }
    };

    // The body is read while holding an ingest slot: a client that
    // trickles it gets 408 after --web.read-timeout instead of keeping the
    // slot from honest writers.
    let read = tokio::time::timeout(
        state.opts.body_read_timeout,
        Limited::new(body, limits.max_compressed_bytes).collect(),
    )
    .await;
    let Ok(read) = read else {
        METRICS.ingest_requests_refused.inc(&["body_timeout"]);
        let msg = format!(
            "the remote-write body did not arrive within --web.read-timeout ({:?})",
            state.opts.body_read_timeout
        );
        warn!(reason = %msg, "refused remote-write request");
        return (text(StatusCode::REQUEST_TIMEOUT, msg), nothing);
    };
    let bytes = match read {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            METRICS.ingest_requests_refused.inc(&["body_too_large"]);
            let msg = format!(
                "remote-write body exceeds {} bytes; lower queue_config.max_samples_per_send or raise --ingest.max-request-bytes",
                limits.max_compressed_bytes
            );
            warn!(reason = %msg, "refused remote-write request");
            return (text(StatusCode::PAYLOAD_TOO_LARGE, msg), nothing);
        }
        Err(e) => {
            return (
                text(
                    StatusCode::BAD_REQUEST,
                    format!("reading request body: {e}"),
                ),
                nothing,
            );
        }
    };

    let started = Instant::now();
    // Both versions end as the same validated write: what follows is one
    // path for both.
    let decoded = match protocol {
        Protocol::V1 => decode_v1(&bytes, limits).map(|r| validate(r, limits)),
        Protocol::V2 => decode_v2(&bytes, limits).and_then(|r| validate_v2(r, limits)),
    };
    let validated = match decoded {
        Ok(v) => v,
        Err(e) => {
            let status = match e.status_class() {
                StatusClass::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                StatusClass::BadRequest => StatusCode::BAD_REQUEST,
            };
            METRICS.ingest_requests_refused.inc(&[e.reason()]);
            warn!(error = %e, bytes = bytes.len(), protocol = protocol.message(), "refused remote-write request");
            return (text(status, e.to_string()), nothing);
        }
    };
    drop(bytes);
    let report = match tessera_ingest::write(db, &state.metadata, &state.relabel, validated) {
        Ok(r) => r,
        Err(e) => {
            // Not durable, so not acknowledged: a 5xx makes the sender retry.
            tracing::error!(error = %e, "remote write could not be logged to the WAL");
            METRICS.ingest_requests_refused.inc(&["storage_error"]);
            return (
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("storage error: {e}"),
                ),
                nothing,
            );
        }
    };
    drop(permit);

    crate::append::count_appended(&report.append);
    METRICS
        .ingest_metadata
        .inc_by(&[], report.metadata_received as f64);
    let v = &report.validation;
    for (reason, n) in [
        ("invalid_series", v.invalid_series_samples),
        ("native_histogram", v.histograms),
        ("exemplar", v.exemplars),
        ("too_far_in_future", v.future_samples),
    ] {
        if n > 0 {
            METRICS.ingest_samples_rejected.inc_by(&[reason], n as f64);
        }
    }
    for (rule, n) in &report.relabel.dropped_by_rule {
        METRICS
            .relabel_series_dropped
            .inc_by(&[&rule.to_string()], *n as f64);
    }
    if v.invalid_series > 0 {
        METRICS
            .ingest_series_rejected
            .inc_by(&["invalid_labels"], v.invalid_series as f64);
    }
    let written = Written {
        samples: report.append.samples_appended,
        ..Written::default()
    };
    let response = match report.rejection_message() {
        None => StatusCode::NO_CONTENT.into_response(),
        Some(msg) => {
            warn!(
                reason = %msg,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "remote-write request partly refused"
            );
            text(StatusCode::BAD_REQUEST, msg)
        }
    };
    (response, written)
}
