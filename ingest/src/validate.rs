//! Validation of a decoded remote-write request, series by series.
//!
//! [`validate`] turns each `TimeSeries` into a [`Labels`] and its float
//! samples. A series with bad labels is skipped and recorded in
//! [`Rejections`]; the valid rest of the request is kept, as Prometheus does.
//! Exemplars and native histograms are counted and rejected, while the float
//! samples of their series are kept. Sample values pass through bit-exactly
//! (NaN, ±Inf and the staleness marker included) and in the order received:
//! the storage, not this layer, rejects out-of-order samples one by one.

use std::fmt::{self, Write as _};

use tessera_tsdb::labels::{is_valid_label_name, is_valid_metric_name};
use tessera_tsdb::{Label, Labels, LabelsError, METRIC_NAME, Sample};

use crate::remote_write::proto;
use crate::remote_write::v1::DecodeLimits;

/// What a request holds once validated.
#[derive(Debug, Default)]
pub struct ValidatedWrite {
    /// Series with valid labels and at least one float sample, in request
    /// order.
    pub series: Vec<ValidSeries>,
    /// Metric metadata entries, carried through unchanged.
    pub metadata: Vec<proto::MetricMetadata>,
    /// What was dropped and why.
    pub rejected: Rejections,
}

impl ValidatedWrite {
    /// Number of float samples kept.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

/// One series ready to append.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidSeries {
    pub labels: Labels,
    /// In the order the client sent them; not sorted.
    pub samples: Vec<Sample>,
}

/// Why one series was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    #[error(
        "series has {count} labels, over the limit of {limit}; \
         drop labels with write_relabel_configs or raise --ingest.max-labels-per-series"
    )]
    TooManyLabels { count: usize, limit: usize },
    #[error(
        "label name {prefix:?}... is {len} bytes, over the limit of {limit}; \
         drop it with write_relabel_configs or raise --ingest.max-label-name-bytes"
    )]
    LabelNameTooLong {
        prefix: String,
        len: usize,
        limit: usize,
    },
    #[error(
        "value of label {name:?} is {len} bytes, over the limit of {limit}; \
         shorten it with write_relabel_configs or raise --ingest.max-label-value-bytes"
    )]
    LabelValueTooLong {
        name: String,
        len: usize,
        limit: usize,
    },
    #[error("label name {name:?} is not valid UTF-8 (bad byte at offset {offset})")]
    NonUtf8Name { name: String, offset: usize },
    #[error("value of label {name:?} is not valid UTF-8 (bad byte at offset {offset})")]
    NonUtf8Value { name: String, offset: usize },
    #[error(transparent)]
    Labels(#[from] LabelsError),
    #[error(
        "series has {count} label references, an odd number: remote write 2.0 labels_refs \
         holds (name, value) pairs"
    )]
    OddLabelRefs { count: usize },
    #[error("{what} reference {index} is past the end of the symbols table ({len} entries)")]
    SymbolOutOfRange {
        what: &'static str,
        index: u32,
        len: usize,
    },
}

/// Reason text for exemplars, shown in [`Rejections::summary`].
pub(crate) const EXEMPLARS_REASON: &str =
    "exemplars are not supported yet; set send_exemplars: false in remote_write";
/// Reason text for native histograms, shown in [`Rejections::summary`].
pub(crate) const HISTOGRAMS_REASON: &str = "native histograms are not supported yet; \
     set send_native_histograms: false in remote_write";

/// How many example messages a [`Rejections`] keeps: enough to diagnose, few
/// enough for an HTTP body and one log line.
pub const MAX_EXAMPLES: usize = 3;

/// Longest rendering of a rejected series' labels in an example message.
const MAX_RENDERED_SERIES: usize = 256;
/// Longest rendering of one label value inside that.
const MAX_RENDERED_VALUE: usize = 64;

