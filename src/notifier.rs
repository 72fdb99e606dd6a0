//! Sending alerts to Alertmanager: the `--alertmanager.*` flags and
//! [`AlertmanagerNotifier`], the [`Notifier`] the rule groups hand their
//! alerts to.
//!
//! Like Prometheus' notifier: rule evaluation only appends to a bounded
//! queue (`--alertmanager.notification-queue-capacity`) and never waits;
//! when the queue is full the oldest alerts are dropped and counted in
//! `tessera_notifications_dropped_total`. One thread (`tessera-notifier`)
//! takes up to [`MAX_BATCH`] alerts at a time, adds the external labels
//! (an alert's own label wins) and POSTs them as JSON to every
//! Alertmanager's v2 API (`<url>/api/v2/alerts`) at once (a scoped thread
//! per Alertmanager), each request bounded by `--alertmanager.timeout`. A batch that no Alertmanager accepted goes
//! back to the head of the queue and is retried with a backoff (100 ms
//! doubling to 5 s), so while Alertmanager is down alerts wait in the queue
//! up to its capacity; firing and resolved alerts are also re-sent by the
//! rules every `--rules.alert.resend-delay`. Plain `http://` only.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::{Map, Value, json};
use tessera_query::rules::{Notification, Notifier};

use crate::flags;
use crate::metrics;

/// Alerts per request (Prometheus' `maxBatchSize`).
pub(crate) const MAX_BATCH: usize = 64;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// `tessera serve` flags for Alertmanager (flattened into `RulesArgs`).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct AlertmanagerArgs {
    /// Alertmanager to send alerts to, e.g. `http://alertmanager:9093`
    /// (alerts go to its `/api/v2/alerts`). Repeatable: every one gets
    /// every alert. Default: none (alerting rules are evaluated, nothing is
    /// sent).
    #[arg(long = "alertmanager.url", value_name = "URL", value_parser = parse_url)]
    pub urls: Vec<String>,

    /// Alerts waiting to be sent; past it the oldest are dropped (counted
    /// in tessera_notifications_dropped_total).
    #[arg(long = "alertmanager.notification-queue-capacity", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub queue_capacity: u64,

    /// Timeout of one request to one Alertmanager.
    #[arg(long = "alertmanager.timeout", default_value = "10s", value_parser = flags::duration)]
    pub timeout: Duration,
}

/// Accepts `http://host:port[/prefix]`; the `/api/v2/alerts` path is added
/// unless given.
fn parse_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| format!("{s:?}: only http:// Alertmanager URLs are supported"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{s:?}: no host"));
    }
    let base = s.trim_end_matches('/');
    Ok(if base.ends_with("/api/v2/alerts") {
        base.to_string()
    } else {
        format!("{base}/api/v2/alerts")
    })
}

/// Per-Alertmanager counters.
#[derive(Default)]
struct Target {
    url: String,
    sent: AtomicU64,
    errors: AtomicU64,
    latency_ms_sum: AtomicU64,
    requests: AtomicU64,
}

impl Target {
    /// One POST of a batch of `n` alerts; counts it; true when accepted.
    fn post(&self, agent: &ureq::Agent, body: &str, n: usize) -> bool {
        let started = Instant::now();
        let r = agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .send(body.as_bytes());
        self.latency_ms_sum
            .fetch_add(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(_) => {
                self.sent.fetch_add(n as u64, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.errors.fetch_add(n as u64, Ordering::Relaxed);
                tracing::warn!(alertmanager = %self.url, alerts = n, error = %e,
                    "sending alerts to the Alertmanager failed");
                false
            }
        }
    }
}

struct Shared {
    queue: Mutex<VecDeque<Notification>>,
    wake: Condvar,
    stop: AtomicBool,
    capacity: usize,
    timeout: Duration,
    external_labels: Vec<(String, String)>,
    targets: Vec<Target>,
    dropped: AtomicU64,
}

/// The process's Alertmanager client: a bounded queue and its sender
/// thread.
pub(crate) struct AlertmanagerNotifier {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl AlertmanagerNotifier {
    /// A notifier for `args.urls` (may be empty: alerts are then queued for
    /// no one and counted as dropped past the capacity; the caller does not
    /// build one without URLs). Nothing is sent before [`start`](Self::start).
    pub(crate) fn new(
        args: &AlertmanagerArgs,
        external_labels: Vec<(String, String)>,
    ) -> AlertmanagerNotifier {
        let targets = args
            .urls
            .iter()
            .map(|u| Target {
                url: u.clone(),
                ..Default::default()
            })
            .collect();
        AlertmanagerNotifier {
            shared: Arc::new(Shared {
                queue: Mutex::new(VecDeque::new()),
                wake: Condvar::new(),
                stop: AtomicBool::new(false),
                capacity: args.queue_capacity as usize,
                timeout: args.timeout,
                external_labels,
                targets,
                dropped: AtomicU64::new(0),
            }),
            thread: Mutex::new(None),
        }
    }

