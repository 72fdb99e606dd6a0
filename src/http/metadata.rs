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
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use tessera_query::QueryContext;
use tessera_tsdb::{Labels, Matcher, ReadControl, labels::is_valid_label_name};

use super::api::{
    ApiError, ErrorType, MAX_TIME_MS, Params, SUCCESS_PREFIX, success, success_suffix, write_labels,
};
use super::{AppState, AppStateRef, query, read, selector, stream};
use crate::fleet::{FanOutStop, Fleet, PartitionAnswer};

/// Every `match[]` parameter as alternatives of matcher conjunctions.
pub(super) fn match_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
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
    if state.fleet.is_none() {
        return read::stream(&state, "series", &text, &p, move |db, ctx, sink| {
            stream_series(db, ctx, sink, &sets, (start, end), limit, cap)
        })
        .await;
    }
    let fwd = forward("/api/v1/series", &p, &state)?;
    let (all, warnings) = read::run(&state, "series", &text, &p, move |_, source, ctx| {
        let read::Source::Fleet(fleet) = source else {
            return Err(ApiError::new(ErrorType::Internal, "series: no partitions"));
        };
        let mut all = BTreeSet::new();
        let warnings = fleet_listing(fleet, &fwd, ctx, "series API", |data| {
            for s in as_array(data)? {
                let Value::Object(m) = s else {
                    return Err("a series is not an object".into());
                };
                all.insert(
                    fleet.without_replica_labels(Labels::from_pairs(
                        m.into_iter()
                            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string())),
                    )),
                );
            }
            Ok(())
        })?;
        // As on a store: a limit at or under the cap truncates; else more
        // than the cap (of the union) is the 422.
        if cap > 0 && !(limit > 0 && limit <= cap) && all.len() > cap {
            return Err(read::read_error(
                tessera_tsdb::ReadError::TooManySeries { limit: cap },
                ctx,
                "series API",
                "--api.max-series",
            ));
        }
        Ok(limited(all.into_iter().collect(), limit, warnings))
    })
    .await?;
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

/// The series answer of this server's database, streamed: the listing
/// counts every matching series against the cap before the first byte
/// (so over it is a 422, never a truncated 200), then label sets are
/// merged across shards in order and rendered [`stream::CHUNK_BYTES`] at
/// a time; memory stays flat however many series the answer holds.
fn stream_series(
    db: &tessera_tsdb::Db,
    ctx: &QueryContext,
    sink: &mut read::Sink,
    sets: &[Vec<Matcher>],
    (start, end): (i64, i64),
    limit: usize,
    cap: usize,
) -> Result<(), ApiError> {
    let stop = || ctx.check("series").is_err();
    // With a limit at or under the cap the limit bounds the work; else
    // the cap is a budget and exceeding it is the 422.
    let budget = if limit > 0 && limit <= cap { 0 } else { cap };
    let ctl = ReadControl::new(budget, 0, &stop);
    let err = |e| read::read_error(e, ctx, "series API", "--api.max-series");
    let mut listing = db
        .series_listing(sets, start, end, limit, &ctl)
        .map_err(err)?;
    let mut out = format!("{SUCCESS_PREFIX}[");
    let mut first = true;
    while let Some(ls) = listing.next(&ctl).map_err(err)? {
        if !first {
            out.push(',');
        }
        first = false;
        write_labels(&mut out, &ls);
        if out.len() >= stream::CHUNK_BYTES {
            sink.send(std::mem::take(&mut out))?;
        }
    }
    let warnings = if listing.truncated() {
        vec![truncation_warning(limit)]
    } else {
        vec![]
    };
    out.push(']');
    out.push_str(&success_suffix(&warnings));
    sink.send(out)
}

