//! The one error type of the query crate, with Prometheus' wording and
//! `errorType` classification so the HTTP layer can map status codes.

/// Why a query could not be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The query text is not valid PromQL (HTTP 400, `bad_data`), with
    /// its 1-based line and column when known: `1:4: parse error: ...` as
    /// Prometheus writes it.
    #[error("{}parse error: {message}", position.map(|(l, c)| format!("{l}:{c}: ")).unwrap_or_default())]
    Parse {
        message: String,
        position: Option<(usize, usize)>,
    },
    /// A request parameter (time, step, ...) is invalid (HTTP 400, `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// The query is valid but failed while being evaluated (HTTP 422).
    #[error("{0}")]
    Execution(String),
    /// The deadline passed (HTTP 503).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The caller cancelled the query, e.g. the client went away (HTTP 503).
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// The per-query sample budget was exceeded (HTTP 422).
    #[error(
        "query processing would load too many samples into memory in query execution \
         (limit {limit}); narrow the selectors or the time range, or raise --query.max-samples"
    )]
    TooManySamples { limit: usize },
    /// Storage failed to answer a selection.
    #[error("expanding series: {0}")]
    Storage(String),
}

impl QueryError {
    /// Prometheus' `errorType` for the JSON envelope.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::Parse { .. } | QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::TooManySamples { .. } => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Canceled(_) => "canceled",
            QueryError::Storage(_) => "internal",
        }
    }

    pub(crate) fn exec(msg: impl Into<String>) -> Self {
        QueryError::Execution(msg.into())
    }
}

pub(crate) type Result<T> = std::result::Result<T, QueryError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_follow_prometheus() {
        let f = |e: QueryError, want: &str| assert_eq!(e.error_type(), want, "{e}");
        f(
            QueryError::Parse {
                message: "x".into(),
                position: None,
            },
            "bad_data",
        );
        f(QueryError::exec("x"), "execution");
        f(QueryError::TooManySamples { limit: 1 }, "execution");
        f(QueryError::Timeout("query execution"), "timeout");
        f(QueryError::Canceled("query execution"), "canceled");
    }

    #[test]
    fn too_many_samples_names_the_flag() {
        let s = QueryError::TooManySamples { limit: 10 }.to_string();
        assert!(s.starts_with(
            "query processing would load too many samples into memory in query execution"
        ));
        assert!(s.contains("--query.max-samples"), "{s}");
    }
}
