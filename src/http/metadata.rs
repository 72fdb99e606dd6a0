//! Series and label discovery: `/api/v1/series`, `/api/v1/labels`,
//! `/api/v1/label/<name>/values`, and `/api/v1/metadata`, in Prometheus'
//! JSON shape.
//!
//! The `limit` parameter truncates and adds a warning, as Prometheus 3 does;
//! more matching series than `--api.max-series` is a 422 that says how to
//! narrow the call, never an unbounded answer.

use axum::body::Body;
use axum::extract::{Path, Request};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tessera_tsdb::{Labels, Matcher, labels::is_valid_label_name};

use super::api::{ApiError, ErrorType, MAX_TIME_MS, MIN_TIME_MS, Params, success};
use super::{AppStateRef, selector};

/// Every `match[]` parameter as alternatives of matcher conjunctions.
fn match_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut sets = Vec::new();
    for s in p.all("match[]") {
        sets.extend(selector::parse(s)?);
    }
    Ok(sets)
}

fn time_range(p: &Params) -> Result<(i64, i64), ApiError> {
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

fn truncation_warning(limit: usize) -> String {
    format!("results truncated due to limit ({limit})")
}

fn too_many(what: &str, n: usize, cap: usize) -> ApiError {
    ApiError::new(
        ErrorType::Execution,
        format!(
            "the {what} matched more than {cap} series ({n}); narrow match[] or the time range, \
             pass a smaller limit, or raise --api.max-series"
        ),
    )
}

pub async fn series(state: AppStateRef, req: Request<Body>) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let db = state.db()?;
    let sets = match_sets(&p)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = time_range(&p)?;
    let limit = p.limit()?;
    let cap = state.opts.api_max_series;
    let mut all: Vec<Labels> = Vec::new();
    for set in &sets {
        all.extend(db.series(set, start, end));
        // A single set is already unique; the cap applies before truncation
        // only when the client did not ask for fewer.
        if (limit == 0 || limit > cap) && all.len() > cap.saturating_mul(sets.len().max(1)) {
            return Err(too_many("series API", all.len(), cap));
        }
    }
    if sets.len() > 1 {
        all.sort();
        all.dedup();
    }
    let mut warnings = Vec::new();
    if limit > 0 && all.len() > limit {
        all.truncate(limit);
        warnings.push(truncation_warning(limit));
    } else if all.len() > cap {
        return Err(too_many("series API", all.len(), cap));
    }
    let data: Vec<Value> = all.iter().map(labels_json).collect();
    Ok(success(Value::Array(data), &warnings))
}

fn labels_json(ls: &Labels) -> Value {
    let mut m = Map::with_capacity(ls.len());
    for l in ls {
        m.insert(l.name.clone(), Value::String(l.value.clone()));
    }
    Value::Object(m)
}

/// Runs `f` for each match set (or once with none) and merges sorted unique
/// strings, then applies `limit`.
fn merged_strings(
    sets: &[Vec<Matcher>],
    limit: usize,
    mut f: impl FnMut(&[Matcher]) -> Vec<String>,
) -> (Vec<String>, Vec<String>) {
    let mut out: Vec<String> = if sets.is_empty() {
        f(&[])
    } else {
        let mut v: Vec<String> = sets.iter().flat_map(|s| f(s)).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut warnings = Vec::new();
    if limit > 0 && out.len() > limit {
        out.truncate(limit);
        warnings.push(truncation_warning(limit));
    }
    (out, warnings)
}

pub async fn labels(state: AppStateRef, req: Request<Body>) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let db = state.db()?;
    let sets = match_sets(&p)?;
    let (start, end) = time_range(&p)?;
    let (names, warnings) = merged_strings(&sets, p.limit()?, |m| db.label_names(m, start, end));
    Ok(success(json!(names), &warnings))
}

pub async fn label_values(
    state: AppStateRef,
    Path(name): Path<String>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    if !is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let p = Params::from_request(req).await?;
    let db = state.db()?;
    let sets = match_sets(&p)?;
    let (start, end) = time_range(&p)?;
    let (values, warnings) =
        merged_strings(&sets, p.limit()?, |m| db.label_values(&name, m, start, end));
    Ok(success(json!(values), &warnings))
}

pub async fn metadata(state: AppStateRef, req: Request<Body>) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let limit = p.limit()?;
    let per_metric = match p.get("limit_per_metric") {
        None => 0,
        Some(s) => s.parse::<usize>().map_err(|_| {
            ApiError::bad_data(format!("invalid parameter \"limit_per_metric\": {s:?}"))
        })?,
    };
    let fams = state.metadata.query(p.get("metric"), limit, per_metric);
    let mut m = Map::new();
    for (name, entries) in fams {
        let list: Vec<Value> = entries
            .into_iter()
            .map(|e| json!({"type": e.metric_type, "help": e.help, "unit": e.unit}))
            .collect();
        m.insert(name, Value::Array(list));
    }
    Ok(success(Value::Object(m), &[]))
}