/// Merges sorted unique strings of each match set (or one call with none)
/// and applies `limit`; returns the strings and the truncation warning.
fn merged_strings(
    sets: &[Vec<Matcher>],
    limit: usize,
    mut f: impl FnMut(&[Matcher]) -> Result<Vec<String>, ApiError>,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let out: Vec<String> = if sets.is_empty() {
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
    Ok(limited(out, limit, Vec::new()))
}

/// Cuts a sorted listing to `limit` (0: none), adding the truncation
/// warning to `warnings` when it cut.
fn limited<T>(mut all: Vec<T>, limit: usize, mut warnings: Vec<String>) -> (Vec<T>, Vec<String>) {
    if limit > 0 && all.len() > limit {
        all.truncate(limit);
        warnings.push(truncation_warning(limit));
    }
    (all, warnings)
}

/// The path and query a tier forwards to every partition: the request's own
/// parameters (checked here first, so a malformed one is this server's
/// 400), without `partial_response`, which only the tier reads.
fn forward(path: &str, p: &Params, state: &AppState) -> Result<Forward, ApiError> {
    Ok(Forward {
        partial: query::partial_response(p, state)?,
        path_and_query: format!("{path}?{}", p.query_string()),
    })
}

/// A listing call as the tier asks it of every partition.
struct Forward {
    path_and_query: String,
    /// Whether failed partitions become warnings (else a 503).
    partial: bool,
}

/// A listing on the tier: `fwd` asked of every partition, each answer's
/// `data` handed to `merge`; returns the warnings (the stores' own, and
/// the failed partitions'), or the 503 when partial responses are off.
fn fleet_listing(
    fleet: &Fleet,
    fwd: &Forward,
    ctx: &QueryContext,
    what: &'static str,
    mut merge: impl FnMut(Value) -> Result<(), String>,
) -> Result<Vec<String>, ApiError> {
    let stop = || ctx.check(what).is_err();
    let answers =
        fleet
            .get_json(&fwd.path_and_query, None, &stop)
            .map_err(|FanOutStop::Stopped| {
                read::read_error(
                    tessera_tsdb::ReadError::Stopped,
                    ctx,
                    what,
                    "--api.max-series",
                )
            })?;
    let mut warnings: Vec<String> = Vec::new();
    for a in answers {
        let failed = match a {
            PartitionAnswer::Data { data, warnings: w } => {
                // A store's truncation is the tier's own to say again (or
                // not) once the union is cut.
                for x in w {
                    if !x.starts_with("results truncated") && !warnings.contains(&x) {
                        warnings.push(x);
                    }
                }
                match merge(data) {
                    Ok(()) => continue,
                    Err(e) => format!("a partition's {what} answer is malformed: {e}"),
                }
            }
            PartitionAnswer::Refused { status, message } => {
                let kind = match status {
                    400 => ErrorType::BadData,
                    _ => ErrorType::Execution,
                };
                return Err(ApiError::new(kind, message));
            }
            PartitionAnswer::Denied(text) => {
                return Err(ApiError::new(ErrorType::Unavailable, text));
            }
            PartitionAnswer::Failed(text) => text,
        };
        if !fwd.partial {
            return Err(ApiError::new(ErrorType::Unavailable, failed));
        }
        warnings.push(failed);
    }
    Ok(warnings)
}

/// A listing of strings (label names or values) on the tier: the union of
/// the partitions' that `keep` keeps, sorted, cut to `limit`.
fn fleet_strings(
    fleet: &Fleet,
    fwd: &Forward,
    ctx: &QueryContext,
    what: &'static str,
    limit: usize,
    keep: &dyn Fn(&str) -> bool,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let mut all = BTreeSet::new();
    let warnings = fleet_listing(fleet, fwd, ctx, what, |data| {
        for v in as_array(data)? {
            let v = v.as_str().ok_or("not a string")?;
            if keep(v) {
                all.insert(v.to_string());
            }
        }
        Ok(())
    })?;
    Ok(limited(all.into_iter().collect(), limit, warnings))
}

fn as_array(v: Value) -> Result<Vec<Value>, String> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Null => Ok(Vec::new()),
        _ => Err("data is not a list".into()),
    }
}

pub(super) async fn labels(state: AppStateRef, req: Request<Body>) -> Result<Response, ApiError> {
    let p = Params::from_request(req).await?;
    let sets = match_sets(&p)?;
    let (start, end) = time_range(&p, &state)?;
    let limit = p.limit()?;
    let cap = state.opts.api_max_series;
    let text = describe("labels", &p);
    let fwd = forward("/api/v1/labels", &p, &state)?;
    let (names, warnings) = read::run(&state, "labels", &text, &p, move |_, source, ctx| {
        let db = match source {
            read::Source::Local(db) => db,
            read::Source::Fleet(fleet) => {
                let keep = |n: &str| !fleet.is_replica_label(n);
                return fleet_strings(fleet, &fwd, ctx, "labels API", limit, &keep);
            }
        };
        let stop = || ctx.check("labels").is_err();
        let ctl = ReadControl::new(cap, 0, &stop);
        merged_strings(&sets, limit, |m| {
            db.label_names_with(m, start, end, &ctl)
                .map_err(|e| read::read_error(e, ctx, "labels API", "--api.max-series"))
        })
    })
    .await?;
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
    let fwd = forward(&format!("/api/v1/label/{name}/values"), &p, &state)?;
    let (values, warnings) = read::run(&state, "label_values", &text, &p, move |_, source, ctx| {
        let db = match source {
            read::Source::Local(db) => db,
            read::Source::Fleet(fleet) => {
                // A replica label is not in the tier's answers.
                let replica = fleet.is_replica_label(&name);
                let keep = |_: &str| !replica;
                return fleet_strings(fleet, &fwd, ctx, "label values API", limit, &keep);
            }
        };
        let stop = || ctx.check("label values").is_err();
        let ctl = ReadControl::new(cap, 0, &stop);
        merged_strings(&sets, limit, |m| {
            db.label_values_with(&name, m, start, end, &ctl)
                .map_err(|e| read::read_error(e, ctx, "label values API", "--api.max-series"))
        })
    })
    .await?;
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
    if state.fleet.is_some() {
        return fleet_metadata(&state, &p, limit).await;
    }
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

/// `/api/v1/metadata` on the tier: every partition's families, entries
/// deduplicated, at most `limit` metrics (0: all).
async fn fleet_metadata(
    state: &AppStateRef,
    p: &Params,
    limit: usize,
) -> Result<Response, ApiError> {
    let fwd = forward("/api/v1/metadata", p, state)?;
    let (m, warnings) = read::run(state, "metadata", "metadata", p, move |_, source, ctx| {
        let read::Source::Fleet(fleet) = source else {
            return Err(ApiError::new(
                ErrorType::Internal,
                "metadata: no partitions",
            ));
        };
        let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let warnings = fleet_listing(fleet, &fwd, ctx, "metadata API", |data| {
            let Value::Object(fams) = data else {
                return Err("data is not an object".into());
            };
            for (name, entries) in fams {
                let list = m.entry(name).or_default();
                for e in as_array(entries)? {
                    if !list.contains(&e) {
                        list.push(e);
                    }
                }
            }
            Ok(())
        })?;
        let mut m: Map<String, Value> = m.into_iter().map(|(k, v)| (k, Value::Array(v))).collect();
        if limit > 0 && m.len() > limit {
            m = m.into_iter().take(limit).collect();
        }
        Ok((m, warnings))
    })
    .await?;
    Ok(success(Value::Object(m), &warnings))
}
