//! Aggregation pushed down to storage batches: `sum`, `avg`, `count`,
//! `min`, `max`, `group`, `stddev` and `stdvar` (with `by`/`without`) of a
//! vector selector, or
//! of `rate`/`irate`/`increase`/`delta`/`*_over_time`… of a matrix selector.
//!
//! The plain evaluation materialises the argument first: every selected
//! series' raw samples, then every series' points on the grid, and only then
//! folds them into groups. For `sum by (Hostname) (rate(x[5m]))` over 1M
//! series that is all samples of all series at once. These aggregations are
//! splittable, so here the storage hands over its series a batch at a time
//! ([`Storage::select_batches`](crate::storage::Storage::select_batches):
//! one shard of the Db), each series is put on the grid into a reused
//! buffer and folded straight into per-group, per-step accumulators, and the
//! batch is dropped. What is held at once is one batch (a few batches with
//! parallel reads) plus `groups × steps` accumulators, whatever the number
//! of series.
//!
//! Semantics are the plain path's: the per-series work is the same code
//! ([`Evaluator::grid_points`], [`Evaluator::range_points`]) and the fold is
//! the same [`Fold`]. Two things depend on input order and are put back:
//! result order (groups in the order of their first series in label order,
//! as the plain path sees them) and annotations. What cannot be put back
//! without sorting everything is the order in which values reach a group's
//! Kahan sum (or Welford's mean), so `sum`/`avg`/`stddev`/`stdvar` may
//! differ from the plain path in the last bits (the differential test
//! bounds this). `topk`/`bottomk` are not pushed down: Prometheus breaks
//! their ties by its heap's history, which depends on input order.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use promql_parser::parser::token::{
    T_AVG, T_COUNT, T_GROUP, T_MAX, T_MIN, T_STDDEV, T_STDVAR, T_SUM, TokenId,
};
use promql_parser::parser::{AggregateExpr, Expr, MatrixSelector, VectorSelector};
use tessera_tsdb::{Labels, Sample, SeriesSamples, is_stale_nan};

use super::aggregate::{Fold, Grouping};
use super::functions::{RangeFn, range_fn, unwrap_parens};
use super::selector::{PointValue, to_matchers};
use super::{Evaluator, Series, Val, duration_ms, offset_ms};
use crate::error::{QueryError, Result};
use crate::storage::SelectStop;

/// Range functions without scalar parameters whose per-series values can be
/// folded as they come. (`absent_over_time` looks at all series together;
/// the parameterised ones are left to the plain path.)
pub(crate) const RANGE_FUNCS: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "deriv",
    "resets",
    "changes",
    "avg_over_time",
    "sum_over_time",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "last_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
];

/// What the aggregation's argument is.
enum Source<'e> {
    Instant(&'e VectorSelector),
    Range {
        name: &'static str,
        f: RangeFn,
        ms: &'e MatrixSelector,
        /// The argument as written, for annotation positions.
        arg: &'e Expr,
    },
}

