//! Differential test against a real Prometheus (Debian's `prometheus`
//! package): Prometheus scrapes its own `/metrics` with
//! `metric_relabel_configs`, and every series it stored must equal what
//! this crate computes from the same rules and the same input labels.
//!
//! The rules only add labels (hashmod shards with one and several sources,
//! a templated target label, expansion, uppercase) plus one drop, so the
//! input of each stored series is recoverable: strip the added labels.
//! Skipped, with a visible message, when `/usr/bin/prometheus` or
//! `/usr/bin/promtool` is absent; in CI (`CI` set) that fails instead. Bounded to ~30 s; Prometheus is killed
//! by a guard even when an assertion fails.

#[path = "../../tests/common/input.rs"]
mod input;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_relabel::{Outcome, RelabelConfigs, hashmod};
use tessera_tsdb::Labels;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

/// The rules under test, given verbatim to Prometheus and to this crate.
const RULES: &str = r#"
- source_labels: [__name__]
  target_label: shard
  action: hashmod
  modulus: 7
- source_labels: [__name__]
  target_label: shard_1000
  action: HashMod
  modulus: 1000
- source_labels: [__name__, instance]
  separator: /
  target_label: shard_multi
  action: hashmod
  modulus: 1000
- source_labels: [__name__]
  regex: '([a-z]+)_(.*)'
  target_label: swapped
  replacement: '${2}-$1'
- source_labels: [__name__]
  regex: '(.*)_total'
  target_label: 'counter_${1}'
  replacement: 'yes'
- source_labels: [__name__]
  target_label: upper
  action: uppercase
- source_labels: [__name__]
  regex: 'go_gc_.*'
  action: drop
"#;

/// Labels the rules add: strip them to get a series' scraped labels back.
fn is_added(name: &str) -> bool {
    matches!(
        name,
        "shard" | "shard_1000" | "shard_multi" | "swapped" | "upper"
    ) || name.starts_with("counter_")
}

/// Kills and reaps Prometheus when the test ends, panicking or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().unwrap().port()
}

fn promtool_query(server: &str, expr: &str) -> Result<Vec<Value>, String> {
    let out = Command::new(PROMTOOL)
        .args(["query", "-o", "json", "instant", server, expr])
        .output()
        .map_err(|e| format!("running promtool: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}"))?;
    // promtool prints the vector itself (a JSON array).
    v.as_array()
        .cloned()
        .ok_or_else(|| format!("unexpected promtool output: {v}"))
}

fn metric_labels(sample: &Value) -> BTreeMap<String, String> {
    sample["metric"]
        .as_object()
        .expect("sample has a metric object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[test]
fn prometheus_stores_exactly_what_this_crate_computes() {
    if let Some(bin) = [PROMETHEUS, PROMTOOL]
        .into_iter()
        .find(|b| !Path::new(b).exists())
    {
        input::missing(
            &format!("{bin} is not installed"),
            input::PROMETHEUS_PACKAGES,
        );
        return;
    }
    let rules = RelabelConfigs::from_yaml(RULES).expect("rules parse");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");
    let indented: String = RULES.lines().map(|l| format!("      {l}\n")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n\
         \x20   metric_relabel_configs:\n{indented}"
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, &config).unwrap();
    let log_path = dir.path().join("prometheus.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let _guard = KillOnDrop(child);

    // Wait for a scrape with relabeled samples (startup + a 1 s interval).
    let deadline = Instant::now() + Duration::from_secs(25);
    let series = loop {
        match promtool_query(&server, r#"{shard!=""}"#) {
            Ok(v) if !v.is_empty() => break v,
            _ if Instant::now() > deadline => {
                panic!(
                    "no relabeled series within 25 s; prometheus log:\n{}",
                    tail(&log_path)
                )
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    assert!(series.len() > 50, "only {} series scraped", series.len());

    // Every stored series equals our relabeling of its scraped labels.
    let mut names = std::collections::BTreeSet::new();
    for s in &series {
        let stored = metric_labels(s);
        let name = stored["__name__"].clone();
        assert!(
            !name.starts_with("go_gc_"),
            "{name} should have been dropped"
        );
        let mut ours = Labels::from_pairs(stored.iter().filter(|(k, _)| !is_added(k)));
        assert_eq!(rules.apply(&mut ours), Outcome::Keep, "{name}");
        assert_eq!(ours, Labels::from_pairs(stored.iter()), "series {name}");
        names.insert(name);
    }
    // The drop rule did fire on input Prometheus exposes.
    let mut gc = Labels::from_pairs([("__name__", "go_gc_duration_seconds")]);
    assert_eq!(rules.apply(&mut gc), Outcome::Drop { rule: 6 });

    // The shard check the brief asks for, through aggregation.
    let pairs = promtool_query(&server, r#"count by (__name__, shard) ({shard!=""})"#)
        .expect("count by query");
    assert!(!pairs.is_empty());
    for p in &pairs {
        let l = metric_labels(p);
        let (name, shard) = (&l["__name__"], &l["shard"]);
        assert_eq!(shard, &hashmod(name.as_bytes(), 7).to_string(), "{name}");
    }
    let instance = format!("127.0.0.1:{port}");
    let multi = promtool_query(&server, r#"count by (__name__, shard_multi) ({shard!=""})"#)
        .expect("count by query");
    for p in &multi {
        let l = metric_labels(p);
        let name = &l["__name__"];
        let want = hashmod(format!("{name}/{instance}").as_bytes(), 1000);
        assert_eq!(l["shard_multi"], want.to_string(), "{name}");
    }
    println!(
        "compared {} series ({} metric names) with Prometheus: identical",
        series.len(),
        names.len()
    );
}
