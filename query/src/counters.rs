//! Which selectors a query reads only as counters: the range selectors
//! that are the argument of `rate`, `irate`, `increase` or `resets`, and
//! appear nowhere else in the query.
//!
//! A storage that stitches one series out of several copies (the query
//! tier deduplicating an HA pair of senders) needs this: where it switches
//! from one copy to the other across a gap, the other sender's counter is a
//! little lower or higher, and for a counter the stitch must continue the
//! increase, not show a reset. For a gauge the same adjustment would shift
//! the values, so it is made only where the query cannot see them.

use promql_parser::parser::Expr;
use tessera_tsdb::Matcher;

use crate::eval::to_matchers;

/// Functions that read their range argument as a counter.
const COUNTER_FUNCS: &[&str] = &["rate", "irate", "increase", "resets"];

/// The matchers (as the evaluator passes them to `Storage::select`) of
/// every selector `expr` reads only under a counter function.
pub fn counter_selectors(expr: &Expr) -> Vec<Vec<Matcher>> {
    let (mut counters, mut others) = (Vec::new(), Vec::new());
    walk(expr, &mut counters, &mut others);
    counters.retain(|c| !others.iter().any(|o| same(c, o)));
    counters
}

/// Whether two matcher lists are the same selection, in the same order.
pub fn same(a: &[Matcher], b: &[Matcher]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.op == y.op && x.value == y.value)
}

fn walk(e: &Expr, counters: &mut Vec<Vec<Matcher>>, others: &mut Vec<Vec<Matcher>>) {
    let push = |vs, to: &mut Vec<Vec<Matcher>>| {
        // A selector that does not convert fails the query anyway.
        if let Ok(m) = to_matchers(vs) {
            to.push(m);
        }
    };
    match e {
        Expr::VectorSelector(vs) => push(vs, others),
        Expr::MatrixSelector(ms) => push(&ms.vs, others),
        Expr::Call(c) if COUNTER_FUNCS.contains(&c.func.name) => {
            for a in &c.args.args {
                match unparen(a) {
                    Expr::MatrixSelector(ms) => push(&ms.vs, counters),
                    other => walk(other, counters, others),
                }
            }
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, counters, others)),
        Expr::Aggregate(a) => {
            walk(&a.expr, counters, others);
            if let Some(p) = &a.param {
                walk(p, counters, others);
            }
        }
        Expr::Unary(u) => walk(&u.expr, counters, others),
        Expr::Binary(b) => {
            walk(&b.lhs, counters, others);
            walk(&b.rhs, counters, others);
        }
        Expr::Paren(p) => walk(&p.expr, counters, others),
        Expr::Subquery(s) => walk(&s.expr, counters, others),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_read_only_by_counter_functions() {
        let f = |q: &str, want: &[&str]| {
            let got: Vec<String> = counter_selectors(&crate::parse(q).unwrap())
                .iter()
                .map(|ms| {
                    let mut v: Vec<String> = ms.iter().map(|m| m.value.clone()).collect();
                    v.sort();
                    v.join(",")
                })
                .collect();
            assert_eq!(got, want, "{q}");
        };
        f("rate(c_total[5m])", &["c_total"]);
        f(
            "sum by (job) (increase(c_total{job=\"a\"}[1h]))",
            &["a,c_total"],
        );
        f(
            "irate(c_total[1m]) / rate(d_total[5m])",
            &["c_total", "d_total"],
        );
        // Also read as a gauge: no adjustment.
        f("rate(c_total[5m]) + c_total", &[]);
        f("delta(g[5m])", &[]);
        f("max_over_time(rate(c_total[1m])[10m:1m])", &["c_total"]);
        f("g", &[]);
    }
}
