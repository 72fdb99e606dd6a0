//! The evaluator: walks the `promql-parser` AST over a grid of evaluation
//! timestamps, the way Prometheus' engine does.
//!
//! Every instant-vector expression evaluates to a list of [`Series`] whose
//! points sit on the grid (one point per step at most), so an instant query
//! is a range query with one step. Range vectors only exist as function
//! arguments ([`RangeArg`]: raw samples plus the window to slide) and as the
//! top-level value of an instant query. Each selector is fetched from
//! storage once per query, for the whole time span the grid needs; steps then
//! seek into the fetched samples.

mod aggregate;
pub(crate) use aggregate::Grouping;
pub(crate) use pushdown::RANGE_FUNCS;
pub(crate) use selector::to_matchers;
mod binary;
pub(crate) mod functions;
mod pushdown;
mod selector;
mod subquery;

use std::cell::{Cell, RefCell};

use promql_parser::parser::{AtModifier, Expr, Offset};
use tessera_tsdb::{Labels, METRIC_NAME, Sample};

use crate::context::QueryContext;
use crate::error::{QueryError, Result};
use crate::storage::Storage;

/// Deepest expression nesting evaluated; deeper trees are rejected up front
/// so hostile queries cannot overflow the stack.
pub(crate) const MAX_DEPTH: usize = 256;

/// A series on the evaluation grid (instant vectors) or a raw range of
/// samples (range vectors).
#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub labels: Labels,
    /// Prometheus 3 "delayed name removal": the metric name is dropped at the
    /// end of evaluation, so `last_over_time(rate(x[1m])[5m:])`-style nesting
    /// and `label_replace(..., "__name__", ...)` can still see or restore it.
    pub drop_name: bool,
    pub points: Vec<Sample>,
}

impl Series {
    pub(crate) fn new(labels: Labels, drop_name: bool, points: Vec<Sample>) -> Self {
        Series {
            labels,
            drop_name,
            points,
        }
    }
}

/// The value of an evaluated sub-expression.
#[derive(Debug)]
pub(crate) enum Val {
    /// One value per grid step.
    Scalar(Vec<f64>),
    String(String),
    /// An instant vector over the grid.
    Vector(Vec<Series>),
    /// A range vector at a single evaluation time (top level only).
    Matrix(Vec<Series>),
}

/// The evaluation timestamps: `start, start+step, ..., <= end`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Grid {
    pub(crate) fn len(&self) -> usize {
        if self.end < self.start {
            return 0;
        }
        ((self.end - self.start) / self.step) as usize + 1
    }

    pub(crate) fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    pub(crate) fn index_of(&self, t: i64) -> usize {
        ((t - self.start) / self.step) as usize
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = i64> + use<> {
        let g = *self;
        (0..g.len()).map(move |i| g.ts(i))
    }
}

/// Counters shared by an evaluator and its subquery children.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub current: Cell<usize>,
    pub peak: Cell<usize>,
    pub warnings: RefCell<Vec<String>>,
}

/// Settings fixed for the whole query.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub lookback: i64,
    pub max_samples: usize,
    pub subquery_step: i64,
    /// The query's own start and end, which `@ start()` / `@ end()` mean
    /// even inside subqueries.
    pub query_start: i64,
    pub query_end: i64,
    /// The query's step (0 for instant queries), what `step()` returns.
    pub query_step: i64,
    /// Whether splittable aggregations fold storage batches (`pushdown.rs`).
    pub pushdown: bool,
}

pub(crate) struct Evaluator<'a> {
    /// The query text, to give annotations Prometheus' `(line:col)`.
    pub query: &'a str,
    pub storage: &'a dyn Storage,
    pub ctx: &'a QueryContext,
    pub shared: &'a Shared,
    pub settings: Settings,
    pub grid: Grid,
}

impl<'a> Evaluator<'a> {
    /// A child evaluator on another grid (subqueries).
    pub(crate) fn with_grid(&self, grid: Grid) -> Evaluator<'a> {
        Evaluator {
            query: self.query,
            storage: self.storage,
            ctx: self.ctx,
            shared: self.shared,
            settings: self.settings,
            grid,
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        self.ctx.check("query execution")
    }