/// Counts of what was dropped from a request, per reason, plus the first few
/// messages naming the offending series.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rejections {
    /// Series skipped because of their labels.
    pub invalid_series: u64,
    /// Float samples dropped with those series.
    pub invalid_series_samples: u64,
    /// Exemplars dropped (unsupported).
    pub exemplars: u64,
    /// Native histogram samples dropped (unsupported).
    pub histograms: u64,
    /// Samples dropped for a timestamp too far past the wall clock
    /// (`DecodeLimits::max_future_ms`).
    pub future_samples: u64,
    /// The newest timestamp accepted when `future_samples` were dropped.
    pub future_limit_ms: i64,
    examples: Vec<String>,
}

impl Rejections {
    /// True when nothing was dropped.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Rejected items of every kind: series, exemplars and histogram samples.
    pub fn total(&self) -> u64 {
        self.invalid_series + self.exemplars + self.histograms + self.future_samples
    }

    /// The first [`MAX_EXAMPLES`] invalid-series messages, in request order.
    pub fn examples(&self) -> &[String] {
        &self.examples
    }

    /// Records one invalid series.
    pub fn record_invalid_series(&mut self, samples: usize, message: impl FnOnce() -> String) {
        self.invalid_series += 1;
        self.invalid_series_samples += samples as u64;
        // Only the first few are rendered: formatting labels costs far more
        // than counting, and a flood of bad series must stay cheap.
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(message());
        }
    }

    /// Adds another request's (or shard's) rejections to these.
    pub fn merge(&mut self, other: Rejections) {
        self.invalid_series += other.invalid_series;
        self.invalid_series_samples += other.invalid_series_samples;
        self.exemplars += other.exemplars;
        self.histograms += other.histograms;
        self.future_samples += other.future_samples;
        self.future_limit_ms = self.future_limit_ms.max(other.future_limit_ms);
        let room = MAX_EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }

    /// One line for the HTTP 400 body and the log, e.g. `rejected 2 series
    /// (2 samples) with invalid labels; 1 exemplar: exemplars are not
    /// supported yet...; examples: ...`. Empty when nothing was rejected.
    pub fn summary(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Rejections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if self.invalid_series > 0 {
            write!(
                f,
                "rejected {} series ({} samples) with invalid labels",
                self.invalid_series, self.invalid_series_samples
            )?;
            sep = "; ";
        }
        if self.exemplars > 0 {
            write!(
                f,
                "{sep}rejected {} exemplars: {EXEMPLARS_REASON}",
                self.exemplars
            )?;
            sep = "; ";
        }
        if self.histograms > 0 {
            write!(
                f,
                "{sep}rejected {} native histogram samples: {HISTOGRAMS_REASON}",
                self.histograms
            )?;
            sep = "; ";
        }
        if self.future_samples > 0 {
            write!(
                f,
                "{sep}rejected {} samples with a timestamp after {} (too far in the future: \
                 check the sender's clock, or raise --ingest.max-future)",
                self.future_samples, self.future_limit_ms
            )?;
        }
        if !self.examples.is_empty() {
            f.write_str("; examples: ")?;
            f.write_str(&self.examples.join("; "))?;
        }
        Ok(())
    }
}

/// Validates a decoded request. Never fails as a whole: see the module doc.
pub fn validate(req: proto::WriteRequest, limits: &DecodeLimits) -> ValidatedWrite {
    let n = req.timeseries.len();
    validate_series_of(n, req.timeseries, req.metadata, limits)
}