    /// Starts the sender thread (once).
    pub(crate) fn start(&self) -> std::io::Result<()> {
        let mut t = self.thread.lock();
        if t.is_none() {
            let shared = self.shared.clone();
            *t = Some(
                std::thread::Builder::new()
                    .name("tessera-notifier".into())
                    .spawn(move || shared.run())?,
            );
        }
        Ok(())
    }

    /// Stops the sender; alerts still queued are not sent (logged).
    pub(crate) fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
        let left = self.shared.queue.lock().len();
        if left > 0 {
            tracing::warn!(
                alerts = left,
                "shutting down with alert notifications not sent"
            );
        }
    }

    /// The `tessera_notifications_*` families.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        render_metrics(out, Some(&self.shared));
    }
}

/// The `tessera_notifications_*` families, empty or zero without a
/// notifier.
pub(crate) fn render_metrics_absent(out: &mut String) {
    render_metrics(out, None);
}

fn render_metrics(out: &mut String, s: Option<&Shared>) {
    let targets: &[Target] = s.map_or(&[], |s| &s.targets);
    type Field = fn(&Target) -> f64;
    let per_target: [(&str, &str, Field); 4] = [
        (
            "tessera_notifications_sent_total",
            "Alerts sent to the Alertmanager (accepted), by alertmanager.",
            |t| t.sent.load(Ordering::Relaxed) as f64,
        ),
        (
            "tessera_notifications_errors_total",
            "Alerts whose sending to the Alertmanager failed (request error, timeout, non-2xx), by alertmanager.",
            |t| t.errors.load(Ordering::Relaxed) as f64,
        ),
        (
            "tessera_notifications_latency_seconds_sum",
            "Total time of requests to the Alertmanager, seconds.",
            |t| t.latency_ms_sum.load(Ordering::Relaxed) as f64 / 1000.0,
        ),
        (
            "tessera_notifications_latency_seconds_count",
            "Requests to the Alertmanager timed in tessera_notifications_latency_seconds_sum.",
            |t| t.requests.load(Ordering::Relaxed) as f64,
        ),
    ];
    for (name, help, f) in per_target {
        metrics::header(out, name, help, "counter");
        for t in targets {
            metrics::sample(
                out,
                name,
                "",
                &["alertmanager"],
                std::slice::from_ref(&t.url),
                None,
                f(t),
            );
        }
    }
    metrics::single(
        out,
        "tessera_notifications_dropped_total",
        "Alerts dropped because the notification queue was full.",
        "counter",
        s.map_or(0.0, |s| s.dropped.load(Ordering::Relaxed) as f64),
    );
    metrics::single(
        out,
        "tessera_notifications_queue_length",
        "Alerts waiting in the notification queue.",
        "gauge",
        s.map_or(0.0, |s| s.queue.lock().len() as f64),
    );
    metrics::single(
        out,
        "tessera_notifications_queue_capacity",
        "Capacity of the notification queue (--alertmanager.notification-queue-capacity).",
        "gauge",
        s.map_or(0.0, |s| s.capacity as f64),
    );
    metrics::single(
        out,
        "tessera_notifications_alertmanagers_discovered",
        "Alertmanagers alerts are sent to (--alertmanager.url).",
        "gauge",
        targets.len() as f64,
    );
}

impl Notifier for AlertmanagerNotifier {
    /// Queues the alerts; never blocks on the network.
    fn send(&self, alerts: Vec<Notification>) {
        let s = &self.shared;
        let mut q = s.queue.lock();
        q.extend(alerts);
        let over = q.len().saturating_sub(s.capacity);
        if over > 0 {
            q.drain(..over);
            s.dropped.fetch_add(over as u64, Ordering::Relaxed);
            tracing::warn!(
                dropped = over,
                capacity = s.capacity,
                "alert notification queue full, dropping the oldest alerts"
            );
        }
        drop(q);
        s.wake.notify_one();
    }
}

