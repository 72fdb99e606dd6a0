//! The engine through its public API, on an in-memory storage: selection
//! semantics, matching errors, limits, and hostile queries that must give a
//! clear error or a correct result, never a crash or a hang.

use std::time::{Duration, Instant};

use tessera_query::{Engine, EngineOptions, QueryContext, QueryError, Value, VecStorage};
use tessera_tsdb::{Labels, Sample, SeriesSamples, stale_nan};

fn series(name: &str, extra: &[(&str, &str)], pts: &[(i64, f64)]) -> SeriesSamples {
    let mut pairs = vec![("__name__", name)];
    pairs.extend_from_slice(extra);
    SeriesSamples {
        labels: Labels::from_pairs(pairs),
        samples: pts.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
    }
}

fn storage() -> VecStorage {
    let mins = |n: i64, f: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
        (0..n).map(|i| (i * 60_000, f(i))).collect()
    };
    VecStorage::new(vec![
        series(
            "http_requests_total",
            &[("job", "api"), ("instance", "a")],
            &mins(11, &|i| 10.0 * i as f64),
        ),
        series(
            "http_requests_total",
            &[("job", "api"), ("instance", "b")],
            &mins(11, &|i| 20.0 * i as f64),
        ),
        series(
            "up",
            &[("job", "api"), ("instance", "a")],
            &mins(11, &|_| 1.0),
        ),
        series(
            "up",
            &[("job", "api"), ("instance", "b")],
            &mins(11, &|_| 0.0),
        ),
        series(
            "gone",
            &[("job", "api")],
            &[(0, 1.0), (60_000, 2.0), (120_000, stale_nan())],
        ),
    ])
}

fn ctx() -> QueryContext {
    QueryContext::new(Duration::from_secs(10))
}

fn instant(q: &str, t: i64) -> Result<Value, QueryError> {
    Engine::new(EngineOptions::default())
        .instant_query(&storage(), q, t, &ctx())
        .map(|r| r.value)
}

fn vector(q: &str, t: i64) -> Vec<(String, f64)> {
    match instant(q, t).unwrap_or_else(|e| panic!("{q}: {e}")) {
        Value::Vector(v) => {
            let mut out: Vec<(String, f64)> =
                v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("{q}: expected a vector, got {other:?}"),
    }
}

#[test]
fn selector_looks_back_five_minutes_and_stops_at_staleness() {
    assert_eq!(vector("up{instance=\"a\"}", 10 * 60_000 + 299_000).len(), 1);
    assert!(vector("up{instance=\"a\"}", 10 * 60_000 + 300_000).is_empty());
    // `gone` has a staleness marker at 2m: nothing from then on.
    assert_eq!(
        vector("gone", 60_000),
        vec![("gone{job=\"api\"}".into(), 2.0)]
    );
    assert!(vector("gone", 150_000).is_empty());
}

#[test]
fn rate_and_aggregation_drop_the_metric_name() {
    let got = vector("sum by (job) (rate(http_requests_total[5m]))", 600_000);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "{job=\"api\"}");
    assert!((got[0].1 - 0.5).abs() < 1e-9, "{got:?}");
}

#[test]
fn range_query_returns_sorted_series_on_the_step_grid() {
    let r = Engine::default()
        .range_query(&storage(), "up", 0, 600_000, 120_000, &ctx())
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("expected matrix")
    };
    assert_eq!(m.len(), 2);
    assert!(m[0].labels < m[1].labels);
    let ts: Vec<i64> = m[0].samples.iter().map(|s| s.t).collect();
    assert_eq!(ts, vec![0, 120_000, 240_000, 360_000, 480_000, 600_000]);
}

#[test]
fn many_to_many_matching_is_an_error_naming_the_group() {
    let e = instant("up + on(job) http_requests_total", 60_000).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "found duplicate series for the match group {job=\"api\"} on the right hand-side"
        ),
        "{msg}"
    );
    assert_eq!(e.error_type(), "execution");
    let e = instant("up * on(job) group_left http_requests_total", 60_000).unwrap_err();
    assert!(
        e.to_string().contains("many-to-many matching not allowed"),
        "{e}"
    );
}