    /// Records `n` more samples held in memory, failing past the budget.
    pub(crate) fn add_samples(&self, n: usize) -> Result<()> {
        let cur = self.shared.current.get() + n;
        self.shared.current.set(cur);
        if cur > self.shared.peak.get() {
            self.shared.peak.set(cur);
        }
        if cur > self.settings.max_samples {
            return Err(QueryError::TooManySamples {
                limit: self.settings.max_samples,
            });
        }
        Ok(())
    }

    /// Records that `n` samples were released.
    pub(crate) fn release_samples(&self, n: usize) {
        let cur = self.shared.current.get().saturating_sub(n);
        self.shared.current.set(cur);
    }

    /// ` (line:col)` of a sub-expression for annotations. The AST carries no
    /// positions, so the expression's text is looked up in the query; when
    /// it was written differently the suffix is left out.
    pub(crate) fn pos(&self, e: &Expr) -> String {
        self.pos_of_text(&e.to_string())
    }

    pub(crate) fn pos_of_text(&self, text: &str) -> String {
        match self.query.find(text) {
            Some(i) if !text.is_empty() => {
                let before = &self.query[..i];
                let line = before.matches('\n').count() + 1;
                let col = i - before.rfind('\n').map(|n| n + 1).unwrap_or(0) + 1;
                format!(" ({line}:{col})")
            }
            _ => String::new(),
        }
    }

    pub(crate) fn warn(&self, msg: String) {
        let mut w = self.shared.warnings.borrow_mut();
        if !w.contains(&msg) {
            w.push(msg);
        }
    }

    /// Evaluates any expression on the current grid.
    pub(crate) fn eval(&self, expr: &Expr) -> Result<Val> {
        self.check()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; self.grid.len()])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => {
                let v = self.eval(&u.expr)?;
                Ok(match v {
                    Val::Scalar(mut xs) => {
                        xs.iter_mut().for_each(|x| *x = -*x);
                        Val::Scalar(xs)
                    }
                    Val::Vector(mut ss) => {
                        for s in &mut ss {
                            s.drop_name = true;
                            s.points.iter_mut().for_each(|p| p.v = -p.v);
                        }
                        Val::Vector(ss)
                    }
                    other => {
                        return Err(QueryError::exec(format!(
                            "unary expression only allowed on expressions of type scalar or vector, got {}",
                            val_type(&other)
                        )));
                    }
                })
            }
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.eval_vector_selector(vs, false)?)),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                // A range vector outside a function: only valid as the
                // top-level value of an instant query.
                let arg = self.eval_range_arg(expr)?;
                if self.grid.len() != 1 {
                    return Err(QueryError::exec(
                        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector",
                    ));
                }
                let t = self.grid.start;
                let (lo, hi) = arg.window_bounds(t);
                let out = arg
                    .series
                    .into_iter()
                    .filter_map(|s| {
                        let pts: Vec<Sample> = s
                            .points
                            .iter()
                            .filter(|p| p.t > lo && p.t <= hi)
                            .copied()
                            .collect();
                        (!pts.is_empty()).then(|| Series::new(s.labels, s.drop_name, pts))
                    })
                    .collect();
                Ok(Val::Matrix(out))
            }
            Expr::Binary(b) => self.eval_binary(b),
            Expr::Aggregate(a) => self.eval_aggregate(a),
            Expr::Call(c) => self.eval_call(c),
            Expr::Extension(_) => Err(QueryError::exec("extension expressions are not supported")),
        }
    }

    /// Evaluates an expression that must yield an instant vector.
    pub(crate) fn eval_vector(&self, expr: &Expr) -> Result<Vec<Series>> {
        match self.eval(expr)? {
            Val::Vector(v) => Ok(v),
            other => Err(QueryError::exec(format!(
                "expected instant vector, got {}",
                val_type(&other)
            ))),
        }
    }

    /// Evaluates an expression that must yield a scalar (one value per step).
    pub(crate) fn eval_scalar(&self, expr: &Expr) -> Result<Vec<f64>> {
        match self.eval(expr)? {
            Val::Scalar(v) => Ok(v),
            other => Err(QueryError::exec(format!(
                "expected scalar, got {}",
                val_type(&other)
            ))),
        }
    }

    /// Resolves an `@` modifier to milliseconds.
    pub(crate) fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.settings.query_start),
            Some(AtModifier::End) => Some(self.settings.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(*t)),
        }
    }
}

