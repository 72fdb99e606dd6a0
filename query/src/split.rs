//! Splitting a query over partitions: which aggregations are exact to
//! evaluate on every partition and combine, and how they are combined.
//!
//! A query tier (`tessera query`) holds disjoint partitions of the series.
//! `agg by/without (...) (inner)` is pushed down to the partitions when:
//!
//! - `agg` is `sum`, `count`, `min`, `max`, `group`, `avg` (asked as `sum`
//!   and `count`, combined as Σsum / Σcount), `count_values` (with a
//!   string literal label: summed by group and value label), or `topk`/`bottomk` with a
//!   number literal `k` (each partition answers its own top k per group,
//!   the tier re-applies the top k);
//! - `inner` is built only from selectors, per-series functions
//!   ([`PER_SERIES_FUNCS`] and the range functions: `rate`, `irate`,
//!   `increase`, `delta`, `*_over_time`, `abs`, `clamp*`, ...) whose other arguments are literals,
//!   unary minus, parentheses, and binary operators with a number literal on
//!   one side: no nested aggregation, no `label_replace`/`label_join`, no
//!   subquery, no `absent*`/`scalar`/`vector`/`time`;
//! - it is not inside a subquery (which evaluates at its own steps).
//!
//! Every such aggregation in the query (outside subqueries) is replaced by
//! a selector of [`PUSHDOWN_LABEL`]`="<n>"`; the tier evaluates each part on
//! every partition at the query's own start/end/step, combines them
//! ([`Part::combine`]) into series with one point per step and a staleness
//! marker at every step a series lacks (so the lookback cannot fill a gap),
//! and serves those series for that selector. The rest of the expression is
//! evaluated on the tier as usual, so e.g. `sum(a) / sum(b)` or
//! `quantile(0.9, sum by (job) (x))` push down their inner sums.
//!
//! This is exact because each series lives on one partition: a per-series
//! function gives the same value wherever it runs, and these aggregations
//! of a union are the aggregations of the parts' aggregations. (Sums and
//! averages may differ in the last bits: the order of additions changes.)

use std::collections::{BTreeMap, HashMap};

use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_SUM, T_TOPK, TokenId,
    TokenType,
};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier, VectorSelector};
use tessera_tsdb::{Labels, Sample, SeriesSamples, stale_nan};

use crate::eval::{Grouping, RANGE_FUNCS};

/// The label of the selectors standing for pushed-down parts.
pub const PUSHDOWN_LABEL: &str = "__tessera_pushdown__";

/// Functions that compute each output series from one input series alone:
/// these and the range functions the storage pushdown folds
/// (`eval::RANGE_FUNCS`: `rate`, `irate`, `increase`, `delta`, the
/// parameterless `*_over_time` ...).
pub const PER_SERIES_FUNCS: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "round",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "sgn",
    "clamp",
    "clamp_min",
    "clamp_max",
    "timestamp",
    "predict_linear",
    "quantile_over_time",
];

/// A query split for partitions: the expression the tier evaluates, and
/// the parts every partition evaluates.
#[derive(Debug)]
pub struct Plan {
    pub expr: Expr,
    pub parts: Vec<Part>,
}

/// One pushed-down aggregation.
#[derive(Debug)]
pub struct Part {
    op: TokenId,
    k: i64,
    grouping: Option<LabelModifier>,
    /// The queries every partition answers: `agg(inner)`, or for `avg` the
    /// sum and the count.
    pub queries: Vec<String>,
}

/// Splits `expr`, or `None` when nothing in it can be pushed down.
pub fn plan(expr: &Expr) -> Option<Plan> {
    let mut expr = expr.clone();
    let mut parts = Vec::new();
    rewrite(&mut expr, &mut parts);
    (!parts.is_empty()).then_some(Plan { expr, parts })
}

fn rewrite(e: &mut Expr, parts: &mut Vec<Part>) {
    if let Expr::Aggregate(a) = e
        && let Some(part) = pushable(a)
    {
        let matchers = Matchers::new(vec![Matcher::new(
            MatchOp::Equal,
            PUSHDOWN_LABEL,
            &parts.len().to_string(),
        )]);
        parts.push(part);
        *e = Expr::VectorSelector(VectorSelector::new(None, matchers));
        return;
    }
    match e {
        Expr::Aggregate(a) => rewrite(&mut a.expr, parts),
        Expr::Unary(u) => rewrite(&mut u.expr, parts),
        Expr::Binary(b) => {
            rewrite(&mut b.lhs, parts);
            rewrite(&mut b.rhs, parts);
        }
        Expr::Paren(p) => rewrite(&mut p.expr, parts),
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| rewrite(a, parts)),
        // A subquery evaluates its inside at its own steps: not split.
        _ => {}
    }
}

