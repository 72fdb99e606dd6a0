//! Cardinality analysis: which metric names, label names and label pairs
//! hold the series. What an operator asks for when memory explodes; served
//! by `tessera tsdb analyze` and `/api/v1/status/tsdb`.
//!
//! An [`AnalyzeRequest`] can restrict the analysis to the series matching
//! some selectors (then it walks those series, under the read's series
//! budget) and name a focus label whose values are counted too, as
//! VictoriaMetrics' `/api/v1/status/tsdb?match[]=...&focusLabel=...` does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::{METRIC_NAME, Matcher};

/// What to analyze: the top-N size, the series (alternatives of matcher
/// conjunctions; none means every series of the head) and a focus label.
#[derive(Clone, Debug, Default)]
pub struct AnalyzeRequest {
    pub top: usize,
    pub matchers: Vec<Vec<Matcher>>,
    pub focus_label: Option<String>,
}

/// Cardinality figures across all shards, each list sorted descending and
/// cut to the requested top N.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    pub series: u64,
    pub label_pairs: u64,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// Series per metric name.
    pub series_by_metric: Vec<(String, u64)>,
    /// Distinct values per label name.
    pub values_by_label: Vec<(String, u64)>,
    /// Bytes of distinct values per label name (the memory a label costs).
    pub bytes_by_label: Vec<(String, u64)>,
    /// Series per `name=value` pair.
    pub series_by_pair: Vec<(String, u64)>,
    /// Series per label name (how many series carry it).
    pub series_by_label: Vec<(String, u64)>,
    /// Series per value of the request's focus label (empty without one).
    pub series_by_focus_value: Vec<(String, u64)>,
    /// Series that started or stopped inside the head's time range (more
    /// than [`CHURN_SLACK_MS`] after its start or before its end): the
    /// churn a pod or job label causes.
    pub churned_series: u64,
    /// Churned series per `name=value` pair, as `promtool tsdb analyze`'s
    /// "label pairs most involved in churning".
    pub churn_by_pair: Vec<(String, u64)>,
    /// Series the heads created since their last cut (WAL replay's
    /// included), and removed by their last cut: head-wide, not filtered
    /// by the request's matchers.
    pub series_created_since_cut: u64,
    pub series_removed_by_last_cut: u64,
}

/// How far inside the head's time range a series must start or end to
/// count as churn: a few missed scrapes are not churn.
pub const CHURN_SLACK_MS: i64 = 5 * 60_000;

/// Accumulates shard heads into one [`Analysis`].
///
/// Keys are the heads' interned `Arc<str>`s, not copies: a table entry
/// costs a pointer pair and a count, so analysing a head with a million
/// distinct pairs (UUIDs, pod names) does not copy every label string, and
/// counting a churned series allocates nothing per label. Strings are made
/// only for the top N that are returned.
#[derive(Default)]
pub(crate) struct Accumulator {
    pub(crate) series: u64,
    pub(crate) min_time: Option<i64>,
    pub(crate) max_time: Option<i64>,
    by_metric: HashMap<Arc<str>, u64>,
    values: HashMap<Arc<str>, HashSet<Arc<str>>>,
    by_pair: HashMap<Pair, u64>,
    by_label: HashMap<Arc<str>, u64>,
    /// The focus label and series per value of it.
    focus: Option<String>,
    by_focus: HashMap<Arc<str>, u64>,
    pub(crate) churned: u64,
    pub(crate) created: u64,
    pub(crate) removed: u64,
    churn_by_pair: HashMap<Pair, u64>,
}

/// A label pair as the heads intern it.
type Pair = (Arc<str>, Arc<str>);

impl Accumulator {
    pub(crate) fn new(focus: Option<String>) -> Self {
        Accumulator {
            focus,
            ..Default::default()
        }
    }

    /// Counts `series` series holding the pair `name=value`.
    pub(crate) fn add_pair(&mut self, name: &Arc<str>, value: &Arc<str>, series: u64) {
        if &**name == METRIC_NAME {
            *self.by_metric.entry(value.clone()).or_default() += series;
        }
        if self.focus.as_deref() == Some(&**name) {
            *self.by_focus.entry(value.clone()).or_default() += series;
        }
        *self.by_label.entry(name.clone()).or_default() += series;
        self.values
            .entry(name.clone())
            .or_default()
            .insert(value.clone());
        *self
            .by_pair
            .entry((name.clone(), value.clone()))
            .or_default() += series;
    }

