//! Recording and alerting rules: Prometheus rule files evaluated on a
//! schedule, their results (and alerts' `ALERTS` series) written back to
//! the store, alerts handed to a [`Notifier`].
//!
//! - [`file`]: the `groups:` YAML format and its validation (errors name
//!   the file, line, group and rule).
//! - [`template`]: alert label and annotation templates (Go template
//!   subset and Prometheus' humanize functions).
//! - [`alerting`]: the alert state machine, what to send, `for` restore.
//! - [`schedule`]: aligned evaluation slots, start/restart behaviour, and
//!   the injectable [`Clock`].
//! - [`group`]: evaluating one group at one slot (query offset, `limit`,
//!   staleness markers, per-rule health).
//! - [`manager`]: one thread per group, reload that keeps the old groups
//!   when a file is bad.
//! - [`Appender`]: where results are written, injected by the embedder
//!   (the server's is the remote-write append path).
//!
//! Start from [`RuleManager::load`], then [`RuleManager::start`] with the
//! database to read and the [`Appender`] to write through;
//! [`RuleManager::groups`] feeds `/api/v1/rules` and `/api/v1/alerts`;
//! [`RuleManager::with_notifier`] says where alerts are sent.
//!
//! Restart behaviour (as Prometheus): a group's first evaluation after a
//! start or reload is its next aligned slot; slots missed while the process
//! was down are not backfilled.

pub mod alerting;
mod appender;
pub mod file;
pub mod group;
pub mod manager;
pub mod schedule;
pub mod template;

pub use alerting::{Alert, AlertOptions, AlertState, Notification, Notifier};
pub use appender::Appender;
pub use file::{GroupConfig, RuleConfig, RuleFileError, RuleKind, parse_rule_file};
pub use group::{EvalReport, GroupCounters, GroupStatus, Health, RuleGroup, RuleStatus};
pub use manager::{EvalObserver, LoadSummary, ManagerOptions, RuleManager};
pub use schedule::{Clock, ManualClock, Schedule, StopSignal, SystemClock};
