//! Recording-rule group evaluation against a real in-memory `Db`: results
//! equal ad hoc queries, staleness markers, `limit`, query offset.

mod common;

use std::path::Path;

use common::Direct;
use std::sync::{Arc, Mutex};

use tessera_query::rules::{
    AlertOptions, AlertState, Health, Notification, Notifier, RuleGroup, parse_rule_file,
};
use tessera_query::{Engine, QueryContext, Value};
use tessera_tsdb::{Db, Labels, Matcher, Sample, is_stale_nan};

const MIN: i64 = 60_000;

fn group(yaml: &str) -> RuleGroup {
    let mut groups = parse_rule_file(Path::new("test.yml"), yaml).expect("valid rule file");
    assert_eq!(groups.len(), 1);
    RuleGroup::new(groups.remove(0), MIN, 0)
}

fn series(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// Writes `up{job, instance}` every 15s from 0 to `end` with `value(t)`.
fn write_up(db: &Db, job: &str, instance: &str, end: i64, value: impl Fn(i64) -> f64) {
    let samples: Vec<Sample> = (0..=end / 15_000)
        .map(|i| Sample::new(i * 15_000, value(i * 15_000)))
        .collect();
    let l = series(&[("__name__", "up"), ("job", job), ("instance", instance)]);
    db.append(&l, &samples).unwrap();
}

/// Raw samples of the series named `name`, by label set.
fn stored(db: &Db, name: &str) -> Vec<(Labels, Vec<Sample>)> {
    let mut v: Vec<_> = db
        .select(
            &[Matcher::equal("__name__", name)],
            i64::MIN / 2,
            i64::MAX / 2,
        )
        .into_iter()
        .map(|s| (s.labels, s.samples))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn instant(db: &Db, q: &str, t: i64) -> Vec<(Labels, f64)> {
    let r = Engine::default()
        .instant_query(
            db,
            q,
            t,
            &QueryContext::new(std::time::Duration::from_secs(10)),
        )
        .unwrap();
    let Value::Vector(v) = r.value else {
        panic!("{q}: not a vector")
    };
    let mut v: Vec<_> = v.into_iter().map(|s| (s.labels, s.v)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn recorded_series_equal_the_expression_evaluated_ad_hoc() {
    let db = Db::in_memory(4);
    write_up(&db, "api", "a", 10 * MIN, |t| (t / 15_000 % 3) as f64);
    write_up(&db, "api", "b", 10 * MIN, |_| 1.0);
    write_up(&db, "db", "c", 10 * MIN, |t| t as f64 / 1000.0);
    let g = group(
        "groups:\n- name: g\n  rules:\n\
         \x20 - record: job:up:sum\n    expr: sum by (job) (up)\n    labels: {source: rule}\n\
         \x20 - record: job:up:sum_x2\n    expr: job:up:sum * 2\n\
         \x20 - record: job:up:rate1m\n    expr: sum by (job) (rate(up[1m]))\n",
    );
    let engine = Engine::default();
    let slots: Vec<i64> = (1..=8).map(|i| i * MIN + 7_000).collect();
    for &t in &slots {
        let r = g.evaluate(&engine, &db, &Direct(&db), t, t, 0);
        assert_eq!((r.rules_evaluated, r.failures), (3, 0), "{:?}", g.status());
        assert_eq!(r.samples, 6);
    }
    for &t in &slots {
        let mut want: Vec<(Labels, f64)> = instant(&db, "sum by (job) (up)", t)
            .into_iter()
            .map(|(mut l, v)| {
                l.set("__name__", "job:up:sum");
                l.set("source", "rule");
                (l, v)
            })
            .collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        let got: Vec<(Labels, f64)> = stored(&db, "job:up:sum")
            .into_iter()
            .map(|(l, s)| {
                let p = s.iter().find(|p| p.t == t).expect("a sample at every slot");
                (l, p.v)
            })
            .collect();
        assert_eq!(got, want, "at {t}");
        // The second rule saw the first rule's output of the same evaluation.
        for ((l, v), (l2, v2)) in got.iter().zip(instant(&db, "job:up:sum_x2", t)) {
            assert_eq!(l.get("job"), l2.get("job"));
            assert_eq!(v * 2.0, v2, "at {t}");
        }
        let rates = instant(&db, "job:up:rate1m", t);
        let want_rates = instant(&db, "sum by (job) (rate(up[1m]))", t);
        assert_eq!(
            rates.iter().map(|r| r.1).collect::<Vec<_>>(),
            want_rates.iter().map(|r| r.1).collect::<Vec<_>>()
        );
    }
    // Exactly one sample per slot, at the slot.
    for (_, s) in stored(&db, "job:up:sum") {
        assert_eq!(s.iter().map(|p| p.t).collect::<Vec<_>>(), slots);
    }
    let st = g.status();
    assert!(
        st.rules
            .iter()
            .all(|r| r.health == Health::Ok && r.last_error.is_none())
    );
    assert_eq!(st.last_slot_ms, Some(*slots.last().unwrap()));
    assert_eq!(st.counters.rule_evaluations, 24);
    assert_eq!(st.rules[0].query, "sum by (job) (up)");
}

#[test]
fn vanished_output_series_get_a_staleness_marker_at_the_next_evaluation() {
    let db = Db::in_memory(2);
    // Instance b is up until 3m, then down: `up == 1` stops returning it.
    write_up(&db, "api", "a", 10 * MIN, |_| 1.0);
    write_up(&db, "api", "b", 10 * MIN, |t| {
        if t < 3 * MIN { 1.0 } else { 0.0 }
    });
    let g = group("groups:\n- name: g\n  rules:\n  - record: up:healthy\n    expr: up == 1\n");
    let engine = Engine::default();
    for t in [MIN, 2 * MIN, 4 * MIN, 5 * MIN] {
        let r = g.evaluate(&engine, &db, &Direct(&db), t, t, 0);
        assert_eq!(r.failures, 0);
    }
    let got = stored(&db, "up:healthy");
    assert_eq!(got.len(), 2);
    let (a, b) = (&got[0].1, &got[1].1);
    assert_eq!(
        a.iter().map(|s| s.t).collect::<Vec<_>>(),
        vec![MIN, 2 * MIN, 4 * MIN, 5 * MIN]
    );
    assert!(a.iter().all(|s| s.v == 1.0));
    // b: two real samples, one marker at the first evaluation without it,
    // nothing after (a marker is written once).
    assert_eq!(
        b.iter().map(|s| s.t).collect::<Vec<_>>(),
        vec![MIN, 2 * MIN, 4 * MIN]
    );
    assert!(is_stale_nan(b[2].v), "{b:?}");
    // Queries stop seeing it at once rather than after the 5m lookback.
    assert_eq!(instant(&db, "up:healthy", 4 * MIN + 30_000).len(), 1);
}

#[test]
fn limit_fails_the_whole_rule_and_stores_nothing() {
    let db = Db::in_memory(2);
    for i in ["a", "b", "c"] {
        write_up(&db, "api", i, 5 * MIN, |_| 1.0);
    }
    let g = group(
        "groups:\n- name: g\n  limit: 2\n  rules:\n\
         \x20 - record: per_instance\n    expr: up\n\
         \x20 - record: per_job\n    expr: sum by (job) (up)\n",
    );
    let r = g.evaluate(&Engine::default(), &db, &Direct(&db), MIN, MIN, 0);
    assert_eq!((r.rules_evaluated, r.failures, r.samples), (2, 1, 1));
    assert!(stored(&db, "per_instance").is_empty());
    assert_eq!(stored(&db, "per_job").len(), 1);
    let st = g.status();
    assert_eq!(st.rules[0].health, Health::Err);
    assert_eq!(
        st.rules[0].last_error.as_deref(),
        Some("exceeded limit of 2 with 3 series")
    );
    assert_eq!(st.rules[1].health, Health::Ok);
    assert_eq!(st.counters.rule_failures, 1);
}

#[test]
fn failing_rules_report_their_error_and_health() {
    let f = |yaml: &str, want: &str| {
        let db = Db::in_memory(1);
        write_up(&db, "api", "a", 5 * MIN, |_| 1.0);
        let g = group(yaml);
        let r = g.evaluate(&Engine::default(), &db, &Direct(&db), MIN, MIN, 0);
        assert_eq!(r.failures, 1, "{yaml}");
        let st = g.status();
        let e = st.rules[0].last_error.clone().unwrap_or_default();
        assert!(e.contains(want), "{yaml}: {e}");
        assert_eq!(st.rules[0].health, Health::Err);
    };
    f(
        "groups:\n- name: g\n  rules:\n  - record: s\n    expr: '\"text\"'\n",
        "rule result is not a vector or scalar",
    );
    f(
        "groups:\n- name: g\n  rules:\n  - record: m\n    expr: up[1m]\n",
        "rule result is not a vector or scalar",
    );
    // Dropping the distinguishing label leaves two identical series.
    f(
        "groups:\n- name: g\n  rules:\n  - record: d\n    expr: up or label_replace(up, \"instance\", \"z\", \"\", \"\")\n    labels: {instance: ''}\n",
        "vector contains metrics with the same labelset after applying rule labels",
    );
}

#[test]
fn scalar_results_become_one_series_and_alerting_rules_write_alerts() {
    let db = Db::in_memory(1);
    let g = group(
        "groups:\n- name: g\n  rules:\n\
         \x20 - alert: AlwaysFiring\n    expr: vector(1)\n\
         \x20 - record: answer\n    expr: '42'\n    labels: {kind: constant}\n",
    );
    let r = g.evaluate(&Engine::default(), &db, &Direct(&db), MIN, MIN, 0);
    assert_eq!((r.rules_evaluated, r.failures), (2, 0));
    let got = stored(&db, "answer");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].0,
        series(&[("__name__", "answer"), ("kind", "constant")])
    );
    assert_eq!(got[0].1, vec![Sample::new(MIN, 42.0)]);
    let alerts = stored(&db, "ALERTS");
    assert_eq!(
        alerts[0].0,
        series(&[
            ("__name__", "ALERTS"),
            ("alertname", "AlwaysFiring"),
            ("alertstate", "firing")
        ])
    );
    let st = g.status();
    assert_eq!(st.rules[0].health, Health::Ok);
    assert_eq!(st.rules[0].state, AlertState::Firing);
    assert_eq!(st.rules[0].alerts.len(), 1);
}

/// Collects what the group sends.
#[derive(Default)]
struct Sent(Mutex<Vec<Notification>>);

impl Notifier for Sent {
    fn send(&self, alerts: Vec<Notification>) {
        self.0.lock().unwrap().extend(alerts);
    }
}

#[test]
fn alerts_go_pending_firing_resolved_with_series_and_notifications() {
    let db = Db::in_memory(2);
    // Instance b is down from 3m to 6m.
    write_up(&db, "node", "a", 20 * MIN, |_| 1.0);
    write_up(&db, "node", "b", 20 * MIN, |t| {
        if (3 * MIN..6 * MIN).contains(&t) {
            0.0
        } else {
            1.0
        }
    });
    let sent = Arc::new(Sent::default());
    let mut cfg = parse_rule_file(
        Path::new("a.yml"),
        "groups:\n- name: g\n  rules:\n  - alert: NodeDown\n    expr: up == 0\n    for: 1m\n\
         \x20   labels: {severity: page}\n    annotations: {summary: '{{ $labels.instance }} of {{ $labels.job }} is down'}\n",
    )
    .unwrap();
    let g = RuleGroup::new(cfg.remove(0), MIN, 0).with_alerting(
        Arc::new(AlertOptions::default()),
        Some(sent.clone() as Arc<dyn Notifier>),
        false,
    );
    let engine = Engine::default();
    let mut states = Vec::new();
    for m in 1..=8 {
        g.evaluate(&engine, &db, &Direct(&db), m * MIN, m * MIN, 0);
        let st = g.status();
        states.push(st.rules[0].state.as_str());
    }
    assert_eq!(
        states,
        [
            "inactive", "inactive", "pending", "firing", "firing", "inactive", "inactive",
            "inactive"
        ]
    );
    let alert_series = stored(&db, "ALERTS");
    let labels = |state: &str| {
        series(&[
            ("__name__", "ALERTS"),
            ("alertname", "NodeDown"),
            ("alertstate", state),
            ("instance", "b"),
            ("job", "node"),
            ("severity", "page"),
        ])
    };
    let pending = alert_series
        .iter()
        .find(|s| s.0 == labels("pending"))
        .unwrap();
    assert_eq!(pending.1[0], Sample::new(3 * MIN, 1.0));
    assert!(
        is_stale_nan(pending.1[1].v),
        "pending series ends with a staleness marker"
    );
    let firing = alert_series
        .iter()
        .find(|s| s.0 == labels("firing"))
        .unwrap();
    assert_eq!(firing.1.len(), 3);
    assert!(is_stale_nan(firing.1[2].v));
    let for_state = stored(&db, "ALERTS_FOR_STATE");
    assert_eq!(for_state[0].1[0].v, (3 * MIN / 1000) as f64);

    let sent = sent.0.lock().unwrap();
    // Firing at 4m (sent), 5m (resend delay 1m not passed), resolved at 6m,
    // re-sent as resolved at 7m+ (every resend delay).
    assert_eq!(sent[0].starts_at_ms, 4 * MIN);
    assert_eq!(sent[0].ends_at_ms, 8 * MIN);
    assert_eq!(
        sent[0].annotations,
        [("summary".into(), "b of node is down".into())]
    );
    assert_eq!(sent[0].labels.get("alertname"), Some("NodeDown"));
    assert!(sent[0].labels.get("__name__").is_none());
    let resolved: Vec<i64> = sent.iter().skip(1).map(|n| n.ends_at_ms).collect();
    assert_eq!(resolved[0], 6 * MIN);
    assert!(resolved.iter().all(|&e| e == 6 * MIN), "{resolved:?}");
}

#[test]
fn for_state_is_restored_from_alerts_for_state_after_a_restart() {
    let db = Db::in_memory(1);
    write_up(&db, "node", "b", 60 * MIN, |_| 0.0);
    let yaml =
        "groups:\n- name: g\n  rules:\n  - alert: NodeDown\n    expr: up == 0\n    for: 30m\n";
    let opts = Arc::new(AlertOptions::default());
    let first = RuleGroup::new(
        parse_rule_file(Path::new("a.yml"), yaml).unwrap().remove(0),
        MIN,
        0,
    )
    .with_alerting(opts.clone(), None, false);
    let engine = Engine::default();
    for m in 1..=10 {
        first.evaluate(&engine, &db, &Direct(&db), m * MIN, m * MIN, 0);
    }
    assert_eq!(first.status().rules[0].alerts[0].active_at_ms, MIN);
    // "Restart" after 5 minutes down: a new group that must restore.
    let second = RuleGroup::new(
        parse_rule_file(Path::new("a.yml"), yaml).unwrap().remove(0),
        MIN,
        0,
    )
    .with_alerting(opts, None, true);
    assert!(second.restore_pending());
    second.evaluate(&engine, &db, &Direct(&db), 15 * MIN, 15 * MIN, 0);
    assert_eq!(
        stored(&db, "ALERTS_FOR_STATE")[0].1.last().unwrap().t,
        10 * MIN,
        "nothing written before the restore"
    );
    assert_eq!(second.restore_for_state(&db, 16 * MIN), 1);
    // Pending 9 of 30 minutes before going down at 10m, back at 16m: the
    // clock resumes, shifted by the 6 minutes down.
    assert_eq!(second.status().rules[0].alerts[0].active_at_ms, 7 * MIN);
    assert!(!second.restore_pending());
}

#[test]
fn a_reload_that_changes_the_group_keeps_the_alerts_and_their_clock() {
    let db = Db::in_memory(1);
    write_up(&db, "node", "b", 20 * MIN, |_| 0.0);
    let load = |yaml: &str| {
        RuleGroup::new(
            parse_rule_file(Path::new("a.yml"), yaml).unwrap().remove(0),
            MIN,
            0,
        )
    };
    let alert = "  - alert: NodeDown\n    expr: up == 0\n    for: 10m\n";
    let old = load(&format!("groups:\n- name: g\n  rules:\n{alert}"));
    let engine = Engine::default();
    for m in 1..=3 {
        old.evaluate(&engine, &db, &Direct(&db), m * MIN, m * MIN, 0);
    }
    // The reloaded group has one more rule: the alert keeps its activeAt.
    let new = load(&format!(
        "groups:\n- name: g\n  rules:\n  - record: x\n    expr: up\n{alert}"
    ));
    new.copy_state_from(&old);
    new.evaluate(&engine, &db, &Direct(&db), 4 * MIN, 4 * MIN, 0);
    let st = new.status();
    assert_eq!(st.rules[1].alerts[0].active_at_ms, MIN);
    assert_eq!(st.rules[1].state, AlertState::Pending);
}

#[test]
fn query_offset_evaluates_and_stores_at_the_offset_time() {
    let db = Db::in_memory(1);
    write_up(&db, "api", "a", 10 * MIN, |t| t as f64);
    let g = group(
        "groups:\n- name: g\n  query_offset: 1m\n  rules:\n  - record: lagged\n    expr: up\n",
    );
    g.evaluate(&Engine::default(), &db, &Direct(&db), 5 * MIN, 5 * MIN, 0);
    let got = stored(&db, "lagged");
    // As Prometheus: evaluated at slot - offset and stored at that time.
    assert_eq!(got[0].1, vec![Sample::new(4 * MIN, (4 * MIN) as f64)]);
}
