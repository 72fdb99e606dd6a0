//! Remote write end to end inside the process: snappy + protobuf decode,
//! validation, and append into the sharded head, on dcgm-exporter +
//! node-exporter shaped load from the bench generator.
//!
//! Two cases: `steady` (every series exists, one new sample each: the normal
//! state of a fleet at a 15 s scrape) and `new_series` (the first round, when
//! every series is created: interning, postings, hash table).
//!
//! Run: `cargo bench -p tessera-bench --bench ingest_append`

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tessera_bench::generator::{Fleet, FleetConfig};
use tessera_ingest::{DecodeLimits, decode_v1, validate};
use tessera_tsdb::Db;

const NODES: usize = 5;
const ROUNDS: usize = 20;
const SHARDS: usize = 8;

/// Compressed request bodies per round, as Prometheus would send them
/// (2,000 samples per request, its default max_samples_per_send).
fn rounds() -> (Vec<Vec<Vec<u8>>>, usize) {
    let mut fleet = Fleet::new(FleetConfig {
        nodes: NODES,
        ..FleetConfig::default()
    });
    let mut out = Vec::new();
    let mut enc = snap::raw::Encoder::new();
    for r in 0..ROUNDS {
        let mut bodies = Vec::new();
        fleet.round(
            r as u64,
            1_700_000_000_000 + r as i64 * 15_000,
            15_000,
            2000,
            |b| {
                bodies.push(enc.compress_vec(&b.proto).expect("snappy"));
            },
        );
        out.push(bodies);
    }
    (out, fleet.active_series())
}

fn ingest(db: &Db, bodies: &[Vec<u8>], limits: &DecodeLimits) -> u64 {
    let mut n = 0;
    for b in bodies {
        let req = decode_v1(b, limits).expect("valid body");
        let w = validate(req, limits);
        n += db
            .append_batch(w.series.iter().map(|s| (&s.labels, s.samples.as_slice())))
            .expect("in-memory append has no WAL to fail")
            .samples_appended;
    }
    n
}

fn bench(c: &mut Criterion) {
    let (rounds, series) = rounds();
    let limits = DecodeLimits::default();
    let mut g = c.benchmark_group("ingest_append");
    g.throughput(Throughput::Elements(series as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));

    g.bench_function(format!("steady/{series}_series"), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut db = Db::in_memory(SHARDS);
            ingest(&db, &rounds[0], &limits);
            let mut r = 1;
            for _ in 0..iters {
                if r == ROUNDS {
                    // Untimed: a fresh head with every series created.
                    db = Db::in_memory(SHARDS);
                    ingest(&db, &rounds[0], &limits);
                    r = 1;
                }
                let t = Instant::now();
                let n = ingest(&db, &rounds[r], &limits);
                spent += t.elapsed();
                assert_eq!(n as usize, series, "every sample must be appended");
                r += 1;
            }
            spent
        })
    });

    g.bench_function(format!("new_series/{series}_series"), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let db = Db::in_memory(SHARDS);
                let t = Instant::now();
                ingest(&db, &rounds[0], &limits);
                spent += t.elapsed();
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
