//! Tessera's alerting agrees with promtool on the shipped rules: every
//! `deploy/rules/tests/*_test.yml` promtool unit test file is read here,
//! its `input_series` loaded into a real in-memory `Db`, its rule files
//! evaluated by Tessera's rule groups at every `evaluation_interval` as
//! `promtool test rules` does, and the firing alerts (labels and expanded
//! annotations) compared with each `alert_rule_test`'s `exp_alerts`.
//! `scripts/check-deploy` runs promtool itself over the same files, so the
//! two together say Tessera and Prometheus fire the same alerts.

mod common;
#[allow(dead_code)] // the conformance runner uses the rest
mod promqltest;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::Direct;
use promqltest::{Item, parse_series};
use serde::Deserialize;
use tessera_query::Engine;
use tessera_query::rules::file::load_file;
use tessera_query::rules::{AlertOptions, AlertState, RuleGroup};
use tessera_query::time::parse_duration;
use tessera_tsdb::{Db, Labels, Sample, stale_nan};

#[derive(Deserialize)]
struct TestFile {
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
struct TestGroup {
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Deserialize)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Deserialize)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

type AlertSet = BTreeSet<(BTreeMap<String, String>, BTreeMap<String, String>)>;

fn ms(d: &str) -> i64 {
    parse_duration(d).unwrap_or_else(|e| panic!("{d}: {e}"))
}

/// One `input_series` entry as labels and samples every `interval`, read
/// with the promqltest reader (promtool's series notation is the same).
fn input_samples(s: &InputSeries, interval: i64) -> (Labels, Vec<Sample>) {
    let desc = parse_series(&format!("{} {}", s.series, s.values))
        .unwrap_or_else(|e| panic!("{}: {e}", s.series));
    let samples = desc
        .items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let t = i as i64 * interval;
            match item {
                Item::Value(v) => Some(Sample::new(t, *v)),
                Item::Stale => Some(Sample::new(t, stale_nan())),
                Item::Gap | Item::Histogram => None,
            }
        })
        .collect();
    (desc.labels, samples)
}

fn firing(groups: &[RuleGroup], alertname: &str) -> AlertSet {
    groups
        .iter()
        .flat_map(|g| g.status().rules)
        .filter(|r| r.name == alertname)
        .flat_map(|r| r.alerts)
        .filter(|a| a.state == AlertState::Firing)
        .map(|a| {
            let labels = a
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            (labels, a.annotations.into_iter().collect())
        })
        .collect()
}

/// Runs one test group of one promtool test file; returns what differs.
fn run_group(file: &Path, t: &TestFile, tg: &TestGroup) -> Vec<String> {
    let dir = file.parent().unwrap();
    let eval_interval = ms(t.evaluation_interval.as_deref().unwrap_or("1m"));
    let interval = ms(tg.interval.as_deref().unwrap_or("1m"));
    let db = Db::in_memory(2);
    for s in &tg.input_series {
        let (labels, samples) = input_samples(s, interval);
        db.append(&labels, &samples).unwrap();
    }
    let opts = Arc::new(AlertOptions {
        external_labels: tg.external_labels.clone().into_iter().collect(),
        ..Default::default()
    });
    let groups: Vec<RuleGroup> = t
        .rule_files
        .iter()
        .flat_map(|f| load_file(&dir.join(f)).unwrap_or_else(|e| panic!("{e}")))
        .map(|g| RuleGroup::new(g, eval_interval, 0).with_alerting(opts.clone(), None, false))
        .collect();
    let mut checks: BTreeMap<i64, Vec<&AlertTest>> = BTreeMap::new();
    for a in &tg.alert_rule_test {
        checks.entry(ms(&a.eval_time)).or_default().push(a);
    }
    let maxt = checks.keys().last().copied().unwrap_or(0);
    let engine = Engine::default();
    let mut problems = Vec::new();
    let mut ts = 0;
    while ts <= maxt {
        for g in &groups {
            g.evaluate(&engine, &db, &Direct(&db), ts, ts, 0);
        }
        for a in checks.get(&ts).into_iter().flatten() {
            let want: AlertSet = a
                .exp_alerts
                .iter()
                .map(|e| {
                    let mut l = e.exp_labels.clone();
                    l.insert("alertname".into(), a.alertname.clone());
                    (l, e.exp_annotations.clone())
                })
                .collect();
            let got = firing(&groups, &a.alertname);
            if got != want {
                problems.push(format!(
                    "{}: {} at {}:\n  promtool expects {want:?}\n  Tessera fired    {got:?}",
                    file.display(),
                    a.alertname,
                    a.eval_time
                ));
            }
        }
        ts += eval_interval;
    }
    problems
}

fn test_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rules/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_test.yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn tessera_fires_the_alerts_the_promtool_unit_tests_expect() {
    let mut problems = Vec::new();
    let mut cases = 0;
    for f in test_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let t: TestFile =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for tg in &t.tests {
            cases += tg.alert_rule_test.len();
            problems.extend(run_group(&f, &t, tg));
        }
    }
    assert!(cases > 0, "no alert_rule_test in deploy/rules/tests");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
