//! `/api/v1/status/tsdb`, `/api/v1/status/runtimeinfo` and
//! `/api/v1/status/flags` in Prometheus' JSON shapes, so Grafana and the
//! Prometheus tooling that call them work against Tessera.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use serde_json::{Map, Value, json};

use tessera_tsdb::ReadControl;
use tessera_tsdb::analyze::AnalyzeRequest;
use tessera_tsdb::labels::is_valid_label_name;

use super::api::{ApiError, ErrorType, Params, success};
use super::{AppStateRef, metadata, read};

fn pairs(v: &[(String, u64)]) -> Value {
    Value::Array(
        v.iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
    )
}

/// Most entries a `/api/v1/status/tsdb` list may have: a page, not a dump.
const MAX_TOP_N: usize = 1000;

/// `topN` (VictoriaMetrics' name), else `limit` (Prometheus'), default 10,
/// cut to [`MAX_TOP_N`] with a warning.
fn top_n(p: &Params) -> Result<(usize, Vec<String>), ApiError> {
    let n = match p.get("topN") {
        None => p.limit()?,
        Some(s) => s.parse::<usize>().map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"topN\": cannot parse {s:?} to a count"
            ))
        })?,
    };
    Ok(match n {
        0 => (10, vec![]),
        n if n > MAX_TOP_N => (
            MAX_TOP_N,
            vec![format!("topN cut to {MAX_TOP_N}, the most one call lists")],
        ),
        n => (n, vec![]),
    })
}

/// Cardinality of the head: what an operator asks when memory grows.
/// Prometheus' shape, plus VictoriaMetrics' `match[]` (only those series,
/// counted against `--api.max-series`), `focusLabel` and `topN`, and the
/// head's churn. An admitted read: deadline, cancellation, accounting.
pub(super) async fn tsdb(state: AppStateRef, req: Request<Body>) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let (top, warnings) = top_n(&p)?;
    let focus_label = p.get("focusLabel").map(str::to_string);
    if let Some(f) = &focus_label
        && !is_valid_label_name(f)
    {
        return Err(ApiError::bad_data(format!(
            "invalid parameter \"focusLabel\": {f:?} is not a label name"
        )));
    }
    let req = AnalyzeRequest {
        top,
        matchers: metadata::match_sets(&p)?,
        focus_label,
    };
    let cap = state.opts.api_max_series;
    let text = format!(
        "status/tsdb match[]={}",
        p.all("match[]").collect::<Vec<_>>().join(" match[]=")
    );
    let a = read::run(&state, "tsdb_status", &text, &p, move |_, source, ctx| {
        let read::Source::Local(db) = source else {
            return Err(ApiError::new(
                ErrorType::Internal,
                "the TSDB status needs a local database",
            ));
        };
        let stop = || ctx.check("tsdb status").is_err();
        let ctl = ReadControl::new(cap, 0, &stop);
        db.analyze_with(&req, &ctl)
            .map_err(|e| read::read_error(e, ctx, "TSDB status API", "--api.max-series"))
    })
    .await?;
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
            "totalSeries": a.series,
            "totalLabelValuePairs": a.label_pairs,
            "seriesCountByMetricName": pairs(&a.series_by_metric),
            "seriesCountByLabelName": pairs(&a.series_by_label),
            "seriesCountByFocusLabelValue": pairs(&a.series_by_focus_value),
            "labelValueCountByLabelName": pairs(&a.values_by_label),
            "memoryInBytesByLabelName": pairs(&a.bytes_by_label),
            "seriesCountByLabelValuePair": pairs(&a.series_by_pair),
            "churn": {
                "seriesCreatedSinceCut": a.series_created_since_cut,
                "seriesRemovedByLastCut": a.series_removed_by_last_cut,
                "churnedSeries": a.churned_series,
                "churnSlackMs": tessera_tsdb::analyze::CHURN_SLACK_MS,
                "churnByLabelValuePair": pairs(&a.churn_by_pair),
            },
        }),
        &warnings,
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
