//! Label sets: the identity of a series.
//!
//! A [`Labels`] is always sorted by name with unique names, so two equal sets
//! compare and hash equal whatever order a client sent them in.

use std::fmt;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One `name="value"` pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A sorted set of labels with unique names and no empty values.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<Label>);

/// Why a label set cannot identify a series.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelsError {
    #[error("invalid label name {0:?}: must match [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidName(String),
    #[error("duplicate label name {0:?}")]
    Duplicate(String),
    #[error("label {0:?} has an empty value (drop the label instead)")]
    EmptyValue(String),
    #[error("series has no {METRIC_NAME} label")]
    MissingMetricName,
    #[error("invalid metric name {0:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidMetricName(String),
}

impl Labels {
    /// Builds a label set from pairs in any order, sorting by name. Pairs with an
    /// empty value are dropped (an empty value means "label absent" in
    /// Prometheus). Duplicate names keep the last value; use
    /// [`Labels::validated`] to reject them instead.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut v: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label::new(n, v))
            .filter(|l| !l.value.is_empty())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        // Keep the last of equal names: reverse, dedup keeps first, reverse back.
        v.reverse();
        v.dedup_by(|a, b| a.name == b.name);
        v.reverse();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Labels(v)
    }

    /// Builds a label set as remote write must: every name valid, no
    /// duplicates, no empty values, a valid `__name__` present.
    pub fn validated(mut v: Vec<Label>) -> Result<Self, LabelsError> {
        v.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        for w in v.windows(2) {
            if w[0].name == w[1].name {
                return Err(LabelsError::Duplicate(w[0].name.clone()));
            }
        }
        let mut has_name = false;
        for l in &v {
            if l.name == METRIC_NAME {
                if !is_valid_metric_name(&l.value) {
                    return Err(LabelsError::InvalidMetricName(l.value.clone()));
                }
                has_name = true;
            } else if !is_valid_label_name(&l.name) {
                return Err(LabelsError::InvalidName(l.name.clone()));
            }
            if l.value.is_empty() {
                return Err(LabelsError::EmptyValue(l.name.clone()));
            }
        }
        if !has_name {
            return Err(LabelsError::MissingMetricName);
        }
        Ok(Labels(v))
    }

    /// Wraps labels the caller guarantees are sorted by name and unique.
    pub fn from_sorted_unchecked(v: Vec<Label>) -> Self {
        debug_assert!(v.windows(2).all(|w| w[0].name < w[1].name));
        Labels(v)
    }

    pub fn empty() -> Self {
        Labels(Vec::new())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// Stable 64-bit hash of the set (xxh3 over `name 0xff value 0xff ...`).
    /// Shard routing depends on it, so it must never change for a data dir.
    pub fn stable_hash(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for l in &self.0 {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }

    /// Sets (or with an empty value removes) one label, keeping the order.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].value = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, Label::new(name, value)),
        }
    }

    /// Removes one label if present.
    pub fn remove(&mut self, name: &str) {
        self.set(name, "");
    }

    /// Keeps only the labels for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Label) -> bool) {
        self.0.retain(|l| keep(l));
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Labels {
    /// Prometheus' text form: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.metric_name() {
            f.write_str(n)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for l in self.0.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, the legacy Prometheus label name charset that
/// every Prometheus 2.x client and PromQL without quoting understands.
pub fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(n: &str, v: &str) -> Label {
        Label::new(n, v)
    }

    #[test]
    fn from_pairs_sorts_and_drops_empty_values() {
        let ls = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "")]);
        assert_eq!(ls.as_slice(), &[l("a", "1"), l("b", "2")]);
    }

    #[test]
    fn validated_rejects_each_bad_shape() {
        let f = |v: Vec<Label>, want: Result<(), LabelsError>| {
            assert_eq!(Labels::validated(v).map(|_| ()), want);
        };
        f(vec![l("__name__", "up"), l("job", "x")], Ok(()));
        f(vec![l("job", "x")], Err(LabelsError::MissingMetricName));
        f(
            vec![l("__name__", "up"), l("1job", "x")],
            Err(LabelsError::InvalidName("1job".into())),
        );
        f(
            vec![l("__name__", "up"), l("job", "x"), l("job", "y")],
            Err(LabelsError::Duplicate("job".into())),
        );
        f(
            vec![l("__name__", "up"), l("job", "")],
            Err(LabelsError::EmptyValue("job".into())),
        );
        f(
            vec![l("__name__", "1up")],
            Err(LabelsError::InvalidMetricName("1up".into())),
        );
        f(vec![l("__name__", "a:b_c")], Ok(()));
    }

    #[test]
    fn hash_ignores_input_order() {
        let a = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let b = Labels::from_pairs([("b", "2"), ("a", "1")]);
        assert_eq!(a.stable_hash(), b.stable_hash());
        let c = Labels::from_pairs([("a", "1"), ("b", "3")]);
        assert_ne!(a.stable_hash(), c.stable_hash());
    }

    #[test]
    fn set_and_remove_keep_order() {
        let mut ls = Labels::from_pairs([("a", "1"), ("c", "3")]);
        ls.set("b", "2");
        ls.set("a", "9");
        ls.remove("c");
        assert_eq!(ls.as_slice(), &[l("a", "9"), l("b", "2")]);
        assert_eq!(ls.to_string(), "{a=\"9\", b=\"2\"}");
    }
}
