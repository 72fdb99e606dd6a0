//! Tessera's own metrics, rendered in the Prometheus text format at `/metrics`.
//!
//! A deliberately small registry: counters and histograms keyed by label
//! values, updated once per request (never per sample), so a mutex per
//! family costs nothing measurable. Gauges that describe state (head series,
//! memory) are read from their owners at scrape time instead of being kept
//! in sync here.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

/// A counter family with fixed label names.
pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, f64>>,
}

impl CounterVec {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        CounterVec {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn inc_by(&self, label_values: &[&str], v: f64) {
        debug_assert_eq!(label_values.len(), self.labels.len());
        // One small allocation per update: updates are per request, not per
        // sample, so this never shows in a profile.
        let key: Vec<String> = label_values.iter().map(|s| s.to_string()).collect();
        *self.values.lock().entry(key).or_insert(0.0) += v;
    }

    pub fn inc(&self, label_values: &[&str]) {
        self.inc_by(label_values, 1.0);
    }

    /// Makes a series visible at 0 before its first event, so `rate()` sees
    /// the first increase.
    pub fn touch(&self, label_values: &[&str]) {
        self.inc_by(label_values, 0.0);
    }

    pub fn get(&self, label_values: &[&str]) -> f64 {
        let key: Vec<String> = label_values.iter().map(|s| s.to_string()).collect();
        self.values.lock().get(&key).copied().unwrap_or(0.0)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        for (lv, v) in self.values.lock().iter() {
            sample(out, self.name, "", self.labels, lv, None, *v);
        }
    }
}

/// Upper bounds (seconds) shared by Tessera's latency histograms.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Clone, Default)]
struct HistogramData {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Upper bounds for sample-count histograms (per-query peak samples).
pub const SAMPLE_BUCKETS: &[f64] = &[1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 5e7, 1e8];

/// A histogram family with fixed label names and buckets.
pub struct HistogramVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    values: Mutex<BTreeMap<Vec<String>, HistogramData>>,
}

impl HistogramVec {
    /// A latency histogram (seconds).
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self::with_buckets(name, help, labels, BUCKETS)
    }

