//! The rule manager: loads the rule files, runs one thread per group on its
//! aligned schedule, and swaps groups on reload.
//!
//! Each group evaluates on its own dedicated thread (never an async
//! worker): it sleeps until its next slot, evaluates, and sleeps again.
//! Reload follows Prometheus' `Manager.Update`: files that fail to load
//! leave every running group untouched; an unchanged group keeps running
//! undisturbed; a changed group is restarted at its next slot with the old
//! group's state (previous series, health, counters); a removed group's
//! series get staleness markers two intervals later, giving a group that
//! was renamed or moved time to write them first.
//!
//! Alerting: groups loaded at start-up restore their alerts' `for` state
//! from `ALERTS_FOR_STATE` at their second slot (Prometheus waits one
//! evaluation so that recording rules and scrapes have caught up); groups
//! a reload adds start fresh.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use tessera_tsdb::Db;

use super::alerting::{AlertOptions, Notifier};
use super::appender::Appender;
use super::file::{GroupConfig, RuleFileError, RuleKind, expand_patterns, load_file};
use super::group::{EvalReport, GroupStatus, RuleGroup, append_stale_markers};
use super::schedule::{Clock, Schedule, StopSignal, SystemClock};
use crate::engine::Engine;

/// How the manager finds and schedules its groups.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    /// `--rules.file` values: paths or globs, re-expanded on every reload.
    pub patterns: Vec<String>,
    /// Interval of groups without `interval:` (`--rules.evaluation-interval`).
    pub default_interval: Duration,
    /// Query offset of groups without `query_offset:`.
    pub default_query_offset: Duration,
    /// Alerting rules' resend delay, `for` restore and template data.
    pub alert: AlertOptions,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            patterns: Vec::new(),
            default_interval: Duration::from_secs(60),
            default_query_offset: Duration::ZERO,
            alert: AlertOptions::default(),
        }
    }
}

/// What a load or reload put in force.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadSummary {
    pub files: Vec<PathBuf>,
    pub groups: usize,
    pub recording_rules: usize,
    pub alerting_rules: usize,
}

/// Called after every group evaluation (self-metrics, tests).
pub type EvalObserver = Arc<dyn Fn(&EvalReport) + Send + Sync>;

