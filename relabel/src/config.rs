//! Relabel rules: YAML parsing, Prometheus' defaults and validation.
//!
//! The YAML is the text Prometheus accepts under `relabel_configs`,
//! `metric_relabel_configs` and `write_relabel_configs`, with the same
//! defaults (`separator: ";"`, `regex: "(.*)"` anchored as `^(?s:...)$`,
//! `replacement: "$1"`, `action: replace`) and the same checks, in the same
//! order, as `Config.Validate` in Prometheus' `model/relabel/relabel.go`.
//! Label names are checked with the legacy charset `[a-zA-Z_][a-zA-Z0-9_]*`
//! (Prometheus 2.x, or 3.x with `metric_name_validation_scheme: legacy`),
//! because that is what Tessera stores.
//!
//! Two YAML details follow Go's `yaml.v2` as Prometheus uses it: a key
//! written with no value (`regex:`) sets the field to its zero value
//! (`regex:` then matches only the empty string), and an absent key keeps
//! the default. Whether `regex` was written at all matters: keepequal and
//! dropequal reject any `regex`, even `(.*)`.

use std::fmt;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use regex::Regex;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use tessera_tsdb::labels::is_valid_label_name;

use crate::error::RelabelError;
use crate::goregex;

/// Prometheus' default `separator`.
pub const DEFAULT_SEPARATOR: &str = ";";
/// Prometheus' default `regex` (before anchoring).
pub const DEFAULT_REGEX: &str = "(.*)";
/// Prometheus' default `replacement`.
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// Prometheus' `relabelTargetLegacy`: a legacy label name in which `$1`,
/// `$name`, `${1}`, `${name}` may stand for any part. Go's `\w` is ASCII.
static TARGET_TEMPLATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$")
        .expect("static regex compiles")
});

