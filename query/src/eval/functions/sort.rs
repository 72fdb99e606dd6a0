//! `sort`, `sort_desc`, `sort_by_label` and `sort_by_label_desc`: they only
//! order an instant query's result; range results are always by label set.

use std::cmp::Ordering;

use promql_parser::parser::Expr;

use super::super::{Evaluator, Series, Val};
use super::string_arg;
use super::util::natural_cmp;
use crate::error::Result;

fn value_of(s: &Series) -> f64 {
    s.points.first().map(|p| p.v).unwrap_or(f64::NAN)
}

/// Ascending (or descending) by value, NaN last either way.
fn by_value(a: &Series, b: &Series, desc: bool) -> Ordering {
    let (x, y) = (value_of(a), value_of(b));
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => {
            let o = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
            if desc { o.reverse() } else { o }
        }
    }
}

impl Evaluator<'_> {
    pub(crate) fn sort_fn(&self, name: &str, args: &[&Expr], pos: &str) -> Result<Val> {
        let mut v = self.eval_vector(args[0])?;
        if self.grid.len() > 1 {
            self.warn(format!(
                "PromQL warning: sort is ineffective for range queries since results are always ordered by labels{pos}"
            ));
            return Ok(Val::Vector(v));
        }
        match name {
            "sort" => v.sort_by(|a, b| by_value(a, b, false)),
            "sort_desc" => v.sort_by(|a, b| by_value(a, b, true)),
            _ => {
                let mut names = Vec::new();
                for a in &args[1..] {
                    names.push(string_arg(a, name)?);
                }
                let desc = name == "sort_by_label_desc";
                v.sort_by(|a, b| {
                    for n in &names {
                        let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                        if x == y {
                            continue;
                        }
                        let o = natural_cmp(x, y);
                        return if desc { o.reverse() } else { o };
                    }
                    let o = a.labels.cmp(&b.labels);
                    if desc { o.reverse() } else { o }
                });
            }
        }
        Ok(Val::Vector(v))
    }
}