fn pushable(a: &AggregateExpr) -> Option<Part> {
    let op = a.op.id();
    if ![
        T_SUM,
        T_COUNT,
        T_MIN,
        T_MAX,
        T_GROUP,
        T_AVG,
        T_TOPK,
        T_BOTTOMK,
        T_COUNT_VALUES,
    ]
    .contains(&op)
        || !per_series(&a.expr)
    {
        return None;
    }
    let k = match (op, a.param.as_deref()) {
        (T_TOPK | T_BOTTOMK, Some(Expr::NumberLiteral(n))) => n.val as i64,
        (T_TOPK | T_BOTTOMK, _) => return None,
        // The value label's name must be known on every partition alike.
        (T_COUNT_VALUES, Some(Expr::StringLiteral(_))) => 0,
        (T_COUNT_VALUES, _) => return None,
        _ => 0,
    };
    let queries = if op == T_AVG {
        [T_SUM, T_COUNT]
            .iter()
            .map(|&o| {
                let mut x = a.clone();
                x.op = TokenType::new(o);
                Expr::Aggregate(x).to_string()
            })
            .collect()
    } else {
        vec![Expr::Aggregate(a.clone()).to_string()]
    };
    Some(Part {
        op,
        k,
        grouping: a.modifier.clone(),
        queries,
    })
}

/// Is `e` computed series by series from selectors (see the module comment)?
fn per_series(e: &Expr) -> bool {
    match e {
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) => true,
        Expr::Paren(p) => per_series(&p.expr),
        Expr::Unary(u) => per_series(&u.expr),
        Expr::Binary(b) => match (literal(&b.lhs), literal(&b.rhs)) {
            (true, false) => per_series(&b.rhs),
            (false, true) => per_series(&b.lhs),
            _ => false,
        },
        Expr::Call(c) => {
            (PER_SERIES_FUNCS.contains(&c.func.name) || RANGE_FUNCS.contains(&c.func.name))
                && c.args.args.iter().any(|a| per_series(a))
                && c.args.args.iter().all(|a| per_series(a) || literal(a))
        }
        _ => false,
    }
}

fn literal(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::Paren(p) => literal(&p.expr),
        Expr::Unary(u) => literal(&u.expr),
        _ => false,
    }
}

/// One partition's answer to one query of a part: series with their points.
pub type PartitionSeries = Vec<(Labels, Vec<Sample>)>;

impl Part {
    /// Combines the partitions' answers (`answers[q][p]`: query `q` of
    /// [`Part::queries`] from partition `p`) into series with a point at
    /// each of `steps` where the part has a value, a staleness marker at
    /// the others.
    pub fn combine(&self, answers: Vec<Vec<PartitionSeries>>, steps: &[i64]) -> Vec<SeriesSamples> {
        let values: BTreeMap<Labels, BTreeMap<i64, f64>> = match self.op {
            T_TOPK | T_BOTTOMK => self.top(answers),
            T_AVG => {
                let mut it = answers.into_iter();
                let sums = fold(T_SUM, it.next().unwrap_or_default());
                let counts = fold(T_SUM, it.next().unwrap_or_default());
                sums.into_iter()
                    .filter_map(|(ls, pts)| {
                        let c = counts.get(&ls)?;
                        let avg = pts
                            .into_iter()
                            .filter_map(|(t, s)| Some((t, s / c.get(&t)?)))
                            .collect();
                        Some((ls, avg))
                    })
                    .collect()
            }
            op => {
                // Counts of the same group (and, for count_values, the same
                // value label) from disjoint partitions add up.
                let op = if op == T_COUNT || op == T_COUNT_VALUES {
                    T_SUM
                } else {
                    op
                };
                fold(op, answers.into_iter().next().unwrap_or_default())
            }
        };
        values
            .into_iter()
            .map(|(labels, pts)| SeriesSamples {
                labels,
                samples: steps
                    .iter()
                    .map(|&t| Sample {
                        t,
                        v: pts.get(&t).copied().unwrap_or_else(stale_nan),
                    })
                    .collect(),
            })
            .collect()
    }

    /// `topk`/`bottomk` re-applied per group and step over every
    /// partition's candidates.
    fn top(&self, answers: Vec<Vec<PartitionSeries>>) -> BTreeMap<Labels, BTreeMap<i64, f64>> {
        let grouping = Grouping::new(&self.grouping);
        // step -> group -> candidates
        let mut cands: BTreeMap<i64, HashMap<Labels, Vec<(f64, usize)>>> = BTreeMap::new();
        let all: Vec<(Labels, Vec<Sample>)> = answers.into_iter().flatten().flatten().collect();
        for (i, (ls, pts)) in all.iter().enumerate() {
            let g = grouping.labels(ls);
            for p in pts {
                cands
                    .entry(p.t)
                    .or_default()
                    .entry(g.clone())
                    .or_default()
                    .push((p.v, i));
            }
        }
        let mut out: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
        let k = self.k.max(0) as usize;
        for (t, groups) in cands {
            for (_, mut c) in groups {
                let bottom = self.op == T_BOTTOMK;
                // NaN sorts last either way, as Prometheus ranks it.
                c.sort_by(|a, b| match (a.0.is_nan(), b.0.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if bottom => a.0.total_cmp(&b.0),
                    _ => b.0.total_cmp(&a.0),
                });
                for (v, i) in c.into_iter().take(k) {
                    out.entry(all[i].0.clone()).or_default().insert(t, v);
                }
            }
        }
        out
    }
}

