//! One rule group at run time: evaluating its rules in order at a slot,
//! writing the results and staleness markers, and keeping per-rule health.
//!
//! Mirrors Prometheus' `Group.Eval`:
//! - the expression is evaluated at `slot - query_offset`, and the results
//!   are stored at that same timestamp (Prometheus stores `s.T`, the query
//!   time), named `record` with the rule's labels applied over the result's;
//! - rules run in file order and each rule's samples are appended (through
//!   the injected [`Appender`]: in the server, remote write's path, WAL
//!   included) before the next rule runs, so later rules see earlier
//!   results of the same evaluation;
//! - a series the rule returned last time and not this time gets a
//!   staleness marker, so queries stop seeing it at once instead of after
//!   the 5m lookback;
//! - a failing rule (query error, duplicate output labels, `limit`
//!   exceeded, storage error) stores nothing, keeps its previous series for
//!   staleness, and records the error for `/api/v1/rules`.
//!
//! Alerting rules run in the same order and write `ALERTS` and
//! `ALERTS_FOR_STATE` the same way (see [`super::alerting`]); after a
//! successful evaluation their alerts due for sending go to the injected
//! [`Notifier`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tessera_tsdb::{Db, Labels, Sample, stale_nan};

use super::alerting::{Alert, AlertOptions, AlertState, AlertingState, Notifier, last_sample};
use super::appender::Appender;
use super::file::{GroupConfig, RuleConfig, RuleKind, output_labels};
use super::schedule::group_offset_ms;
use crate::context::{CancelToken, QueryContext};
use crate::engine::Engine;
use crate::value::Value;

/// Prometheus' rule health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    Ok,
    Err,
}

impl Health {
    /// The `/api/v1/rules` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

#[derive(Debug, Default)]
struct RuleState {
    health: Option<Health>,
    last_error: Option<String>,
    last_evaluation_ms: Option<i64>,
    evaluation_time: Duration,
    /// Output series written by the last successful evaluation.
    series: HashSet<Labels>,
    /// Alerting rules: the alerts.
    alerts: AlertingState,
}

#[derive(Debug, Default)]
struct GroupState {
    rules: Vec<RuleState>,
    /// Series of rules removed or changed by a reload: marked stale at the
    /// next evaluation.
    stale_series: Vec<Labels>,
    last_evaluation_ms: Option<i64>,
    last_slot_ms: Option<i64>,
    evaluation_time: Duration,
    last_samples: u64,
    counters: GroupCounters,
    /// The `for` state of the alerting rules is still to be restored from
    /// `ALERTS_FOR_STATE` (set at start-up, done after the first
    /// evaluation).
    restore_pending: bool,
}

/// Monotonic counts since the group was first loaded (carried over by a
/// reload that changes the group).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupCounters {
    /// Rule evaluations (one per rule per group evaluation).
    pub rule_evaluations: u64,
    pub rule_failures: u64,
    /// Slots scheduled, evaluated or missed.
    pub iterations: u64,
    pub iterations_missed: u64,
    /// Sum of group evaluation durations, seconds.
    pub duration_sum_secs: f64,
    /// Group evaluations.
    pub evaluations: u64,
}

/// What one group evaluation did.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub file: String,
    pub group: String,
    pub slot_ms: i64,
    pub missed: u64,
    pub duration: Duration,
    pub rules_evaluated: usize,
    pub failures: usize,
    /// Samples the rules returned (staleness markers not counted).
    pub samples: u64,
}

/// A rule's state for `/api/v1/rules`.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleStatus {
    pub kind: RuleKind,
    pub name: String,
    /// The expression as Prometheus prints it.
    pub query: String,
    pub labels: Vec<(String, String)>,
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    pub annotations: Vec<(String, String)>,
    /// Alerting rules: the most severe state of their alerts.
    pub state: AlertState,
    /// Alerting rules: the pending and firing alerts.
    pub alerts: Vec<Alert>,
    pub health: Health,
    pub last_error: Option<String>,
    /// Wall-clock start of the last evaluation, ms since the epoch.
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_time: Duration,
}

