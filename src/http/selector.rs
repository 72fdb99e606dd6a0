//! `match[]` series selectors (`up{job="x"}`, `{__name__=~".+"}`) parsed with
//! promql-parser into storage matchers.

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{self, Expr};
use tessera_tsdb::{METRIC_NAME, MatchOp, Matcher};

use super::api::ApiError;

/// One selector as the alternatives of its `or` groups (Prometheus 3 allows
/// `{a="1" or b="2"}`); each alternative is a conjunction of matchers.
pub(super) fn parse(s: &str) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let bad = |msg: String| ApiError::bad_data(format!("invalid parameter \"match[]\": {msg}"));
    let expr = parser::parse(s).map_err(bad)?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(bad(format!("{s:?} is not a series selector")));
    };
    let convert = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, ApiError> {
        let mut out = Vec::with_capacity(ms.len() + 1);
        if let Some(name) = &vs.name {
            out.push(Matcher::equal(METRIC_NAME, name.clone()));
        }
        for m in ms {
            let op = match m.op {
                PMatchOp::Equal => MatchOp::Equal,
                PMatchOp::NotEqual => MatchOp::NotEqual,
                PMatchOp::Re(_) => MatchOp::RegexMatch,
                PMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
            };
            out.push(
                Matcher::new(op, m.name.clone(), m.value.clone())
                    .map_err(|e| bad(e.to_string()))?,
            );
        }
        if out.iter().all(|m| m.matches_empty()) {
            return Err(bad(format!(
                "match[] selector {s:?} must contain at least one matcher that does not match the empty string"
            )));
        }
        Ok(out)
    };
    if vs.matchers.or_matchers.is_empty() {
        Ok(vec![convert(&vs.matchers.matchers)?])
    } else {
        vs.matchers.or_matchers.iter().map(|g| convert(g)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_selectors_grafana_sends() {
        let f = |s: &str, want: &[&str]| {
            let got: Vec<String> = parse(s).unwrap()[0].iter().map(|m| m.to_string()).collect();
            assert_eq!(got, want, "{s}");
        };
        f("up", &["__name__=\"up\""]);
        f("{le!=\"\"}", &["le!=\"\""]);
        f("{__name__=~\".+\"}", &["__name__=~\".+\""]);
        f(
            "node_cpu_seconds_total{mode!~\"idle|iowait\",instance=\"a\"}",
            &[
                "__name__=\"node_cpu_seconds_total\"",
                "mode!~\"idle|iowait\"",
                "instance=\"a\"",
            ],
        );
    }

    #[test]
    fn rejects_what_is_not_a_usable_selector() {
        for s in ["", "up +", "sum(up)", "{job=~\".*\"}", "{a=\"\"}"] {
            assert!(parse(s).is_err(), "{s:?} should be refused");
        }
    }
}