/// Times, offsets and ranges are clamped to ±`MAX_TIME` ms (about 11
/// million years) so that sums of a few of them can never overflow, whatever
/// a hostile query writes (`x offset 100000000y`, `@ 1e300`).
pub(crate) const MAX_TIME: i64 = i64::MAX / 8;

pub(crate) fn clamp_time(t: i64) -> i64 {
    t.clamp(-MAX_TIME, MAX_TIME)
}

/// Milliseconds of a duration, clamped.
pub(crate) fn duration_ms(d: std::time::Duration) -> i64 {
    d.as_millis().min(MAX_TIME as u128) as i64
}

/// Milliseconds of an `offset` (negative offsets look into the future).
pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => -duration_ms(*d),
    }
}

pub(crate) fn system_time_ms(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => duration_ms(d),
        Err(e) => -duration_ms(e.duration()),
    }
}

pub(crate) fn val_type(v: &Val) -> &'static str {
    match v {
        Val::Scalar(_) => "scalar",
        Val::String(_) => "string",
        Val::Vector(_) => "instant vector",
        Val::Matrix(_) => "range vector",
    }
}

/// A range-vector function argument: raw samples (staleness markers removed)
/// and the window `(end - range, end]` to slide, where `end` is the step
/// timestamp (or the `@` time) minus the offset.
pub(crate) struct RangeArg {
    pub series: Vec<Series>,
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
}

impl RangeArg {
    /// The exclusive start and inclusive end of the window at step `ts`.
    pub(crate) fn window_bounds(&self, ts: i64) -> (i64, i64) {
        let end = self.at.unwrap_or(ts) - self.offset;
        (end - self.range, end)
    }
}

/// Prometheus' `labels.String()`: `{__name__="x", a="b"}` (the metric name
/// is an ordinary label here, unlike in [`Labels`]' `Display`).
pub(crate) fn go_labels_string(ls: &Labels) -> String {
    let mut s = String::from("{");
    for (i, l) in ls.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&l.name);
        s.push('=');
        s.push_str(&format!("{:?}", l.value));
    }
    s.push('}');
    s
}

/// Removes the metric name and the metadata labels that describe it
/// (`__type__`, `__unit__`), as Prometheus' `DropReserved(IsMetadataLabel)`.
pub(crate) fn drop_metadata_labels(ls: &mut Labels) {
    ls.remove(METRIC_NAME);
    ls.remove("__type__");
    ls.remove("__unit__");
}

/// Drops `__name__` where delayed removal asked for it, then rejects or merges
/// series that became identical (Prometheus' `cleanupMetricLabels`).
pub(crate) fn cleanup_names(mut series: Vec<Series>) -> Result<Vec<Series>> {
    for s in &mut series {
        if s.drop_name {
            drop_metadata_labels(&mut s.labels);
            s.drop_name = false;
        }
    }
    merge_same_labels(series)
}

