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
