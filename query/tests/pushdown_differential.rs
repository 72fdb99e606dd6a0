//! Differential test: aggregations pushed down to storage batches
//! (`EngineOptions::pushdown`) must give what the plain evaluation gives, on
//! random data in a sharded Db: the same series with the same labels in the
//! same order, the same timestamps, the same annotations, and values equal
//! up to float summation order (a tiny relative difference).

use std::time::Duration;

use tessera_query::{Engine, EngineOptions, QueryContext, QueryResult, Value};
use tessera_tsdb::{Db, Labels, Sample, stale_nan};

/// SplitMix64, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const STEP: i64 = 15_000;
const POINTS: i64 = 80;

/// Counters (with resets), gauges (with NaN, ±Inf, huge values that push
/// `avg` into its overflow path), gaps and staleness markers, over a few
/// metrics and label dimensions.
fn fill(db: &Db, seed: u64) {
    let mut rng = Rng(seed);
    for i in 0..300u64 {
        let metric = ["req_total", "temp", "power_watts", "util"][(i % 4) as usize];
        let host = format!("host-{}", rng.below(7));
        let gpu = format!("{}", rng.below(4));
        let mode = ["idle", "user", "system"][rng.below(3) as usize];
        let ls = Labels::from_pairs([
            ("__name__", metric),
            ("host", host.as_str()),
            ("gpu", gpu.as_str()),
            ("mode", mode),
            ("id", &i.to_string()),
        ]);
        let first = rng.below(20) as i64;
        let last = POINTS - rng.below(20) as i64;
        let mut v = rng.unit() * 100.0;
        let mut samples = Vec::new();
        for t in first..last {
            if rng.below(10) == 0 {
                continue; // a missed scrape
            }
            let value = match metric {
                "req_total" => {
                    if rng.below(25) == 0 {
                        v = rng.unit() * 5.0; // counter reset
                    } else {
                        v += rng.unit() * 10.0;
                    }
                    v
                }
                _ => match rng.below(60) {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => f64::MAX / 2.0,
                    3 => stale_nan(),
                    _ => rng.unit() * 1000.0 - 100.0,
                },
            };
            samples.push(Sample::new(t * STEP, value));
        }
        db.append(&ls, &samples).unwrap();
    }
}

const QUERIES: &[&str] = &[
    "sum(temp)",
    "sum by (host) (temp)",
    "avg by (host) (power_watts)",
    "avg without (id, gpu) (power_watts)",
    "count by (mode) ({__name__=~\"temp|util\"})",
    "min by (gpu) (util)",
    "max without (id) (util)",
    "group by (host, mode) (req_total)",
    "sum by (host) (rate(req_total[2m]))",
    "sum by (mode) (irate(req_total[1m]))",
    "avg by (gpu) (increase(req_total[5m]))",
    "max by (host) (delta(temp[3m]))",
    "sum(rate(util[2m]))",
    "sum by (host) (avg_over_time(temp[2m]))",
    "count without (id) (count_over_time(util[4m]))",
    "min by (mode) (max_over_time(power_watts[1m]))",
    "sum by (__name__) (last_over_time({__name__=~\"temp|util\"}[2m]))",
    "sum by (host) (temp offset 1m)",
    "avg by (host) (rate(req_total[2m] offset 30s))",
    "sum by (host) (temp @ 600)",
    "sum(rate(req_total[2m] @ 900))",
    "sum by (host) ((rate(req_total[2m])))",
    "sum by (host) (stddev_over_time(temp[3m]))",
    "sum without (mode) (changes(util[5m]))",
    "stddev by (host) (temp)",
    "stdvar without (id) (rate(req_total[2m]))",
    // Not pushed down: must simply still agree.
    "quantile by (host) (0.5, temp)",
    "topk(3, temp)",
];

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let scale = a.abs().max(b.abs());
    (a - b).abs() <= 1e-9 * scale
}

