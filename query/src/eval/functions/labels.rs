//! `label_replace` and `label_join`: per-series label rewriting, done once
//! per series rather than per step.

use promql_parser::parser::Expr;
use regex::Regex;
use tessera_tsdb::METRIC_NAME;
use tessera_tsdb::labels::is_valid_label_name;

use super::super::{Evaluator, Val, merge_same_labels};
use super::string_arg;
use crate::error::{QueryError, Result};

impl Evaluator<'_> {
    pub(crate) fn label_replace(&self, args: &[&Expr]) -> Result<Val> {
        let dst = string_arg(args[1], "label_replace")?;
        let repl = string_arg(args[2], "label_replace")?;
        let src = string_arg(args[3], "label_replace")?;
        let re_str = string_arg(args[4], "label_replace")?;
        let re = Regex::new(&format!("^(?s:{re_str})$")).map_err(|_| {
            QueryError::exec(format!(
                "invalid regular expression in label_replace(): {re_str}"
            ))
        })?;
        if !is_valid_label_name(&dst) {
            return Err(QueryError::exec(format!(
                "invalid destination label name in label_replace(): {dst}"
            )));
        }
        let mut v = self.eval_vector(args[0])?;
        for s in &mut v {
            let src_val = s.labels.get(&src).unwrap_or("").to_string();
            if let Some(caps) = re.captures(&src_val) {
                let mut res = String::new();
                caps.expand(&repl, &mut res);
                s.labels.set(&dst, &res);
                if dst == METRIC_NAME {
                    s.drop_name = false;
                }
            }
        }
        Ok(Val::Vector(merge_same_labels(v)?))
    }

    pub(crate) fn label_join(&self, args: &[&Expr]) -> Result<Val> {
        let dst = string_arg(args[1], "label_join")?;
        let sep = string_arg(args[2], "label_join")?;
        let mut srcs = Vec::new();
        for a in &args[3..] {
            let s = string_arg(a, "label_join")?;
            if !is_valid_label_name(&s) {
                return Err(QueryError::exec(format!(
                    "invalid source label name in label_join(): {s}"
                )));
            }
            srcs.push(s);
        }
        if !is_valid_label_name(&dst) {
            return Err(QueryError::exec(format!(
                "invalid destination label name in label_join(): {dst}"
            )));
        }
        let mut v = self.eval_vector(args[0])?;
        for s in &mut v {
            let joined = srcs
                .iter()
                .map(|n| s.labels.get(n).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(&sep);
            s.labels.set(&dst, &joined);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
        Ok(Val::Vector(merge_same_labels(v)?))
    }
}