    /// Counts one churned series with these label pairs.
    pub(crate) fn add_churned<'a>(
        &mut self,
        pairs: impl Iterator<Item = (&'a Arc<str>, &'a Arc<str>)>,
    ) {
        self.churned += 1;
        for (n, v) in pairs {
            *self
                .churn_by_pair
                .entry((n.clone(), v.clone()))
                .or_default() += 1;
        }
    }

    pub(crate) fn add_bounds(&mut self, b: Option<(i64, i64)>) {
        if let Some((lo, hi)) = b {
            self.min_time = Some(self.min_time.map_or(lo, |m| m.min(lo)));
            self.max_time = Some(self.max_time.map_or(hi, |m| m.max(hi)));
        }
    }

    pub(crate) fn finish(self, top: usize) -> Analysis {
        let label_pairs = self.by_pair.len() as u64;
        let values_by_label = top_n(
            self.values.iter().map(|(k, v)| (k.clone(), v.len() as u64)),
            top,
        );
        let bytes_by_label = top_n(
            self.values
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().map(|s| s.len() as u64).sum())),
            top,
        );
        Analysis {
            series: self.series,
            label_pairs,
            min_time: self.min_time,
            max_time: self.max_time,
            series_by_metric: top_n(self.by_metric, top),
            values_by_label,
            bytes_by_label,
            series_by_pair: top_pairs(self.by_pair, top),
            series_by_label: top_n(self.by_label, top),
            series_by_focus_value: top_n(self.by_focus, top),
            churned_series: self.churned,
            churn_by_pair: top_pairs(self.churn_by_pair, top),
            series_created_since_cut: self.created,
            series_removed_by_last_cut: self.removed,
        }
    }
}

/// The `top` largest counts, ties by name, as owned strings.
fn top_n(counts: impl IntoIterator<Item = (Arc<str>, u64)>, top: usize) -> Vec<(String, u64)> {
    let best = keep_top(counts, top, |a, b| {
        b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
    });
    best.into_iter().map(|(k, c)| (k.to_string(), c)).collect()
}

/// The `top` largest pair counts as `name=value`, ties in the order of
/// that text.
fn top_pairs(counts: HashMap<Pair, u64>, top: usize) -> Vec<(String, u64)> {
    let text = |p: &Pair| {
        p.0.bytes()
            .chain(std::iter::once(b'='))
            .chain(p.1.bytes())
            .collect::<Vec<u8>>()
    };
    let best = keep_top(counts, top, |a, b| {
        b.1.cmp(&a.1).then_with(|| {
            let (x, y) = (&a.0, &b.0);
            // Most ties differ in the value: compare the text only else.
            if x.0 == y.0 {
                x.1.cmp(&y.1)
            } else {
                text(x).cmp(&text(y))
            }
        })
    });
    best.into_iter()
        .map(|((n, val), c)| (format!("{n}={val}"), c))
        .collect()
}