struct Running {
    group: Arc<RuleGroup>,
    stop: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn stop(&mut self) {
        self.stop.stop();
        self.group.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the groups read from and write through, once started.
#[derive(Clone)]
struct Target {
    db: Arc<Db>,
    out: Arc<dyn Appender>,
}

#[derive(Default)]
struct Inner {
    groups: Vec<Running>,
    target: Option<Target>,
}

/// Loads, runs and reloads rule groups.
pub struct RuleManager {
    opts: ManagerOptions,
    engine: Engine,
    clock: Arc<dyn Clock>,
    observer: Option<EvalObserver>,
    alert_opts: Arc<AlertOptions>,
    notifier: Option<Arc<dyn Notifier>>,
    inner: Mutex<Inner>,
    /// Fired by [`RuleManager::stop`]: ends delayed stale-marker writers.
    shutdown: Arc<StopSignal>,
}

impl RuleManager {
    /// Loads every file the patterns match; any invalid file is an error
    /// (refuse to start, as Prometheus does). Nothing runs until
    /// [`start`](Self::start).
    pub fn load(
        opts: ManagerOptions,
        engine: Engine,
    ) -> Result<(RuleManager, LoadSummary), RuleFileError> {
        let (configs, summary) = load_all(&opts.patterns)?;
        let m = RuleManager {
            engine,
            clock: Arc::new(SystemClock),
            observer: None,
            alert_opts: Arc::new(opts.alert.clone()),
            notifier: None,
            inner: Mutex::new(Inner::default()),
            shutdown: Arc::new(StopSignal::default()),
            opts,
        };
        m.inner.lock().groups = configs
            .into_iter()
            .map(|c| Running {
                group: Arc::new(m.new_group(c, true)),
                stop: Arc::new(StopSignal::default()),
                thread: None,
            })
            .collect();
        Ok((m, summary))
    }

    /// Replaces the clock (tests drive the scheduler with a
    /// [`super::ManualClock`]). Call before [`start`](Self::start).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Calls `f` after every group evaluation.
    pub fn with_observer(mut self, f: EvalObserver) -> Self {
        self.observer = Some(f);
        self
    }

    /// Sends alerts through `n` (the server's Alertmanager queue). Call
    /// before [`start`](Self::start): groups built earlier get it at start.
    pub fn with_notifier(mut self, n: Arc<dyn Notifier>) -> Self {
        self.notifier = Some(n);
        let groups = std::mem::take(&mut self.inner.get_mut().groups);
        self.inner.get_mut().groups = groups
            .into_iter()
            .map(|r| Running {
                group: Arc::new(self.new_group(r.group.config().clone(), true)),
                ..r
            })
            .collect();
        self
    }

    fn new_group(&self, c: GroupConfig, restore: bool) -> RuleGroup {
        RuleGroup::new(
            c,
            self.opts.default_interval.as_millis() as i64,
            self.opts.default_query_offset.as_millis() as i64,
        )
        .with_alerting(self.alert_opts.clone(), self.notifier.clone(), restore)
    }

    /// Starts evaluating every group against `db`, each at its next slot;
    /// results and staleness markers are written through `out` (the
    /// server's: the remote-write append path).
    pub fn start(&self, db: Arc<Db>, out: Arc<dyn Appender>) -> std::io::Result<()> {
        let mut inner = self.inner.lock();
        let target = Target { db, out };
        inner.target = Some(target.clone());
        for r in &mut inner.groups {
            if r.thread.is_none() {
                r.thread = Some(self.spawn(r.group.clone(), r.stop.clone(), target.clone())?);
            }
        }
        Ok(())
    }

    fn spawn(
        &self,
        group: Arc<RuleGroup>,
        stop: Arc<StopSignal>,
        target: Target,
    ) -> std::io::Result<JoinHandle<()>> {
        let engine = self.engine.clone();
        let clock = self.clock.clone();
        let observer = self.observer.clone();
        std::thread::Builder::new()
            .name("tessera-rules".into())
            .spawn(move || {
                let mut schedule =
                    Schedule::new(group.interval_ms(), group.slot_offset_ms(), clock.now_ms());
                let mut evaluated = false;
                while clock.sleep_until(schedule.next_ms(), &stop) {
                    let now = clock.now_ms();
                    let Some(due) = schedule.poll(now) else {
                        continue;
                    };
                    if evaluated && group.restore_pending() {
                        group.restore_for_state(&target.db, now);
                        continue;
                    }
                    evaluated = true;
                    let report = group.evaluate(
                        &engine,
                        &target.db,
                        target.out.as_ref(),
                        due.slot_ms,
                        now,
                        due.missed,
                    );
                    if let Some(f) = &observer {
                        f(&report);
                    }
                }
            })
    }

    /// Re-expands the patterns and re-reads every file. On error nothing
    /// changes: the groups in force keep running.
    pub fn reload(&self) -> Result<LoadSummary, RuleFileError> {
        let (configs, summary) = load_all(&self.opts.patterns)?;
        let mut inner = self.inner.lock();
        let target = inner.target.clone();
        let mut old: Vec<Running> = std::mem::take(&mut inner.groups);
        let mut next = Vec::with_capacity(configs.len());
        for c in configs {
            let pos = old
                .iter()
                .position(|r| r.group.name() == c.name && r.group.file() == c.file);
            let previous = pos.map(|i| old.swap_remove(i));
            let fresh = self.new_group(c, false);
            match previous {
                Some(r)
                    if r.group.config().same_definition(fresh.config())
                        && r.group.interval_ms() == fresh.interval_ms()
                        && r.group.query_offset_ms() == fresh.query_offset_ms() =>
                {
                    next.push(r);
                }
                previous => {
                    if let Some(mut r) = previous {
                        r.stop();
                        fresh.copy_state_from(&r.group);
                    }
                    let group = Arc::new(fresh);
                    let stop = Arc::new(StopSignal::default());
                    // A thread that cannot start leaves the group listed but
                    // idle (health unknown) rather than abandoning the
                    // half-applied reload.
                    let thread = target.as_ref().and_then(|t| {
                        self.spawn(group.clone(), stop.clone(), t.clone())
                            .map_err(|e| {
                                tracing::error!(group = %group.name(), file = %group.file(), error = %e,
                                    "cannot start the rule group's evaluation thread");
                            })
                            .ok()
                    });
                    next.push(Running {
                        group,
                        stop,
                        thread,
                    });
                }
            }
        }
        // Groups no longer configured: stop them, then mark their series
        // stale two intervals from now unless a newer sample is there first.
        for mut r in old {
            r.stop();
            if let Some(t) = &target {
                self.mark_stale_later(&r.group, t.out.clone());
            }
        }
        inner.groups = next;
        Ok(summary)
    }

    fn mark_stale_later(&self, group: &RuleGroup, out: Arc<dyn Appender>) {
        let series = group.take_all_series();
        if series.is_empty() {
            return;
        }
        let now = self.clock.now_ms();
        let ts = now - group.query_offset_ms();
        let wake = now + 2 * group.interval_ms();
        let clock = self.clock.clone();
        let shutdown = self.shutdown.clone();
        let name = group.name().to_string();
        let spawned = std::thread::Builder::new()
            .name("tessera-rules-stale".into())
            .spawn(move || {
                if clock.sleep_until(wake, &shutdown)
                    && let Err(e) = append_stale_markers(out.as_ref(), &series, ts)
                {
                    tracing::warn!(group = %name, error = %e, "staleness markers for a removed rule group failed");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(group = %group.name(), error = %e, "cannot schedule staleness markers for a removed rule group");
        }
    }

    /// Snapshots of every group, in file and file order.
    pub fn groups(&self) -> Vec<GroupStatus> {
        self.inner
            .lock()
            .groups
            .iter()
            .map(|r| r.group.status())
            .collect()
    }

    /// The running groups themselves (tests, embedding).
    pub fn group_handles(&self) -> Vec<Arc<RuleGroup>> {
        self.inner
            .lock()
            .groups
            .iter()
            .map(|r| r.group.clone())
            .collect()
    }

    /// Stops every group (graceful shutdown: no staleness markers, so a
    /// restart continues the series).
    pub fn stop(&self) {
        self.shutdown.stop();
        for r in &mut self.inner.lock().groups {
            r.stop();
        }
    }
}

impl Drop for RuleManager {
    fn drop(&mut self) {
        self.stop();
    }
}

fn load_all(patterns: &[String]) -> Result<(Vec<GroupConfig>, LoadSummary), RuleFileError> {
    let files = expand_patterns(patterns)?;
    let mut configs = Vec::new();
    let mut summary = LoadSummary::default();
    for f in &files {
        for g in load_file(f)? {
            for r in &g.rules {
                match r.kind {
                    RuleKind::Recording => summary.recording_rules += 1,
                    RuleKind::Alerting => summary.alerting_rules += 1,
                }
            }
            configs.push(g);
        }
    }
    summary.groups = configs.len();
    summary.files = files;
    Ok((configs, summary))
}