/// What a rule does. Parsed case-insensitively, as Prometheus does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    /// Prometheus' spelling (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    /// Parses an action name in any case (`Replace`, `HASHMOD`).
    pub fn parse(s: &str) -> Option<Action> {
        // Go's strings.ToLower is Unicode-aware; so is str::to_lowercase.
        let all = [
            Action::Replace,
            Action::Keep,
            Action::Drop,
            Action::KeepEqual,
            Action::DropEqual,
            Action::HashMod,
            Action::LabelMap,
            Action::LabelDrop,
            Action::LabelKeep,
            Action::Lowercase,
            Action::Uppercase,
        ];
        let lower = s.to_lowercase();
        all.into_iter().find(|a| a.as_str() == lower)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One relabel rule, with defaults applied, validated, regex compiled.
#[derive(Debug, Clone)]
pub struct RelabelConfig {
    pub(crate) action: Action,
    pub(crate) source_labels: Vec<String>,
    pub(crate) separator: String,
    /// `^(?s:<regex>)$`, translated from Go syntax.
    pub(crate) regex: Regex,
    /// The regex as written (the default when `regex` was absent).
    pub(crate) regex_text: String,
    /// `regex` was absent from the YAML. Prometheus compares the regex by
    /// pointer with its default, so only an absent `regex` counts as default.
    pub(crate) regex_is_default: bool,
    pub(crate) modulus: u64,
    pub(crate) target_label: String,
    pub(crate) replacement: String,
    /// `target_label` / `replacement` contain `$` and need expansion.
    pub(crate) target_has_refs: bool,
    pub(crate) replacement_has_refs: bool,
}

impl RelabelConfig {
    pub fn action(&self) -> Action {
        self.action
    }
    pub fn source_labels(&self) -> &[String] {
        &self.source_labels
    }
    pub fn separator(&self) -> &str {
        &self.separator
    }
    /// The regex as written, without the anchors Prometheus adds.
    pub fn regex(&self) -> &str {
        &self.regex_text
    }
    pub fn modulus(&self) -> u64 {
        self.modulus
    }
    pub fn target_label(&self) -> &str {
        &self.target_label
    }
    pub fn replacement(&self) -> &str {
        &self.replacement
    }
}

/// An ordered list of relabel rules, applied first to last.
#[derive(Debug, Clone)]
pub struct RelabelConfigs {
    pub(crate) rules: Vec<RelabelConfig>,
    /// Identifies this rule list to a [`crate::Scratch`], whose per-rule
    /// capture buffers are only valid for the regexes they were made for.
    pub(crate) id: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Default for RelabelConfigs {
    fn default() -> Self {
        RelabelConfigs::from_rules(Vec::new())
    }
}

impl RelabelConfigs {
    /// Parses a YAML list of relabel rules (the text under
    /// `write_relabel_configs:`), or an object with one key
    /// `relabel_configs:`, `metric_relabel_configs:` or
    /// `write_relabel_configs:` holding that list. Empty text is an empty
    /// list.
    pub fn from_yaml(text: &str) -> Result<Self, RelabelError> {
        let failure = std::cell::RefCell::new(None);
        // One-line messages with line:column; the rule errors carry their
        // own context. Duplicate keys reach the visitors, which reject them
        // naming the rule and field (Prometheus loads its config strictly).
        let options = serde_saphyr::options! {
            with_snippet: false,
            duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        };
        let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
            TopSeed { failure: &failure }.deserialize(de)
        });
        let raws = match (parsed, failure.into_inner()) {
            (_, Some(err)) => return Err(err),
            (Ok(raws), None) => raws,
            (Err(e), None) => {
                let message = e.to_string();
                // An empty or comment-only document is an empty list, as
                // yaml.v2 reads it.
                if is_blank_yaml(text) {
                    Vec::new()
                } else {
                    return Err(RelabelError::Syntax { message });
                }
            }
        };
        let rules = raws
            .into_iter()
            .enumerate()
            .map(|(i, raw)| raw.build(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RelabelConfigs::from_rules(rules))
    }

    /// Wraps rules already parsed (e.g. taken from several lists).
    pub fn from_rules(rules: Vec<RelabelConfig>) -> Self {
        RelabelConfigs {
            rules,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub fn rules(&self) -> &[RelabelConfig] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

/// A rule as written, before defaults and validation. `None` = key absent.
/// A key written without a value (YAML null) is `Some` of the zero value,
/// except `source_labels`, where Go keeps a nil list (`Some(None)`).
#[derive(Debug, Default)]
struct RawRule {
    source_labels: Option<Option<Vec<String>>>,
    separator: Option<String>,
    regex: Option<String>,
    modulus: Option<u64>,
    target_label: Option<String>,
    replacement: Option<String>,
    action: Option<String>,
}

impl RawRule {
    /// Applies defaults, parses the action, compiles the regex and runs
    /// Prometheus' checks in Prometheus' order.
    fn build(self, rule: usize) -> Result<RelabelConfig, RelabelError> {
        use Action::*;
        let action_text = self.action.unwrap_or_else(|| "replace".to_string());
        if action_text.is_empty() {
            return Err(RelabelError::EmptyAction { rule });
        }
        let action = Action::parse(&action_text).ok_or_else(|| RelabelError::UnknownAction {
            rule,
            action: action_text.clone(),
        })?;
        let source_set = matches!(self.source_labels, Some(Some(_)));
        let source_labels = self.source_labels.flatten().unwrap_or_default();
        if let Some(bad) = source_labels.iter().find(|n| !is_valid_label_name(n)) {
            return Err(RelabelError::InvalidSourceLabel {
                rule,
                action,
                name: bad.clone(),
            });
        }
        let regex_is_default = self.regex.is_none();
        let regex_text = self.regex.unwrap_or_else(|| DEFAULT_REGEX.to_string());
        let regex =
            compile_anchored(&regex_text).map_err(|message| RelabelError::InvalidRegex {
                rule,
                action,
                message,
            })?;
        let separator = self
            .separator
            .unwrap_or_else(|| DEFAULT_SEPARATOR.to_string());
        let modulus = self.modulus.unwrap_or(0);
        let target_label = self.target_label.unwrap_or_default();
        let replacement = self
            .replacement
            .unwrap_or_else(|| DEFAULT_REPLACEMENT.to_string());

        let target_has_refs = target_label.contains('$');
        let invalid_target = || RelabelError::InvalidTargetLabel {
            rule,
            action,
            target: target_label.clone(),
        };
        if action == HashMod && modulus == 0 {
            return Err(RelabelError::MissingModulus { rule, action });
        }
        let needs_target = matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && target_label.is_empty() {
            return Err(RelabelError::MissingTargetLabel { rule, action });
        }
        if action == Replace {
            let ok = if target_has_refs {
                TARGET_TEMPLATE.is_match(&target_label)
            } else {
                is_valid_label_name(&target_label)
            };
            if !ok {
                return Err(invalid_target());
            }
        }
        let copies_value = matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual);
        if copies_value && !is_valid_label_name(&target_label) {
            return Err(invalid_target());
        }
        if copies_value && replacement != DEFAULT_REPLACEMENT {
            return Err(RelabelError::ReplacementNotAllowed { rule, action });
        }
        if action == LabelMap && !TARGET_TEMPLATE.is_match(&replacement) {
            return Err(RelabelError::InvalidReplacement {
                rule,
                action,
                replacement,
            });
        }
        if action == HashMod && !is_valid_label_name(&target_label) {
            return Err(invalid_target());
        }
        let not_allowed = |field, allowed| RelabelError::FieldNotAllowed {
            rule,
            action,
            field,
            allowed,
        };
        if matches!(action, KeepEqual | DropEqual) {
            let allowed = "'source_labels' and 'target_label'";
            if !regex_is_default {
                return Err(not_allowed("regex", allowed));
            }
            if modulus != 0 {
                return Err(not_allowed("modulus", allowed));
            }
            if separator != DEFAULT_SEPARATOR {
                return Err(not_allowed("separator", allowed));
            }
        }
        if matches!(action, LabelDrop | LabelKeep) {
            let allowed = "'regex'";
            let extra = [
                ("source_labels", source_set),
                ("target_label", !target_label.is_empty()),
                ("modulus", modulus != 0),
                ("separator", separator != DEFAULT_SEPARATOR),
                ("replacement", replacement != DEFAULT_REPLACEMENT),
            ];
            if let Some((field, _)) = extra.into_iter().find(|(_, set)| *set) {
                return Err(not_allowed(field, allowed));
            }
        }

        Ok(RelabelConfig {
            action,
            source_labels,
            separator,
            regex,
            regex_text,
            regex_is_default,
            modulus,
            replacement_has_refs: replacement.contains('$'),
            target_label,
            replacement,
            target_has_refs,
        })
    }
}

/// Compiles a relabel regex the way Prometheus does: fully anchored, `.`
/// matching newlines, Go syntax.
pub(crate) fn compile_anchored(regex: &str) -> Result<Regex, String> {
    let pattern = format!("^(?s:{})$", goregex::translate(regex));
    Regex::new(&pattern).map_err(|e| {
        // The regex crate's message spans lines and shows the anchored,
        // translated pattern; keep its last line, the reason.
        let text = e.to_string();
        let reason = text.lines().last().unwrap_or("").trim();
        let reason = reason.strip_prefix("error: ").unwrap_or(reason);
        format!("cannot compile {regex:?}: {reason}")
    })
}

// ---- serde plumbing -------------------------------------------------------
//
// Hand-written visitors rather than derives, so that an error says which
// rule (its index) and which field it is about, and so that "key absent"
// and "key present with no value" stay distinct (see the module doc).

type Failure<'a> = &'a std::cell::RefCell<Option<RelabelError>>;

/// The whole document: a list of rules, or `{relabel_configs: [...]}`.
struct TopSeed<'a> {
    failure: Failure<'a>,
}

const TOP_KEYS: [&str; 3] = [
    "relabel_configs",
    "metric_relabel_configs",
    "write_relabel_configs",
];

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Vec<RawRule>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Vec<RawRule>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of relabel rules, or a map with a relabel_configs key")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        RulesSeed {
            failure: self.failure,
        }
        .visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut rules = None;
        while let Some(key) = map.next_key::<String>()? {
            if !TOP_KEYS.contains(&key.as_str()) {
                return Err(de::Error::custom(format_args!(
                    "unknown top-level key {key:?}; expected a list of rules or one of {}",
                    TOP_KEYS.join(", ")
                )));
            }
            if rules.is_some() {
                return Err(de::Error::custom("more than one list of relabel rules"));
            }
            rules = Some(map.next_value_seed(RulesSeed {
                failure: self.failure,
            })?);
        }
        Ok(rules.unwrap_or_default())
    }
}

