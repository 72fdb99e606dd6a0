//! Recording rules in the server: the `--rules.*` flags, start-up (load,
//! then evaluate once the database is open), reload, the `/api/v1/rules`
//! JSON and the rule self-metrics.
//!
//! The engine lives in `tessera_query::rules`; this file only wires it to
//! the process. There is one rule manager per process, kept in a static so
//! the HTTP handler, the reload path and `/metrics` reach it without a
//! field in `AppState`.
//!
//! Behaviour worth knowing as an operator:
//! - a bad rule file refuses the start (the error names the file, line,
//!   group and rule); on reload (SIGHUP, `POST /-/reload`) it keeps the
//!   groups in force;
//! - each group's first evaluation is at its next aligned slot after the
//!   start; slots missed while Tessera was down are not backfilled (as in
//!   Prometheus);
//! - alerting rules are listed in `/api/v1/rules` with an explanation and a
//!   warning at load, and never evaluated.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Map, Value, json};
use tessera_query::rules::{
    ALERTING_UNSUPPORTED, GroupStatus, LoadSummary, ManagerOptions, RuleKind, RuleManager,
};

use crate::flags;
use crate::http::AppState;
use crate::metrics;

/// `tessera serve` flags for recording rules (flattened into `ServeArgs`).
#[derive(clap::Args, Debug, Clone)]
pub struct RulesArgs {
    /// Prometheus rule file to evaluate (the `groups:` format of
    /// `rule_files`). Repeatable; globs such as `rules/*.yml` are expanded
    /// at start and on every reload. Default: none (no rules).
    #[arg(long = "rules.file", value_name = "PATH_OR_GLOB")]
    pub rules_file: Vec<String>,

    /// Interval of rule groups that set no `interval:`. Shorter means
    /// fresher recorded series and more query load.
    #[arg(long = "rules.evaluation-interval", default_value = "1m", value_parser = parse_interval)]
    pub evaluation_interval: Duration,

    /// How far back rule groups without `query_offset:` evaluate and store
    /// their results (Prometheus' `rule_query_offset`): raise it when
    /// remote-write senders lag, so rules see complete data.
    #[arg(long = "rules.query-offset", default_value = "0s", value_parser = flags::duration)]
    pub query_offset: Duration,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    match flags::duration(s)? {
        d if d.is_zero() => Err("the evaluation interval must be greater than 0".into()),
        d => Ok(d),
    }
}

static MANAGER: OnceLock<Arc<RuleManager>> = OnceLock::new();
static RELOADS_OK: AtomicU64 = AtomicU64::new(0);
static RELOADS_FAILED: AtomicU64 = AtomicU64::new(0);