/// Folds the partitions' values of each series and step with `op` (`sum`,
/// `min`, `max` or `group`).
fn fold(op: TokenId, parts: Vec<PartitionSeries>) -> BTreeMap<Labels, BTreeMap<i64, f64>> {
    let mut out: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
    for (ls, pts) in parts.into_iter().flatten() {
        let series = out.entry(ls).or_default();
        for p in pts {
            series
                .entry(p.t)
                .and_modify(|acc| {
                    *acc = match op {
                        T_SUM => *acc + p.v,
                        // NaN only when every value is NaN, as Prometheus.
                        T_MIN if acc.is_nan() || p.v < *acc => p.v,
                        T_MAX if acc.is_nan() || p.v > *acc => p.v,
                        T_GROUP => 1.0,
                        _ => *acc,
                    }
                })
                .or_insert(p.v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(q: &str) -> Option<(String, Vec<String>)> {
        let p = plan(&crate::parse(q).unwrap())?;
        Some((
            p.expr.to_string(),
            p.parts.into_iter().flat_map(|p| p.queries).collect(),
        ))
    }

    #[test]
    fn pushes_down_exactly_splittable_aggregations_only() {
        let (expr, qs) = planned("sum by (job) (rate(x[5m])) / 2").unwrap();
        assert_eq!(expr, format!("{{{PUSHDOWN_LABEL}=\"0\"}} / 2"));
        assert_eq!(qs, ["sum by (job) (rate(x[5m]))"]);
        let (_, qs) = planned("avg(x * 2)").unwrap();
        assert_eq!(qs, ["sum(x * 2)", "count(x * 2)"]);
        let (_, qs) = planned("count_values by (job) (\"v\", x)").unwrap();
        assert_eq!(qs, ["count_values by (job) (\"v\", x)"]);
        let (_, qs) = planned("quantile(0.9, max by (a) (x))").unwrap();
        assert_eq!(qs, ["max by (a) (x)"]);
        // The outer sum needs the inner's groups; the inner one splits.
        let (_, qs) = planned("sum(sum by (a) (x))").unwrap();
        assert_eq!(qs, ["sum by (a) (x)"]);
        for q in [
            "quantile(0.9, x)",
            "sum(label_replace(x, \"a\", \"b\", \"c\", \"d\"))",
            "sum(x / y)",
            "max_over_time(sum(x)[5m:1m])",
            "sum(absent(x))",
            "topk(scalar(y), x)",
            "x",
        ] {
            assert!(planned(q).is_none(), "{q}");
        }
    }

    #[test]
    fn count_values_of_partitions_add_up_by_value() {
        let ls = |v: &str| Labels::from_pairs([("job", "a"), ("v", v)]);
        let pts = |v: &[(i64, f64)]| v.iter().map(|&(t, v)| Sample { t, v }).collect();
        let p = plan(&crate::parse("count_values by (job) (\"v\", x)").unwrap()).unwrap();
        let answers = vec![vec![
            vec![(ls("40"), pts(&[(0, 2.0)])), (ls("41"), pts(&[(0, 1.0)]))],
            vec![(ls("40"), pts(&[(0, 3.0)]))],
        ]];
        let got = p.parts[0].combine(answers, &[0]);
        let got: Vec<(Labels, f64)> = got
            .into_iter()
            .map(|s| (s.labels, s.samples[0].v))
            .collect();
        assert_eq!(got, [(ls("40"), 5.0), (ls("41"), 1.0)]);
    }

    #[test]
    fn combines_parts_with_stale_markers_at_missing_steps() {
        let ls = |v: &str| Labels::from_pairs([("job", v)]);
        let pts = |v: &[(i64, f64)]| v.iter().map(|&(t, v)| Sample { t, v }).collect();
        let p = plan(&crate::parse("avg by (job) (x)").unwrap()).unwrap();
        let sums = vec![
            vec![(ls("a"), pts(&[(0, 2.0), (10, 4.0)]))],
            vec![(ls("a"), pts(&[(0, 4.0)]))],
        ];
        let counts = vec![
            vec![(ls("a"), pts(&[(0, 1.0), (10, 2.0)]))],
            vec![(ls("a"), pts(&[(0, 1.0)]))],
        ];
        let got = p.parts[0].combine(vec![sums, counts], &[0, 10, 20]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples[0].v, 3.0);
        assert_eq!(got[0].samples[1].v, 2.0);
        assert!(tessera_tsdb::is_stale_nan(got[0].samples[2].v));
    }
}
