//! The time window a query reads from storage: the earliest and latest
//! sample time any of its selectors can select, for a query evaluated over
//! `[start, end]` (Prometheus' `FindMinMaxTime`). A query tier uses it to
//! skip partitions whose data cannot fall in it.

use promql_parser::parser::{AtModifier, Expr, VectorSelector};

use crate::eval::{duration_ms, offset_ms, system_time_ms};

/// `(mint, maxt)` in milliseconds that `expr`, evaluated at every step of
/// `[start, end]` with `lookback` (the lookback delta) for instant
/// selectors, reads; `None` when it reads no selector.
pub fn read_window(expr: &Expr, start: i64, end: i64, lookback: i64) -> Option<(i64, i64)> {
    let mut w = Walk {
        query: (start, end),
        lookback,
        out: None,
    };
    w.walk(expr, start, end);
    w.out
}

struct Walk {
    /// The query's own start and end, which `@ start()`/`@ end()` name.
    query: (i64, i64),
    lookback: i64,
    out: Option<(i64, i64)>,
}

impl Walk {
    /// The evaluation times `[first, last]` a selector or subquery with
    /// these modifiers sees, evaluated over `[start, end]`.
    fn times(&self, at: &Option<AtModifier>, offset: i64, start: i64, end: i64) -> (i64, i64) {
        let at = match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query.0),
            Some(AtModifier::End) => Some(self.query.1),
            Some(AtModifier::At(t)) => Some(system_time_ms(*t)),
        };
        let (first, last) = at.map_or((start, end), |t| (t, t));
        (first.saturating_sub(offset), last.saturating_sub(offset))
    }

    fn selector(&mut self, vs: &VectorSelector, range: i64, start: i64, end: i64) {
        let (first, last) = self.times(&vs.at, offset_ms(&vs.offset), start, end);
        let (lo, hi) = (first.saturating_sub(range), last);
        self.out = Some(self.out.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
    }

    fn walk(&mut self, e: &Expr, start: i64, end: i64) {
        match e {
            Expr::VectorSelector(vs) => self.selector(vs, self.lookback, start, end),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs, duration_ms(ms.range), start, end),
            Expr::Subquery(s) => {
                let (first, last) = self.times(&s.at, offset_ms(&s.offset), start, end);
                self.walk(&s.expr, first.saturating_sub(duration_ms(s.range)), last);
            }
            Expr::Call(c) => c.args.args.iter().for_each(|a| self.walk(a, start, end)),
            Expr::Aggregate(a) => {
                self.walk(&a.expr, start, end);
                if let Some(p) = &a.param {
                    self.walk(p, start, end);
                }
            }
            Expr::Unary(u) => self.walk(&u.expr, start, end),
            Expr::Binary(b) => {
                self.walk(&b.lhs, start, end);
                self.walk(&b.rhs, start, end);
            }
            Expr::Paren(p) => self.walk(&p.expr, start, end),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_ranges_offsets_subqueries_and_at() {
        const M: i64 = 60_000;
        let f = |q: &str, want: Option<(i64, i64)>| {
            let e = crate::parse(q).unwrap();
            assert_eq!(read_window(&e, 100 * M, 110 * M, 5 * M), want, "{q}");
        };
        f("x", Some((95 * M, 110 * M)));
        f("rate(x[10m])", Some((90 * M, 110 * M)));
        f("sum(x offset 1h) + y", Some((35 * M, 110 * M)));
        f(
            "max_over_time(rate(x[1m])[30m:1m])",
            Some((69 * M, 110 * M)),
        );
        f("x @ 1000", Some((1_000_000 - 5 * M, 1_000_000)));
        f("x offset -10m", Some((105 * M, 120 * M)));
        f("vector(1)", None);
    }
}
