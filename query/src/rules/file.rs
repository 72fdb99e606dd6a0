//! Rule files: Prometheus' `groups:` YAML, parsed and validated the way
//! Prometheus' `rulefmt` does.
//!
//! A file is all or nothing: the first invalid group or rule fails the whole
//! file (and, at start-up or reload, every file), so a typo never silently
//! drops a rule. Alerting rules' label and annotation templates are parsed
//! here too (see [`super::template`]), so a template using something
//! Tessera does not implement fails the load naming the rule and the
//! function.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use promql_parser::parser::Expr;
use serde::Deserialize;
use serde_saphyr::Spanned;
use tessera_tsdb::labels::{is_valid_label_name, is_valid_metric_name};
use tessera_tsdb::{Labels, METRIC_NAME};

use super::template::Template;
use crate::time::parse_duration;

/// Why rule files could not be loaded. Every variant names the file; group
/// and rule errors also name the group, the rule's 1-based position and
/// name, and the line where the group or rule starts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleFileError {
    #[error("invalid --rules.file pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
    #[error("reading rule file {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("rule file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("rule file {path}:{line}: group {group:?}: {reason}")]
    Group {
        path: PathBuf,
        line: u64,
        group: String,
        reason: String,
    },
    #[error("rule file {path}:{line}: group {group:?}, rule {index} ({name:?}): {reason}")]
    Rule {
        path: PathBuf,
        line: u64,
        group: String,
        /// 1-based position of the rule in its group.
        index: usize,
        /// The `record:` or `alert:` name (empty when neither is set).
        name: String,
        reason: String,
    },
}

/// Recording or alerting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    Recording,
    Alerting,
}

/// One validated rule as written in its file.
#[derive(Clone, Debug)]
pub struct RuleConfig {
    pub kind: RuleKind,
    /// `record:` (a metric name) or `alert:`.
    pub name: String,
    /// The expression as written.
    pub expr: String,
    /// The parsed expression (evaluated without re-parsing).
    pub parsed: Expr,
    /// The rule's `labels:` merged over its group's, sorted by name. An
    /// empty value removes the label from results, as in Prometheus.
    pub labels: Vec<(String, String)>,
    /// `for:` of an alerting rule, milliseconds.
    pub for_ms: i64,
    /// `keep_firing_for:` of an alerting rule, milliseconds.
    pub keep_firing_for_ms: i64,
    pub annotations: Vec<(String, String)>,
    /// Line of the rule in its file (1-based).
    pub line: u64,
}

impl RuleConfig {
    /// The identity Prometheus compares on reload: kind, name, expression and
    /// labels (`Rule.String()` in Go).
    pub fn same_definition(&self, other: &RuleConfig) -> bool {
        self.kind == other.kind
            && self.name == other.name
            && self.expr == other.expr
            && self.labels == other.labels
            && self.for_ms == other.for_ms
            && self.keep_firing_for_ms == other.keep_firing_for_ms
            && self.annotations == other.annotations
    }
}

/// One validated group.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub name: String,
    /// The file the group was read from, as matched by the pattern.
    pub file: String,
    /// `interval:`; `None` means the manager's default.
    pub interval_ms: Option<i64>,
    /// `query_offset:`; `None` means the manager's default.
    pub query_offset_ms: Option<i64>,
    /// `limit:`; 0 (or negative in the file) means no limit.
    pub limit: usize,
    pub rules: Vec<RuleConfig>,
    pub line: u64,
}

impl GroupConfig {
    /// Whether a reload may keep the running group as is (Prometheus'
    /// `Group.Equals`).
    pub fn same_definition(&self, other: &GroupConfig) -> bool {
        self.name == other.name
            && self.file == other.file
            && self.interval_ms == other.interval_ms
            && self.query_offset_ms == other.query_offset_ms
            && self.limit == other.limit
            && self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(&other.rules)
                .all(|(a, b)| a.same_definition(b))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Option<Vec<Spanned<RawGroup>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    query_offset: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    /// Prometheus 3's group labels, added to every rule of the group.
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    /// Cortex/Mimir multi-tenancy field that Prometheus' rulefmt accepts.
    #[serde(default)]
    #[allow(dead_code)]
    source_tenants: Option<Vec<String>>,
    #[serde(default)]
    rules: Option<Vec<Spanned<RawRule>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    expr: Option<String>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// Expands `--rules.file` patterns (globs, as Prometheus' `rule_files`) to
/// files, sorted and without duplicates. A pattern matching nothing is not
/// an error, as in Prometheus.
pub fn expand_patterns(patterns: &[String]) -> Result<Vec<PathBuf>, RuleFileError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for p in patterns {
        let paths = glob::glob(p).map_err(|e| RuleFileError::Pattern {
            pattern: p.clone(),
            message: e.to_string(),
        })?;
        let mut matched: Vec<PathBuf> = Vec::new();
        for entry in paths {
            let path = entry.map_err(|e| RuleFileError::Read {
                path: e.path().to_path_buf(),
                message: e.error().to_string(),
            })?;
            matched.push(path);
        }
        matched.sort();
        for m in matched {
            if seen.insert(m.clone()) {
                out.push(m);
            }
        }
    }
    Ok(out)
}

/// Reads and validates one rule file.
pub fn load_file(path: &Path) -> Result<Vec<GroupConfig>, RuleFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| RuleFileError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse_rule_file(path, &text)
}

