//! Rules in the server: the `--rules.*` and `--external-label` flags and
//! [`Rules`], the process's handle on its rule manager and Alertmanager
//! notifier: load at start, evaluation once the database is open, reload,
//! stop and the rule and notification self-metrics.
//!
//! The engine lives in `tessera_query::rules`; this file only wires it to
//! the process. `serve.rs` loads the [`Rules`] before the server listens,
//! keeps them in `AppState::rules` (so `/api/v1/rules`, `POST /-/reload`
//! and `/metrics` reach them) and calls [`Rules::start`] with the database
//! once it is open. The JSON of `/api/v1/rules` and `/api/v1/alerts` is in
//! `http/rules.rs`; sending to Alertmanager in `notifier.rs`.
//!
//! Behaviour worth knowing as an operator:
//! - a bad rule file refuses the start (the error names the file, line,
//!   group and rule); on reload (SIGHUP, `POST /-/reload`) it keeps the
//!   groups in force;
//! - each group's first evaluation is at its next aligned slot after the
//!   start; slots missed while Tessera was down are not backfilled (as in
//!   Prometheus);
//! - alerting rules write `ALERTS`/`ALERTS_FOR_STATE` through the same
//!   append path and are sent to every `--alertmanager.url`; after a
//!   restart their `for` clock is restored from `ALERTS_FOR_STATE`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tessera_query::rules::{
    AlertOptions, GroupStatus, LoadSummary, ManagerOptions, RuleKind, RuleManager,
};
use tessera_tsdb::Db;

use crate::flags;
use crate::metrics;
use crate::notifier::{AlertmanagerArgs, AlertmanagerNotifier};

/// `tessera serve` flags for recording rules (flattened into `ServeArgs`).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RulesArgs {
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

    /// Minimum time before a still-firing (or resolved) alert is sent to
    /// Alertmanager again.
    #[arg(long = "rules.alert.resend-delay", default_value = "1m", value_parser = flags::duration)]
    pub resend_delay: Duration,

    /// Longest downtime after which alerts' `for` state is still restored
    /// from ALERTS_FOR_STATE at start-up.
    #[arg(long = "rules.alert.for-outage-tolerance", default_value = "1h", value_parser = flags::duration)]
    pub for_outage_tolerance: Duration,

    /// Minimum time an alert restored at start-up still waits before
    /// firing; rules with a shorter `for` are not restored.
    #[arg(long = "rules.alert.for-grace-period", default_value = "10m", value_parser = flags::duration)]
    pub for_grace_period: Duration,

    /// Label added to alerts sent to Alertmanager (unless the alert has it)
    /// and available to templates as `$externalLabels`, as Prometheus'
    /// `global.external_labels`. Repeatable: `--external-label cluster=eu1`.
    #[arg(long = "external-label", value_name = "NAME=VALUE", value_parser = parse_external_label)]
    pub external_labels: Vec<(String, String)>,

    /// The URL Tessera is reached at by people (behind a proxy, say):
    /// `$externalURL` in alert templates, as Prometheus'
    /// `--web.external-url`.
    #[arg(long = "web.external-url", value_name = "URL", default_value = "")]
    pub external_url: String,

    #[command(flatten)]
    pub alertmanager: AlertmanagerArgs,
}

fn parse_external_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    if !tessera_tsdb::labels::is_valid_label_name(k) || k == tessera_tsdb::METRIC_NAME {
        return Err(format!("{k:?} is not a valid label name"));
    }
    if v.is_empty() {
        return Err(format!("{s:?}: the value must not be empty"));
    }
    Ok((k.to_string(), v.to_string()))
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    match flags::duration(s)? {
        d if d.is_zero() => Err("the evaluation interval must be greater than 0".into()),
        d => Ok(d),
    }
}

