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

#[test]
fn an_empty_side_matches_nothing_without_duplicate_errors() {
    // Prometheus' VectorBinop returns at once when a side is empty at a
    // step, so ambiguous matches on the other side are no error there.
    let st = VecStorage::new(vec![
        series(&[("__name__", "gone"), ("job", "j")], &[(0, 1.0)]),
        series(
            &[("__name__", "cpu"), ("job", "j"), ("mode", "a")],
            &minutely(|_| 1.0),
        ),
        series(
            &[("__name__", "cpu"), ("job", "j"), ("mode", "b")],
            &minutely(|_| 2.0),
        ),
    ]);
    // `gone` is 10 minutes old at t=600s: past the 5m lookback.
    for q in [
        "gone * on (job) cpu",
        "cpu < on (job) group_right () gone",
        "cpu == on (job) gone",
    ] {
        assert_eq!(run(&st, q, 600_000).unwrap(), vec![], "{q}");
    }
    // While `gone` is present the duplicates are an error again.
    assert!(run(&st, "gone * on (job) cpu", 60_000).is_err());
}

#[test]
fn clamp_keeps_nan_like_gos_min_and_max() {
    let st = VecStorage::new(vec![series(
        &[("__name__", "m"), ("instance", "a")],
        &minutely(|_| f64::NAN),
    )]);
    for q in ["clamp_min(m, 1)", "clamp_max(m, 1)", "clamp(m, 0, 1)"] {
        let got = run(&st, q, 600_000).unwrap();
        assert!(got.len() == 1 && got[0].1.is_nan(), "{q}: {got:?}");
    }
}

#[test]
fn bottomk_breaks_ties_as_prometheus_3_does() {
    // Values of issue 20's data at one step, in label order. Prometheus
    // 2.44+ (PR #12190: heap.Fix instead of Pop+Push) keeps
    // `a/cached`; 2.42 kept `b/buffers`. Tessera follows 3.x.
    let vals = [
        ("a", "buffers", 2.0),
        ("a", "cached", 1.0),
        ("a", "free", 3.0),
        ("a", "used", 3.0),
        ("b", "buffers", 1.0),
        ("b", "cached", 0.0),
        ("b", "free", 3.0),
        ("b", "used", 1.0),
        ("c", "buffers", 3.0),
        ("c", "cached", 1.0),
        ("c", "free", 1.0),
        ("c", "used", 1.0),
    ];
    let st = VecStorage::new(
        vals.iter()
            .map(|(i, t, v)| {
                series(
                    &[("__name__", "mem"), ("instance", i), ("type", t)],
                    &[(0, *v)],
                )
            })
            .collect(),
    );
    let got = sorted(run(&st, "bottomk(2, mem)", 0).unwrap());
    let names: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        names,
        [
            "mem{instance=\"a\", type=\"cached\"}",
            "mem{instance=\"b\", type=\"cached\"}"
        ]
    );
    // The same for topk on the negated values, and by a label none has.
    let got = sorted(run(&st, "topk by (mode) (2, -mem)", 0).unwrap());
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .any(|(l, _)| l.contains("instance=\"a\", type=\"cached\"")),
        "{got:?}"
    );
}