/// Parses and validates the text of a rule file; `path` names it in errors
/// and becomes the groups' `file`.
pub fn parse_rule_file(path: &Path, text: &str) -> Result<Vec<GroupConfig>, RuleFileError> {
    if text
        .lines()
        .all(|l| matches!(l.trim(), "" | "---" | "...") || l.trim_start().starts_with('#'))
    {
        // An empty file has no groups (yaml.v3 unmarshals it to zero values).
        return Ok(Vec::new());
    }
    let options = serde_saphyr::options! { with_snippet: false };
    let raw: RawFile =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| RuleFileError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let file = path.display().to_string();
    let mut names = HashSet::new();
    let mut groups = Vec::new();
    for g in raw.groups.unwrap_or_default() {
        let line = g.referenced.line();
        let g = g.value;
        let name = g.name.unwrap_or_default();
        let group_err = |reason: String| RuleFileError::Group {
            path: path.to_path_buf(),
            line,
            group: name.clone(),
            reason,
        };
        if name.is_empty() {
            return Err(group_err("Groupname must not be empty".into()));
        }
        if !names.insert(name.clone()) {
            return Err(group_err(format!(
                "groupname: \"{name}\" is repeated in the same file"
            )));
        }
        let interval_ms = g
            .interval
            .as_deref()
            .map(|s| parse_duration(s).map_err(|e| group_err(format!("interval: {e}"))))
            .transpose()?;
        if interval_ms == Some(0) {
            return Err(group_err(
                "interval must be greater than 0 (leave it out for --rules.evaluation-interval)"
                    .into(),
            ));
        }
        let query_offset_ms = g
            .query_offset
            .as_deref()
            .map(|s| parse_duration(s).map_err(|e| group_err(format!("query_offset: {e}"))))
            .transpose()?;
        let group_labels = g.labels.unwrap_or_default();
        for k in group_labels.keys() {
            if !is_valid_label_name(k) || k == METRIC_NAME {
                return Err(group_err(format!("invalid label name: {k}")));
            }
        }
        let mut rules = Vec::new();
        for (i, r) in g.rules.unwrap_or_default().into_iter().enumerate() {
            let line = r.referenced.line();
            let r = r.value;
            let rule_name = r
                .record
                .clone()
                .or_else(|| r.alert.clone())
                .unwrap_or_default();
            let rule =
                validate_rule(r, &group_labels, line).map_err(|reason| RuleFileError::Rule {
                    path: path.to_path_buf(),
                    line,
                    group: name.clone(),
                    index: i + 1,
                    name: rule_name,
                    reason,
                })?;
            rules.push(rule);
        }
        groups.push(GroupConfig {
            name,
            file: file.clone(),
            interval_ms,
            query_offset_ms,
            limit: usize::try_from(g.limit.unwrap_or(0)).unwrap_or(0),
            rules,
            line,
        });
    }
    Ok(groups)
}