fn source(expr: &Expr) -> Option<Source<'_>> {
    match unwrap_parens(expr) {
        Expr::VectorSelector(vs) => Some(Source::Instant(vs)),
        Expr::Call(c) if c.args.args.len() == 1 && RANGE_FUNCS.contains(&c.func.name) => {
            let arg = c.args.args[0].as_ref();
            match unwrap_parens(arg) {
                Expr::MatrixSelector(ms) => Some(Source::Range {
                    name: c.func.name,
                    f: range_fn(c.func.name)?,
                    ms,
                    arg,
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The running state of one pushed-down aggregation.
struct Groups {
    op: TokenId,
    steps: usize,
    /// Hash of a group's label pairs → the groups with that hash. Hashing
    /// the kept pairs of a series in place finds its group without building
    /// its group label set (an allocation per series).
    index: HashMap<u64, Vec<usize>>,
    hasher: RandomState,
    labels: Vec<Labels>,
    /// Each group's smallest member label set: the plain path emits groups
    /// in the order their first member appears in label-sorted input.
    first: Vec<Labels>,
    /// `groups × steps` accumulators, group-major.
    accs: Vec<Fold>,
}

impl Evaluator<'_> {
    /// Evaluates `a` by folding storage batches when it qualifies; `None`
    /// leaves it to the plain path.
    pub(super) fn try_pushdown(
        &self,
        a: &AggregateExpr,
        op: TokenId,
        grouping: &Grouping,
    ) -> Result<Option<Val>> {
        if !self.settings.pushdown
            || a.param.is_some()
            || !matches!(
                op,
                T_SUM | T_AVG | T_COUNT | T_MIN | T_MAX | T_GROUP | T_STDDEV | T_STDVAR
            )
        {
            return Ok(None);
        }
        let Some(src) = source(&a.expr) else {
            return Ok(None);
        };
        self.check()?;
        let (vs, range) = match &src {
            Source::Instant(vs) => (*vs, None),
            Source::Range { ms, .. } => (&ms.vs, Some(duration_ms(ms.range))),
        };
        let offset = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let (first, last) = match at {
            Some(t) => (t, t),
            None => (self.grid.start, self.grid.end),
        };
        let matchers = to_matchers(vs)?;
        let mint = first - offset - range.unwrap_or(self.settings.lookback);
        let maxt = last - offset;
        // Only `last_over_time` keeps the metric name (delayed removal);
        // a plain selector keeps it too.
        let drop_name = matches!(&src, Source::Range { name, .. } if *name != "last_over_time");
        let counter_fn =
            matches!(&src, Source::Range { name, .. } if matches!(*name, "rate" | "increase"));

        let steps = self.grid.len();
        let mut groups = Groups {
            op,
            steps,
            index: HashMap::new(),
            hasher: RandomState::new(),
            labels: Vec::new(),
            first: Vec::new(),
            accs: Vec::new(),
        };
        // Buffers reused across series: no allocation per sample.
        let mut points: Vec<Sample> = Vec::new();
        let mut raw: Vec<Sample> = Vec::new();
        // Metric names `rate`/`increase` warn about, with the first series
        // (in label order) that has each, to warn in the plain path's order.
        let mut not_counters: BTreeMap<String, Labels> = BTreeMap::new();
        let mut failed: Option<QueryError> = None;
        let mut fold_batch = |batch: Vec<SeriesSamples>| -> Result<()> {
            let held: usize = batch.iter().map(|s| s.samples.len()).sum();
            self.add_samples(held)?;
            for (i, s) in batch.into_iter().enumerate() {
                if i % 64 == 0 {
                    self.check()?;
                }
                points.clear();
                match &src {
                    Source::Instant(_) => {
                        self.grid_points(&s.samples, offset, at, PointValue::Value, &mut points)?
                    }
                    Source::Range { f, .. } => {
                        raw.clear();
                        raw.extend(s.samples.iter().filter(|p| !is_stale_nan(p.v)));
                        let win = (range.unwrap_or(0), offset, at);
                        self.range_points(&raw, win, *f, &[], &mut [], &mut points)?;
                    }
                }
                if points.is_empty() {
                    continue;
                }
                if counter_fn
                    && let Some(metric) = s.labels.metric_name()
                    && !["_total", "_sum", "_count", "_bucket"]
                        .iter()
                        .any(|sfx| metric.ends_with(sfx))
                {
                    match not_counters.get_mut(metric) {
                        Some(l) if *l <= s.labels => {}
                        Some(l) => *l = s.labels.clone(),
                        None => {
                            not_counters.insert(metric.to_string(), s.labels.clone());
                        }
                    }
                }
                let g = groups.group_of(self, grouping, s.labels)?;
                let accs = &mut groups.accs[g * steps..(g + 1) * steps];
                for p in &points {
                    let acc = &mut accs[self.grid.index_of(p.t)];
                    if acc.seen {
                        if !acc.add(op, p.v) {
                            return Err(QueryError::exec(format!(
                                "unsupported aggregation operator {}",
                                a.op
                            )));
                        }
                    } else {
                        *acc = Fold::start(op, p.v);
                    }
                }
            }
            self.release_samples(held);
            Ok(())
        };
        let budget = self
            .settings
            .max_samples
            .saturating_sub(self.shared.current.get())
            .max(1);
        let ctx = self.ctx;
        let stop = || ctx.check("query execution").is_err();
        let r = self
            .storage
            .select_batches(&matchers, mint, maxt, budget, &stop, &mut |b| {
                fold_batch(b).map_err(|e| {
                    failed = Some(e);
                    SelectStop::Stopped
                })
            });
        if let Some(e) = failed {
            return Err(e);
        }
        match r {
            Ok(()) => {}
            Err(SelectStop::TooManySamples) => {
                return Err(QueryError::TooManySamples {
                    limit: self.settings.max_samples,
                });
            }
            Err(SelectStop::Stopped) => {
                self.check()?;
                return Err(QueryError::Canceled("query execution"));
            }
            Err(SelectStop::Failed(e)) => return Err(QueryError::Storage(e.to_string())),
        }
        if let Source::Range { arg, .. } = &src {
            let mut warned: Vec<(&Labels, &String)> =
                not_counters.iter().map(|(m, l)| (l, m)).collect();
            warned.sort();
            for (_, metric) in warned {
                self.warn(format!(
                    "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}{}",
                    self.pos(arg)
                ));
            }
        }
        Ok(Some(Val::Vector(groups.finish(self, drop_name)?)))
    }
}

impl Groups {
    /// The group of a series, created (with its accumulators, counted
    /// against the sample budget) on first sight.
    fn group_of(&mut self, ev: &Evaluator<'_>, grouping: &Grouping, ls: Labels) -> Result<usize> {
        let kept = || ls.iter().filter(|l| grouping.keeps(&l.name));
        let mut h = self.hasher.build_hasher();
        kept().for_each(|l| l.hash(&mut h));
        let h = h.finish();
        let found = self.index.get(&h).and_then(|gs| {
            gs.iter()
                .copied()
                .find(|&g| self.labels[g].iter().eq(kept()))
        });
        if let Some(g) = found {
            if ls < self.first[g] {
                self.first[g] = ls;
            }
            return Ok(g);
        }
        ev.add_samples(self.steps)?;
        let g = self.labels.len();
        self.index.entry(h).or_default().push(g);
        self.labels.push(grouping.labels(&ls));
        self.first.push(ls);
        self.accs
            .extend(std::iter::repeat_n(Fold::default(), self.steps));
        Ok(g)
    }

    /// The result series, in the plain path's order.
    fn finish(self, ev: &Evaluator<'_>, drop_name: bool) -> Result<Vec<Series>> {
        let n = self.labels.len();
        ev.release_samples(n * self.steps);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| self.first[a].cmp(&self.first[b]));
        let mut labels: Vec<Option<Labels>> = self.labels.into_iter().map(Some).collect();
        let mut out = Vec::with_capacity(n);
        for g in order {
            let accs = &self.accs[g * self.steps..(g + 1) * self.steps];
            let pts: Vec<Sample> = accs
                .iter()
                .enumerate()
                .filter(|(_, a)| a.seen)
                .map(|(i, a)| Sample::new(ev.grid.ts(i), a.value(self.op)))
                .collect();
            // Every group was created by a series with a point on the grid.
            ev.add_samples(pts.len())?;
            let ls = labels[g].take().expect("each group is emitted once");
            out.push(Series::new(ls, drop_name, pts));
        }
        Ok(out)
    }
}
