//! The inverted index of one shard: label pair → roaring bitmap of series ids.
//!
//! Values are kept sorted per label name so label-value listings come out in
//! order and a regex with a literal prefix (`DCGM_FI_.*`) scans only the
//! values that share the prefix.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::matcher::{MatchOp, Matcher};

#[derive(Default)]
pub(crate) struct Postings {
    /// label name → (label value → series ids)
    by_name: HashMap<Arc<str>, BTreeMap<Arc<str>, RoaringBitmap>>,
    all: RoaringBitmap,
}

impl Postings {
    pub(crate) fn add(&mut self, id: u32, name: &Arc<str>, value: &Arc<str>) {
        self.by_name
            .entry(name.clone())
            .or_default()
            .entry(value.clone())
            .or_default()
            .insert(id);
    }

    pub(crate) fn add_series(&mut self, id: u32) {
        self.all.insert(id);
    }

    /// Every live series id.
    pub(crate) fn all(&self) -> &RoaringBitmap {
        &self.all
    }

    /// Takes series `id` out of one pair's postings, dropping the value
    /// (and the name) when no series is left under it.
    pub(crate) fn remove(&mut self, id: u32, name: &str, value: &str) {
        let Some(values) = self.by_name.get_mut(name) else {
            return;
        };
        if let Some(ids) = values.get_mut(value) {
            ids.remove(id);
            if ids.is_empty() {
                values.remove(value);
            }
        }
        if values.is_empty() {
            self.by_name.remove(name);
        }
    }

    pub(crate) fn remove_series(&mut self, id: u32) {
        self.all.remove(id);
    }

    /// Label names present in the shard (unordered).
    pub(crate) fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.by_name.keys()
    }

    /// Sorted values of one label name with their postings.
    pub(crate) fn values(&self, name: &str) -> Option<&BTreeMap<Arc<str>, RoaringBitmap>> {
        self.by_name.get(name)
    }

    /// Series ids whose value for the matcher's label satisfies it (series
    /// without the label count as having the empty value).
    pub(crate) fn select(&self, m: &Matcher) -> RoaringBitmap {
        if m.matches_empty() {
            // Everything except the series whose (non-empty) value fails.
            let mut out = self.all.clone();
            if let Some(values) = self.by_name.get(m.name.as_str()) {
                for (v, ids) in values {
                    if !m.matches(v) {
                        out -= ids;
                    }
                }
            }
            return out;
        }
        let Some(values) = self.by_name.get(m.name.as_str()) else {
            return RoaringBitmap::new();
        };
        if m.op == MatchOp::Equal {
            return values.get(m.value.as_str()).cloned().unwrap_or_default();
        }
        if let Some(set) = m.set_matches() {
            let mut out = RoaringBitmap::new();
            for v in set {
                if let Some(ids) = values.get(v.as_str()) {
                    out |= ids;
                }
            }
            return out;
        }
        let mut out = RoaringBitmap::new();
        let range: Box<dyn Iterator<Item = (&Arc<str>, &RoaringBitmap)>> = match m.literal_prefix()
        {
            Some(p) => Box::new(
                values
                    .range::<str, _>((Bound::Included(p), Bound::Unbounded))
                    .take_while(move |(v, _)| v.starts_with(p)),
            ),
            None => Box::new(values.iter()),
        };
        for (v, ids) in range {
            if m.matches(v) {
                out |= ids;
            }
        }
        out
    }

    /// Intersection of all matchers (all series when there are none).
    pub(crate) fn select_all(&self, matchers: &[Matcher]) -> RoaringBitmap {
        let r: Result<_, std::convert::Infallible> = crate::matcher::intersect_postings(
            matchers,
            || self.all.clone(),
            |m| Ok(self.select(m)),
        );
        r.unwrap_or_else(|never| match never {})
    }

    /// Every (name, value, series count) pair, for cardinality analysis.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<str>, u64)> {
        self.by_name
            .iter()
            .flat_map(|(n, values)| values.iter().map(move |(v, ids)| (n, v, ids.len())))
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        let mut n = self.all.serialized_size();
        for values in self.by_name.values() {
            for ids in values.values() {
                n += ids.serialized_size() + 64;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx() -> Postings {
        let mut p = Postings::default();
        let a = |s: &str| -> Arc<str> { Arc::from(s) };
        // series 0: job=a le=1 ; 1: job=a ; 2: job=b le=+Inf ; 3: job=DCGM_x
        for (id, pairs) in [
            (0u32, vec![("job", "a"), ("le", "1")]),
            (1, vec![("job", "a")]),
            (2, vec![("job", "b"), ("le", "+Inf")]),
            (3, vec![("job", "DCGM_x")]),
        ] {
            p.add_series(id);
            for (n, v) in pairs {
                p.add(id, &a(n), &a(v));
            }
        }
        p
    }

    fn ids(b: RoaringBitmap) -> Vec<u32> {
        b.iter().collect()
    }

    #[test]
    fn selects_by_every_matcher_type() {
        let p = idx();
        let f = |op, name: &str, value: &str, want: &[u32]| {
            let m = Matcher::new(op, name, value).unwrap();
            assert_eq!(ids(p.select(&m)), want, "{m}");
        };
        f(MatchOp::Equal, "job", "a", &[0, 1]);
        f(MatchOp::Equal, "job", "zz", &[]);
        f(MatchOp::Equal, "le", "", &[1, 3]); // absent label matches ""
        f(MatchOp::NotEqual, "le", "", &[0, 2]); // Grafana's {le!=""}
        f(MatchOp::NotEqual, "job", "a", &[2, 3]);
        f(MatchOp::RegexMatch, "job", "a|b", &[0, 1, 2]);
        f(MatchOp::RegexMatch, "job", "DCGM_.*", &[3]);
        f(MatchOp::RegexMatch, "job", ".+", &[0, 1, 2, 3]);
        f(MatchOp::RegexNoMatch, "job", "a", &[2, 3]);
        f(MatchOp::RegexMatch, "missing", ".+", &[]);
    }

    #[test]
    fn intersects_matchers() {
        let p = idx();
        let ms = [
            Matcher::new(MatchOp::Equal, "job", "a").unwrap(),
            Matcher::new(MatchOp::NotEqual, "le", "").unwrap(),
        ];
        assert_eq!(ids(p.select_all(&ms)), vec![0]);
        assert_eq!(ids(p.select_all(&[])), vec![0, 1, 2, 3]);
    }
}