/// Merges series with identical label sets whose points do not overlap;
/// overlapping points are Prometheus' "same labelset" error.
pub(crate) fn merge_same_labels(series: Vec<Series>) -> Result<Vec<Series>> {
    if series.len() < 2 {
        return Ok(series);
    }
    let mut index: std::collections::HashMap<Labels, usize> =
        std::collections::HashMap::with_capacity(series.len());
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            Some(&i) => {
                let o = &mut out[i];
                o.drop_name |= s.drop_name;
                o.points.extend(s.points);
                o.points.sort_by_key(|p| p.t);
                if o.points.windows(2).any(|w| w[0].t == w[1].t) {
                    return Err(QueryError::exec(
                        "vector cannot contain metrics with the same labelset",
                    ));
                }
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Depth of an expression tree, computed without recursion so that the guard
/// itself cannot overflow on a hostile query.
pub(crate) fn expr_depth(root: &Expr) -> usize {
    let mut max = 0;
    let mut stack: Vec<(&Expr, usize)> = vec![(root, 1)];
    while let Some((e, d)) = stack.pop() {
        max = max.max(d);
        match e {
            Expr::Aggregate(a) => {
                stack.push((&a.expr, d + 1));
                if let Some(p) = &a.param {
                    stack.push((p, d + 1));
                }
            }
            Expr::Unary(u) => stack.push((&u.expr, d + 1)),
            Expr::Binary(b) => {
                stack.push((&b.lhs, d + 1));
                stack.push((&b.rhs, d + 1));
            }
            Expr::Paren(p) => stack.push((&p.expr, d + 1)),
            Expr::Subquery(s) => stack.push((&s.expr, d + 1)),
            Expr::Call(c) => {
                for a in &c.args.args {
                    stack.push((a, d + 1));
                }
            }
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)], drop: bool, ts: &[i64]) -> Series {
        Series::new(
            Labels::from_pairs(pairs.iter().copied()),
            drop,
            ts.iter().map(|&t| Sample::new(t, t as f64)).collect(),
        )
    }

    #[test]
    fn grid_counts_and_indexes_steps() {
        let g = Grid {
            start: 1000,
            end: 10_000,
            step: 3000,
        };
        assert_eq!(g.len(), 4);
        assert_eq!(g.iter().collect::<Vec<_>>(), vec![1000, 4000, 7000, 10_000]);
        assert_eq!(g.index_of(7000), 2);
        let empty = Grid {
            start: 10,
            end: 0,
            step: 1,
        };
        assert_eq!(empty.len(), 0);
    }

    #[test]
    fn merge_joins_disjoint_series_and_rejects_overlaps() {
        let a = s(&[("a", "1")], false, &[0, 2]);
        let b = s(&[("a", "1")], true, &[1]);
        let merged = merge_same_labels(vec![a.clone(), b]).unwrap();
        assert_eq!(merged.len(), 1);
        assert_eq!(
            merged[0].points.iter().map(|p| p.t).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(merged[0].drop_name);
        let err = merge_same_labels(vec![a.clone(), a]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "vector cannot contain metrics with the same labelset"
        );
    }

    #[test]
    fn cleanup_drops_name_and_metadata_labels_only_when_asked() {
        let kept = s(
            &[("__name__", "x"), ("__type__", "counter"), ("a", "1")],
            false,
            &[0],
        );
        let dropped = s(
            &[("__name__", "y"), ("__unit__", "seconds"), ("a", "2")],
            true,
            &[0],
        );
        let out = cleanup_names(vec![kept, dropped]).unwrap();
        assert_eq!(out[0].labels.get("__name__"), Some("x"));
        assert_eq!(out[0].labels.get("__type__"), Some("counter"));
        assert_eq!(
            out[1].labels.as_slice(),
            Labels::from_pairs([("a", "2")]).as_slice()
        );
        // Two series that only differed by name collide once it is dropped.
        let a = s(&[("__name__", "x"), ("a", "1")], true, &[0]);
        let b = s(&[("__name__", "y"), ("a", "1")], true, &[0]);
        assert!(cleanup_names(vec![a, b]).is_err());
    }

    #[test]
    fn depth_counts_nesting() {
        let e = promql_parser::parser::parse("sum(rate(x[5m])) + 1").unwrap();
        assert_eq!(expr_depth(&e), 4);
    }

    #[test]
    fn go_label_strings_show_the_name_as_a_label() {
        let ls = Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]);
        assert_eq!(go_labels_string(&ls), "{__name__=\"up\", job=\"a\\\"b\"}");
    }
}