/// The list of rules; a YAML null is an empty list.
struct RulesSeed<'a> {
    failure: Failure<'a>,
}

impl<'de> DeserializeSeed<'de> for RulesSeed<'_> {
    type Value = Vec<RawRule>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RulesSeed<'_> {
    type Value = Vec<RawRule>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of relabel rules")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rules = Vec::new();
        loop {
            let seed = RuleSeed {
                rule: rules.len(),
                failure: self.failure,
            };
            match seq.next_element_seed(seed)? {
                Some(r) => rules.push(r),
                None => return Ok(rules),
            }
        }
    }
}

/// One rule (a YAML map). Errors are recorded in `failure` with the rule
/// index and field, then surfaced as a serde error to stop parsing.
struct RuleSeed<'a> {
    rule: usize,
    failure: Failure<'a>,
}

impl RuleSeed<'_> {
    fn fail<E: de::Error>(&self, err: RelabelError) -> E {
        let e = E::custom(&err);
        *self.failure.borrow_mut() = Some(err);
        e
    }

    fn field_type<E: de::Error>(&self, field: &'static str, message: String) -> E {
        self.fail(RelabelError::FieldType {
            rule: self.rule,
            field,
            message,
        })
    }
}

impl<'de> DeserializeSeed<'de> for RuleSeed<'_> {
    type Value = RawRule;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RuleSeed<'_> {
    type Value = RawRule;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "relabel_configs[{}] to be a map of fields", self.rule)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut raw = RawRule::default();
        while let Some(key) = map.next_key::<String>()? {
            // Each arm: the field's name as written, and its value read with
            // YAML null turned into Go's zero value.
            macro_rules! text {
                ($field:literal, $slot:expr) => {{
                    if $slot.is_some() {
                        return Err(self.field_type($field, "field is set twice".into()));
                    }
                    let v: Option<Scalar> = map
                        .next_value()
                        .map_err(|e| self.field_type($field, e.to_string()))?;
                    $slot = Some(v.map(|s| s.0).unwrap_or_default());
                }};
            }
            match key.as_str() {
                "separator" => text!("separator", raw.separator),
                "regex" => text!("regex", raw.regex),
                "target_label" => text!("target_label", raw.target_label),
                "replacement" => text!("replacement", raw.replacement),
                "action" => text!("action", raw.action),
                "modulus" => {
                    if raw.modulus.is_some() {
                        return Err(self.field_type("modulus", "field is set twice".into()));
                    }
                    let v: Option<u64> = map
                        .next_value()
                        .map_err(|e| self.field_type("modulus", e.to_string()))?;
                    raw.modulus = Some(v.unwrap_or(0));
                }
                "source_labels" => {
                    if raw.source_labels.is_some() {
                        return Err(self.field_type("source_labels", "field is set twice".into()));
                    }
                    let v: Option<Vec<Scalar>> = map
                        .next_value()
                        .map_err(|e| self.field_type("source_labels", e.to_string()))?;
                    raw.source_labels = Some(v.map(|v| v.into_iter().map(|s| s.0).collect()));
                }
                _ => {
                    return Err(self.fail(RelabelError::UnknownField {
                        rule: self.rule,
                        field: key,
                    }));
                }
            }
        }
        Ok(raw)
    }
}

/// A YAML scalar read as text, as yaml.v2 does for a Go string field
/// (`replacement: 1` is the string "1").
struct Scalar(String);

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_string(V)
    }
}