/// A group's state for `/api/v1/rules` and `/metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupStatus {
    pub name: String,
    pub file: String,
    pub interval_ms: i64,
    pub query_offset_ms: i64,
    pub limit: usize,
    pub rules: Vec<RuleStatus>,
    pub last_evaluation_ms: Option<i64>,
    /// The slot of the last evaluation.
    pub last_slot_ms: Option<i64>,
    pub evaluation_time: Duration,
    pub last_samples: u64,
    pub counters: GroupCounters,
}

/// A loaded group with its run-time state.
#[derive(Debug)]
pub struct RuleGroup {
    config: GroupConfig,
    interval_ms: i64,
    query_offset_ms: i64,
    slot_offset_ms: i64,
    state: Mutex<GroupState>,
    /// Serialises evaluations and state hand-over on reload.
    eval_lock: Mutex<()>,
    /// The running evaluation's cancel handle.
    running: Mutex<Option<CancelToken>>,
    alert_opts: Arc<AlertOptions>,
    notifier: Option<Arc<dyn Notifier>>,
}

impl RuleGroup {
    /// A group with `interval`/`query_offset` resolved against the defaults.
    pub fn new(
        config: GroupConfig,
        default_interval_ms: i64,
        default_query_offset_ms: i64,
    ) -> Self {
        let interval_ms = config.interval_ms.unwrap_or(default_interval_ms).max(1);
        let query_offset_ms = config.query_offset_ms.unwrap_or(default_query_offset_ms);
        let slot_offset_ms = group_offset_ms(&config.file, &config.name, interval_ms);
        let state = GroupState {
            rules: config
                .rules
                .iter()
                .map(|_| RuleState {
                    alerts: AlertingState {
                        restored: true,
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        RuleGroup {
            config,
            interval_ms,
            query_offset_ms,
            slot_offset_ms,
            state: Mutex::new(state),
            eval_lock: Mutex::new(()),
            running: Mutex::new(None),
            alert_opts: Arc::new(AlertOptions::default()),
            notifier: None,
        }
    }

    /// Sets the alerting options and where alerts are sent. With `restore`
    /// the group restores its alerts' `for` state from `ALERTS_FOR_STATE`
    /// after its first evaluation (see [`RuleGroup::restore_for_state`])
    /// and writes no `ALERTS` series until then, as Prometheus does at
    /// start-up (groups without alerting rules have nothing to restore).
    pub fn with_alerting(
        mut self,
        opts: Arc<AlertOptions>,
        notifier: Option<Arc<dyn Notifier>>,
        restore: bool,
    ) -> Self {
        self.alert_opts = opts;
        self.notifier = notifier;
        let has_alerts = self
            .config
            .rules
            .iter()
            .any(|r| r.kind == RuleKind::Alerting);
        let restore = restore && has_alerts;
        let st = self.state.get_mut();
        st.restore_pending = restore;
        for r in &mut st.rules {
            r.alerts.restored = !restore;
        }
        self
    }

    /// Whether [`RuleGroup::restore_for_state`] is still to run.
    pub fn restore_pending(&self) -> bool {
        self.state.lock().restore_pending
    }

    /// Restores the `for` clock of every alerting rule's active alerts from
    /// the `ALERTS_FOR_STATE` series in `db` (Prometheus'
    /// `RestoreForState`, with `--rules.alert.for-outage-tolerance` and
    /// `--rules.alert.for-grace-period`), at `ts`. Returns the alerts
    /// restored.
    pub fn restore_for_state(&self, db: &Db, ts: i64) -> usize {
        let _serial = self.eval_lock.lock();
        let mut st = self.state.lock();
        st.restore_pending = false;
        let mut n = 0;
        for (rule, rs) in self.config.rules.iter().zip(&mut st.rules) {
            if rule.kind == RuleKind::Alerting {
                n += rs
                    .alerts
                    .restore(rule, ts, &self.alert_opts, &|l, mint, maxt| {
                        last_sample(db, l, mint, maxt)
                    });
            }
            rs.alerts.restored = true;
        }
        tracing::info!(group = %self.config.name, file = %self.config.file, alerts = n,
            "restored the for state of alerts from ALERTS_FOR_STATE");
        n
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn file(&self) -> &str {
        &self.config.file
    }

    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    pub fn query_offset_ms(&self) -> i64 {
        self.query_offset_ms
    }

    /// The group's offset within its interval (see [`super::schedule`]).
    pub fn slot_offset_ms(&self) -> i64 {
        self.slot_offset_ms
    }

    /// Cancels the evaluation in progress, if any.
    pub fn cancel(&self) {
        if let Some(t) = &*self.running.lock() {
            t.cancel();
        }
    }

    /// Evaluates every rule at `slot_ms` (an evaluation
    /// timestamp) against `db`, writing through `out`; `wall_ms` is the
    /// wall-clock start reported as `lastEvaluation`, `missed` the slots
    /// skipped before this one.
    pub fn evaluate(
        &self,
        engine: &Engine,
        db: &Db,
        out: &dyn Appender,
        slot_ms: i64,
        wall_ms: i64,
        missed: u64,
    ) -> EvalReport {
        let _serial = self.eval_lock.lock();
        let started = Instant::now();
        let query_ts = slot_ms - self.query_offset_ms;
        // The whole group shares one deadline: an evaluation may not run
        // into the next slot.
        let ctx = QueryContext::new(Duration::from_millis(self.interval_ms as u64));
        *self.running.lock() = Some(ctx.cancel_token());
        let mut report = EvalReport {
            file: self.config.file.clone(),
            group: self.config.name.clone(),
            slot_ms,
            missed,
            duration: Duration::ZERO,
            rules_evaluated: 0,
            failures: 0,
            samples: 0,
        };
        for (i, rule) in self.config.rules.iter().enumerate() {
            let rule_started = Instant::now();
            report.rules_evaluated += 1;
            let previous = std::mem::take(&mut self.state.lock().rules[i].series);
            let outcome = match rule.kind {
                RuleKind::Recording => {
                    self.eval_recording(engine, db, out, rule, query_ts, &ctx, &previous)
                }
                RuleKind::Alerting => {
                    // A copy, so the API keeps showing the alerts while
                    // the rule evaluates.
                    let mut alerts = self.state.lock().rules[i].alerts.clone();
                    let r = self.eval_alerting(
                        engine,
                        db,
                        out,
                        rule,
                        (slot_ms, query_ts),
                        &ctx,
                        &previous,
                        &mut alerts,
                    );
                    if r.is_ok()
                        && let Some(n) = &self.notifier
                    {
                        let due = alerts.take_due(
                            slot_ms,
                            self.alert_opts.resend_delay_ms,
                            self.interval_ms,
                        );
                        if !due.is_empty() {
                            n.send(due);
                        }
                    }
                    self.state.lock().rules[i].alerts = alerts;
                    r
                }
            };
            let mut st = self.state.lock();
            let rs = &mut st.rules[i];
            rs.last_evaluation_ms = Some(wall_ms);
            rs.evaluation_time = rule_started.elapsed();
            match outcome {
                Ok((series, samples)) => {
                    rs.health = Some(Health::Ok);
                    rs.last_error = None;
                    rs.series = series;
                    report.samples += samples;
                }
                Err(e) => {
                    tracing::warn!(
                        group = %self.config.name,
                        file = %self.config.file,
                        rule = %rule.name,
                        error = %e,
                        "evaluating rule failed"
                    );
                    rs.health = Some(Health::Err);
                    rs.last_error = Some(e);
                    // Keep the previous series: they get staleness markers
                    // once the rule succeeds without them.
                    rs.series = previous;
                    report.failures += 1;
                }
            }
        }
        self.cleanup_stale_series(out, query_ts);
        *self.running.lock() = None;
        report.duration = started.elapsed();
        let mut st = self.state.lock();
        st.last_evaluation_ms = Some(wall_ms);
        st.last_slot_ms = Some(slot_ms);
        st.evaluation_time = report.duration;
        st.last_samples = report.samples;
        let c = &mut st.counters;
        c.rule_evaluations += report.rules_evaluated as u64;
        c.rule_failures += report.failures as u64;
        c.iterations += 1 + missed;
        c.iterations_missed += missed;
        c.duration_sum_secs += report.duration.as_secs_f64();
        c.evaluations += 1;
        report
    }

    /// The rule's expression at `query_ts`, as `(labels, value)` pairs.
    fn query(
        engine: &Engine,
        db: &Db,
        rule: &RuleConfig,
        query_ts: i64,
        ctx: &QueryContext,
    ) -> Result<Vec<(Labels, f64)>, String> {
        let result = engine
            .instant_query_expr(db, &rule.parsed, query_ts, ctx)
            .map_err(|e| e.to_string())?;
        match result.value {
            Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.v)).collect()),
            Value::Scalar { v, .. } => Ok(vec![(Labels::empty(), v)]),
            Value::String { .. } | Value::Matrix(_) => {
                Err("rule result is not a vector or scalar".into())
            }
        }
    }

    /// One alerting rule: query, advance the alerts' state, append `ALERTS`
    /// and `ALERTS_FOR_STATE` and staleness markers. `times` is the
    /// evaluation time (the alerts' clock) and the query time (samples).
    #[allow(clippy::too_many_arguments)]
    fn eval_alerting(
        &self,
        engine: &Engine,
        db: &Db,
        out: &dyn Appender,
        rule: &RuleConfig,
        (ts, query_ts): (i64, i64),
        ctx: &QueryContext,
        previous: &HashSet<Labels>,
        alerts: &mut AlertingState,
    ) -> Result<(HashSet<Labels>, u64), String> {
        let result = Self::query(engine, db, rule, query_ts, ctx)?;
        let (vector, active) = alerts.eval(rule, result, ts, &self.alert_opts)?;
        let limit = self.config.limit;
        if limit > 0 && active > limit {
            alerts.active.clear();
            return Err(format!("exceeded limit of {limit} with {active} alerts"));
        }
        self.write(out, rule, vector, query_ts, previous)
    }

    /// One recording rule: query, name, check, append results and
    /// staleness markers. Returns the series written and the number of
    /// samples.
    #[allow(clippy::too_many_arguments)]
    fn eval_recording(
        &self,
        engine: &Engine,
        db: &Db,
        out: &dyn Appender,
        rule: &RuleConfig,
        query_ts: i64,
        ctx: &QueryContext,
        previous: &HashSet<Labels>,
    ) -> Result<(HashSet<Labels>, u64), String> {
        let mut vector: Vec<(Labels, f64)> = Self::query(engine, db, rule, query_ts, ctx)?
            .into_iter()
            .map(|(l, v)| (output_labels(&l, rule), v))
            .collect();
        vector.sort_by(|a, b| a.0.cmp(&b.0));
        if vector.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        let limit = self.config.limit;
        if limit > 0 && vector.len() > limit {
            return Err(format!(
                "exceeded limit of {limit} with {} series",
                vector.len()
            ));
        }
        self.write(out, rule, vector, query_ts, previous)
    }

    /// Appends a rule's output at `query_ts` and staleness markers for the
    /// series of `previous` it no longer has.
    fn write(
        &self,
        out: &dyn Appender,
        rule: &RuleConfig,
        vector: Vec<(Labels, f64)>,
        query_ts: i64,
        previous: &HashSet<Labels>,
    ) -> Result<(HashSet<Labels>, u64), String> {
        let current: HashSet<Labels> = vector.iter().map(|(l, _)| l.clone()).collect();
        let stale = [Sample::new(query_ts, stale_nan())];
        let samples: Vec<(Labels, [Sample; 1])> = vector
            .into_iter()
            .map(|(l, v)| (l, [Sample::new(query_ts, v)]))
            .collect();
        let gone: Vec<&Labels> = previous.iter().filter(|l| !current.contains(*l)).collect();
        let batch: Vec<(&Labels, &[Sample])> = samples
            .iter()
            .map(|(l, s)| (l, s.as_slice()))
            .chain(gone.iter().map(|l| (*l, stale.as_slice())))
            .collect();
        let stats = out
            .append(&batch)
            .map_err(|e| format!("appending rule results: {e}"))?;
        if let Some(why) = &stats.first_rejection {
            // Out-of-order or duplicate results are expected when a rule
            // overlaps another writer of the same series; Prometheus logs
            // and keeps going.
            tracing::warn!(
                group = %self.config.name,
                rule = %rule.name,
                rejected = stats.rejected(),
                first = %why,
                "rule evaluation results discarded"
            );
        }
        Ok((current, samples.len() as u64))
    }

    /// Stale markers for the series of rules a reload removed.
    fn cleanup_stale_series(&self, out: &dyn Appender, ts: i64) {
        let series = std::mem::take(&mut self.state.lock().stale_series);
        if series.is_empty() {
            return;
        }
        if let Err(e) = append_stale_markers(out, &series, ts) {
            tracing::warn!(group = %self.config.name, error = %e, "appending staleness markers for removed rules failed");
            self.state.lock().stale_series = series;
        }
    }

    /// Takes over the state of the group this one replaces on reload
    /// (Prometheus' `CopyState`): rules matched by name and labels keep
    /// their health and previous series; series of rules that are gone are
    /// marked stale at this group's first evaluation.
    pub fn copy_state_from(&self, old: &RuleGroup) {
        let _old_serial = old.eval_lock.lock();
        let mut from = old.state.lock();
        let mut to = self.state.lock();
        to.last_evaluation_ms = from.last_evaluation_ms;
        to.last_slot_ms = from.last_slot_ms;
        to.evaluation_time = from.evaluation_time;
        to.last_samples = from.last_samples;
        to.counters = from.counters;
        to.restore_pending = from.restore_pending;
        let mut taken = vec![false; old.config.rules.len()];
        for (i, rule) in self.config.rules.iter().enumerate() {
            let found = old.config.rules.iter().enumerate().position(|(fi, r)| {
                !taken[fi] && r.kind == rule.kind && r.name == rule.name && r.labels == rule.labels
            });
            if let Some(fi) = found {
                taken[fi] = true;
                let fr = &mut from.rules[fi];
                let tr = &mut to.rules[i];
                tr.series = std::mem::take(&mut fr.series);
                tr.health = fr.health;
                tr.last_error = fr.last_error.clone();
                tr.last_evaluation_ms = fr.last_evaluation_ms;
                tr.evaluation_time = fr.evaluation_time;
                tr.alerts = std::mem::take(&mut fr.alerts);
            }
        }
        let mut stale = std::mem::take(&mut from.stale_series);
        for (fi, t) in taken.iter().enumerate() {
            if !t {
                stale.extend(std::mem::take(&mut from.rules[fi].series));
            }
        }
        to.stale_series.extend(stale);
    }

    /// Every series this group wrote last (for stale markers when the group
    /// is removed).
    pub fn take_all_series(&self) -> Vec<Labels> {
        let _serial = self.eval_lock.lock();
        let mut st = self.state.lock();
        let mut out = std::mem::take(&mut st.stale_series);
        for r in &mut st.rules {
            out.extend(std::mem::take(&mut r.series));
        }
        out
    }

    /// A snapshot for the API and metrics.
    pub fn status(&self) -> GroupStatus {
        let st = self.state.lock();
        let rules = self
            .config
            .rules
            .iter()
            .zip(&st.rules)
            .map(|(r, s)| {
                let alerts = s.alerts.active_alerts();
                RuleStatus {
                    state: alerts.iter().map(|a| a.state).max().unwrap_or_default(),
                    alerts,
                    keep_firing_for_ms: r.keep_firing_for_ms,
                    kind: r.kind,
                    name: r.name.clone(),
                    query: r.parsed.to_string(),
                    labels: r.labels.clone(),
                    for_ms: r.for_ms,
                    annotations: r.annotations.clone(),
                    health: s.health.unwrap_or(Health::Unknown),
                    last_error: s.last_error.clone(),
                    last_evaluation_ms: s.last_evaluation_ms,
                    evaluation_time: s.evaluation_time,
                }
            })
            .collect();
        GroupStatus {
            name: self.config.name.clone(),
            file: self.config.file.clone(),
            interval_ms: self.interval_ms,
            query_offset_ms: self.query_offset_ms,
            limit: self.config.limit,
            rules,
            last_evaluation_ms: st.last_evaluation_ms,
            last_slot_ms: st.last_slot_ms,
            evaluation_time: st.evaluation_time,
            last_samples: st.last_samples,
            counters: st.counters,
        }
    }
}

/// Appends a staleness marker at `ts` for each series. Rejections (a newer
/// sample already there, e.g. the series moved to another group) are
/// expected and ignored, as in Prometheus.
pub(crate) fn append_stale_markers(
    out: &dyn Appender,
    series: &[Labels],
    ts: i64,
) -> Result<(), tessera_tsdb::DbError> {
    let stale = [Sample::new(ts, stale_nan())];
    let batch: Vec<(&Labels, &[Sample])> = series.iter().map(|l| (l, stale.as_slice())).collect();
    out.append(&batch).map(|_| ())
}
