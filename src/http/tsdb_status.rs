//! `/api/v1/status/tsdb`, `/api/v1/status/runtimeinfo` and
//! `/api/v1/status/flags` in Prometheus' JSON shapes, so Grafana and the
//! Prometheus tooling that call them work against Tessera.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::AppStateRef;
use super::api::{ApiError, Params, success};

fn pairs(v: &[(String, u64)]) -> Value {
    Value::Array(
        v.iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
    )
}

/// Cardinality of the head: what an operator asks when memory grows.
pub(super) async fn tsdb(state: AppStateRef, req: Request<Body>) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let limit = match p.limit()? {
        0 => 10,
        n => n,
    };
    let db = state.db()?.clone();
    // Walks every shard's index: CPU work, off the async workers.
    let a = tokio::task::spawn_blocking(move || db.analyze(limit))
        .await
        .map_err(|e| ApiError::new(super::api::ErrorType::Internal, e.to_string()))?;
    let stats = state.db()?.head_stats();
    let chunks: u64 = stats.iter().map(|s| s.chunks).sum();
    Ok(success(
        json!({
            "headStats": {
                "numSeries": a.series,
                "numLabelPairs": a.label_pairs,
                "chunkCount": chunks,
                "minTime": a.min_time.unwrap_or(0),
                "maxTime": a.max_time.unwrap_or(0),
            },
            "seriesCountByMetricName": pairs(&a.series_by_metric),
            "labelValueCountByLabelName": pairs(&a.values_by_label),
            "memoryInBytesByLabelName": pairs(&a.bytes_by_label),
            "seriesCountByLabelValuePair": pairs(&a.series_by_pair),
        }),
        &[],
    ))
}

pub(super) async fn runtimeinfo(state: AppStateRef) -> Response {
    let start = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(state.start_time);
    let cwd = std::env::current_dir().map_or_else(|_| String::new(), |p| p.display().to_string());
    success(
        json!({
            "startTime": rfc3339(start),
            "CWD": cwd,
            "reloadConfigSuccess": crate::metrics::METRICS.relabel_reloads.get(&["failure"]) == 0.0
                && crate::metrics::METRICS.web_config_reloads.get(&["failure"]) == 0.0,
            "lastConfigTime": rfc3339(start),
            "corruptionCount": 0,
            "goroutineCount": 0,
            "GOMAXPROCS": state.cpus,
            "GOMEMLIMIT": 0,
            "GOGC": "",
            "GODEBUG": "",
            "storageRetention": "head only (no blocks yet)",
            "serverTime": rfc3339(std::time::SystemTime::now()),
        }),
        &[],
    )
}

pub(super) async fn flags(state: AppStateRef) -> Response {
    let mut m = Map::new();
    for (k, v) in &state.flags {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    success(Value::Object(m), &[])
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC; a time before 1970 as 1970.
fn rfc3339(t: std::time::SystemTime) -> String {
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    tessera_query::time::rfc3339_millis(ms)
}
