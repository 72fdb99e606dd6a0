//! Health, readiness, build information and Tessera's own `/metrics`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppStateRef;
use super::api::success;
use crate::metrics::{self, METRICS};

/// The Prometheus version Tessera's API follows, reported in build info so
/// Grafana enables the features that version has (e.g. label matchers on
/// `/api/v1/labels`).
pub(super) const PROMETHEUS_API_VERSION: &str = "2.53.0";

pub(super) async fn healthy() -> &'static str {
    "Tessera is Healthy.\n"
}

pub(super) async fn ready(state: AppStateRef) -> Response {
    if state.db.get().is_some() || state.fleet.is_some() {
        (StatusCode::OK, "Tessera is Ready.\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable: replaying the WAL\n",
        )
            .into_response()
    }
}

/// `POST /-/reload`: 200 when the configuration was reloaded, 500 with the
/// reason (and the old configuration still in force) when not; 403 without
/// `--web.enable-lifecycle` (as Prometheus; SIGHUP still reloads).
pub(super) async fn reload(state: AppStateRef) -> Response {
    if !state.opts.enable_lifecycle {
        tracing::info!("403: POST /-/reload without --web.enable-lifecycle");
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n").into_response();
    }
    match super::reload(&state) {
        Ok(()) => (StatusCode::OK, "configuration reloaded\n").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}

/// `/api/v1/status/queries`: the reads running now, oldest first.
pub(super) async fn running_queries(state: AppStateRef) -> Response {
    let now = std::time::SystemTime::now();
    let mut list = state.admission.list();
    list.sort_by_key(|r| r.started);
    let data: Vec<serde_json::Value> = list
        .into_iter()
        .map(|r| {
            json!({
                "endpoint": r.endpoint,
                "query": r.query,
                "runningSeconds": now.duration_since(r.started).map_or(0.0, |d| d.as_secs_f64()),
            })
        })
        .collect();
    success(
        json!({"running": data, "queued": state.admission.queued()}),
        &[],
    )
}

pub(super) async fn buildinfo() -> Response {
    success(
        json!({
            "version": PROMETHEUS_API_VERSION,
            "revision": "",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
            "application": "tessera",
            "tesseraVersion": env!("CARGO_PKG_VERSION"),
        }),
        &[],
    )
}

pub(super) async fn metrics(state: AppStateRef) -> Response {
    let mut out = String::with_capacity(16 << 10);
    METRICS.render(&mut out);
    state.rules.render_metrics(&mut out);
    metrics::single(
        &mut out,
        "tessera_cpu_budget_cores",
        "CPU cores Tessera sizes its thread pools for (--cpus or the cgroup quota).",
        "gauge",
        state.cpus as f64,
    );
    metrics::single(
        &mut out,
        "tessera_query_inflight",
        "Queries and metadata calls running now (admitted).",
        "gauge",
        state.admission.running() as f64,
    );
    metrics::single(
        &mut out,
        "tessera_query_queue_length",
        "Queries and metadata calls waiting for a slot (--query.max-concurrency).",
        "gauge",
        state.admission.queued() as f64,
    );
    metrics::single(
        &mut out,
        "tessera_remote_read_queries",
        "Remote-read requests in flight (answered or waiting for \
         --storage.remote.read-concurrent-limit); Prometheus calls it prometheus_api_remote_read_queries.",
        "gauge",
        state.remote_read.in_flight() as f64,
    );
    let rp = state.replay_progress.snapshot();
    metrics::single(
        &mut out,
        "tessera_wal_replay_bytes_total",
        "WAL bytes to replay at start-up (segments and checkpoints of every shard).",
        "gauge",
        rp.total_bytes as f64,
    );
    metrics::single(
        &mut out,
        "tessera_wal_replay_bytes_done",
        "WAL bytes replayed so far; with tessera_wal_replay_bytes_total, the replay progress.",
        "gauge",
        rp.done_bytes as f64,
    );
    metrics::single(
        &mut out,
        "tessera_wal_replay_samples_total",
        "Samples replayed from the WAL at start-up.",
        "counter",
        rp.samples as f64,
    );
    metrics::single(
        &mut out,
        "tessera_wal_replay_duration_seconds",
        "Wall time the last WAL replay took (0 while running or when nothing was replayed).",
        "gauge",
        rp.elapsed_ms as f64 / 1000.0,
    );
    metrics::single(
        &mut out,
        "tessera_ready",
        "1 when the database is open and serving, 0 while replaying the WAL.",
        "gauge",
        state.db.get().is_some() as u8 as f64,
    );
    if let Some(db) = state.db.get() {
        let stats = db.head_stats();
        metrics::header(
            &mut out,
            "tessera_head_series",
            "Active series in the head, by shard.",
            "gauge",
        );
        for (i, s) in stats.iter().enumerate() {
            metrics::sample(
                &mut out,
                "tessera_head_series",
                "",
                &["shard"],
                &[i.to_string()],
                None,
                s.series as f64,
            );
        }
        metrics::header(
            &mut out,
            "tessera_head_memory_bytes",
            "Approximate heap bytes held by the head (series, chunks, index), by shard.",
            "gauge",
        );
        for (i, s) in stats.iter().enumerate() {
            metrics::sample(
                &mut out,
                "tessera_head_memory_bytes",
                "",
                &["shard"],
                &[i.to_string()],
                None,
                s.heap_bytes as f64,
            );
        }
        metrics::header(
            &mut out,
            "tessera_head_chunks_mapped_bytes",
            "Bytes of sealed head chunks in memory-mapped files (page cache, not heap), by shard.",
            "gauge",
        );
        for (i, s) in stats.iter().enumerate() {
            metrics::sample(
                &mut out,
                "tessera_head_chunks_mapped_bytes",
                "",
                &["shard"],
                &[i.to_string()],
                None,
                s.mapped_bytes as f64,
            );
        }
        metrics::header(
            &mut out,
            "tessera_wal_segment_current",
            "Number of the WAL segment file being written, by shard.",
            "gauge",
        );
        for (i, seg) in db.wal_segments().iter().enumerate() {
            if let Some(seg) = seg {
                metrics::sample(
                    &mut out,
                    "tessera_wal_segment_current",
                    "",
                    &["shard"],
                    &[i.to_string()],
                    None,
                    *seg as f64,
                );
            }
        }
        let blocks = db.block_stats();
        for (name, help, get) in [
            (
                "tessera_blocks",
                "Immutable blocks on disk, by shard.",
                (|b: &tessera_tsdb::BlockStats| b.blocks as f64) as fn(&_) -> f64,
            ),
            (
                "tessera_blocks_bytes",
                "Bytes of the blocks' index and chunk files, by shard.",
                |b| b.bytes as f64,
            ),
            (
                "tessera_blocks_samples",
                "Samples held in blocks, by shard.",
                |b| b.samples as f64,
            ),
            (
                "tessera_blocks_oldest_timestamp_seconds",
                "Oldest sample time held in blocks, by shard (absent without blocks).",
                |b| b.min_t.map_or(f64::NAN, |t| t as f64 / 1000.0),
            ),
        ] {
            metrics::header(&mut out, name, help, "gauge");
            for (i, b) in blocks.iter().enumerate() {
                let v = get(b);
                if v.is_nan() {
                    continue;
                }
                metrics::sample(&mut out, name, "", &["shard"], &[i.to_string()], None, v);
            }
        }
        // The database's time span, head and blocks: the query tier probes
        // it to skip partitions a query's range cannot touch (Prometheus
        // has prometheus_tsdb_lowest_timestamp_seconds and
        // prometheus_tsdb_head_max_time_seconds for the same).
        let span = stats
            .iter()
            .map(|s| s.min_t.zip(s.max_t))
            .chain(blocks.iter().map(|b| b.min_t.zip(b.max_t)))
            .flatten()
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)));
        if let Some((min, max)) = span {
            metrics::single(
                &mut out,
                "tessera_tsdb_lowest_timestamp_seconds",
                "Oldest sample time held (head and blocks); absent when empty.",
                "gauge",
                min as f64 / 1000.0,
            );
            metrics::single(
                &mut out,
                "tessera_tsdb_highest_timestamp_seconds",
                "Newest sample time held (head and blocks); absent when empty.",
                "gauge",
                max as f64 / 1000.0,
            );
        }
        let c = db.maintenance_counters();
        for (name, help, kind, v) in [
            (
                "tessera_head_cuts_total",
                "Head ranges cut into blocks.",
                "counter",
                c.cuts,
            ),
            (
                "tessera_head_cut_failures_total",
                "Head cuts that failed (retried at the next maintenance tick).",
                "counter",
                c.cut_failures,
            ),
            (
                "tessera_compactions_total",
                "Block compactions completed.",
                "counter",
                c.compactions,
            ),
            (
                "tessera_compaction_failures_total",
                "Block compactions that failed (retried at the next maintenance tick).",
                "counter",
                c.compaction_failures,
            ),
            (
                "tessera_retention_blocks_deleted_total",
                "Blocks deleted past --retention.",
                "counter",
                c.blocks_deleted,
            ),
        ] {
            metrics::single(&mut out, name, help, kind, v as f64);
        }
        metrics::single(
            &mut out,
            "tessera_head_cut_last_duration_seconds",
            "Wall time of the last head cut (block write, WAL checkpoint and truncation).",
            "gauge",
            c.last_cut_millis as f64 / 1000.0,
        );
        metrics::single(
            &mut out,
            "tessera_compaction_last_duration_seconds",
            "Wall time of the last compaction.",
            "gauge",
            c.last_compaction_millis as f64 / 1000.0,
        );
        metrics::single(
            &mut out,
            "tessera_relabel_rules",
            "Ingest relabel rules in force (--ingest.relabel-config).",
            "gauge",
            state.relabel.rule_count() as f64,
        );
        metrics::single(
            &mut out,
            "tessera_metadata_families",
            "Metric families with metadata received through remote write.",
            "gauge",
            state.metadata.len() as f64,
        );
    }
    metrics::render_process(&mut out, state.start_time);
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
