//! Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus semantics.
//!
//! Regexes are fully anchored as Prometheus anchors them, `^(?s:...)$`, and an
//! absent label matches as the empty string (so `{foo=""}` selects series
//! without `foo`, and Grafana's `{le!=""}` selects series that have `le`).

use regex::Regex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        }
    }
}

/// Whether `labels` satisfies every matcher of `set` (an absent label
/// matches as the empty string).
pub fn matches_labels(set: &[Matcher], labels: &crate::Labels) -> bool {
    set.iter()
        .all(|m| m.matches(labels.get(&m.name).unwrap_or_default()))
}

/// A compiled matcher for one label.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid regex {pattern:?} for label {name:?}: {source}")]
pub struct MatcherError {
    pub name: String,
    pub pattern: String,
    #[source]
    pub source: regex::Error,
}

impl Matcher {
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let re = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => Some(
                Regex::new(&format!("^(?s:{value})$")).map_err(|source| MatcherError {
                    name: name.clone(),
                    pattern: value.clone(),
                    source,
                })?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }

    /// `name="value"`; never fails.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            re: None,
        }
    }

    /// Does a label value (empty when the label is absent) satisfy the matcher?
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::RegexMatch => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::RegexNoMatch => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// True when the matcher accepts a series that lacks the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// For `=~`, the alternatives of a regex made only of literals joined by
    /// `|` (e.g. `a|b|c`), so the index can look them up instead of scanning
    /// every value of the label.
    pub fn set_matches(&self) -> Option<Vec<String>> {
        if self.op != MatchOp::RegexMatch {
            return None;
        }
        let mut out = Vec::new();
        for alt in self.value.split('|') {
            if alt.chars().any(|c| "\\.+*?()[]{}^$".contains(c)) {
                return None;
            }
            out.push(alt.to_string());
        }
        Some(out)
    }

    /// The literal prefix every value matching an `=~` regex starts with
    /// (e.g. `DCGM_FI_` for `DCGM_FI_.*`), to narrow a scan of sorted values.
    pub fn literal_prefix(&self) -> Option<&str> {
        if self.op != MatchOp::RegexMatch || self.value.contains('|') {
            return None;
        }
        let end = self
            .value
            .find(|c: char| "\\.+*?()[]{}^$".contains(c))
            .unwrap_or(self.value.len());
        let prefix = &self.value[..end];
        // A quantifier right after the prefix applies to its last char.
        let next = self.value[end..].chars().next();
        if matches!(next, Some('*' | '?' | '{')) {
            let mut cut = prefix.char_indices();
            let last = cut.next_back().map(|(i, _)| i).unwrap_or(0);
            return (last > 0).then(|| &prefix[..last]);
        }
        (!prefix.is_empty()).then_some(prefix)
    }
}

/// Series ids matching every matcher: the one intersection both the head's
/// and the blocks' indexes use. Most selective matchers go first (an
/// equality is a direct lookup) and an empty intersection stops before the
/// expensive regex scans; `all` answers when there are no matchers.
pub(crate) fn intersect_postings<E>(
    matchers: &[Matcher],
    all: impl FnOnce() -> roaring::RoaringBitmap,
    mut one: impl FnMut(&Matcher) -> Result<roaring::RoaringBitmap, E>,
) -> Result<roaring::RoaringBitmap, E> {
    let mut order: Vec<&Matcher> = matchers.iter().collect();
    order.sort_by_key(|m| match (m.op, m.matches_empty()) {
        (MatchOp::Equal, false) => 0,
        (MatchOp::RegexMatch, false) => 1,
        (_, false) => 2,
        (_, true) => 3,
    });
    let mut acc: Option<roaring::RoaringBitmap> = None;
    for m in order {
        let ids = one(m)?;
        let a = match acc {
            None => ids,
            Some(a) => a & ids,
        };
        let empty = a.is_empty();
        acc = Some(a);
        if empty {
            break;
        }
    }
    Ok(acc.unwrap_or_else(all))
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_with_prometheus_semantics() {
        let f = |op, pat: &str, v: &str, want: bool| {
            let m = Matcher::new(op, "x", pat).unwrap();
            assert_eq!(m.matches(v), want, "{m} on {v:?}");
        };
        f(MatchOp::Equal, "a", "a", true);
        f(MatchOp::Equal, "", "", true);
        f(MatchOp::NotEqual, "", "", false);
        f(MatchOp::NotEqual, "", "x", true);
        f(MatchOp::RegexMatch, "a.*", "abc", true);
        f(MatchOp::RegexMatch, "b", "abc", false); // anchored
        f(MatchOp::RegexMatch, ".*", "", true);
        f(MatchOp::RegexMatch, ".+", "", false);
        f(MatchOp::RegexMatch, "a.c", "a\nc", true); // (?s)
        f(MatchOp::RegexNoMatch, "a|b", "a", false);
        f(MatchOp::RegexNoMatch, "a|b", "c", true);
    }

    #[test]
    fn bad_regex_is_an_error_naming_the_label() {
        let e = Matcher::new(MatchOp::RegexMatch, "job", "(").unwrap_err();
        assert!(e.to_string().contains("job"), "{e}");
    }

    #[test]
    fn finds_literal_prefix_and_sets() {
        let m = |p: &str| Matcher::new(MatchOp::RegexMatch, "x", p).unwrap();
        assert_eq!(m("DCGM_FI_.*").literal_prefix(), Some("DCGM_FI_"));
        assert_eq!(m("abc?").literal_prefix(), Some("ab"));
        assert_eq!(m(".*").literal_prefix(), None);
        assert_eq!(m("a|b").literal_prefix(), None);
        assert_eq!(m("a|bc").set_matches(), Some(vec!["a".into(), "bc".into()]));
        assert_eq!(m("a.|b").set_matches(), None);
    }
}
