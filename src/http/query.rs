//! `/api/v1/query` and `/api/v1/query_range`: PromQL over HTTP with
//! Prometheus' parameters, JSON shapes and error codes.
//!
//! Evaluation runs as an admitted read (`read.rs`): on the blocking pool,
//! under a deadline, cancelled when the client goes away.

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use tessera_query::{QueryError, QueryResult, Value};

use super::api::{
    ApiError, ErrorType, Params, SUCCESS_PREFIX, parse_duration, success_suffix, write_labels,
};
use super::{AppStateRef, read, stream};
use crate::fleet::{FleetStorage, Shape};
use crate::metrics::METRICS;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn query_error(e: QueryError) -> ApiError {
    let kind = match e.error_type() {
        "bad_data" => ErrorType::BadData,
        "execution" => ErrorType::Execution,
        "timeout" => ErrorType::Timeout,
        "canceled" => ErrorType::Canceled,
        _ => ErrorType::Internal,
    };
    if let QueryError::TooManySamples { .. } = e {
        METRICS.query_limit_hits.inc(&["query.max-samples"]);
    }
    if let QueryError::Timeout(_) = e {
        METRICS.query_limit_hits.inc(&["query.timeout"]);
    }
    if let QueryError::Parse { .. } = e {
        // Prometheus' wording, which Grafana shows under the query.
        return ApiError::new(kind, format!("invalid parameter \"query\": {e}"));
    }
    ApiError::new(kind, e.to_string())
}

/// Whether a tier's answer may leave out failed partitions (with a
/// warning): `partial_response` of the request, else
/// `--query.partial-response`.
pub(super) fn partial_response(p: &Params, state: &super::AppState) -> Result<bool, ApiError> {
    // `serve` has no partitions and ignores the parameter, as before.
    let Some(fleet) = &state.fleet else {
        return Ok(true);
    };
    match p.get("partial_response") {
        None => Ok(fleet.partial_response),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(s) => Err(ApiError::bad_data(format!(
            "invalid parameter \"partial_response\": {s:?}"
        ))),
    }
}

fn query_text(p: &Params) -> Result<String, ApiError> {
    p.get("query")
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query must not be empty"))
}

/// Runs a PromQL evaluation as an admitted read and records its peak samples.
async fn run_query(
    state: &AppStateRef,
    endpoint: &'static str,
    q: &str,
    p: &Params,
    shape: Shape,
) -> Result<Response, ApiError> {
    let partial = partial_response(p, state)?;
    let started = std::time::Instant::now();
    let text = q.to_string();
    let res = read::run(state, endpoint, q, p, move |st, source, ctx| match source {
        read::Source::Local(db) => shape
            .run(&st.engine, db.as_ref(), &text, ctx)
            .map_err(query_error),
        read::Source::Fleet(fleet) => {
            let storage = FleetStorage::new(fleet.clone(), partial);
            let r = storage.query(&st.engine, &text, shape, ctx);
            if let Some(why) = storage.failure() {
                return Err(ApiError::new(ErrorType::Unavailable, why));
            }
            let mut res = r.map_err(query_error)?;
            res.warnings.extend(storage.warnings());
            Ok(res)
        }
    })
    .await?;
    METRICS
        .query_peak_samples
        .observe_value(&[endpoint], res.peak_samples as f64);
    // `stats` (any value) asks for Prometheus' `data.stats`: what Tessera
    // measures of a query, its wall time and the most samples it held.
    let stats = p.get("stats").map(|_| Stats {
        eval_seconds: started.elapsed().as_secs_f64(),
        peak_samples: res.peak_samples,
    });
    Ok(render(res, stats))
}

/// `data.stats` of an answer, in Prometheus' field names.
struct Stats {
    eval_seconds: f64,
    peak_samples: usize,
}

pub(super) async fn instant(state: AppStateRef, req: Request<Body>) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let q = query_text(&p)?;
    let t = p.time_or("time", now_ms())?;
    run_query(&state, "query", &q, &p, Shape::Instant(t)).await
}

pub(super) async fn range(state: AppStateRef, req: Request<Body>) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let q = query_text(&p)?;
    let need = |k: &str| -> Result<i64, ApiError> {
        if p.get(k).is_none() {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"{k}\": missing"
            )));
        }
        p.time_or(k, 0)
    };
    let (start, end) = (need("start")?, need("end")?);
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = match p.get("step") {
        None => return Err(ApiError::bad_data("invalid parameter \"step\": missing")),
        Some(s) => parse_duration(s)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"step\": {e}")))?,
    };
    tessera_query::check_resolution(start, end, step).map_err(query_error)?;
    let shape = Shape::Range { start, end, step };
    run_query(&state, "query_range", &q, &p, shape).await
}