/// The first `top` items in `order`, sorted, holding at most `2 * top`
/// at a time: the tables are consumed without being copied into one big
/// list for sorting.
fn keep_top<T>(
    items: impl IntoIterator<Item = T>,
    top: usize,
    order: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> Vec<T> {
    let mut best: Vec<T> = Vec::with_capacity(2 * top + 1);
    for it in items {
        best.push(it);
        if best.len() > 2 * top {
            best.sort_by(&order);
            best.truncate(top);
        }
    }
    best.sort_by(&order);
    best.truncate(top);
    best
}

#[cfg(test)]
mod tests {
    use crate::{Db, Labels, Sample};

    #[test]
    fn finds_the_heaviest_names_and_pairs() {
        let db = Db::in_memory(4);
        for host in 0..3 {
            for gpu in 0..8 {
                let ls = Labels::from_pairs([
                    ("__name__", "DCGM_FI_DEV_GPU_UTIL".to_string()),
                    ("Hostname", format!("n{host}")),
                    ("gpu", gpu.to_string()),
                ]);
                db.append(&ls, &[Sample::new(1000, 1.0)]).unwrap();
            }
            let ls = Labels::from_pairs([
                ("__name__", "node_load1".to_string()),
                ("Hostname", format!("n{host}")),
            ]);
            db.append(&ls, &[Sample::new(2000, 1.0)]).unwrap();
        }
        let a = db.analyze(2);
        assert_eq!(a.series, 27);
        assert_eq!(
            a.series_by_metric,
            vec![
                ("DCGM_FI_DEV_GPU_UTIL".into(), 24),
                ("node_load1".into(), 3)
            ]
        );
        assert_eq!(
            a.values_by_label,
            vec![("gpu".into(), 8), ("Hostname".into(), 3)]
        );
        assert_eq!(
            a.series_by_pair[0],
            ("__name__=DCGM_FI_DEV_GPU_UTIL".into(), 24)
        );
        assert_eq!((a.min_time, a.max_time), (Some(1000), Some(2000)));
        assert_eq!(a.churned_series, 0, "all within the slack");
    }

    #[test]
    fn counts_series_that_start_or_stop_inside_the_head_as_churn() {
        let db = Db::in_memory(2);
        let min = 60_000;
        let ls = |pod: &str| {
            Labels::from_pairs([("__name__", "gpu_util"), ("pod", pod), ("job", "dcgm")])
        };
        // A steady series over an hour, one that ended after 10 min and
        // one that started 30 min in.
        for t in (0..60).map(|i| i * min) {
            db.append(&ls("steady"), &[Sample::new(t, 1.0)]).unwrap();
            if t <= 10 * min {
                db.append(&ls("old"), &[Sample::new(t, 1.0)]).unwrap();
            }
            if t >= 30 * min {
                db.append(&ls("new"), &[Sample::new(t, 1.0)]).unwrap();
            }
        }
        let a = db.analyze(10);
        assert_eq!(a.churned_series, 2);
        assert_eq!(a.churn_by_pair[0], ("__name__=gpu_util".into(), 2));
        assert!(a.churn_by_pair.contains(&("pod=new".into(), 1)));
        assert!(!a.churn_by_pair.iter().any(|(p, _)| p == "pod=steady"));
    }

    #[test]
    fn restricts_to_matching_series_and_counts_the_focus_label() {
        use super::AnalyzeRequest;
        use crate::{Matcher, ReadControl, ReadError};
        let db = Db::in_memory(3);
        for host in 0..4 {
            for gpu in 0..2 {
                let ls = Labels::from_pairs([
                    ("__name__", "DCGM_FI_DEV_GPU_TEMP".to_string()),
                    ("Hostname", format!("n{host}")),
                    ("gpu", gpu.to_string()),
                ]);
                db.append(&ls, &[Sample::new(1000, 1.0)]).unwrap();
            }
            let ls = Labels::from_pairs([("__name__", "up"), ("instance", &format!("n{host}"))]);
            db.append(&ls, &[Sample::new(1000, 1.0)]).unwrap();
        }
        let req = AnalyzeRequest {
            top: 10,
            matchers: vec![vec![Matcher::equal("__name__", "DCGM_FI_DEV_GPU_TEMP")]],
            focus_label: Some("gpu".into()),
        };
        let a = db.analyze_with(&req, &ReadControl::unlimited()).unwrap();
        assert_eq!(a.series, 8);
        assert_eq!(a.series_by_metric, vec![("DCGM_FI_DEV_GPU_TEMP".into(), 8)]);
        assert_eq!(
            a.series_by_focus_value,
            vec![("0".into(), 4), ("1".into(), 4)]
        );
        assert!(!a.values_by_label.iter().any(|(n, _)| n == "instance"));
        assert_eq!(a.series_by_label[0], ("Hostname".into(), 8));
        // Every series of the head was created since the (absent) last cut.
        assert_eq!(a.series_created_since_cut, 12);

        // The selected series count against the read's budget.
        let ctl = ReadControl::new(5, 0, &|| false);
        assert!(matches!(
            db.analyze_with(&req, &ctl),
            Err(ReadError::TooManySeries { limit: 5 })
        ));
        // A stopped read stops.
        let stopped = ReadControl::new(0, 0, &|| true);
        assert!(matches!(
            db.analyze_with(&req, &stopped),
            Err(ReadError::Stopped)
        ));
    }
}