/// Loads the rule files and starts evaluating once `state.db` is open.
/// With no `--rules.file` it does nothing. A bad file is an error (refuse
/// to start).
pub fn start(state: Arc<AppState>, args: &RulesArgs) -> anyhow::Result<()> {
    if args.rules_file.is_empty() {
        return Ok(());
    }
    let opts = ManagerOptions {
        patterns: args.rules_file.clone(),
        default_interval: args.evaluation_interval,
        default_query_offset: args.query_offset,
    };
    let (manager, summary) =
        RuleManager::load(opts, state.engine.clone()).context("loading the recording rules")?;
    log_summary(&summary, "recording rules loaded");
    let manager = Arc::new(manager);
    if MANAGER.set(manager.clone()).is_err() {
        anyhow::bail!("the rule manager was started twice");
    }
    // Rules evaluate against the database, which opens after WAL replay:
    // wait for it on a thread of our own, never an async worker.
    std::thread::Builder::new()
        .name("tessera-rules-start".into())
        .spawn(move || {
            let db = loop {
                if let Some(db) = state.db.get() {
                    break db.clone();
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            match manager.start(db) {
                Ok(()) => {
                    tracing::info!(groups = manager.groups().len(), "rule evaluation started")
                }
                Err(e) => tracing::error!(error = %e, "cannot start rule evaluation threads"),
            }
        })
        .context("spawning the rule start-up thread")?;
    Ok(())
}

fn log_summary(s: &LoadSummary, what: &str) {
    tracing::info!(
        files = s.files.len(),
        groups = s.groups,
        recording_rules = s.recording_rules,
        alerting_rules = s.alerting_rules.len(),
        "{what}"
    );
    for a in &s.alerting_rules {
        tracing::warn!(rule = %a, "alerting rules are not supported by Tessera: listed in /api/v1/rules, not evaluated");
    }
}

/// Re-reads the rule files (SIGHUP, `POST /-/reload`). On error the groups
/// in force keep running and the message says why. Without rules: Ok.
pub fn reload() -> Result<(), String> {
    let Some(m) = MANAGER.get() else {
        return Ok(());
    };
    match m.reload() {
        Ok(summary) => {
            RELOADS_OK.fetch_add(1, Ordering::Relaxed);
            log_summary(&summary, "reloaded the recording rules");
            Ok(())
        }
        Err(e) => {
            RELOADS_FAILED.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "rule reload failed; the previous rule groups stay in force");
            Err(e.to_string())
        }
    }
}

/// Stops rule evaluation (graceful shutdown, before the final WAL sync).
pub fn stop() {
    if let Some(m) = MANAGER.get() {
        m.stop();
    }
}

/// The groups in force (empty without rules).
pub fn groups() -> Vec<GroupStatus> {
    MANAGER.get().map(|m| m.groups()).unwrap_or_default()
}

/// `/api/v1/rules` filters, as Prometheus reads them.
#[derive(Debug, Default, PartialEq)]
pub struct RulesFilter {
    pub kind: Option<RuleKind>,
    pub rule_names: HashSet<String>,
    pub groups: HashSet<String>,
    pub files: HashSet<String>,
    pub exclude_alerts: bool,
}

impl RulesFilter {
    /// From the `type`, `rule_name[]`, `rule_group[]`, `file[]` and
    /// `exclude_alerts` parameters; the error is Prometheus' message.
    pub fn parse<'a>(
        kind: Option<&str>,
        rule_names: impl Iterator<Item = &'a str>,
        groups: impl Iterator<Item = &'a str>,
        files: impl Iterator<Item = &'a str>,
        exclude_alerts: Option<&str>,
    ) -> Result<RulesFilter, String> {
        let kind = match kind.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => None,
            Some("alert") => Some(RuleKind::Alerting),
            Some("record") => Some(RuleKind::Recording),
            Some(other) => {
                return Err(format!(
                    "invalid parameter \"type\": not supported value {other:?}"
                ));
            }
        };
        let exclude_alerts = match exclude_alerts {
            None | Some("") => false,
            Some(s) => parse_bool(s).ok_or_else(|| {
                format!("invalid parameter \"exclude_alerts\": strconv.ParseBool: parsing {s:?}: invalid syntax")
            })?,
        };
        let set = |it: &mut dyn Iterator<Item = &'a str>| {
            it.filter(|s| !s.is_empty()).map(String::from).collect()
        };
        Ok(RulesFilter {
            kind,
            rule_names: set(&mut { rule_names }),
            groups: set(&mut { groups }),
            files: set(&mut { files }),
            exclude_alerts,
        })
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The `data` of `/api/v1/rules`: `{"groups": [...]}` in Prometheus' shape.
/// Groups left without rules by the filters are left out, as Prometheus does.
pub fn rules_json(groups: &[GroupStatus], f: &RulesFilter) -> Value {
    let mut out = Vec::new();
    for g in groups {
        if (!f.groups.is_empty() && !f.groups.contains(&g.name))
            || (!f.files.is_empty() && !f.files.contains(&g.file))
        {
            continue;
        }
        let rules: Vec<Value> = g
            .rules
            .iter()
            .filter(|r| f.kind.is_none_or(|k| k == r.kind))
            .filter(|r| f.rule_names.is_empty() || f.rule_names.contains(&r.name))
            .map(|r| {
                let mut o = Map::new();
                let labels: Map<String, Value> = r
                    .labels
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                match r.kind {
                    RuleKind::Recording => {
                        o.insert("name".into(), json!(r.name));
                        o.insert("query".into(), json!(r.query));
                        if !labels.is_empty() {
                            o.insert("labels".into(), Value::Object(labels));
                        }
                    }
                    RuleKind::Alerting => {
                        o.insert("state".into(), json!("inactive"));
                        o.insert("name".into(), json!(r.name));
                        o.insert("query".into(), json!(r.query));
                        o.insert("duration".into(), json!(r.for_ms as f64 / 1000.0));
                        o.insert("keepFiringFor".into(), json!(0));
                        o.insert("labels".into(), Value::Object(labels));
                        let ann: Map<String, Value> = r
                            .annotations
                            .iter()
                            .map(|(k, v)| (k.clone(), json!(v)))
                            .collect();
                        o.insert("annotations".into(), Value::Object(ann));
                        if !f.exclude_alerts {
                            o.insert("alerts".into(), json!([]));
                        }
                        o.insert("unsupported".into(), json!(true));
                    }
                }
                o.insert("health".into(), json!(r.health.as_str()));
                let last_error = match r.kind {
                    RuleKind::Alerting => Some(ALERTING_UNSUPPORTED),
                    RuleKind::Recording => r.last_error.as_deref(),
                };
                if let Some(e) = last_error {
                    o.insert("lastError".into(), json!(e));
                }
                o.insert(
                    "evaluationTime".into(),
                    json!(r.evaluation_time.as_secs_f64()),
                );
                o.insert(
                    "lastEvaluation".into(),
                    json!(rfc3339(r.last_evaluation_ms)),
                );
                o.insert(
                    "type".into(),
                    json!(match r.kind {
                        RuleKind::Recording => "recording",
                        RuleKind::Alerting => "alerting",
                    }),
                );
                Value::Object(o)
            })
            .collect();
        if rules.is_empty() {
            continue;
        }
        out.push(json!({
            "name": g.name,
            "file": g.file,
            "rules": rules,
            "interval": g.interval_ms as f64 / 1000.0,
            "limit": g.limit,
            "evaluationTime": g.evaluation_time.as_secs_f64(),
            "lastEvaluation": rfc3339(g.last_evaluation_ms),
        }));
    }
    json!({ "groups": out })
}