/// The process's rules: the manager (none without `--rules.file`), the
/// Alertmanager notifier (none without `--alertmanager.url`) and the reload
/// counters of `tessera_rule_config_reloads_total`.
pub(crate) struct Rules {
    manager: Option<RuleManager>,
    notifier: Option<Arc<AlertmanagerNotifier>>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

impl Rules {
    /// Loads the rule files; nothing is evaluated until [`start`](Self::start).
    /// With no `--rules.file` there are no rules. A bad file is an error
    /// (refuse to start).
    pub(crate) fn load(args: &RulesArgs, engine: tessera_query::Engine) -> anyhow::Result<Rules> {
        let notifier = (!args.alertmanager.urls.is_empty()).then(|| {
            Arc::new(AlertmanagerNotifier::new(
                &args.alertmanager,
                args.external_labels.clone(),
            ))
        });
        let manager = if args.rules_file.is_empty() {
            None
        } else {
            let opts = ManagerOptions {
                patterns: args.rules_file.clone(),
                default_interval: args.evaluation_interval,
                default_query_offset: args.query_offset,
                alert: AlertOptions {
                    resend_delay_ms: args.resend_delay.as_millis() as i64,
                    for_outage_tolerance_ms: args.for_outage_tolerance.as_millis() as i64,
                    for_grace_period_ms: args.for_grace_period.as_millis() as i64,
                    external_labels: args.external_labels.clone(),
                    external_url: args.external_url.trim_end_matches('/').to_string(),
                },
            };
            let (mut manager, summary) =
                RuleManager::load(opts, engine).context("loading the rules")?;
            if let Some(n) = &notifier {
                manager = manager.with_notifier(n.clone());
            }
            log_summary(&summary, "rules loaded");
            if summary.alerting_rules > 0 && notifier.is_none() {
                tracing::warn!(
                    "alerting rules are evaluated but no --alertmanager.url is set: alerts are only visible in /api/v1/alerts and ALERTS"
                );
            }
            Some(manager)
        };
        Ok(Rules {
            manager,
            notifier,
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        })
    }

    /// No rules and no notifier: a query tier, which evaluates none.
    pub(crate) fn none() -> Rules {
        Rules {
            manager: None,
            notifier: None,
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }
    }

    /// Starts evaluating every group against the opened database. A failure
    /// to start the evaluation threads is logged; the server keeps serving.
    pub(crate) fn start(&self, db: Arc<Db>) {
        if let Some(n) = &self.notifier
            && let Err(e) = n.start()
        {
            tracing::error!(error = %e, "cannot start the Alertmanager notifier thread");
        }
        let Some(m) = &self.manager else {
            return;
        };
        let out = Arc::new(crate::append::IngestAppender(db.clone()));
        match m.start(db, out) {
            Ok(()) => tracing::info!(groups = m.groups().len(), "rule evaluation started"),
            Err(e) => tracing::error!(error = %e, "cannot start rule evaluation threads"),
        }
    }

    /// Re-reads the rule files (SIGHUP, `POST /-/reload`). On error the
    /// groups in force keep running and the message says why. Without
    /// rules: Ok.
    pub(crate) fn reload(&self) -> Result<(), String> {
        let Some(m) = &self.manager else {
            return Ok(());
        };
        match m.reload() {
            Ok(summary) => {
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                log_summary(&summary, "reloaded the rules");
                Ok(())
            }
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "rule reload failed; the previous rule groups stay in force");
                Err(e.to_string())
            }
        }
    }

    /// Stops rule evaluation, then the notifier (graceful shutdown, before
    /// the final WAL sync).
    pub(crate) fn stop(&self) {
        if let Some(m) = &self.manager {
            m.stop();
        }
        if let Some(n) = &self.notifier {
            n.stop();
        }
    }

    /// The groups in force (empty without rules).
    pub(crate) fn groups(&self) -> Vec<GroupStatus> {
        self.manager
            .as_ref()
            .map(|m| m.groups())
            .unwrap_or_default()
    }

    /// Appends the rule self-metrics (Prometheus' `prometheus_rule_*`
    /// families under `tessera_`), read from the groups at scrape time.
    /// Without rules the families are there, empty, and the reload counters
    /// at 0.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        render_groups(out, &self.groups());
        metrics::header(
            out,
            "tessera_rule_config_reloads_total",
            "Reloads of the --rules.file rule files (SIGHUP, POST /-/reload), by result.",
            "counter",
        );
        for (result, n) in [
            ("success", &self.reloads_ok),
            ("failure", &self.reloads_failed),
        ] {
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
        match &self.notifier {
            Some(n) => n.render_metrics(out),
            None => crate::notifier::render_metrics_absent(out),
        }
    }
}

