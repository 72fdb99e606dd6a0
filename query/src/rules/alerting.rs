//! Alerting rules at run time: the pending → firing → inactive state
//! machine of Prometheus' `AlertingRule`, the `ALERTS` and
//! `ALERTS_FOR_STATE` series, which alerts to (re)send, and restoring the
//! `for` clock after a restart.
//!
//! As Prometheus:
//! - each result of the expression is an alert: its labels are the
//!   result's minus `__name__`, plus the rule's labels (templates expanded),
//!   plus `alertname`; it starts pending at the evaluation time and fires
//!   once it has been pending for `for` (at once when `for` is 0);
//! - an alert that disappears is resolved (inactive) unless it fires and
//!   `keep_firing_for` has not elapsed; a pending one is forgotten; a
//!   resolved one is kept (and re-sent) for 15 minutes;
//! - every pending or firing alert writes `ALERTS{alertstate=...} 1` and
//!   `ALERTS_FOR_STATE` = its `activeAt` in seconds, the latter read back
//!   by [`AlertingState::restore`] after a restart.

use std::collections::BTreeMap;

use tessera_tsdb::{Labels, METRIC_NAME, Matcher, is_stale_nan};

use super::file::RuleConfig;
use super::template::{self, TemplateData};

/// How long a resolved alert is kept and re-sent (Prometheus' 15 m).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Prometheus' alert states, ordered by severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum AlertState {
    #[default]
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Without `__name__`, with `alertname` and the rule's labels.
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub state: AlertState,
    /// The expression's value at the last evaluation that returned it.
    pub value: f64,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_sent_at_ms: Option<i64>,
    pub valid_until_ms: i64,
    pub keep_firing_since_ms: Option<i64>,
}

/// An alert as handed to a [`Notifier`]: Alertmanager's `postableAlert`.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub labels: Labels,
    pub annotations: Vec<(String, String)>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

/// Where alerts to send go: injected by the embedder (the server's queues
/// them for Alertmanager). Must not block: rule evaluation calls it.
pub trait Notifier: Send + Sync {
    fn send(&self, alerts: Vec<Notification>);
}

impl std::fmt::Debug for dyn Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifier")
    }
}

/// Options of every alerting rule.
#[derive(Clone, Debug)]
pub struct AlertOptions {
    /// Minimum time between two sends of a still-firing alert
    /// (`--rules.alert.resend-delay`).
    pub resend_delay_ms: i64,
    /// How long Tessera may have been down for `for` state to be restored
    /// (`--rules.alert.for-outage-tolerance`).
    pub for_outage_tolerance_ms: i64,
    /// Minimum `for` left after a restore, and rules with a shorter `for`
    /// are not restored (`--rules.alert.for-grace-period`).
    pub for_grace_period_ms: i64,
    /// `$externalLabels` in templates (the notifier adds them to alerts).
    pub external_labels: Vec<(String, String)>,
    pub external_url: String,
}

impl Default for AlertOptions {
    fn default() -> Self {
        AlertOptions {
            resend_delay_ms: 60_000,
            for_outage_tolerance_ms: 3_600_000,
            for_grace_period_ms: 600_000,
            external_labels: Vec::new(),
            external_url: String::new(),
        }
    }
}

/// Looks up the last non-stale `(timestamp, value)` of the series with
/// exactly these labels in `[mint, maxt]`.
pub(crate) type LastSample<'a> = dyn Fn(&Labels, i64, i64) -> Option<(i64, f64)> + 'a;

/// The run-time state of one alerting rule.
#[derive(Clone, Debug, Default)]
pub(crate) struct AlertingState {
    pub(crate) active: BTreeMap<Labels, Alert>,
    /// `ALERTS` series are written only once the `for` state was restored
    /// (or needed no restoring), so a restore reads the samples written
    /// before the restart.
    pub(crate) restored: bool,
}

/// Expands one of `rule`'s templates (validated at load); an error is
/// logged and becomes Prometheus' error text in the value.
fn expand(rule: &RuleConfig, name: &str, text: &str, data: &TemplateData<'_>) -> String {
    template::expand(text, data).unwrap_or_else(|e| {
        tracing::warn!(alert = %rule.name, field = %name, error = %e, "expanding an alert template failed");
        template::error_text(&e)
    })
}

