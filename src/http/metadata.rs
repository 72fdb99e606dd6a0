//! Series and label discovery: `/api/v1/series`, `/api/v1/labels`,
//! `/api/v1/label/<name>/values`, and `/api/v1/metadata`, in Prometheus'
//! JSON shape.
//!
//! Each call is an admitted read (`read.rs`): deadline, cancellation when
//! the client leaves, and a series budget. The `limit` parameter truncates
//! and adds a warning, as Prometheus 3 does, and bounds the work (each shard
//! builds at most `limit` label sets); more matching series than
//! `--api.max-series` is a 422 that says how to narrow the call. A call
//! without `start` searches the last `--api.default-window`, not all of
//! history.

use axum::body::Body;
use axum::extract::{Path, Request};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tessera_tsdb::{Labels, Matcher, ReadControl, labels::is_valid_label_name};

use super::api::{
    ApiError, MAX_TIME_MS, Params, SUCCESS_PREFIX, success, success_suffix, write_labels,
};
use super::{AppState, AppStateRef, read, selector, stream};

/// Every `match[]` parameter as alternatives of matcher conjunctions.
fn match_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut sets = Vec::new();
    for s in p.all("match[]") {
        sets.extend(selector::parse(s)?);
    }
    Ok(sets)
}

/// `start`/`end`, with `start` defaulting to `end - --api.default-window`.
fn time_range(p: &Params, state: &AppState) -> Result<(i64, i64), ApiError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let end = p.time_or(
        "end",
        if p.get("start").is_some() {
            MAX_TIME_MS
        } else {
            now
        },
    )?;
    let window = state.opts.api_default_window.as_millis() as i64;
    let start = p.time_or("start", end.saturating_sub(window))?;
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

/// The listing text of a metadata call in `/api/v1/status/queries`.
fn describe(endpoint: &str, p: &Params) -> String {
    let m: Vec<&str> = p.all("match[]").collect();
    format!("{endpoint} match[]={}", m.join(" match[]="))
}

pub(super) async fn series(state: AppStateRef, req: Request<Body>) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let sets = match_sets(&p)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = time_range(&p, &state)?;
    let limit = p.limit()?;
    let cap = state.opts.api_max_series;
    let text = describe("series", &p);
    let (all, truncated) = read::run(&state, "series", &text, &p, move |_, db, ctx| {
        let stop = || ctx.check("series").is_err();
        // With a limit at or under the cap the limit bounds the work; else
        // the cap is a budget and exceeding it is the 422.
        let budget = if limit > 0 && limit <= cap { 0 } else { cap };
        let ctl = ReadControl::new(budget, 0, &stop);
        let mut all: Vec<Labels> = Vec::new();
        let mut truncated = false;
        for set in &sets {
            let (v, t) = db
                .series_with(set, start, end, limit, &ctl)
                .map_err(|e| read::read_error(e, ctx, "series API", "--api.max-series"))?;
            all.extend(v);
            truncated |= t;
        }
        if sets.len() > 1 {
            all.sort();
            all.dedup();
        }
        if limit > 0 && all.len() > limit {
            all.truncate(limit);
            truncated = true;
        }
        Ok((all, truncated))
    })
    .await?;
    let warnings = if truncated {
        vec![truncation_warning(limit)]
    } else {
        vec![]
    };
    // Streamed a chunk at a time as the client reads: the JSON of 100k
    // series never exists as one string, and a client that leaves stops it.
    let head = format!("{SUCCESS_PREFIX}[");
    let tail = format!("]{}", success_suffix(&warnings));
    Ok(stream::json_stream(stream::chunks(
        head,
        all,
        tail,
        write_labels,
    )))
}

/// Merges sorted unique strings of each match set (or one call with none)
/// and applies `limit`; returns the strings and whether they were cut.
fn merged_strings(
    sets: &[Vec<Matcher>],
    limit: usize,
    mut f: impl FnMut(&[Matcher]) -> Result<Vec<String>, ApiError>,
) -> Result<(Vec<String>, bool), ApiError> {
    let mut out: Vec<String> = if sets.is_empty() {
        f(&[])?
    } else {
        let mut v = Vec::new();
        for s in sets {
            v.extend(f(s)?);
        }
        v.sort_unstable();
        v.dedup();
        v
    };
    let cut = limit > 0 && out.len() > limit;
    if cut {
        out.truncate(limit);
    }
    Ok((out, cut))
}

pub(super) async fn labels(state: AppStateRef, req: Request<Body>) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let sets = match_sets(&p)?;
    let (start, end) = time_range(&p, &state)?;
    let limit = p.limit()?;
    let cap = state.opts.api_max_series;
    let text = describe("labels", &p);
    let (names, cut) = read::run(&state, "labels", &text, &p, move |_, db, ctx| {
        let stop = || ctx.check("labels").is_err();
        let ctl = ReadControl::new(cap, 0, &stop);
        merged_strings(&sets, limit, |m| {
            db.label_names_with(m, start, end, &ctl)
                .map_err(|e| read::read_error(e, ctx, "labels API", "--api.max-series"))
        })
    })
    .await?;
    let warnings = if cut {
        vec![truncation_warning(limit)]
    } else {
        vec![]
    };
    Ok(success(json!(names), &warnings))
}

pub(super) async fn label_values(
    state: AppStateRef,
    Path(name): Path<String>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    if !is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let p = Params::from_request(req).await?;
    let sets = match_sets(&p)?;
    let (start, end) = time_range(&p, &state)?;
    let limit = p.limit()?;
    let cap = state.opts.api_max_series;
    let text = describe(&format!("label/{name}/values"), &p);
    let (values, cut) = read::run(&state, "label_values", &text, &p, move |_, db, ctx| {
        let stop = || ctx.check("label values").is_err();
        let ctl = ReadControl::new(cap, 0, &stop);
        merged_strings(&sets, limit, |m| {
            db.label_values_with(&name, m, start, end, &ctl)
                .map_err(|e| read::read_error(e, ctx, "label values API", "--api.max-series"))
        })
    })
    .await?;
    let warnings = if cut {
        vec![truncation_warning(limit)]
    } else {
        vec![]
    };
    Ok(success(json!(values), &warnings))
}

pub(super) async fn metadata(state: AppStateRef, req: Request<Body>) -> Result<Response, ApiError> {
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
