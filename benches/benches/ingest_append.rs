//! Remote write end to end inside the process: snappy + protobuf decode,
//! validation, and append into the sharded head, on dcgm-exporter +
//! node-exporter shaped load from the bench generator.
//!
//! Two cases: `steady` (every series exists, one new sample each: the normal
//! state of a fleet at a 15 s scrape) and `new_series` (the first round, when
//! every series is created: interning, postings, hash table). `steady_v2`
//! is `steady` with the same rounds sent as remote write 2.0 (the generator's
//! `rw2::to_v2`: a symbols table per request), and the `decode_validate`
//! group compares the two versions' receive paths without the append.
//!
//! Run: `cargo bench -p tessera-bench --bench ingest_append`

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use tessera_bench::generator::rw2::to_v2;
use tessera_bench::generator::{Fleet, FleetConfig};
use tessera_ingest::{
    DecodeLimits, Protocol, ValidatedWrite, decode_v1, decode_v2, proto, validate, validate_v2,
};
use tessera_tsdb::Db;

const NODES: usize = 5;
const ROUNDS: usize = 20;
const SHARDS: usize = 8;

/// Compressed request bodies per round, as Prometheus would send them
/// (2,000 samples per request, its default max_samples_per_send), in
/// remote write 1.0 and the same requests in 2.0.
struct Rounds {
    v1: Vec<Vec<Vec<u8>>>,
    v2: Vec<Vec<Vec<u8>>>,
}

impl Rounds {
    fn of(&self, p: Protocol) -> &[Vec<Vec<u8>>] {
        match p {
            Protocol::V1 => &self.v1,
            Protocol::V2 => &self.v2,
        }
    }
}

fn rounds() -> (Rounds, usize) {
    let mut fleet = Fleet::new(FleetConfig {
        nodes: NODES,
        ..FleetConfig::default()
    });
    let mut out = Rounds {
        v1: Vec::new(),
        v2: Vec::new(),
    };
    let mut enc = snap::raw::Encoder::new();
    let (mut pb1, mut pb2, mut sz1, mut sz2) = (0, 0, 0, 0);
    for r in 0..ROUNDS {
        let (mut v1, mut v2) = (Vec::new(), Vec::new());
        fleet.round(
            r as u64,
            1_700_000_000_000 + r as i64 * 15_000,
            15_000,
            2000,
            |b| {
                let req = proto::WriteRequest::decode(b.proto.as_slice()).expect("generated");
                let req2 = to_v2(&req).encode_to_vec();
                v1.push(enc.compress_vec(&b.proto).expect("snappy"));
                v2.push(enc.compress_vec(&req2).expect("snappy"));
                (pb1, pb2) = (pb1 + b.proto.len(), pb2 + req2.len());
                sz1 += v1.last().map_or(0, Vec::len);
                sz2 += v2.last().map_or(0, Vec::len);
            },
        );
        out.v1.push(v1);
        out.v2.push(v2);
    }
    eprintln!(
        "{ROUNDS} rounds: protobuf 1.0 {pb1} bytes, 2.0 {pb2} bytes; snappy 1.0 {sz1} bytes, 2.0 {sz2} bytes"
    );
    (out, fleet.active_series())
}

fn decode(p: Protocol, body: &[u8], limits: &DecodeLimits) -> ValidatedWrite {
    match p {
        Protocol::V1 => validate(decode_v1(body, limits).expect("valid body"), limits),
        Protocol::V2 => validate_v2(decode_v2(body, limits).expect("valid body"), limits)
            .expect("within the budget"),
    }
}

fn ingest(p: Protocol, db: &Db, bodies: &[Vec<u8>], limits: &DecodeLimits) -> u64 {
    let mut n = 0;
    for b in bodies {
        let w = decode(p, b, limits);
        n += db
            .append_batch(w.series.iter().map(|s| (&s.labels, s.samples.as_slice())))
            .expect("in-memory append has no WAL to fail")
            .samples_appended;
    }
    n
}

fn bench(c: &mut Criterion) {
    let (all, series) = rounds();
    let limits = DecodeLimits::default();
    let mut g = c.benchmark_group("ingest_append");
    g.throughput(Throughput::Elements(series as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));

    for (p, name) in [(Protocol::V1, "steady"), (Protocol::V2, "steady_v2")] {
        let rounds = all.of(p);
        g.bench_function(format!("{name}/{series}_series"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut db = Db::in_memory(SHARDS);
                ingest(p, &db, &rounds[0], &limits);
                let mut r = 1;
                for _ in 0..iters {
                    if r == ROUNDS {
                        // Untimed: a fresh head with every series created.
                        db = Db::in_memory(SHARDS);
                        ingest(p, &db, &rounds[0], &limits);
                        r = 1;
                    }
                    let t = Instant::now();
                    let n = ingest(p, &db, &rounds[r], &limits);
                    spent += t.elapsed();
                    assert_eq!(n as usize, series, "every sample must be appended");
                    r += 1;
                }
                spent
            })
        });
    }

    g.bench_function(format!("new_series/{series}_series"), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let db = Db::in_memory(SHARDS);
                let t = Instant::now();
                ingest(Protocol::V1, &db, &all.v1[0], &limits);
                spent += t.elapsed();
            }
            spent
        })
    });
    g.finish();

    // Decode and validation alone, per version, over one steady round.
    let mut g = c.benchmark_group("decode_validate");
    g.throughput(Throughput::Elements(series as u64));
    for p in [Protocol::V1, Protocol::V2] {
        let bodies = &all.of(p)[1];
        g.bench_function(format!("{p:?}/{series}_series"), |b| {
            b.iter(|| {
                bodies
                    .iter()
                    .map(|body| decode(p, body, &limits).sample_count())
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