/// Label sets and timestamps must be identical, values close.
fn same(q: &str, a: &QueryResult, b: &QueryResult) {
    assert_eq!(a.warnings, b.warnings, "{q}: annotations");
    let series = |r: &QueryResult| -> Vec<(Labels, Vec<Sample>)> {
        match &r.value {
            Value::Vector(v) => v
                .iter()
                .map(|s| (s.labels.clone(), vec![Sample::new(s.t, s.v)]))
                .collect(),
            Value::Matrix(m) => m
                .iter()
                .map(|s| (s.labels.clone(), s.samples.clone()))
                .collect(),
            other => panic!("{q}: unexpected {other:?}"),
        }
    };
    let (sa, sb) = (series(a), series(b));
    let la: Vec<&Labels> = sa.iter().map(|s| &s.0).collect();
    let lb: Vec<&Labels> = sb.iter().map(|s| &s.0).collect();
    assert_eq!(la, lb, "{q}: series and their order");
    for ((ls, pa), (_, pb)) in sa.iter().zip(&sb) {
        let ta: Vec<i64> = pa.iter().map(|p| p.t).collect();
        let tb: Vec<i64> = pb.iter().map(|p| p.t).collect();
        assert_eq!(ta, tb, "{q} {ls}: timestamps");
        for (x, y) in pa.iter().zip(pb) {
            assert!(
                close(x.v, y.v),
                "{q} {ls} @{}: pushed down {} vs plain {}",
                x.t,
                x.v,
                y.v
            );
        }
    }
}

fn engines() -> (Engine, Engine) {
    let on = Engine::new(EngineOptions::default());
    let off = Engine::new(EngineOptions {
        pushdown: false,
        ..EngineOptions::default()
    });
    (on, off)
}

#[test]
fn pushed_down_aggregations_match_plain_evaluation() {
    let (on, off) = engines();
    let ctx = || QueryContext::new(Duration::from_secs(30));
    let mut nonempty = 0;
    for seed in 1..=4u64 {
        let db = Db::in_memory(1 + seed as usize * 2);
        fill(&db, seed);
        for threads in [1, 3] {
            db.set_read_threads(threads);
            for q in QUERIES {
                for t in [300_000, 700_000, POINTS * STEP] {
                    let a = on.instant_query(&db, q, t, &ctx()).unwrap();
                    let b = off.instant_query(&db, q, t, &ctx()).unwrap();
                    same(q, &a, &b);
                    nonempty += usize::from(matches!(&a.value, Value::Vector(v) if !v.is_empty()));
                }
                let a = on
                    .range_query(&db, q, 0, POINTS * STEP, 30_000, &ctx())
                    .unwrap();
                let b = off
                    .range_query(&db, q, 0, POINTS * STEP, 30_000, &ctx())
                    .unwrap();
                same(q, &a, &b);
            }
        }
    }
    // The comparison must have compared something.
    assert!(nonempty > QUERIES.len() * 10, "{nonempty}");
}

#[test]
fn pushed_down_sum_holds_one_batch_not_the_whole_selection() {
    let (on, off) = engines();
    let db = Db::in_memory(8);
    fill(&db, 9);
    let q = "sum by (host) (rate(req_total[5m]))";
    let ctx = || QueryContext::new(Duration::from_secs(30));
    let a = on
        .range_query(&db, q, 0, POINTS * STEP, STEP, &ctx())
        .unwrap();
    let b = off
        .range_query(&db, q, 0, POINTS * STEP, STEP, &ctx())
        .unwrap();
    same(q, &a, &b);
    // The plain path holds every series' samples and points; the pushed-down
    // one a shard's samples plus groups × steps accumulators.
    assert!(
        a.peak_samples * 3 < b.peak_samples,
        "pushed down peak {} vs plain {}",
        a.peak_samples,
        b.peak_samples
    );
    // So a budget the plain path cannot meet is enough pushed down.
    let budget = (a.peak_samples + b.peak_samples) / 2;
    let tight = || QueryContext::new(Duration::from_secs(30)).with_max_samples(budget);
    assert!(
        on.range_query(&db, q, 0, POINTS * STEP, STEP, &tight())
            .is_ok()
    );
    assert!(
        off.range_query(&db, q, 0, POINTS * STEP, STEP, &tight())
            .is_err()
    );
}