/// Go's `time.Time` JSON (RFC 3339, nanosecond precision with trailing
/// zeros trimmed, UTC); never evaluated is Go's zero time, as Prometheus
/// reports it.
fn rfc3339(ms: Option<i64>) -> String {
    ms.map_or_else(
        || "0001-01-01T00:00:00Z".into(),
        tessera_query::time::rfc3339_trimmed,
    )
}

/// Appends the rule self-metrics (Prometheus' `prometheus_rule_*` families
/// under `tessera_`), read from the groups at scrape time.
pub fn render_metrics(out: &mut String) {
    render_groups(out, &groups());
    metrics::header(
        out,
        "tessera_rule_config_reloads_total",
        "Reloads of the --rules.file rule files (SIGHUP, POST /-/reload), by result.",
        "counter",
    );
    for (result, n) in [("success", &RELOADS_OK), ("failure", &RELOADS_FAILED)] {
        metrics::sample(
            out,
            "tessera_rule_config_reloads_total",
            "",
            &["result"],
            &[result.to_string()],
            None,
            n.load(Ordering::Relaxed) as f64,
        );
    }
}

fn render_groups(out: &mut String, groups: &[GroupStatus]) {
    type Field = fn(&GroupStatus) -> f64;
    let families: [(&str, &str, &str, Field); 10] = [
        (
            "tessera_rule_evaluations_total",
            "Rule evaluations, by group (file;name).",
            "counter",
            |g| g.counters.rule_evaluations as f64,
        ),
        (
            "tessera_rule_evaluation_failures_total",
            "Rule evaluations that failed (query error, limit, storage), by group.",
            "counter",
            |g| g.counters.rule_failures as f64,
        ),
        (
            "tessera_rule_group_iterations_total",
            "Scheduled group evaluations, evaluated or missed.",
            "counter",
            |g| g.counters.iterations as f64,
        ),
        (
            "tessera_rule_group_iterations_missed_total",
            "Group evaluations skipped because the previous one overran its interval.",
            "counter",
            |g| g.counters.iterations_missed as f64,
        ),
        (
            "tessera_rule_group_duration_seconds_sum",
            "Total time spent evaluating the group, seconds.",
            "counter",
            |g| g.counters.duration_sum_secs,
        ),
        (
            "tessera_rule_group_duration_seconds_count",
            "Group evaluations timed in tessera_rule_group_duration_seconds_sum.",
            "counter",
            |g| g.counters.evaluations as f64,
        ),
        (
            "tessera_rule_group_last_duration_seconds",
            "Duration of the group's last evaluation, seconds.",
            "gauge",
            |g| g.evaluation_time.as_secs_f64(),
        ),
        (
            "tessera_rule_group_last_evaluation_timestamp_seconds",
            "Evaluation timestamp (slot) of the group's last evaluation, seconds since the epoch.",
            "gauge",
            |g| g.last_slot_ms.map_or(0.0, |t| t as f64 / 1000.0),
        ),
        (
            "tessera_rule_group_last_evaluation_samples",
            "Samples the group's rules returned at their last evaluation.",
            "gauge",
            |g| g.last_samples as f64,
        ),
        (
            "tessera_rule_group_interval_seconds",
            "The group's evaluation interval, seconds.",
            "gauge",
            |g| g.interval_ms as f64 / 1000.0,
        ),
    ];
    for (name, help, kind, field) in families {
        metrics::header(out, name, help, kind);
        for g in groups {
            let key = format!("{};{}", g.file, g.name);
            metrics::sample(out, name, "", &["rule_group"], &[key], None, field(g));
        }
    }
    metrics::header(
        out,
        "tessera_rule_group_rules",
        "Rules in the group, by type.",
        "gauge",
    );
    for g in groups {
        let key = format!("{};{}", g.file, g.name);
        for (kind, label) in [
            (RuleKind::Recording, "recording"),
            (RuleKind::Alerting, "alerting_unsupported"),
        ] {
            let n = g.rules.iter().filter(|r| r.kind == kind).count();
            metrics::sample(
                out,
                "tessera_rule_group_rules",
                "",
                &["rule_group", "type"],
                &[key.clone(), label.to_string()],
                None,
                n as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_query::rules::{GroupCounters, Health, RuleStatus};

    fn rule(kind: RuleKind, name: &str, health: Health, err: Option<&str>) -> RuleStatus {
        RuleStatus {
            kind,
            name: name.into(),
            query: "sum by (job) (up)".into(),
            labels: vec![("team".into(), "gpu".into())],
            for_ms: 300_000,
            annotations: vec![],
            health,
            last_error: err.map(String::from),
            last_evaluation_ms: (health != Health::Unknown).then_some(1_700_000_000_120),
            evaluation_time: Duration::from_millis(3),
        }
    }

    fn sample_groups() -> Vec<GroupStatus> {
        let g = |name: &str, file: &str, rules: Vec<RuleStatus>| GroupStatus {
            name: name.into(),
            file: file.into(),
            interval_ms: 30_000,
            query_offset_ms: 0,
            limit: 0,
            rules,
            last_evaluation_ms: Some(1_700_000_000_000),
            last_slot_ms: Some(1_699_999_999_000),
            evaluation_time: Duration::from_millis(5),
            last_samples: 4,
            counters: GroupCounters {
                rule_evaluations: 6,
                rule_failures: 1,
                iterations: 3,
                ..Default::default()
            },
        };
        vec![
            g(
                "node",
                "/etc/rules/node.yml",
                vec![
                    rule(RuleKind::Recording, "job:up:sum", Health::Ok, None),
                    rule(
                        RuleKind::Recording,
                        "job:bad",
                        Health::Err,
                        Some("exceeded limit of 1 with 2 series"),
                    ),
                ],
            ),
            g(
                "alerts",
                "/etc/rules/a.yml",
                vec![rule(RuleKind::Alerting, "Down", Health::Unknown, None)],
            ),
        ]
    }

    #[test]
    fn renders_groups_in_prometheus_shape() {
        let v = rules_json(&sample_groups(), &RulesFilter::default());
        let g = &v["groups"][0];
        assert_eq!(g["name"], "node");
        assert_eq!(g["file"], "/etc/rules/node.yml");
        assert_eq!(g["interval"], 30.0);
        assert_eq!(g["limit"], 0);
        assert_eq!(g["lastEvaluation"], "2023-11-14T22:13:20Z");
        assert_eq!(g["evaluationTime"], 0.005);
        let r = &g["rules"][0];
        assert_eq!(r["type"], "recording");
        assert_eq!(r["name"], "job:up:sum");
        assert_eq!(r["query"], "sum by (job) (up)");
        assert_eq!(r["labels"], json!({"team": "gpu"}));
        assert_eq!(r["health"], "ok");
        assert!(r.get("lastError").is_none());
        assert_eq!(r["lastEvaluation"], "2023-11-14T22:13:20.12Z");
        assert_eq!(g["rules"][1]["health"], "err");
        assert_eq!(
            g["rules"][1]["lastError"],
            "exceeded limit of 1 with 2 series"
        );
        let a = &v["groups"][1]["rules"][0];
        assert_eq!(a["type"], "alerting");
        assert_eq!(a["state"], "inactive");
        assert_eq!(a["health"], "unknown");
        assert_eq!(a["duration"], 300.0);
        assert_eq!(a["alerts"], json!([]));
        assert_eq!(a["lastEvaluation"], "0001-01-01T00:00:00Z");
        assert!(a["lastError"].as_str().unwrap().contains("not supported"));
    }

    #[test]
    fn filters_select_rules_and_drop_emptied_groups() {
        let groups = sample_groups();
        let names = |f: RulesFilter| -> Vec<String> {
            rules_json(&groups, &f)["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| {
                    g["rules"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["name"].as_str().unwrap().to_string())
                })
                .collect()
        };
        let f = |kind: Option<&str>, rn: &[&str], rg: &[&str], file: &[&str]| {
            RulesFilter::parse(
                kind,
                rn.iter().copied(),
                rg.iter().copied(),
                file.iter().copied(),
                None,
            )
            .unwrap()
        };
        assert_eq!(
            names(f(None, &[], &[], &[])),
            ["job:up:sum", "job:bad", "Down"]
        );
        assert_eq!(
            names(f(Some("record"), &[], &[], &[])),
            ["job:up:sum", "job:bad"]
        );
        assert_eq!(names(f(Some("alert"), &[], &[], &[])), ["Down"]);
        assert_eq!(names(f(None, &["job:bad"], &[], &[])), ["job:bad"]);
        assert_eq!(names(f(None, &[], &["alerts"], &[])), ["Down"]);
        assert_eq!(
            names(f(None, &[], &[], &["/etc/rules/node.yml"])),
            ["job:up:sum", "job:bad"]
        );
        assert!(names(f(Some("alert"), &[], &["node"], &[])).is_empty());
        let err = RulesFilter::parse(
            Some("both"),
            [].into_iter(),
            [].into_iter(),
            [].into_iter(),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "invalid parameter \"type\": not supported value \"both\""
        );
        assert!(
            RulesFilter::parse(
                None,
                [].into_iter(),
                [].into_iter(),
                [].into_iter(),
                Some("maybe")
            )
            .is_err()
        );
        let ex = RulesFilter::parse(
            None,
            [].into_iter(),
            [].into_iter(),
            [].into_iter(),
            Some("true"),
        )
        .unwrap();
        assert!(
            rules_json(&groups, &ex)["groups"][1]["rules"][0]
                .get("alerts")
                .is_none()
        );
    }

    #[test]
    fn formats_times_like_go() {
        let f = |ms: Option<i64>, want: &str| assert_eq!(rfc3339(ms), want, "{ms:?}");
        f(None, "0001-01-01T00:00:00Z");
        f(Some(0), "1970-01-01T00:00:00Z");
        f(Some(1_435_781_451_781), "2015-07-01T20:10:51.781Z");
        f(Some(1_435_781_451_500), "2015-07-01T20:10:51.5Z");
        f(Some(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn renders_metrics_per_group() {
        let mut out = String::new();
        render_groups(&mut out, &sample_groups());
        for want in [
            "# TYPE tessera_rule_evaluations_total counter\n",
            "tessera_rule_evaluations_total{rule_group=\"/etc/rules/node.yml;node\"} 6\n",
            "tessera_rule_evaluation_failures_total{rule_group=\"/etc/rules/node.yml;node\"} 1\n",
            "tessera_rule_group_last_evaluation_timestamp_seconds{rule_group=\"/etc/rules/node.yml;node\"} 1699999999\n",
            "tessera_rule_group_interval_seconds{rule_group=\"/etc/rules/a.yml;alerts\"} 30\n",
            "tessera_rule_group_rules{rule_group=\"/etc/rules/a.yml;alerts\",type=\"alerting_unsupported\"} 1\n",
            "tessera_rule_group_rules{rule_group=\"/etc/rules/node.yml;node\",type=\"recording\"} 2\n",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
    }

    #[test]
    fn flags_flatten_into_a_command_and_repeat() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            rules: RulesArgs,
        }
        let c = Cmd::try_parse_from([
            "tessera",
            "--rules.file",
            "a.yml",
            "--rules.file",
            "rules/*.yml",
            "--rules.evaluation-interval",
            "15s",
        ])
        .unwrap();
        assert_eq!(c.rules.rules_file, ["a.yml", "rules/*.yml"]);
        assert_eq!(c.rules.evaluation_interval, Duration::from_secs(15));
        assert_eq!(c.rules.query_offset, Duration::ZERO);
        let d = Cmd::try_parse_from(["tessera"]).unwrap();
        assert!(d.rules.rules_file.is_empty());
        assert_eq!(d.rules.evaluation_interval, Duration::from_secs(60));
        assert!(Cmd::try_parse_from(["tessera", "--rules.evaluation-interval", "0s"]).is_err());
    }

    #[test]
    fn evaluation_interval_must_be_positive() {
        assert_eq!(parse_interval("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("soon").is_err());
    }
}