/// Renders a result in Prometheus' JSON shape, written directly into one
/// buffer: results can hold millions of points and a `serde_json::Value`
/// tree would triple their memory.
fn render(res: QueryResult, stats: Option<Stats>) -> Response {
    let mut head = String::with_capacity(256);
    head.push_str(SUCCESS_PREFIX);
    head.push_str("{\"resultType\":\"");
    head.push_str(res.value.type_name());
    head.push_str("\",\"result\":");
    let stats = stats.map_or_else(String::new, |s| {
        format!(
            ",\"stats\":{{\"timings\":{{\"evalTotalTime\":{}}},\"samples\":{{\"peakSamples\":{}}}}}",
            s.eval_seconds, s.peak_samples
        )
    });
    let tail = format!("{stats}}}{}", success_suffix(&res.warnings));
    match res.value {
        Value::Scalar { t, v } => {
            point(&mut head, t, v);
            head.push_str(&tail);
            stream::json_stream(std::iter::once(head))
        }
        Value::String { t, v } => {
            head.push('[');
            timestamp(&mut head, t);
            head.push(',');
            head.push_str(&serde_json::to_string(&v).expect("strings serialize"));
            head.push(']');
            head.push_str(&tail);
            stream::json_stream(std::iter::once(head))
        }
        // Vectors and matrices can be large: streamed a chunk at a time.
        Value::Vector(samples) => {
            head.push('[');
            stream::json_stream(stream::chunks(
                head,
                samples,
                format!("]{tail}"),
                |out, s| {
                    out.push_str("{\"metric\":");
                    write_labels(out, &s.labels);
                    out.push_str(",\"value\":");
                    point(out, s.t, s.v);
                    out.push('}');
                },
            ))
        }
        Value::Matrix(series) => {
            head.push('[');
            stream::json_stream(stream::chunks(
                head,
                series,
                format!("]{tail}"),
                |out, s| {
                    out.push_str("{\"metric\":");
                    write_labels(out, &s.labels);
                    out.push_str(",\"values\":[");
                    for (j, p) in s.samples.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        point(out, p.t, p.v);
                    }
                    out.push_str("]}");
                },
            ))
        }
    }
}

/// `[<unix seconds>,"<value>"]`.
fn point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    timestamp(out, t);
    out.push_str(",\"");
    format_value(out, v);
    out.push_str("\"]");
}

/// Milliseconds as Prometheus writes them: seconds with up to three
/// decimals, trailing zeros trimmed (`1435781451.781`, `1435781451`).
pub(super) fn timestamp(out: &mut String, t_ms: i64) {
    let secs = t_ms.div_euclid(1000);
    let ms = t_ms.rem_euclid(1000);
    if ms == 0 {
        let _ = write!(out, "{secs}");
        return;
    }
    // -1.5s is written -1.5, i.e. from the truncated parts, as Go does.
    let (whole, frac) = if t_ms < 0 {
        (-(t_ms.abs() / 1000), t_ms.abs() % 1000)
    } else {
        (secs, ms)
    };
    let sign = if t_ms < 0 && whole == 0 { "-" } else { "" };
    let mut f = format!("{frac:03}");
    while f.ends_with('0') {
        f.pop();
    }
    let _ = write!(out, "{sign}{whole}.{f}");
}

/// A sample value as Prometheus' JSON writes it (`tessera_query::format`
/// owns the digits).
pub(super) fn format_value(out: &mut String, v: f64) {
    out.push_str(&tessera_query::format::prometheus_json_value(v));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps_like_prometheus() {
        let f = |t: i64, want: &str| {
            let mut s = String::new();
            timestamp(&mut s, t);
            assert_eq!(s, want, "{t}");
        };
        f(0, "0");
        f(1_435_781_451_781, "1435781451.781");
        f(1_435_781_451_000, "1435781451");
        f(1_435_781_451_500, "1435781451.5");
        f(1_435_781_451_010, "1435781451.01");
        f(-1500, "-1.5");
        f(-500, "-0.5");
        f(-2000, "-2");
    }

    #[test]
    fn formats_values_like_prometheus() {
        let f = |v: f64, want: &str| {
            let mut s = String::new();
            format_value(&mut s, v);
            assert_eq!(s, want);
        };
        f(1.0, "1");
        f(0.1, "0.1");
        f(-2.5, "-2.5");
        f(f64::NAN, "NaN");
        f(f64::INFINITY, "+Inf");
        f(f64::NEG_INFINITY, "-Inf");
        f(1e21, "1e+21");
        f(1.5e-7, "1.5e-07");
        // Go rounds a tie between two shortest forms to even (issue 20).
        f(f64::from_bits(0x42d9_c8a0_2b2d_0468), "113397885350929.62"); // ...929.625
    }
}
