//! Regressions for differences a differential run against a real
//! Prometheus found (issue 20): each query here answered differently from
//! Prometheus before its fix. `tests/promql_fuzz.rs` in the root package
//! checks the same against a running Prometheus.

use std::time::Duration;

use tessera_query::{Engine, QueryContext, QueryError, Value, VecStorage};
use tessera_tsdb::{Labels, Sample, SeriesSamples};

fn series(pairs: &[(&str, &str)], pts: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs(pairs.to_vec()),
        samples: pts.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
    }
}

/// One sample a minute for ten minutes, `f(minute)`.
fn minutely(f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    (0..=10).map(|i| (i * 60_000, f(i))).collect()
}

fn run(st: &VecStorage, q: &str, t: i64) -> Result<Vec<(String, f64)>, QueryError> {
    let r =
        Engine::default().instant_query(st, q, t, &QueryContext::new(Duration::from_secs(10)))?;
    match r.value {
        Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect()),
        other => panic!("{q}: expected a vector, got {other:?}"),
    }
}

fn sorted(mut v: Vec<(String, f64)>) -> Vec<(String, f64)> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn comparison_filter_does_not_bring_back_a_dropped_name() {
    let st = VecStorage::new(vec![
        series(
            &[("__name__", "m"), ("instance", "a")],
            &minutely(|i| i as f64),
        ),
        series(
            &[("__name__", "cpus"), ("instance", "a")],
            &minutely(|_| 4.0),
        ),
    ]);
    for q in [
        "predict_linear(m[2m], 600) != on (instance) group_left () (sum by (instance) (cpus))",
        "predict_linear(m[2m], 600) != on (instance) (sum by (instance) (cpus))",
        "rate(m[5m]) < ignoring (__name__) group_left () cpus",
        "predict_linear(m[2m], 600) > 0",
    ] {
        let got = run(&st, q, 600_000).unwrap();
        assert_eq!(got.len(), 1, "{q}");
        assert_eq!(got[0].0, "{instance=\"a\"}", "{q}");
    }
    // A comparison on the raw selector keeps the name, as in Prometheus.
    let got = run(&st, "m != on (instance) group_left () cpus", 600_000).unwrap();
    assert_eq!(got[0].0, "m{instance=\"a\"}");
}

#[test]
fn one_to_one_duplicates_are_checked_before_filtering_as_prometheus_3() {
    let st = VecStorage::new(vec![
        series(
            &[("__name__", "a"), ("instance", "x"), ("cpu", "0")],
            &minutely(|_| 1.0),
        ),
        series(
            &[("__name__", "a"), ("instance", "x"), ("cpu", "1")],
            &minutely(|_| 2.0),
        ),
        series(&[("__name__", "b"), ("instance", "x")], &minutely(|_| 2.0)),
    ]);
    // Two left series match `instance="x"` and only one passes `==`:
    // Prometheus 2.42 answers, Prometheus 3 (and Tessera) refuse the
    // ambiguous match whatever the filter keeps (issue 20's "error raised
    // too early" is this 3.x change; docs/promql-compatibility.md).
    for q in [
        "a == on (instance) b",
        "a > on (instance) b",
        "a == bool on (instance) b",
        "a + on (instance) b",
    ] {
        let e = run(&st, q, 600_000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
            "{q}"
        );
    }
    // The "one" side is checked before filtering too, naming the side.
    let e = run(&st, "b == on (instance) a", 600_000).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "found duplicate series for the match group {instance=\"x\"} on the right hand-side"
        ),
        "{e}"
    );
    let got = sorted(run(&st, "b == on (instance) group_right () a", 600_000).unwrap());
    assert_eq!(got, vec![("a{cpu=\"1\", instance=\"x\"}".to_string(), 2.0)]);
}
