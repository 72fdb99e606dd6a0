//! PromQL dashboard queries against a sharded in-memory head filled by the
//! bench generator (dcgm-exporter + node-exporter shaped series).
//!
//! The store is built once, outside the measurement: `TESSERA_QBENCH_NODES`
//! GPU nodes (4,482 series each: 40 nodes = 179,280 series, the default) ×
//! `TESSERA_QBENCH_ROUNDS` scrapes 15 s apart (default 30 = 7.5 min of data,
//! enough for `[5m]` windows; about 16 s to build on the shared 2-core box).
//! The issue's target is 1M series × 1 h; building that takes over ten
//! minutes here (decode + append of ~240M samples), so the defaults are
//! smaller. The 1M × 1 h run:
//!
//! ```text
//! TESSERA_QBENCH_NODES=223 TESSERA_QBENCH_ROUNDS=240 \
//!   cargo bench -p tessera-bench --bench query
//! ```
//!
//! `TESSERA_QBENCH_READ_THREADS` (default 1) sets the Db's `read_threads`,
//! the per-shard selection fan-out; `TESSERA_QBENCH_PUSHDOWN=0` turns off
//! the pushed-down aggregation (`EngineOptions::pushdown`) to measure the
//! plain evaluation.
//!
//! Run: `cargo bench -p tessera-bench --bench query -- --measurement-time 5`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_bench::generator::{Fleet, FleetConfig};
use tessera_ingest::{DecodeLimits, decode_v1, validate};
use tessera_query::Value;
use tessera_query::{Engine, EngineOptions, QueryContext};
use tessera_tsdb::Db;

const SHARDS: usize = 8;
const START_MS: i64 = 1_700_000_000_000;
const STEP_MS: i64 = 15_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Fills a fresh Db with `nodes` nodes × `rounds` scrapes; returns it with
/// its series count and the timestamp of the last round.
fn build(nodes: usize, rounds: usize, read_threads: usize) -> (Db, usize, i64) {
    let db = Db::in_memory(SHARDS);
    db.set_read_threads(read_threads);
    let mut fleet = Fleet::new(FleetConfig {
        nodes,
        ..FleetConfig::default()
    });
    let limits = DecodeLimits::default();
    let mut enc = snap::raw::Encoder::new();
    for r in 0..rounds {
        fleet.round(
            r as u64,
            START_MS + r as i64 * STEP_MS,
            STEP_MS,
            2000,
            |b| {
                let body = enc.compress_vec(&b.proto).expect("snappy");
                let req = decode_v1(&body, &limits).expect("valid body");
                let w = validate(req, &limits);
                db.append_batch(w.series.iter().map(|s| (&s.labels, s.samples.as_slice())))
                    .expect("in-memory append");
            },
        );
    }
    let series = fleet.active_series();
    (db, series, START_MS + (rounds as i64 - 1) * STEP_MS)
}

/// The dashboard set of the issue.
const INSTANT: &[(&str, &str)] = &[
    ("sum_gpu_util", "sum by (Hostname) (DCGM_FI_DEV_GPU_UTIL)"),
    (
        "sum_rate_cpu",
        "sum(rate(node_cpu_seconds_total{mode!=\"idle\"}[5m])) by (instance)",
    ),
    ("avg_gpu_temp", "avg by (Hostname) (DCGM_FI_DEV_GPU_TEMP)"),
    ("topk_power", "topk(5, DCGM_FI_DEV_POWER_USAGE)"),
    (
        "hist_quantile",
        "histogram_quantile(0.99, sum by (le) (rate(kubelet_runtime_operations_duration_seconds_bucket[5m])))",
    ),
    (
        "count_cpu_by_mode",
        "count by (mode) (node_cpu_seconds_total)",
    ),
];

fn bench(c: &mut Criterion) {
    let nodes = env_usize("TESSERA_QBENCH_NODES", 40);
    let rounds = env_usize("TESSERA_QBENCH_ROUNDS", 30).max(2);
    let threads = env_usize("TESSERA_QBENCH_READ_THREADS", 1);
    let t0 = std::time::Instant::now();
    let (db, series, end) = build(nodes, rounds, threads);
    eprintln!(
        "query bench: {series} series × {rounds} rounds in {SHARDS} shards, read_threads {threads}, pushdown {}, built in {:.1?}",
        env_usize("TESSERA_QBENCH_PUSHDOWN", 1) != 0,
        t0.elapsed()
    );
    let engine = Engine::new(EngineOptions {
        pushdown: env_usize("TESSERA_QBENCH_PUSHDOWN", 1) != 0,
        ..EngineOptions::default()
    });
    let mut g = c.benchmark_group(format!("query/{series}_series"));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    for (name, q) in INSTANT {
        // A query that fails or returns nothing measures nothing.
        let r = engine
            .instant_query(&db, q, end, &QueryContext::new(Duration::from_secs(60)))
            .expect("query runs");
        let n = match &r.value {
            Value::Vector(v) => v.len(),
            Value::Matrix(m) => m.len(),
            _ => 0,
        };
        assert!(n > 0, "{name} returned nothing");
        eprintln!(
            "{name}: {n} series, peak {} samples in memory",
            r.peak_samples
        );
        g.bench_function(format!("instant/{name}"), |b| {
            b.iter(|| {
                let ctx = QueryContext::new(Duration::from_secs(60));
                engine.instant_query(&db, q, end, &ctx).expect("query runs")
            })
        });
    }
    // The CPU panel over everything loaded, one point a minute.
    let q = "sum(rate(node_cpu_seconds_total{mode!=\"idle\"}[5m])) by (instance)";
    let start = START_MS + 5 * 60_000;
    let r = engine
        .range_query(
            &db,
            q,
            start.min(end),
            end,
            60_000,
            &QueryContext::new(Duration::from_secs(60)),
        )
        .expect("query runs");
    eprintln!(
        "range_60s/sum_rate_cpu: peak {} samples in memory",
        r.peak_samples
    );
    g.bench_function("range_60s/sum_rate_cpu", |b| {
        b.iter(|| {
            let ctx = QueryContext::new(Duration::from_secs(60));
            engine
                .range_query(&db, q, start.min(end), end, 60_000, &ctx)
                .expect("query runs")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
