//! Query results as the HTTP layer renders them.

use tessera_tsdb::{Labels, SeriesSamples};

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorSample {
    pub labels: Labels,
    /// Evaluation timestamp in milliseconds.
    pub t: i64,
    pub v: f64,
}

/// The value of a PromQL expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar {
        t: i64,
        v: f64,
    },
    String {
        t: i64,
        v: String,
    },
    Vector(Vec<VectorSample>),
    /// A range vector (instant query of `x[5m]`) or the result of a range query;
    /// series sorted by label set.
    Matrix(Vec<SeriesSamples>),
}

impl Value {
    /// Prometheus' `resultType` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// What a query returns: its value, annotations and the peak number of
/// samples held in memory while evaluating it.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    /// Warnings and infos, rendered as Prometheus does
    /// (`PromQL warning: ...` / `PromQL info: ...`).
    pub warnings: Vec<String>,
    pub peak_samples: usize,
}

impl QueryResult {
    /// The annotations split as Prometheus' API returns them:
    /// `(warnings, infos)`.
    pub fn warnings_and_infos(&self) -> (Vec<&str>, Vec<&str>) {
        self.warnings
            .iter()
            .map(String::as_str)
            .partition(|w| !w.starts_with("PromQL info:"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_warnings_from_infos() {
        let r = QueryResult {
            value: Value::Vector(Vec::new()),
            warnings: vec!["PromQL warning: a".into(), "PromQL info: b".into()],
            peak_samples: 0,
        };
        assert_eq!(
            r.warnings_and_infos(),
            (vec!["PromQL warning: a"], vec!["PromQL info: b"])
        );
    }
}