impl AlertingState {
    /// Applies one evaluation's result `(labels, value)` at `ts`; returns
    /// the `ALERTS` and `ALERTS_FOR_STATE` samples to write (values) and
    /// the number of pending or firing alerts, or the error that fails the
    /// rule (then nothing changed).
    pub(crate) fn eval(
        &mut self,
        rule: &RuleConfig,
        result: Vec<(Labels, f64)>,
        ts: i64,
        opts: &AlertOptions,
    ) -> Result<(Vec<(Labels, f64)>, usize), String> {
        let mut fresh: BTreeMap<Labels, Alert> = BTreeMap::new();
        for (metric, value) in result {
            let mut plain = metric.clone();
            plain.remove(METRIC_NAME);
            let plain_pairs: Vec<(String, String)> = plain
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            let data = TemplateData {
                labels: &plain_pairs,
                value,
                external_labels: &opts.external_labels,
                external_url: &opts.external_url,
            };
            let mut labels = plain;
            for (k, v) in &rule.labels {
                let v = expand(rule, k, v, &data);
                if v.is_empty() {
                    labels.remove(k);
                } else {
                    labels.set(k, &v);
                }
            }
            labels.set("alertname", &rule.name);
            let annotations = rule
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), expand(rule, k, v, &data)))
                .collect();
            if fresh.contains_key(&labels) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
            fresh.insert(
                labels.clone(),
                Alert {
                    labels,
                    annotations,
                    state: AlertState::Pending,
                    value,
                    active_at_ms: ts,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                    last_sent_at_ms: None,
                    valid_until_ms: 0,
                    keep_firing_since_ms: None,
                },
            );
        }
        let seen: Vec<Labels> = fresh.keys().cloned().collect();
        for (k, a) in fresh {
            match self.active.get_mut(&k) {
                Some(old) if old.state != AlertState::Inactive => {
                    old.value = a.value;
                    old.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(k, a);
                }
            }
        }
        let mut out = Vec::new();
        let mut active = 0;
        let mut forget = Vec::new();
        for (k, a) in self.active.iter_mut() {
            if seen.binary_search(k).is_err() {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && rule.keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since_ms.get_or_insert(ts);
                    keep_firing = ts - since < rule.keep_firing_for_ms;
                }
                if a.state == AlertState::Pending
                    || a.resolved_at_ms
                        .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
                {
                    forget.push(k.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at_ms = Some(ts);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since_ms = None;
            }
            active += 1;
            if a.state == AlertState::Pending && ts - a.active_at_ms >= rule.for_ms {
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(ts);
            }
            if self.restored {
                out.push((series(&a.labels, "ALERTS", Some(a.state)), 1.0));
                out.push((
                    series(&a.labels, "ALERTS_FOR_STATE", None),
                    (a.active_at_ms / 1000) as f64,
                ));
            }
        }
        for k in forget {
            self.active.remove(&k);
        }
        Ok((out, active))
    }

    /// The alerts to send now, marked as sent (Prometheus' `sendAlerts`):
    /// firing ones not sent within `resend_delay`, resolved ones not sent
    /// since they resolved, and resolved ones again every `resend_delay`
    /// while they are kept.
    pub(crate) fn take_due(
        &mut self,
        ts: i64,
        resend_delay_ms: i64,
        interval_ms: i64,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if a.state == AlertState::Pending {
                continue;
            }
            let due = match (a.resolved_at_ms, a.last_sent_at_ms) {
                (_, None) => true,
                (Some(r), Some(s)) if r > s => true,
                (_, Some(s)) => s + resend_delay_ms < ts,
            };
            if !due {
                continue;
            }
            a.last_sent_at_ms = Some(ts);
            // Allow for two missed evaluations or failed sends.
            a.valid_until_ms = ts + 4 * resend_delay_ms.max(interval_ms);
            out.push(Notification {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at_ms: a.fired_at_ms.unwrap_or(a.active_at_ms),
                ends_at_ms: a.resolved_at_ms.unwrap_or(a.valid_until_ms),
            });
        }
        out
    }

    /// Pending and firing alerts (for the API).
    pub(crate) fn active_alerts(&self) -> Vec<Alert> {
        self.active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
            .cloned()
            .collect()
    }

    /// Restores the `for` clock of the active alerts from the
    /// `ALERTS_FOR_STATE` samples of the last `outage_tolerance`
    /// (Prometheus' `RestoreForState`), then marks the rule restored.
    pub(crate) fn restore(
        &mut self,
        rule: &RuleConfig,
        ts: i64,
        opts: &AlertOptions,
        last: &LastSample<'_>,
    ) -> usize {
        self.restored = true;
        if rule.for_ms < opts.for_grace_period_ms {
            return 0;
        }
        let mint = ts - opts.for_outage_tolerance_ms;
        let mut restored = 0;
        for a in self.active.values_mut() {
            let l = series(&a.labels, "ALERTS_FOR_STATE", None);
            let Some((t, v)) = last(&l, mint, ts) else {
                continue;
            };
            // Go's time.Unix: whole seconds.
            let down_at = t / 1000 * 1000;
            let mut active_at = (v as i64) * 1000;
            let remaining = rule.for_ms - (down_at - active_at);
            if remaining <= 0 {
                // It was firing before the restart; the next evaluation
                // fires it again if it still holds.
            } else if remaining < opts.for_grace_period_ms {
                active_at = ts + opts.for_grace_period_ms - rule.for_ms;
            } else {
                active_at += ts - down_at;
            }
            a.active_at_ms = active_at;
            restored += 1;
        }
        restored
    }
}

