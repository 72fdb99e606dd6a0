//! Metric metadata (type, help, unit) received through remote write, served
//! by `/api/v1/metadata`.
//!
//! Kept in memory only, as Prometheus keeps scrape metadata: it is small
//! (one entry per metric family) and resent by every client periodically.
//! Bounded so a hostile client cannot grow it without limit.

use std::collections::BTreeMap;

use parking_lot::RwLock;

use crate::remote_write::proto::MetricMetadata;

/// One distinct metadata entry of a metric family.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetadataEntry {
    pub metric_type: String,
    pub help: String,
    pub unit: String,
}

/// Most metric families remembered; later new families are ignored.
pub(crate) const MAX_FAMILIES: usize = 200_000;
/// Most distinct entries per family (clients disagreeing on help texts).
pub(crate) const MAX_ENTRIES_PER_FAMILY: usize = 8;

#[derive(Default)]
pub struct MetadataStore {
    families: RwLock<BTreeMap<String, Vec<MetadataEntry>>>,
}

impl MetadataStore {
    /// Records the entries of one request; returns how many were new.
    pub fn record(&self, items: &[MetricMetadata]) -> usize {
        if items.is_empty() {
            return 0;
        }
        let mut added = 0;
        let mut fams = self.families.write();
        for m in items {
            if m.metric_family_name.is_empty() {
                continue;
            }
            let e = MetadataEntry {
                metric_type: m.type_name().to_string(),
                help: m.help.clone(),
                unit: m.unit.clone(),
            };
            let full = fams.len() >= MAX_FAMILIES;
            let Some(list) = (match fams.get_mut(&m.metric_family_name) {
                Some(l) => Some(l),
                None if full => None,
                None => Some(fams.entry(m.metric_family_name.clone()).or_default()),
            }) else {
                continue;
            };
            if !list.contains(&e) && list.len() < MAX_ENTRIES_PER_FAMILY {
                list.push(e);
                added += 1;
            }
        }
        added
    }

    /// Families (optionally only `metric`), at most `limit` families (0 = all)
    /// and `limit_per_metric` entries each (0 = all), sorted by name.
    pub fn query(
        &self,
        metric: Option<&str>,
        limit: usize,
        limit_per_metric: usize,
    ) -> Vec<(String, Vec<MetadataEntry>)> {
        let fams = self.families.read();
        let take = |l: &Vec<MetadataEntry>| -> Vec<MetadataEntry> {
            let n = if limit_per_metric == 0 {
                l.len()
            } else {
                limit_per_metric
            };
            l.iter().take(n).cloned().collect()
        };
        match metric {
            Some(name) => fams
                .get(name)
                .map(|l| vec![(name.to_string(), take(l))])
                .unwrap_or_default(),
            None => fams
                .iter()
                .take(if limit == 0 { usize::MAX } else { limit })
                .map(|(k, l)| (k.clone(), take(l)))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.families.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(name: &str, t: i32, help: &str) -> MetricMetadata {
        MetricMetadata {
            r#type: t,
            metric_family_name: name.into(),
            help: help.into(),
            unit: String::new(),
        }
    }

    #[test]
    fn records_distinct_entries_and_queries_with_limits() {
        let s = MetadataStore::default();
        assert_eq!(
            s.record(&[
                md("up", 2, "up?"),
                md("up", 2, "up?"),
                md("a_total", 1, "a")
            ]),
            2
        );
        assert_eq!(s.record(&[md("up", 2, "other help")]), 1);
        assert_eq!(s.record(&[md("", 2, "no name")]), 0);
        let all = s.query(None, 0, 0);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0, "a_total");
        assert_eq!(all[0].1[0].metric_type, "counter");
        assert_eq!(s.query(None, 1, 0).len(), 1);
        assert_eq!(s.query(Some("up"), 0, 1)[0].1.len(), 1);
        assert_eq!(s.query(Some("up"), 0, 0)[0].1.len(), 2);
        assert!(s.query(Some("nope"), 0, 0).is_empty());
    }
}
