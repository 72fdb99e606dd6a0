//! Cardinality analysis: which metric names, label names and label pairs
//! hold the series. What an operator asks for when memory explodes; served
//! by `tessera tsdb analyze` and `/api/v1/status/tsdb`.
//!
//! An [`AnalyzeRequest`] can restrict the analysis to the series matching
//! some selectors (then it walks those series, under the read's series
//! budget) and name a focus label whose values are counted too, as
//! VictoriaMetrics' `/api/v1/status/tsdb?match[]=...&focusLabel=...` does.

use std::collections::{HashMap, HashSet};

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
#[derive(Default)]
pub(crate) struct Accumulator {
    pub(crate) series: u64,
    pub(crate) min_time: Option<i64>,
    pub(crate) max_time: Option<i64>,
    by_metric: HashMap<String, u64>,
    values: HashMap<String, HashSet<String>>,
    by_pair: HashMap<(String, String), u64>,
    by_label: HashMap<String, u64>,
    /// The focus label and series per value of it.
    focus: Option<String>,
    by_focus: HashMap<String, u64>,
    pub(crate) churned: u64,
    pub(crate) created: u64,
    pub(crate) removed: u64,
    churn_by_pair: HashMap<(String, String), u64>,
}

impl Accumulator {
    pub(crate) fn new(focus: Option<String>) -> Self {
        Accumulator {
            focus,
            ..Default::default()
        }
    }

    /// Counts `series` series holding the pair `name=value`.
    pub(crate) fn add_pair(&mut self, name: &str, value: &str, series: u64) {
        if name == METRIC_NAME {
            add(&mut self.by_metric, value, series);
        }
        if self.focus.as_deref() == Some(name) {
            add(&mut self.by_focus, value, series);
        }
        add(&mut self.by_label, name, series);
        // Looked up before inserting: most calls (one per series and label
        // when filtered) find what is there and allocate nothing.
        match self.values.get_mut(name) {
            Some(vals) => {
                if !vals.contains(value) {
                    vals.insert(value.to_string());
                }
            }
            None => {
                self.values
                    .insert(name.to_string(), HashSet::from([value.to_string()]));
            }
        }
        *self
            .by_pair
            .entry((name.to_string(), value.to_string()))
            .or_default() += series;
    }

    /// Counts one churned series with these label pairs.
    pub(crate) fn add_churned<'a>(&mut self, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
        self.churned += 1;
        for (n, v) in pairs {
            *self
                .churn_by_pair
                .entry((n.to_string(), v.to_string()))
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
        let sorted = |mut v: Vec<(String, u64)>| {
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(top);
            v
        };
        let label_pairs = self.by_pair.len() as u64;
        Analysis {
            series: self.series,
            label_pairs,
            min_time: self.min_time,
            max_time: self.max_time,
            series_by_metric: sorted(self.by_metric.into_iter().collect()),
            values_by_label: sorted(
                self.values
                    .iter()
                    .map(|(k, v)| (k.clone(), v.len() as u64))
                    .collect(),
            ),
            bytes_by_label: sorted(
                self.values
                    .iter()
                    .map(|(k, v)| (k.clone(), v.iter().map(|s| s.len() as u64).sum()))
                    .collect(),
            ),
            series_by_pair: sorted(
                self.by_pair
                    .into_iter()
                    .map(|((n, v), c)| (format!("{n}={v}"), c))
                    .collect(),
            ),
            series_by_label: sorted(self.by_label.into_iter().collect()),
            series_by_focus_value: sorted(self.by_focus.into_iter().collect()),
            churned_series: self.churned,
            churn_by_pair: sorted(
                self.churn_by_pair
                    .into_iter()
                    .map(|((n, v), c)| (format!("{n}={v}"), c))
                    .collect(),
            ),
            series_created_since_cut: self.created,
            series_removed_by_last_cut: self.removed,
        }
    }
}

fn add(m: &mut HashMap<String, u64>, key: &str, n: u64) {
    match m.get_mut(key) {
        Some(c) => *c += n,
        None => {
            m.insert(key.to_string(), n);
        }
    }
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