#[test]
fn label_collisions_are_a_clear_error() {
    let e = instant(
        "label_replace(up, \"instance\", \"x\", \"instance\", \".*\")",
        60_000,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "vector cannot contain metrics with the same labelset"
    );
    // Dropping the name of two different metrics with the same labels.
    let e = instant(
        "up{instance=\"a\"} or -http_requests_total{instance=\"a\"}",
        60_000,
    );
    assert!(e.is_ok(), "or keeps the left side: {e:?}");
}

#[test]
fn division_by_zero_follows_ieee() {
    let got = vector("up / 0", 60_000);
    assert_eq!(got[0].1, f64::INFINITY);
    assert!(got[1].1.is_nan());
    assert_eq!(
        instant("1 % 0", 0).map(|v| matches!(v, Value::Scalar { v, .. } if v.is_nan())),
        Ok(true)
    );
}

#[test]
fn regex_that_cannot_match_gives_an_empty_result() {
    assert!(vector("up{job=~\"a^b\"}", 60_000).is_empty());
    assert!(vector("up{job=~\"(?:)z{0}x\"}", 60_000).is_empty());
}

#[test]
fn bad_regex_is_bad_data() {
    let e = instant("up{job=~\"(\"}", 0).unwrap_err();
    assert_eq!(e.error_type(), "bad_data", "{e}");
}

#[test]
fn deep_nesting_is_rejected_without_crashing() {
    let deep_parens = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let e = instant(&deep_parens, 0).unwrap_err();
    assert_eq!(e.error_type(), "bad_data");
    let long_chain = vec!["1"; 20_000].join("+");
    let e = instant(&long_chain, 0).unwrap_err();
    assert!(e.to_string().contains("too many operators"), "{e}");
    let chain = vec!["1"; 500].join("+");
    let e = instant(&chain, 0).unwrap_err();
    assert!(e.to_string().contains("nested too deeply"), "{e}");
    // Parentheses inside strings are not nesting.
    let in_string = format!("up{{job=~\"{}\"}}", "(a)".repeat(1000));
    assert!(instant(&in_string, 0).is_ok());
    let neg = format!("{}up", "-".repeat(10_000));
    assert!(instant(&neg, 0).is_err());
}

#[test]
fn maximum_depth_evaluates_on_a_small_stack() {
    // 200 nested functions: within the limit, evaluated on a thread with the
    // 2 MiB stack of a tokio worker.
    let q = format!("{}up{}", "abs(".repeat(200), ")".repeat(200));
    let h = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || vector(&q, 60_000).len())
        .unwrap();
    assert_eq!(h.join().unwrap(), 2);
}

#[test]
fn huge_ranges_and_offsets_do_not_overflow() {
    assert_eq!(vector("count_over_time(up[100000y])", 600_000).len(), 2);
    assert!(vector("up offset 100000000y", 600_000).is_empty());
    assert!(vector("up @ 1e15", 600_000).is_empty());
    assert!(vector("up offset -100000000y", 600_000).is_empty());
}