/// `name{alert labels}` (with `alertstate` for `ALERTS`).
fn series(labels: &Labels, name: &str, state: Option<AlertState>) -> Labels {
    let mut l = labels.clone();
    l.set(METRIC_NAME, name);
    if let Some(s) = state {
        l.set("alertstate", s.as_str());
    }
    l
}

/// Equality matchers selecting exactly the series `l` (and any with more
/// labels: the caller compares).
pub(crate) fn matchers_of(l: &Labels) -> Vec<Matcher> {
    l.iter()
        .map(|x| Matcher::equal(&*x.name, &*x.value))
        .collect()
}

/// The last non-stale sample of the series `l` in `[mint, maxt]`.
pub(crate) fn last_sample(
    db: &tessera_tsdb::Db,
    l: &Labels,
    mint: i64,
    maxt: i64,
) -> Option<(i64, f64)> {
    db.select(&matchers_of(l), mint, maxt)
        .into_iter()
        .find(|s| &s.labels == l)
        .and_then(|s| {
            s.samples
                .iter()
                .rev()
                .find(|x| !is_stale_nan(x.v))
                .map(|x| (x.t, x.v))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::file::parse_rule_file;
    use std::path::Path;

    fn rule(body: &str) -> RuleConfig {
        let text = format!("groups:\n- name: g\n  rules:\n  - {body}\n");
        parse_rule_file(Path::new("t.yml"), &text).unwrap()[0].rules[0].clone()
    }

    fn up(instance: &str) -> Labels {
        Labels::from_pairs([("__name__", "up"), ("instance", instance)])
    }

    fn states(s: &AlertingState) -> Vec<(String, AlertState)> {
        s.active
            .values()
            .map(|a| (a.labels.get("instance").unwrap_or("").to_string(), a.state))
            .collect()
    }

    #[test]
    fn pending_then_firing_then_resolved_and_forgotten() {
        let r = rule(
            "alert: Down\n    expr: up == 0\n    for: 2m\n    labels: {severity: page, node: '{{ $labels.instance }}'}\n    annotations: {summary: '{{ $labels.instance }} down ({{ $value }})'}",
        );
        let opts = AlertOptions::default();
        let mut s = AlertingState {
            restored: true,
            ..Default::default()
        };
        let (out, n) = s.eval(&r, vec![(up("a"), 0.0)], 0, &opts).unwrap();
        assert_eq!(n, 1);
        assert_eq!(states(&s), [("a".to_string(), AlertState::Pending)]);
        let a = s.active.values().next().unwrap();
        assert_eq!(
            a.labels,
            Labels::from_pairs([
                ("alertname", "Down"),
                ("instance", "a"),
                ("node", "a"),
                ("severity", "page")
            ])
        );
        assert_eq!(a.annotations, [("summary".into(), "a down (0)".into())]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0.get("alertstate"), Some("pending"));
        assert_eq!(out[0].0.get("__name__"), Some("ALERTS"));
        assert_eq!(out[1], (series(&a.labels, "ALERTS_FOR_STATE", None), 0.0));
        assert!(
            s.take_due(0, 60_000, 60_000).is_empty(),
            "pending is not sent"
        );

        s.eval(&r, vec![(up("a"), 0.0)], 60_000, &opts).unwrap();
        assert_eq!(states(&s)[0].1, AlertState::Pending);
        let (out, _) = s.eval(&r, vec![(up("a"), 0.0)], 120_000, &opts).unwrap();
        assert_eq!(states(&s)[0].1, AlertState::Firing);
        assert_eq!(out[0].0.get("alertstate"), Some("firing"));
        assert_eq!(out[1].1, 0.0, "activeAt stays the first evaluation");
        let sent = s.take_due(120_000, 60_000, 60_000);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].starts_at_ms, sent[0].ends_at_ms),
            (120_000, 360_000)
        );
        assert!(
            s.take_due(150_000, 60_000, 60_000).is_empty(),
            "resend delay"
        );
        assert_eq!(s.take_due(181_000, 60_000, 60_000).len(), 1);

        let (out, n) = s.eval(&r, vec![], 240_000, &opts).unwrap();
        assert_eq!((out.len(), n), (0, 0));
        assert_eq!(states(&s)[0].1, AlertState::Inactive);
        let sent = s.take_due(240_000, 60_000, 60_000);
        assert_eq!(sent[0].ends_at_ms, 240_000, "resolved is sent at once");
        assert!(s.active_alerts().is_empty());
        // Kept 15 minutes, then forgotten.
        s.eval(&r, vec![], 240_000 + RESOLVED_RETENTION_MS, &opts)
            .unwrap();
        assert_eq!(s.active.len(), 1);
        s.eval(&r, vec![], 241_000 + RESOLVED_RETENTION_MS, &opts)
            .unwrap();
        assert!(s.active.is_empty());
    }

    #[test]
    fn pending_alert_that_goes_away_is_forgotten_and_for_zero_fires_at_once() {
        let opts = AlertOptions::default();
        let r = rule("alert: A\n    expr: up == 0\n    for: 5m");
        let mut s = AlertingState::default();
        let (out, _) = s.eval(&r, vec![(up("a"), 0.0)], 0, &opts).unwrap();
        assert!(out.is_empty(), "not restored yet: no ALERTS samples");
        s.eval(&r, vec![], 1000, &opts).unwrap();
        assert!(s.active.is_empty());
        let r0 = rule("alert: B\n    expr: up == 0");
        s.eval(&r0, vec![(up("a"), 0.0)], 0, &opts).unwrap();
        assert_eq!(states(&s)[0].1, AlertState::Firing);
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let opts = AlertOptions::default();
        let r = rule("alert: A\n    expr: up == 0\n    keep_firing_for: 2m");
        let mut s = AlertingState::default();
        s.eval(&r, vec![(up("a"), 0.0)], 0, &opts).unwrap();
        s.eval(&r, vec![], 60_000, &opts).unwrap();
        assert_eq!(states(&s)[0].1, AlertState::Firing);
        assert_eq!(
            s.active.values().next().unwrap().keep_firing_since_ms,
            Some(60_000)
        );
        s.eval(&r, vec![], 120_000, &opts).unwrap();
        assert_eq!(states(&s)[0].1, AlertState::Firing);
        s.eval(&r, vec![], 180_000, &opts).unwrap();
        assert_eq!(states(&s)[0].1, AlertState::Inactive);
    }

    #[test]
    fn duplicate_alert_labels_fail_the_rule() {
        let r = rule("alert: A\n    expr: up\n    labels: {instance: x}");
        let mut s = AlertingState::default();
        let e = s
            .eval(
                &r,
                vec![(up("a"), 1.0), (up("b"), 1.0)],
                0,
                &AlertOptions::default(),
            )
            .unwrap_err();
        assert!(e.contains("same labelset"), "{e}");
        assert!(s.active.is_empty());
    }

    #[test]
    fn restore_follows_prometheus_outage_and_grace_rules() {
        let r = rule("alert: A\n    expr: up == 0\n    for: 30m");
        let opts = AlertOptions::default(); // 1h tolerance, 10m grace
        let min = 60_000;
        let run = |active_at: i64, down_at: i64, ts: i64| {
            let mut s = AlertingState::default();
            s.eval(&r, vec![(up("a"), 0.0)], ts, &opts).unwrap();
            let last = move |_: &Labels, mint: i64, _: i64| {
                (down_at >= mint).then_some((down_at, (active_at / 1000) as f64))
            };
            s.restore(&r, ts, &opts, &last);
            assert!(s.restored);
            s.active.values().next().unwrap().active_at_ms
        };
        // Pending 10m before a 5m outage: the clock resumes (shifted by 5m).
        assert_eq!(run(0, 10 * min, 15 * min), 5 * min);
        // 25m of 30m done: 5m left < grace: fires one grace period after ts.
        assert_eq!(run(0, 25 * min, 30 * min), 30 * min + 10 * min - 30 * min);
        // Was firing: activeAt kept.
        assert_eq!(run(0, 40 * min, 45 * min), 0);
        // Down longer than the tolerance: nothing found, a fresh clock.
        assert_eq!(run(0, 10 * min, 80 * min), 80 * min);
        // for shorter than the grace period: never restored.
        let short = rule("alert: A\n    expr: up == 0\n    for: 5m");
        let mut s = AlertingState::default();
        s.eval(&short, vec![(up("a"), 0.0)], 100 * min, &opts)
            .unwrap();
        let n = s.restore(&short, 100 * min, &opts, &|_: &Labels, _: i64, _: i64| {
            Some((0, 0.0))
        });
        assert_eq!(n, 0);
        assert_eq!(s.active.values().next().unwrap().active_at_ms, 100 * min);
    }
}