/// Prometheus' `Rule.Validate`, in its order, plus parsing the expression.
fn validate_rule(
    r: RawRule,
    group_labels: &BTreeMap<String, String>,
    line: u64,
) -> Result<RuleConfig, String> {
    let present = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
    let (kind, name) = match (present(&r.record), present(&r.alert)) {
        (true, true) => return Err("only one of 'record' and 'alert' must be set".into()),
        (false, false) => return Err("one of 'record' or 'alert' must be set".into()),
        (true, false) => (RuleKind::Recording, r.record.unwrap_or_default()),
        (false, true) => (RuleKind::Alerting, r.alert.unwrap_or_default()),
    };
    let expr = r.expr.unwrap_or_default();
    if expr.trim().is_empty() {
        return Err("field 'expr' must be set in rule".into());
    }
    let parsed =
        crate::engine::parse(&expr).map_err(|e| format!("could not parse expression: {e}"))?;
    let annotations = r.annotations.unwrap_or_default();
    if kind == RuleKind::Recording {
        if !annotations.is_empty() {
            return Err("invalid field 'annotations' in recording rule".into());
        }
        if r.for_.is_some() {
            return Err("invalid field 'for' in recording rule".into());
        }
        if r.keep_firing_for.is_some() {
            return Err("invalid field 'keep_firing_for' in recording rule".into());
        }
        if !is_valid_metric_name(&name) {
            return Err(format!("invalid recording rule name: {name}"));
        }
    }
    let rule_labels = r.labels.unwrap_or_default();
    for k in rule_labels.keys() {
        if !is_valid_label_name(k) || k == METRIC_NAME {
            return Err(format!("invalid label name: {k}"));
        }
    }
    for k in annotations.keys() {
        if !is_valid_label_name(k) {
            return Err(format!("invalid annotation name: {k}"));
        }
    }
    let for_ms = match r.for_.as_deref() {
        Some(s) => parse_duration(s).map_err(|e| format!("for: {e}"))?,
        None => 0,
    };
    let keep_firing_for_ms = match r.keep_firing_for.as_deref() {
        Some(s) => parse_duration(s).map_err(|e| format!("keep_firing_for: {e}"))?,
        None => 0,
    };
    if kind == RuleKind::Alerting {
        for (what, k, v) in group_labels
            .iter()
            .chain(&rule_labels)
            .map(|(k, v)| ("label", k, v))
            .chain(annotations.iter().map(|(k, v)| ("annotation", k, v)))
        {
            Template::parse(v).map_err(|e| format!("{what} {k:?}: {e}"))?;
        }
    }
    // Rule labels override group labels (Prometheus 3).
    let mut labels = group_labels.clone();
    labels.extend(rule_labels);
    Ok(RuleConfig {
        kind,
        name,
        expr,
        parsed,
        labels: labels.into_iter().collect(),
        for_ms,
        keep_firing_for_ms,
        annotations: annotations.into_iter().collect(),
        line,
    })
}

