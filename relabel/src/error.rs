//! The crate's one error type: why a relabel config was rejected.
//!
//! Every variant that concerns one rule carries its 0-based index in the
//! list (`relabel_configs[2]`), and where it matters the action and the
//! field, so an operator can find the line to fix without counting rules.
//! The wording of the validation messages follows Prometheus' own
//! (`model/relabel/relabel.go`), so a message searched on the web finds the
//! Prometheus documentation that explains it.

use crate::Action;

/// Why a relabel config could not be parsed or validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelabelError {
    /// The text is not YAML, or not a list of rules (nor an object with a
    /// `relabel_configs:` list).
    #[error("relabel config is not a YAML list of rules: {message}")]
    Syntax { message: String },

    /// A field holds a value of the wrong YAML type (a list where a string
    /// is expected, a negative modulus, ...).
    #[error("relabel_configs[{rule}]: field '{field}': {message}")]
    FieldType {
        rule: usize,
        field: &'static str,
        message: String,
    },

    /// A key Prometheus does not know; Prometheus loads its config strictly,
    /// so a typo (`target_lable`) is an error rather than a silent no-op.
    #[error(
        "relabel_configs[{rule}]: unknown field '{field}' (expected one of source_labels, separator, regex, modulus, target_label, replacement, action)"
    )]
    UnknownField { rule: usize, field: String },

    #[error("relabel_configs[{rule}]: unknown relabel action {action:?} in field 'action'")]
    UnknownAction { rule: usize, action: String },

    #[error("relabel_configs[{rule}]: field 'action': relabel action cannot be empty")]
    EmptyAction { rule: usize },

    #[error(
        "relabel_configs[{rule}] ({action}): field 'source_labels': {name:?} is not a valid label name"
    )]
    InvalidSourceLabel {
        rule: usize,
        action: Action,
        name: String,
    },

    #[error("relabel_configs[{rule}] ({action}): field 'regex': {message}")]
    InvalidRegex {
        rule: usize,
        action: Action,
        message: String,
    },

    #[error(
        "relabel_configs[{rule}] ({action}): field 'modulus': relabel configuration for hashmod requires non-zero modulus"
    )]
    MissingModulus { rule: usize, action: Action },

    #[error(
        "relabel_configs[{rule}] ({action}): field 'target_label': relabel configuration for {action} action requires 'target_label' value"
    )]
    MissingTargetLabel { rule: usize, action: Action },

    #[error(
        "relabel_configs[{rule}] ({action}): field 'target_label': {target:?} is invalid 'target_label' for {action} action"
    )]
    InvalidTargetLabel {
        rule: usize,
        action: Action,
        target: String,
    },

    #[error(
        "relabel_configs[{rule}] ({action}): field 'replacement': {replacement:?} is invalid 'replacement' for {action} action"
    )]
    InvalidReplacement {
        rule: usize,
        action: Action,
        replacement: String,
    },

    #[error(
        "relabel_configs[{rule}] ({action}): field 'replacement': 'replacement' can not be set for {action} action"
    )]
    ReplacementNotAllowed { rule: usize, action: Action },

    /// keepequal/dropequal take only `source_labels` and `target_label`;
    /// labeldrop/labelkeep take only `regex`. `field` is the first other
    /// field found set, in Prometheus' order of checks.
    #[error(
        "relabel_configs[{rule}] ({action}): field '{field}': {action} action requires only {allowed}, and no other fields"
    )]
    FieldNotAllowed {
        rule: usize,
        action: Action,
        field: &'static str,
        allowed: &'static str,
    },
}

impl RelabelError {
    /// The 0-based index of the offending rule, when the error concerns one.
    pub fn rule(&self) -> Option<usize> {
        use RelabelError::*;
        match self {
            Syntax { .. } => None,
            FieldType { rule, .. }
            | UnknownField { rule, .. }
            | UnknownAction { rule, .. }
            | EmptyAction { rule }
            | InvalidSourceLabel { rule, .. }
            | InvalidRegex { rule, .. }
            | MissingModulus { rule, .. }
            | MissingTargetLabel { rule, .. }
            | InvalidTargetLabel { rule, .. }
            | InvalidReplacement { rule, .. }
            | ReplacementNotAllowed { rule, .. }
            | FieldNotAllowed { rule, .. } => Some(*rule),
        }
    }

    /// The YAML field the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        use RelabelError::*;
        match self {
            Syntax { .. } => None,
            FieldType { field, .. } | FieldNotAllowed { field, .. } => Some(field),
            UnknownField { field, .. } => Some(field),
            UnknownAction { .. } | EmptyAction { .. } => Some("action"),
            InvalidSourceLabel { .. } => Some("source_labels"),
            InvalidRegex { .. } => Some("regex"),
            MissingModulus { .. } => Some("modulus"),
            MissingTargetLabel { .. } | InvalidTargetLabel { .. } => Some("target_label"),
            InvalidReplacement { .. } | ReplacementNotAllowed { .. } => Some("replacement"),
        }
    }
}
