//! Series selection through the inverted index: roaring postings lookups
//! and intersections for the matchers dashboards send, on a head loaded with
//! dcgm-exporter + node-exporter shaped series.
//!
//! Run: `cargo bench -p tessera-bench --bench postings`

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_bench::generator::{Fleet, FleetConfig};
use tessera_ingest::{DecodeLimits, decode_v1, validate};
use tessera_tsdb::{Db, MatchOp, Matcher};

const NODES: usize = 20;

fn load() -> (Db, usize) {
    let mut fleet = Fleet::new(FleetConfig {
        nodes: NODES,
        ..FleetConfig::default()
    });
    let db = Db::in_memory(8);
    let limits = DecodeLimits::default();
    let mut enc = snap::raw::Encoder::new();
    fleet.round(0, 1_700_000_000_000, 15_000, 5000, |b| {
        let body = enc.compress_vec(&b.proto).expect("snappy");
        let w = validate(decode_v1(&body, &limits).expect("decode"), &limits);
        db.append_batch(w.series.iter().map(|s| (&s.labels, s.samples.as_slice())))
            .expect("in-memory append");
    });
    (db, fleet.active_series())
}

fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
    Matcher::new(op, n, v).expect("valid matcher")
}

fn bench(c: &mut Criterion) {
    let (db, series) = load();
    let host = db
        .label_values("Hostname", &[], i64::MIN, i64::MAX)
        .into_iter()
        .nth(7)
        .expect("a host");
    let mut g = c.benchmark_group(format!("postings/{series}_series"));
    g.sample_size(20);
    let cases: Vec<(&str, Vec<Matcher>)> = vec![
        (
            "name_and_host",
            vec![
                m(MatchOp::Equal, "__name__", "DCGM_FI_DEV_GPU_UTIL"),
                m(MatchOp::Equal, "Hostname", &host),
            ],
        ),
        (
            "name_and_mode_regex",
            vec![
                m(MatchOp::Equal, "__name__", "node_cpu_seconds_total"),
                m(MatchOp::RegexNoMatch, "mode", "idle|iowait"),
                m(MatchOp::Equal, "instance", &format!("{host}:9100")),
            ],
        ),
        (
            "prefix_regex",
            vec![m(MatchOp::RegexMatch, "__name__", "DCGM_FI_DEV_.*")],
        ),
        ("grafana_le_not_empty", vec![m(MatchOp::NotEqual, "le", "")]),
    ];
    for (name, ms) in &cases {
        let n = db.series(ms, i64::MIN, i64::MAX).len();
        g.bench_function(format!("{name}/{n}_matched"), |b| {
            b.iter(|| db.series(ms, i64::MIN, i64::MAX).len())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