#[test]
fn tiny_steps_over_long_ranges_hit_the_sample_limit_quickly() {
    let start = Instant::now();
    let e = Engine::default()
        .range_query(&storage(), "up", 0, 30 * 86_400_000, 1, &ctx())
        .unwrap_err();
    assert!(matches!(e, QueryError::TooManySamples { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2));
    let e = instant("max_over_time(up[30d:1ms])", 600_000).unwrap_err();
    assert!(matches!(e, QueryError::TooManySamples { .. }), "{e}");
}

#[test]
fn sample_budget_is_enforced() {
    let c = QueryContext::new(Duration::from_secs(10)).with_max_samples(5);
    let e = Engine::default()
        .range_query(&storage(), "up", 0, 600_000, 60_000, &c)
        .unwrap_err();
    assert_eq!(e, QueryError::TooManySamples { limit: 5 });
    assert!(e.to_string().contains("--query.max-samples"));
}

#[test]
fn cancelled_and_timed_out_queries_stop() {
    let c = ctx();
    c.cancel_token().cancel();
    let e = Engine::default()
        .instant_query(&storage(), "up", 0, &c)
        .unwrap_err();
    assert_eq!(e.error_type(), "canceled");

    // A large range query over many series with a 50ms deadline.
    let many: Vec<SeriesSamples> = (0..2000)
        .map(|i| {
            let id = i.to_string();
            series(
                "m",
                &[("i", id.as_str())],
                &(0..1000)
                    .map(|t| (t * 15_000, t as f64))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let st = VecStorage::new(many);
    let c = QueryContext::new(Duration::from_millis(50));
    let start = Instant::now();
    let r = Engine::default().range_query(&st, "sum(rate(m[5m]))", 0, 15_000_000, 15_000, &c);
    assert!(matches!(r, Err(QueryError::Timeout(_))), "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn range_query_rejects_range_vectors_and_bad_steps() {
    let e = Engine::default()
        .range_query(&storage(), "up[5m]", 0, 60_000, 1000, &ctx())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
    );
    let e = Engine::default()
        .range_query(&storage(), "up", 0, 60_000, 0, &ctx())
        .unwrap_err();
    assert_eq!(e.error_type(), "bad_data");
    assert!(tessera_query::check_resolution(0, 86_400_000, 1000).is_err());
    assert!(tessera_query::check_resolution(0, 3_600_000, 1000).is_ok());
}

#[test]
fn parse_errors_are_bad_data() {
    let e = instant("sum(", 0).unwrap_err();
    assert_eq!(e.error_type(), "bad_data");
    assert!(matches!(e, QueryError::Parse { .. }));
}

#[test]
fn topk_orders_instant_results() {
    match instant("topk(2, http_requests_total)", 600_000).unwrap() {
        Value::Vector(v) => {
            assert_eq!(v.len(), 2);
            assert!(v[0].v >= v[1].v);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn scalar_and_string_results() {
    assert_eq!(
        instant("1 + 2 * 3", 5000),
        Ok(Value::Scalar { t: 5000, v: 7.0 })
    );
    assert_eq!(
        instant("\"hi\"", 5000),
        Ok(Value::String {
            t: 5000,
            v: "hi".into()
        })
    );
}

#[test]
fn group_left_copies_labels_from_the_one_side() {
    let st = VecStorage::new(vec![
        series("cpu", &[("node", "n1"), ("core", "0")], &[(0, 2.0)]),
        series("cpu", &[("node", "n1"), ("core", "1")], &[(0, 4.0)]),
        series("node_info", &[("node", "n1"), ("rack", "r7")], &[(0, 1.0)]),
    ]);
    let r = Engine::default()
        .instant_query(&st, "cpu * on(node) group_left(rack) node_info", 0, &ctx())
        .unwrap();
    let Value::Vector(mut v) = r.value else {
        panic!()
    };
    v.sort_by(|a, b| a.labels.cmp(&b.labels));
    let got: Vec<String> = v.iter().map(|s| format!("{} {}", s.labels, s.v)).collect();
    assert_eq!(
        got,
        vec![
            "{core=\"0\", node=\"n1\", rack=\"r7\"} 2",
            "{core=\"1\", node=\"n1\", rack=\"r7\"} 4"
        ]
    );
}

#[test]
fn aggregations_group_by_and_without() {
    let got = vector("count_values without (instance) (\"v\", up)", 60_000);
    assert_eq!(
        got,
        vec![
            ("{job=\"api\", v=\"0\"}".to_string(), 1.0),
            ("{job=\"api\", v=\"1\"}".to_string(), 1.0)
        ]
    );
    let got = vector("quantile(0.5, http_requests_total)", 600_000);
    assert_eq!(got, vec![("{}".to_string(), 150.0)]);
    let got = vector("stddev without (instance) (http_requests_total)", 600_000);
    assert_eq!(got, vec![("{job=\"api\"}".to_string(), 50.0)]);
}

#[test]
fn set_operators_match_on_label_signatures() {
    assert_eq!(vector("up and on(instance) (up == 1)", 60_000).len(), 1);
    assert_eq!(vector("up unless on(instance) (up == 1)", 60_000).len(), 1);
    // Matching ignores the metric name: every right series has a left twin.
    assert_eq!(vector("up or http_requests_total", 60_000).len(), 2);
    assert_eq!(
        vector("up or on(__name__) http_requests_total", 60_000).len(),
        4
    );
}