fn log_summary(s: &LoadSummary, what: &str) {
    tracing::info!(
        files = s.files.len(),
        groups = s.groups,
        recording_rules = s.recording_rules,
        alerting_rules = s.alerting_rules,
        "{what}"
    );
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
            (RuleKind::Alerting, "alerting"),
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
pub(crate) mod tests {
    use super::*;
    use clap::Parser;
    use tessera_query::rules::{Alert, AlertState, GroupCounters, Health, RuleStatus};
    use tessera_tsdb::Labels;

    /// The flags flattened into a command, as `ServeArgs` does.
    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        rules: RulesArgs,
    }

    fn rule(kind: RuleKind, name: &str, health: Health, err: Option<&str>) -> RuleStatus {
        RuleStatus {
            kind,
            name: name.into(),
            query: "sum by (job) (up)".into(),
            labels: vec![("team".into(), "gpu".into())],
            for_ms: 300_000,
            keep_firing_for_ms: 0,
            annotations: vec![],
            state: AlertState::Inactive,
            alerts: vec![],
            health,
            last_error: err.map(String::from),
            last_evaluation_ms: (health != Health::Unknown).then_some(1_700_000_000_120),
            evaluation_time: Duration::from_millis(3),
        }
    }

    /// Two groups, one with an alerting rule: also the fixture of
    /// `http/rules.rs`'s tests.
    pub(crate) fn sample_groups() -> Vec<GroupStatus> {
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
                vec![
                    rule(RuleKind::Alerting, "Down", Health::Unknown, None),
                    RuleStatus {
                        annotations: vec![("summary".into(), "n1 is hot".into())],
                        state: AlertState::Firing,
                        alerts: vec![Alert {
                            labels: Labels::from_pairs([("alertname", "Hot"), ("node", "n1")]),
                            annotations: vec![("summary".into(), "n1 is hot".into())],
                            state: AlertState::Firing,
                            value: 91.5,
                            active_at_ms: 1_700_000_000_000,
                            fired_at_ms: Some(1_700_000_300_000),
                            resolved_at_ms: None,
                            last_sent_at_ms: None,
                            valid_until_ms: 0,
                            keep_firing_since_ms: None,
                        }],
                        ..rule(RuleKind::Alerting, "Hot", Health::Ok, None)
                    },
                ],
            ),
        ]
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
            "tessera_rule_group_rules{rule_group=\"/etc/rules/a.yml;alerts\",type=\"alerting\"} 2\n",
            "tessera_rule_group_rules{rule_group=\"/etc/rules/node.yml;node\",type=\"recording\"} 2\n",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
    }

    #[test]
    fn flags_flatten_into_a_command_and_repeat() {
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
        assert_eq!(d.rules.resend_delay, Duration::from_secs(60));
        assert_eq!(d.rules.for_outage_tolerance, Duration::from_secs(3600));
        assert_eq!(d.rules.for_grace_period, Duration::from_secs(600));
        assert_eq!(d.rules.external_url, "");
        let e = Cmd::try_parse_from([
            "tessera",
            "--external-label",
            "cluster=eu1",
            "--external-label",
            "replica=a=b",
        ])
        .unwrap();
        assert_eq!(
            e.rules.external_labels,
            [
                ("cluster".to_string(), "eu1".to_string()),
                ("replica".to_string(), "a=b".to_string())
            ]
        );
        for bad in ["cluster", "1x=y", "__name__=x", "cluster="] {
            assert!(
                Cmd::try_parse_from(["tessera", "--external-label", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn evaluation_interval_must_be_positive() {
        assert_eq!(parse_interval("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn without_rules_reload_is_ok_and_metrics_are_empty_families() {
        let args = Cmd::try_parse_from(["tessera"]).unwrap().rules;
        let engine = tessera_query::Engine::new(tessera_query::EngineOptions::default());
        let rules = Rules::load(&args, engine).unwrap();
        assert!(rules.groups().is_empty());
        assert_eq!(rules.reload(), Ok(()));
        let mut out = String::new();
        rules.render_metrics(&mut out);
        assert!(
            out.starts_with("# HELP tessera_rule_evaluations_total "),
            "{out}"
        );
        for want in [
            "# TYPE tessera_rule_group_rules gauge\n",
            "tessera_rule_config_reloads_total{result=\"success\"} 0\n",
            "tessera_rule_config_reloads_total{result=\"failure\"} 0\n",
            "tessera_notifications_dropped_total 0\n",
            "# TYPE tessera_notifications_sent_total counter\n",
            "tessera_notifications_alertmanagers_discovered 0\n",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
    }
}