    pub const fn with_buckets(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Self {
        HistogramVec {
            name,
            help,
            labels,
            buckets,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn observe(&self, label_values: &[&str], d: Duration) {
        self.observe_value(label_values, d.as_secs_f64());
    }

    pub fn observe_value(&self, label_values: &[&str], secs: f64) {
        let mut m = self.values.lock();
        let key: Vec<String> = label_values.iter().map(|s| s.to_string()).collect();
        let h = m.entry(key).or_insert_with(|| HistogramData {
            counts: vec![0; self.buckets.len()],
            ..Default::default()
        });
        if let Some(i) = self.buckets.iter().position(|b| secs <= *b) {
            h.counts[i] += 1;
        }
        h.sum += secs;
        h.count += 1;
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        for (lv, h) in self.values.lock().iter() {
            let mut cum = 0;
            for (b, c) in self.buckets.iter().zip(&h.counts) {
                cum += c;
                sample(
                    out,
                    self.name,
                    "_bucket",
                    self.labels,
                    lv,
                    Some(&fmt_f64(*b)),
                    cum as f64,
                );
            }
            sample(
                out,
                self.name,
                "_bucket",
                self.labels,
                lv,
                Some("+Inf"),
                h.count as f64,
            );
            sample(out, self.name, "_sum", self.labels, lv, None, h.sum);
            sample(
                out,
                self.name,
                "_count",
                self.labels,
                lv,
                None,
                h.count as f64,
            );
        }
    }
}

/// Writes `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample line; `le` adds the bucket label.
pub fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    label_names: &[&str],
    label_values: &[String],
    le: Option<&str>,
    v: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !label_names.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (n, v) in label_names.iter().zip(label_values) {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{n}=\"{}\"", escape(v));
        }
        if let Some(le) = le {
            if !first {
                out.push(',');
            }
            let _ = write!(out, "le=\"{le}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", fmt_f64(v));
}

/// A single gauge or counter sample with no labels.
pub fn single(out: &mut String, name: &str, help: &str, kind: &str, v: f64) {
    header(out, name, help, kind);
    sample(out, name, "", &[], &[], None, v);
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text-format number: integers without a fraction, `+Inf`, `NaN`.
pub fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Every metric family the server updates. One static instance, [`METRICS`].
pub struct Metrics {
    pub http_requests: CounterVec,
    pub http_duration: HistogramVec,
    pub ingest_samples: CounterVec,
    pub ingest_series_created: CounterVec,
    pub ingest_samples_rejected: CounterVec,
    pub ingest_series_rejected: CounterVec,
    pub ingest_requests_refused: CounterVec,
    pub ingest_metadata: CounterVec,
    pub relabel_series_dropped: CounterVec,
    pub relabel_reloads: CounterVec,
    pub query_cancellations: CounterVec,
    pub query_limit_hits: CounterVec,
    pub query_peak_samples: HistogramVec,
    pub read_duration: HistogramVec,
}

pub static METRICS: Metrics = Metrics {
    http_requests: CounterVec::new(
        "tessera_http_requests_total",
        "HTTP requests served, by handler and status code.",
        &["handler", "code"],
    ),
    http_duration: HistogramVec::new(
        "tessera_http_request_duration_seconds",
        "HTTP request latency in seconds, by handler.",
        &["handler"],
    ),
    ingest_samples: CounterVec::new(
        "tessera_ingest_samples_appended_total",
        "Float samples appended to the head (remote write and recording rules).",
        &[],
    ),
    ingest_series_created: CounterVec::new(
        "tessera_ingest_series_created_total",
        "Series created in the head (remote write and recording rules).",
        &[],
    ),
    ingest_samples_rejected: CounterVec::new(
        "tessera_ingest_samples_rejected_total",
        "Samples refused at ingest, by reason (out_of_order, out_of_bounds, too_far_in_future, duplicate_timestamp, invalid_series, \
         native_histogram, exemplar, request_refused).",
        &["reason"],
    ),
    ingest_series_rejected: CounterVec::new(
        "tessera_ingest_series_rejected_total",
        "Series refused at ingest because their labels are invalid, by reason.",
        &["reason"],
    ),
    ingest_requests_refused: CounterVec::new(
        "tessera_ingest_requests_refused_total",
        "Remote-write requests refused as a whole, by reason (body_too_large, \
         decoded_too_large, bad_snappy, bad_protobuf, overloaded, not_ready, storage_error).",
        &["reason"],
    ),
    ingest_metadata: CounterVec::new(
        "tessera_ingest_metadata_received_total",
        "Metric metadata entries received through remote write.",
        &[],
    ),
    relabel_series_dropped: CounterVec::new(
        "tessera_relabel_series_dropped_total",
        "Series dropped by the ingest relabel config, by 0-based rule index.",
        &["rule"],
    ),
    relabel_reloads: CounterVec::new(
        "tessera_relabel_config_reloads_total",
        "Reloads of the ingest relabel config (SIGHUP, POST /-/reload), by result.",
        &["result"],
    ),
    query_cancellations: CounterVec::new(
        "tessera_query_cancellations_total",
        "Queries and metadata calls stopped before finishing, by reason (client: the client \
         went away; timeout: --query.timeout or the request's timeout; budget: a sample or \
         series limit).",
        &["endpoint", "reason"],
    ),
    query_limit_hits: CounterVec::new(
        "tessera_query_limit_hits_total",
        "Reads refused or stopped by a limit, by the flag that sets it.",
        &["flag"],
    ),
    query_peak_samples: HistogramVec::with_buckets(
        "tessera_query_peak_samples",
        "Peak samples held in memory by one PromQL query.",
        &["endpoint"],
        SAMPLE_BUCKETS,
    ),
    read_duration: HistogramVec::new(
        "tessera_read_duration_seconds",
        "Time spent running admitted reads (queries and metadata calls), by endpoint.",
        &["endpoint"],
    ),
};

impl Metrics {
    /// Renders every family (the caller appends state gauges).
    pub fn render(&self, out: &mut String) {
        self.http_requests.render(out);
        self.http_duration.render(out);
        self.ingest_samples.render(out);
        self.ingest_series_created.render(out);
        self.ingest_samples_rejected.render(out);
        self.ingest_series_rejected.render(out);
        self.ingest_requests_refused.render(out);
        self.ingest_metadata.render(out);
        self.relabel_series_dropped.render(out);
        self.relabel_reloads.render(out);
        self.query_cancellations.render(out);
        self.query_limit_hits.render(out);
        self.query_peak_samples.render(out);
        self.read_duration.render(out);
    }

    /// Creates the series dashboards expect at 0 before the first event.
    pub fn touch_defaults(&self) {
        self.ingest_samples.touch(&[]);
        self.ingest_series_created.touch(&[]);
        self.ingest_metadata.touch(&[]);
        for r in [
            "out_of_order",
            "out_of_bounds",
            "duplicate_timestamp",
            "invalid_series",
            "native_histogram",
            "exemplar",
            "too_far_in_future",
        ] {
            self.ingest_samples_rejected.touch(&[r]);
        }
        for r in ["success", "failure"] {
            self.relabel_reloads.touch(&[r]);
        }
        self.ingest_series_rejected.touch(&["invalid_labels"]);
        for f in [
            "query.max-samples",
            "query.timeout",
            "query.max-queue",
            "query.queue-timeout",
            "api.max-series",
        ] {
            self.query_limit_hits.touch(&[f]);
        }
        for e in ["query", "query_range", "series", "labels", "label_values"] {
            for r in ["client", "timeout", "budget"] {
                self.query_cancellations.touch(&[e, r]);
            }
        }
        for r in [
            "body_too_large",
            "decoded_too_large",
            "bad_snappy",
            "bad_protobuf",
            "overloaded",
            "not_ready",
            "storage_error",
        ] {
            self.ingest_requests_refused.touch(&[r]);
        }
    }
}

/// Process metrics from `/proc/self` (Linux), as Prometheus client libraries
/// export them.
pub fn render_process(out: &mut String, start_time_secs: f64) {
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may contain spaces) in ")".
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime = field 14, stime = 15, rss = 24 (1-based in proc(5));
            // `rest` starts at field 3.
            let tick = clock_ticks();
            let num = |i: usize| {
                f.get(i - 3)
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            single(
                out,
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                "counter",
                (num(14) + num(15)) / tick,
            );
            single(
                out,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                "gauge",
                num(24) * page_size(),
            );
            single(
                out,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                "gauge",
                num(23),
            );
        }
    }
    single(
        out,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        "gauge",
        start_time_secs,
    );
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        single(
            out,
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            rd.count() as f64,
        );
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn page_size() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as f64 } else { 4096.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format() {
        let c = CounterVec::new("x_total", "help", &["code"]);
        c.inc(&["204"]);
        c.inc_by(&["204"], 2.0);
        c.inc(&["400"]);
        assert_eq!(c.get(&["204"]), 3.0);
        let mut out = String::new();
        c.render(&mut out);
        assert_eq!(
            out,
            "# HELP x_total help\n# TYPE x_total counter\nx_total{code=\"204\"} 3\nx_total{code=\"400\"} 1\n"
        );
        let h = HistogramVec::new("lat_seconds", "h", &["handler"]);
        h.observe(&["w"], Duration::from_millis(3));
        let mut out = String::new();
        h.render(&mut out);
        assert!(
            out.contains("lat_seconds_bucket{handler=\"w\",le=\"0.0025\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("lat_seconds_bucket{handler=\"w\",le=\"0.005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("lat_seconds_bucket{handler=\"w\",le=\"+Inf\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("lat_seconds_count{handler=\"w\"} 1\n"),
            "{out}"
        );
    }

    #[test]
    fn escapes_label_values() {
        let mut out = String::new();
        sample(
            &mut out,
            "m",
            "",
            &["a"],
            &["x\"y\\z\n".into()],
            None,
            f64::INFINITY,
        );
        assert_eq!(out, "m{a=\"x\\\"y\\\\z\\n\"} +Inf\n");
    }
}