impl Shared {
    fn run(&self) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .build()
            .into();
        let mut backoff = BACKOFF_MIN;
        loop {
            let batch: Vec<Notification> = {
                let mut q = self.queue.lock();
                while q.is_empty() && !self.stop.load(Ordering::Relaxed) {
                    self.wake.wait(&mut q);
                }
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                let n = q.len().min(MAX_BATCH);
                q.drain(..n).collect()
            };
            let body = self.body(&batch);
            // Every Alertmanager at once, so a slow one does not delay the
            // others by its timeout.
            let delivered = std::thread::scope(|scope| {
                let sends: Vec<_> = self
                    .targets
                    .iter()
                    .map(|t| scope.spawn(|| t.post(&agent, &body, batch.len())))
                    .collect();
                let accepted: Vec<bool> = sends
                    .into_iter()
                    .map(|h| h.join().unwrap_or(false))
                    .collect();
                accepted.contains(&true)
            });
            if delivered {
                backoff = BACKOFF_MIN;
                continue;
            }
            // Nobody took it: back to the head of the queue (as far as the
            // capacity allows), then wait before retrying.
            {
                let mut q = self.queue.lock();
                let room = self.capacity.saturating_sub(q.len());
                let keep = batch.len().min(room);
                let lost = batch.len() - keep;
                for n in batch.into_iter().take(keep).rev() {
                    q.push_front(n);
                }
                if lost > 0 {
                    self.dropped.fetch_add(lost as u64, Ordering::Relaxed);
                }
                if !self.stop.load(Ordering::Relaxed) {
                    self.wake.wait_for(&mut q, backoff);
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Alertmanager's `postableAlerts` JSON.
    fn body(&self, batch: &[Notification]) -> String {
        let alerts: Vec<Value> = batch
            .iter()
            .map(|n| {
                let mut labels: Map<String, Value> = n
                    .labels
                    .iter()
                    .map(|l| (l.name.to_string(), json!(&*l.value)))
                    .collect();
                for (k, v) in &self.external_labels {
                    labels.entry(k.clone()).or_insert_with(|| json!(v));
                }
                let annotations: Map<String, Value> = n
                    .annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                json!({
                    "labels": labels,
                    "annotations": annotations,
                    "startsAt": tessera_query::time::rfc3339_millis(n.starts_at_ms),
                    "endsAt": tessera_query::time::rfc3339_millis(n.ends_at_ms),
                })
            })
            .collect();
        Value::Array(alerts).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use tessera_tsdb::Labels;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        am: AlertmanagerArgs,
    }

    fn note(name: &str) -> Notification {
        Notification {
            labels: Labels::from_pairs([("alertname", name), ("cluster", "own")]),
            annotations: vec![("summary".into(), "s".into())],
            starts_at_ms: 1_700_000_000_000,
            ends_at_ms: 1_700_000_240_000,
        }
    }

    #[test]
    fn urls_get_the_v2_path_and_only_http_is_accepted() {
        assert_eq!(
            parse_url("http://am:9093").unwrap(),
            "http://am:9093/api/v2/alerts"
        );
        assert_eq!(
            parse_url("http://am:9093/prefix/").unwrap(),
            "http://am:9093/prefix/api/v2/alerts"
        );
        assert_eq!(
            parse_url("http://am:9093/api/v2/alerts").unwrap(),
            "http://am:9093/api/v2/alerts"
        );
        assert!(
            parse_url("https://am")
                .unwrap_err()
                .contains("only http://")
        );
        assert!(parse_url("am:9093").is_err());
        assert!(parse_url("http://").is_err());
        let c = Cmd::try_parse_from([
            "t",
            "--alertmanager.url",
            "http://a:1",
            "--alertmanager.url",
            "http://b:2",
        ])
        .unwrap();
        assert_eq!(c.am.urls.len(), 2);
        assert_eq!(c.am.queue_capacity, 10_000);
        assert!(
            Cmd::try_parse_from(["t", "--alertmanager.notification-queue-capacity", "0"]).is_err()
        );
    }

    #[test]
    fn full_queue_drops_the_oldest_and_counts_them_without_blocking() {
        let args = Cmd::try_parse_from([
            "t",
            "--alertmanager.url",
            "http://127.0.0.1:9/",
            "--alertmanager.notification-queue-capacity",
            "3",
        ])
        .unwrap()
        .am;
        // Not started: nothing drains the queue.
        let n = AlertmanagerNotifier::new(&args, vec![]);
        n.send(vec![note("a"), note("b")]);
        n.send(vec![note("c"), note("d"), note("e")]);
        let names: Vec<String> = n
            .shared
            .queue
            .lock()
            .iter()
            .map(|x| x.labels.get("alertname").unwrap().to_string())
            .collect();
        assert_eq!(names, ["c", "d", "e"]);
        let mut out = String::new();
        n.render_metrics(&mut out);
        for want in [
            "tessera_notifications_dropped_total 2\n",
            "tessera_notifications_queue_length 3\n",
            "tessera_notifications_queue_capacity 3\n",
            "tessera_notifications_alertmanagers_discovered 1\n",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
    }

    #[test]
    fn body_is_alertmanager_v2_json_with_external_labels_under_the_alerts() {
        let args = Cmd::try_parse_from(["t"]).unwrap().am;
        let n = AlertmanagerNotifier::new(
            &args,
            vec![
                ("cluster".into(), "ext".into()),
                ("replica".into(), "0".into()),
            ],
        );
        let v: Value = serde_json::from_str(&n.shared.body(&[note("a")])).unwrap();
        assert_eq!(
            v,
            json!([{
                "labels": {"alertname": "a", "cluster": "own", "replica": "0"},
                "annotations": {"summary": "s"},
                "startsAt": "2023-11-14T22:13:20.000Z",
                "endsAt": "2023-11-14T22:17:20.000Z",
            }])
        );
    }
}