/// Applies a rule's output naming to one result: `__name__` = the record
/// name, then the rule's labels (an empty value removes the label).
pub(crate) fn output_labels(result: &Labels, rule: &RuleConfig) -> Labels {
    let mut l = result.clone();
    l.set(METRIC_NAME, &rule.name);
    for (k, v) in &rule.labels {
        l.set(k, v);
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<GroupConfig>, RuleFileError> {
        parse_rule_file(Path::new("rules/x.yml"), text)
    }

    #[test]
    fn parses_a_full_group() {
        let groups = parse(
            "groups:\n\
             - name: g1\n\
             \x20 interval: 30s\n\
             \x20 query_offset: 1m\n\
             \x20 limit: 10\n\
             \x20 labels: {team: gpu}\n\
             \x20 rules:\n\
             \x20 - record: job:up:sum\n\
             \x20   expr: sum by (job) (up)\n\
             \x20   labels: {tier: '1', team: ml}\n\
             \x20 - alert: Down\n\
             \x20   expr: up == 0\n\
             \x20   for: 5m\n\
             \x20   annotations: {summary: down}\n\
             - name: g2\n\
             \x20 rules: []\n",
        )
        .unwrap();
        assert_eq!(groups.len(), 2);
        let g = &groups[0];
        assert_eq!(
            (
                g.name.as_str(),
                g.file.as_str(),
                g.interval_ms,
                g.query_offset_ms,
                g.limit
            ),
            ("g1", "rules/x.yml", Some(30_000), Some(60_000), 10)
        );
        assert_eq!(g.line, 2);
        let r = &g.rules[0];
        assert_eq!(r.kind, RuleKind::Recording);
        assert_eq!(r.name, "job:up:sum");
        assert_eq!(
            r.labels,
            vec![
                ("team".to_string(), "ml".to_string()),
                ("tier".to_string(), "1".to_string())
            ]
        );
        assert_eq!(g.rules[1].kind, RuleKind::Alerting);
        assert_eq!(g.rules[1].for_ms, 300_000);
        assert_eq!(groups[1].interval_ms, None);
        assert!(groups[1].rules.is_empty());
    }

    #[test]
    fn unquoted_scalars_are_accepted_as_label_values_as_promtool_does() {
        let g = parse(
            "groups:\n- name: g\n  rules:\n  - record: x\n    expr: up\n    labels: {tier: 1, on: true, f: 1.5}\n",
        )
        .unwrap();
        let labels: Vec<(&str, &str)> = g[0].rules[0]
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(labels, vec![("f", "1.5"), ("on", "true"), ("tier", "1")]);
    }

    #[test]
    fn empty_or_comment_only_file_has_no_groups() {
        for text in ["", "# nothing\n", "---\n", "groups:\n", "groups: []\n"] {
            assert!(parse(text).unwrap().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn rejects_invalid_files_naming_file_group_and_rule() {
        let f = |text: &str, want: &str| {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text:?}\n got: {err}\nwant: {want}");
            assert!(err.contains("rules/x.yml"), "{err}");
        };
        let rule = |body: &str| format!("groups:\n- name: g\n  rules:\n  - {body}\n");
        f(
            &rule("record: 'bad name'\n    expr: up"),
            "rule file rules/x.yml:4: group \"g\", rule 1 (\"bad name\"): invalid recording rule name: bad name",
        );
        f(
            &rule("record: x\n    expr: sum(("),
            "group \"g\", rule 1 (\"x\"): could not parse expression",
        );
        f(
            &rule("record: x"),
            "rule 1 (\"x\"): field 'expr' must be set in rule",
        );
        f(
            &rule("expr: up"),
            "rule 1 (\"\"): one of 'record' or 'alert' must be set",
        );
        f(
            &rule("record: x\n    alert: y\n    expr: up"),
            "only one of 'record' and 'alert' must be set",
        );
        f(
            &rule("record: x\n    expr: up\n    for: 5m"),
            "invalid field 'for' in recording rule",
        );
        f(
            &rule("record: x\n    expr: up\n    annotations: {a: b}"),
            "invalid field 'annotations' in recording rule",
        );
        f(
            &rule("record: x\n    expr: up\n    keep_firing_for: 5m"),
            "invalid field 'keep_firing_for' in recording rule",
        );
        f(
            &rule("record: x\n    expr: up\n    labels: {'a-b': c}"),
            "invalid label name: a-b",
        );
        f(
            &rule("record: x\n    expr: up\n    labels: {__name__: c}"),
            "invalid label name: __name__",
        );
        f(
            &rule("alert: A\n    expr: up\n    annotations: {'1x': c}"),
            "invalid annotation name: 1x",
        );
        f(
            &rule("alert: A\n    expr: up\n    for: soon"),
            "for: not a valid duration string",
        );
        f(&rule("record: x\n    expr: up\n    bogus: 1"), "bogus");
        f(
            &rule("alert: A\n    expr: up\n    annotations: {d: '{{ query \"up\" }}'}"),
            "rule 1 (\"A\"): annotation \"d\": template function \"query\" is not supported",
        );
        f(
            &rule("alert: A\n    expr: up\n    labels: {x: '{{ if $value }}y{{ end }}'}"),
            "rule 1 (\"A\"): label \"x\": template action \"if\" is not supported",
        );
        f(
            &rule("alert: A\n    expr: up\n    keep_firing_for: 1x"),
            "keep_firing_for: not a valid duration string",
        );
        f(
            "groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n",
            "rule file rules/x.yml:4: group \"g\": groupname: \"g\" is repeated in the same file",
        );
        f(
            "groups:\n- rules: []\n",
            "group \"\": Groupname must not be empty",
        );
        f(
            "groups:\n- name: g\n  interval: 1.5m\n",
            "group \"g\": interval: not a valid duration string",
        );
        f(
            "groups:\n- name: g\n  interval: 0s\n",
            "interval must be greater than 0",
        );
        f(
            "groups:\n- name: g\n  query_offset: x\n",
            "query_offset: not a valid duration string",
        );
        f(
            "groups:\n- name: g\n  labels: {'a.b': c}\n",
            "group \"g\": invalid label name: a.b",
        );
        f(
            "groups:\n- name: g\n  unknown: 1\n",
            "rule file rules/x.yml:",
        );
        f("group:\n- name: g\n", "rule file rules/x.yml:");
        f("groups:\n- name: g\n  name: h\n", "rule file rules/x.yml:");
        f("groups: [\n", "rule file rules/x.yml:");
    }

    #[test]
    fn second_rule_errors_name_its_position() {
        let err = parse(
            "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n  - record: b\n    expr: 'up +'\n",
        )
        .unwrap_err();
        match err {
            RuleFileError::Rule {
                index, name, line, ..
            } => assert_eq!((index, name.as_str(), line), (2, "b", 6)),
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn group_definition_equality_follows_prometheus() {
        let base = "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n";
        let a = &parse(base).unwrap()[0];
        let f = |text: &str, want: bool| {
            let b = &parse(text).unwrap()[0];
            assert_eq!(a.same_definition(b), want, "{text}");
        };
        f(base, true);
        f(
            "groups:\n- name: g\n  interval: 1m\n  rules:\n  - record: a\n    expr: up\n",
            false,
        );
        f(
            "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up + 0\n",
            false,
        );
        f(
            "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    labels: {x: y}\n",
            false,
        );
        f(
            "groups:\n- name: g\n  limit: 3\n  rules:\n  - record: a\n    expr: up\n",
            false,
        );
    }
}