/// [`validate`] over series as they come (about `n` of them), so remote
/// write 2.0 can validate each series as soon as its references are
/// resolved, without collecting a 1.0 request first.
pub(crate) fn validate_series_of(
    n: usize,
    series: impl IntoIterator<Item = proto::TimeSeries>,
    metadata: Vec<proto::MetricMetadata>,
    limits: &DecodeLimits,
) -> ValidatedWrite {
    let mut out = ValidatedWrite {
        series: Vec::with_capacity(n),
        metadata,
        rejected: Rejections::default(),
    };
    let max_t = limits.max_future_ms.map(|f| now_ms().saturating_add(f));
    for ts in series {
        validate_series(ts, limits, max_t, &mut out);
    }
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn validate_series(
    mut ts: proto::TimeSeries,
    limits: &DecodeLimits,
    max_t: Option<i64>,
    out: &mut ValidatedWrite,
) {
    out.rejected.exemplars += ts.exemplars.len() as u64;
    out.rejected.histograms += ts.histograms.len() as u64;

    // Every check runs on the raw labels by reference first, so a rejected
    // series can still be rendered in the error message; only a series known
    // to be good has its bytes moved into Strings (no copy).
    if let Err(e) = check_raw_labels(&mut ts.labels, limits) {
        out.rejected
            .record_invalid_series(ts.samples.len(), || example(&e, &ts.labels));
        return;
    }
    let mut labels = Vec::with_capacity(ts.labels.len());
    for l in ts.labels {
        // Cannot fail: check_raw_labels verified UTF-8 already.
        let (Ok(name), Ok(value)) = (String::from_utf8(l.name), String::from_utf8(l.value)) else {
            out.rejected.record_invalid_series(ts.samples.len(), || {
                "label is not valid UTF-8 (series not shown)".to_string()
            });
            return;
        };
        labels.push(Label { name, value });
    }
    // The storage's own constructor stays the authority on what a series is;
    // check_raw_labels mirrors it only to name the series in messages.
    let labels = match Labels::validated(labels) {
        Ok(l) => l,
        Err(e) => {
            out.rejected
                .record_invalid_series(ts.samples.len(), || format!("{e} (series not shown)"));
            return;
        }
    };
    // A series with only histograms or exemplars has nothing to append.
    if ts.samples.is_empty() {
        return;
    }
    let samples: Vec<Sample> = match max_t {
        Some(max_t) if ts.samples.iter().any(|s| s.timestamp > max_t) => {
            let before = ts.samples.len();
            let kept: Vec<Sample> = ts
                .samples
                .iter()
                .filter(|s| s.timestamp <= max_t)
                .map(|s| Sample::new(s.timestamp, s.value))
                .collect();
            out.rejected.future_samples += (before - kept.len()) as u64;
            out.rejected.future_limit_ms = max_t;
            kept
        }
        _ => ts
            .samples
            .iter()
            .map(|s| Sample::new(s.timestamp, s.value))
            .collect(),
    };
    if !samples.is_empty() {
        out.series.push(ValidSeries { labels, samples });
    }
}

/// Checks remote write's byte-level limits (count, lengths, UTF-8), then the
/// rules of [`Labels::validated`] in its order, so its messages are the same.
/// Sorts `labels` by name in place, which `Labels::validated` would do anyway.
fn check_raw_labels(labels: &mut [proto::Label], limits: &DecodeLimits) -> Result<(), SeriesError> {
    // First, and before touching any label: a series with 100k labels must
    // cost no more than this comparison.
    if labels.len() > limits.max_labels_per_series {
        return Err(SeriesError::TooManyLabels {
            count: labels.len(),
            limit: limits.max_labels_per_series,
        });
    }
    for l in labels.iter() {
        if l.name.len() > limits.max_label_name_bytes {
            return Err(SeriesError::LabelNameTooLong {
                prefix: short(&l.name),
                len: l.name.len(),
                limit: limits.max_label_name_bytes,
            });
        }
        if let Err(e) = std::str::from_utf8(&l.name) {
            return Err(SeriesError::NonUtf8Name {
                name: short(&l.name),
                offset: e.valid_up_to(),
            });
        }
        if l.value.len() > limits.max_label_value_bytes {
            return Err(SeriesError::LabelValueTooLong {
                name: short(&l.name),
                len: l.value.len(),
                limit: limits.max_label_value_bytes,
            });
        }
        if let Err(e) = std::str::from_utf8(&l.value) {
            return Err(SeriesError::NonUtf8Value {
                name: short(&l.name),
                offset: e.valid_up_to(),
            });
        }
    }
    // Byte order equals String order, so this is the order Labels keeps.
    labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    for w in labels.windows(2) {
        if w[0].name == w[1].name {
            return Err(LabelsError::Duplicate(short(&w[0].name)).into());
        }
    }
    let mut has_name = false;
    for l in labels.iter() {
        // UTF-8 was checked above, so the empty-string fallback is never
        // taken; it only avoids an unwrap.
        let name = std::str::from_utf8(&l.name).unwrap_or_default();
        if name == METRIC_NAME {
            let value = std::str::from_utf8(&l.value).unwrap_or_default();
            if !is_valid_metric_name(value) {
                return Err(LabelsError::InvalidMetricName(short(&l.value)).into());
            }
            has_name = true;
        } else if !is_valid_label_name(name) {
            return Err(LabelsError::InvalidName(short(&l.name)).into());
        }
        if l.value.is_empty() {
            return Err(LabelsError::EmptyValue(short(&l.name)).into());
        }
    }
    if !has_name {
        return Err(LabelsError::MissingMetricName.into());
    }
    Ok(())
}

/// `<reason> in series <rendering>`.
fn example(e: &SeriesError, labels: &[proto::Label]) -> String {
    let mut s = e.to_string();
    s.push_str(" in series ");
    render_raw_labels(labels, &mut s);
    s
}

/// Renders raw labels as `name{a="b", ...}`, at most about
/// [`MAX_RENDERED_SERIES`] bytes, values cut at [`MAX_RENDERED_VALUE`].
fn render_raw_labels(labels: &[proto::Label], out: &mut String) {
    let start = out.len();
    if let Some(n) = labels.iter().find(|l| l.name == METRIC_NAME.as_bytes()) {
        out.push_str(&lossy_prefix(&n.value, MAX_RENDERED_VALUE));
    }
    out.push('{');
    let mut first = true;
    let others = labels.iter().filter(|l| l.name != METRIC_NAME.as_bytes());
    let total = others.clone().count();
    for (i, l) in others.enumerate() {
        if out.len() - start > MAX_RENDERED_SERIES {
            let _ = write!(out, ", ... {} more labels", total - i);
            break;
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        let _ = write!(
            out,
            "{}={:?}",
            lossy_prefix(&l.name, MAX_RENDERED_VALUE),
            lossy_prefix(&l.value, MAX_RENDERED_VALUE)
        );
    }
    out.push('}');
}

/// A name or value as it appears in a message: cut, so a 4 KiB bad value
/// cannot make the HTTP answer and the log line 4 KiB longer.
fn short(b: &[u8]) -> String {
    lossy_prefix(b, MAX_RENDERED_VALUE)
}

/// The first `max` bytes of `b` as text (cut on a char boundary), with
/// `...` appended when cut.
fn lossy_prefix(b: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(max)]);
    if b.len() <= max {
        return s.into_owned();
    }
    // Cutting bytes may split a char; lossy turned its tail into U+FFFD,
    // which is acceptable in a message that is marked as cut.
    format!("{s}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&[u8], &[u8])]) -> Vec<proto::Label> {
        pairs
            .iter()
            .map(|(n, v)| proto::Label {
                name: n.to_vec(),
                value: v.to_vec(),
            })
            .collect()
    }

    #[test]
    fn raw_label_check_agrees_with_labels_validated() {
        // Every case must give the same verdict as the storage's constructor,
        // or the message naming the series would describe the wrong problem.
        let f = |pairs: &[(&[u8], &[u8])]| {
            let mut r = raw(pairs);
            let ours = check_raw_labels(&mut r, &DecodeLimits::default());
            let theirs = Labels::validated(
                pairs
                    .iter()
                    .map(|(n, v)| {
                        Label::new(
                            std::str::from_utf8(n).unwrap(),
                            std::str::from_utf8(v).unwrap(),
                        )
                    })
                    .collect(),
            );
            assert_eq!(
                ours,
                theirs.map(|_| ()).map_err(SeriesError::from),
                "{pairs:?}"
            );
        };
        f(&[(b"__name__", b"up"), (b"job", b"x")]);
        f(&[(b"job", b"x")]);
        f(&[(b"__name__", b"up"), (b"1job", b"x")]);
        f(&[(b"__name__", b"up"), (b"job", b"x"), (b"job", b"y")]);
        f(&[(b"__name__", b"up"), (b"job", b"")]);
        f(&[(b"__name__", b"1up")]);
        f(&[(b"__name__", b"")]);
        f(&[(b"__name__", b"a:b_c"), (b"zz", b"1"), (b"_a", b"2")]);
        f(&[(b"__name__", b"up"), (b"", b"x")]);
        f(&[(b"__name__", b"up"), (b"a-b", b"x")]);
        f(&[]);
    }

    #[test]
    fn rendering_is_bounded_for_huge_series() {
        let mut labels = raw(&[(b"__name__", b"up")]);
        for i in 0..10_000 {
            labels.push(proto::Label {
                name: format!("l{i}").into_bytes(),
                value: vec![b'v'; 1000],
            });
        }
        let mut s = String::new();
        render_raw_labels(&labels, &mut s);
        assert!(s.starts_with("up{l0=\"vvv"), "{s}");
        assert!(s.len() < MAX_RENDERED_SERIES + 200, "{} bytes", s.len());
        assert!(s.ends_with("more labels}"), "{s}");
    }

    #[test]
    fn lossy_prefix_cuts_and_marks() {
        let f = |b: &[u8], max: usize, want: &str| assert_eq!(lossy_prefix(b, max), want);
        f(b"abc", 3, "abc");
        f(b"abcd", 3, "abc...");
        f(b"a\xffb", 8, "a\u{fffd}b");
        f("é".as_bytes(), 1, "\u{fffd}...");
    }

    #[test]
    fn merge_adds_counts_and_caps_examples() {
        let mut a = Rejections::default();
        a.record_invalid_series(2, || "a1".into());
        a.record_invalid_series(3, || "a2".into());
        a.exemplars = 1;
        let mut b = Rejections::default();
        b.record_invalid_series(1, || "b1".into());
        b.record_invalid_series(1, || "b2".into());
        b.histograms = 4;
        a.merge(b);
        assert_eq!(a.invalid_series, 4);
        assert_eq!(a.invalid_series_samples, 7);
        assert_eq!(a.total(), 4 + 1 + 4);
        assert_eq!(a.examples(), ["a1", "a2", "b1"]);
    }

    #[test]
    fn samples_too_far_in_the_future_are_refused_and_the_rest_kept() {
        let now = now_ms();
        let series = |ts: &[i64]| proto::TimeSeries {
            labels: raw(&[(b"__name__", b"up")]),
            samples: ts
                .iter()
                .map(|&t| proto::Sample {
                    timestamp: t,
                    value: 1.0,
                })
                .collect(),
            ..Default::default()
        };
        let req = proto::WriteRequest {
            timeseries: vec![
                series(&[now - 1000, now + 60_000, now + 100 * 365 * 86_400_000]),
                series(&[now + 7_200_000]),
            ],
            ..Default::default()
        };
        let limits = DecodeLimits {
            max_future_ms: Some(600_000),
            ..DecodeLimits::default()
        };
        let v = validate(req.clone(), &limits);
        assert_eq!(v.rejected.future_samples, 2);
        assert_eq!(v.series.len(), 1, "a series left with no sample is dropped");
        assert_eq!(v.series[0].samples.len(), 2);
        assert!(v.rejected.summary().contains("too far in the future"));
        assert!(!v.rejected.is_empty(), "the client gets a 400");
        // Without the limit everything passes (offline tools, tests).
        assert_eq!(validate(req, &DecodeLimits::default()).sample_count(), 4);
    }

    #[test]
    fn summary_names_every_reason_and_is_empty_when_clean() {
        assert_eq!(Rejections::default().summary(), "");
        assert!(Rejections::default().is_empty());
        let mut r = Rejections::default();
        r.record_invalid_series(5, || "bad one".into());
        r.exemplars = 2;
        r.histograms = 3;
        assert_eq!(
            r.summary(),
            format!(
                "rejected 1 series (5 samples) with invalid labels; \
                 rejected 2 exemplars: {EXEMPLARS_REASON}; \
                 rejected 3 native histogram samples: {HISTOGRAMS_REASON}; \
                 examples: bad one"
            )
        );
    }
}
