//! The registry: counter and histogram families with fixed label names,
//! keyed by label values, each rendering itself in the text format.

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;

use super::exposition::{fmt_f64, header, sample};

/// A counter family with fixed label names.
pub(crate) struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, f64>>,
}

impl CounterVec {
    pub(crate) const fn new(
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

    pub(crate) fn inc_by(&self, label_values: &[&str], v: f64) {
        debug_assert_eq!(label_values.len(), self.labels.len());
        // One small allocation per update: updates are per request, not per
        // sample, so this never shows in a profile.
        let key: Vec<String> = label_values.iter().map(|s| s.to_string()).collect();
        *self.values.lock().entry(key).or_insert(0.0) += v;
    }

    pub(crate) fn inc(&self, label_values: &[&str]) {
        self.inc_by(label_values, 1.0);
    }

    /// Makes a series visible at 0 before its first event, so `rate()` sees
    /// the first increase.
    pub(crate) fn touch(&self, label_values: &[&str]) {
        self.inc_by(label_values, 0.0);
    }

    pub(crate) fn get(&self, label_values: &[&str]) -> f64 {
        let key: Vec<String> = label_values.iter().map(|s| s.to_string()).collect();
        self.values.lock().get(&key).copied().unwrap_or(0.0)
    }

    pub(super) fn render(&self, out: &mut String) {
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
pub(crate) const SAMPLE_BUCKETS: &[f64] = &[1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 5e7, 1e8];

/// A histogram family with fixed label names and buckets.
pub(crate) struct HistogramVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    values: Mutex<BTreeMap<Vec<String>, HistogramData>>,
}

impl HistogramVec {
    /// A latency histogram (seconds).
    pub(crate) const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self::with_buckets(name, help, labels, BUCKETS)
    }

    pub(crate) const fn with_buckets(
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

    pub(crate) fn observe(&self, label_values: &[&str], d: Duration) {
        self.observe_value(label_values, d.as_secs_f64());
    }

    pub(crate) fn observe_value(&self, label_values: &[&str], secs: f64) {
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

    pub(super) fn render(&self, out: &mut String) {
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
}
