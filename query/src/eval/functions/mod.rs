//! PromQL function calls: dispatch by name, the driver that slides range
//! windows for range-vector functions, and the small scalar functions.
//!
//! Each family lives in its own module: [`rate`] (counter/gauge change),
//! [`over_time`], [`math`], [`time`], [`labels`], [`histogram`], [`sort`]
//! and [`info`].

pub(crate) mod histogram;
pub(crate) mod info;
pub(crate) mod labels;
pub(crate) mod math;
pub(crate) mod over_time;
pub(crate) mod rate;
pub(crate) mod sort;
pub(crate) mod time;
pub(crate) mod util;

use promql_parser::parser::{Call, Expr};
use tessera_tsdb::{Labels, METRIC_NAME, MatchOp, Sample};

use super::{Evaluator, Series, Val};
use crate::error::{QueryError, Result};

/// The samples of one series inside one step's window `(start, end]`.
pub(crate) struct Window<'a> {
    pub samples: &'a [Sample],
    /// Exclusive window start (ms).
    pub start: i64,
    /// Inclusive window end (ms).
    pub end: i64,
    /// The evaluation timestamp of the step.
    pub ts: i64,
    /// The selector's range (ms).
    pub range: i64,
}

/// A range-vector function: window plus up to two scalar parameters.
pub(crate) type RangeFn = fn(&Window<'_>, &[f64]) -> Result<Option<f64>>;

pub(crate) fn range_fn(name: &str) -> Option<RangeFn> {
    Some(match name {
        "rate" => |w, _| Ok(rate::extrapolated_rate(w, true, true)),
        "increase" => |w, _| Ok(rate::extrapolated_rate(w, true, false)),
        "delta" => |w, _| Ok(rate::extrapolated_rate(w, false, false)),
        "irate" => |w, _| Ok(rate::instant_value(w, true)),
        "idelta" => |w, _| Ok(rate::instant_value(w, false)),
        "deriv" => |w, _| Ok(rate::deriv(w)),
        "predict_linear" => |w, p| Ok(rate::predict_linear(w, p[0])),
        "resets" => |w, _| Ok(rate::resets(w)),
        "changes" => |w, _| Ok(rate::changes(w)),
        "avg_over_time" => |w, _| Ok(over_time::avg(w)),
        "sum_over_time" => |w, _| Ok(over_time::sum(w)),
        "count_over_time" => |w, _| Ok(over_time::count(w)),
        "min_over_time" => |w, _| Ok(over_time::min(w)),
        "max_over_time" => |w, _| Ok(over_time::max(w)),
        "last_over_time" => |w, _| Ok(over_time::last(w)),
        "first_over_time" => |w, _| Ok(over_time::first(w)),
        "present_over_time" => |w, _| Ok(over_time::present(w)),
        "absent_over_time" => |w, _| Ok(over_time::present(w)),
        "stddev_over_time" => |w, _| Ok(over_time::stddev(w)),
        "stdvar_over_time" => |w, _| Ok(over_time::stdvar(w)),
        "quantile_over_time" => |w, p| Ok(over_time::quantile_over(w, p[0])),
        "mad_over_time" => |w, _| Ok(over_time::mad(w)),
        "ts_of_max_over_time" => |w, _| Ok(over_time::ts_of_max(w)),
        "ts_of_min_over_time" => |w, _| Ok(over_time::ts_of_min(w)),
        "ts_of_last_over_time" => |w, _| Ok(over_time::ts_of_last(w)),
        "ts_of_first_over_time" => |w, _| Ok(over_time::ts_of_first(w)),
        "double_exponential_smoothing" => {
            |w, p| over_time::double_exponential_smoothing(w, p[0], p[1])
        }
        _ => return None,
    })
}

pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

fn is_range_expr(e: &Expr) -> bool {
    matches!(
        unwrap_parens(e),
        Expr::MatrixSelector(_) | Expr::Subquery(_)
    )
}

/// The string value of a string-literal argument.
pub(crate) fn string_arg(e: &Expr, func: &str) -> Result<String> {
    match unwrap_parens(e) {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        _ => Err(QueryError::exec(format!(
            "expected string literal argument for {func}()"
        ))),
    }
}

impl Evaluator<'_> {
    pub(crate) fn eval_call(&self, c: &Call) -> Result<Val> {
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|b| b.as_ref()).collect();
        // The parser checks arity; this guard keeps a parser gap from
        // turning into an out-of-bounds panic.
        // Variadic functions may omit their last argument (or repeat it).
        let optional = usize::from(c.func.variadic != 0);
        let min_args = c.func.arg_types.len().saturating_sub(optional);
        if args.len() < min_args {
            return Err(QueryError::exec(format!(
                "expected at least {min_args} argument(s) in call to {name:?}, got {}",
                args.len()
            )));
        }
        if let Some(f) = range_fn(name) {
            let idx = args.iter().position(|a| is_range_expr(a)).ok_or_else(|| {
                QueryError::exec(format!("{name}() expects a range vector argument"))
            })?;
            return self.eval_range_fn(name, &args, idx, f);
        }
        match name {
            "time" => Ok(Val::Scalar(
                self.grid.iter().map(|t| t as f64 / 1000.0).collect(),
            )),
            "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; self.grid.len()])),
            "start" => Ok(Val::Scalar(vec![
                self.settings.query_start as f64 / 1000.0;
                self.grid.len()
            ])),
            "end" => Ok(Val::Scalar(vec![
                self.settings.query_end as f64 / 1000.0;
                self.grid.len()
            ])),
            "range" => Ok(Val::Scalar(vec![
                (self.settings.query_end - self.settings.query_start)
                    as f64
                    / 1000.0;
                self.grid.len()
            ])),
            "step" => Ok(Val::Scalar(vec![
                self.settings.query_step as f64 / 1000.0;
                self.grid.len()
            ])),
            "min_of" | "max_of" => {
                let mut acc: Option<Vec<f64>> = None;
                for a in &args {
                    let v = self.eval_scalar(a)?;
                    acc = Some(match acc {
                        None => v,
                        Some(prev) => prev
                            .into_iter()
                            .zip(v)
                            .map(|(x, y)| {
                                // Go's math.Min/Max: NaN wins.
                                if x.is_nan() || y.is_nan() {
                                    f64::NAN
                                } else if name == "min_of" {
                                    x.min(y)
                                } else {
                                    x.max(y)
                                }
                            })
                            .collect(),
                    });
                }
                Ok(Val::Scalar(acc.unwrap_or_default()))
            }
            "vector" => {
                let xs = self.eval_scalar(args[0])?;
                let pts: Vec<Sample> = self
                    .grid
                    .iter()
                    .zip(xs)
                    .map(|(t, v)| Sample::new(t, v))
                    .collect();
                self.add_samples(pts.len())?;
                Ok(Val::Vector(vec![Series::new(Labels::empty(), false, pts)]))
            }
            "scalar" => {
                let v = self.eval_vector(args[0])?;
                let mut out = vec![f64::NAN; self.grid.len()];
                let mut count = vec![0u32; self.grid.len()];
                for s in &v {
                    for p in &s.points {
                        let i = self.grid.index_of(p.t);
                        count[i] += 1;
                        out[i] = p.v;
                    }
                }
                for (o, c) in out.iter_mut().zip(count) {
                    if c != 1 {
                        *o = f64::NAN;
                    }
                }
                self.release_samples(v.iter().map(|s| s.points.len()).sum());
                Ok(Val::Scalar(out))
            }
            "absent" => self.absent(args[0]),
            "timestamp" => {
                // On a plain selector, the sample's own timestamp (not the
                // step's) is the answer, as in Prometheus.
                let mut v = match args[0] {
                    Expr::VectorSelector(vs) => self.eval_vector_selector(vs, true)?,
                    e => {
                        let mut v = self.eval_vector(e)?;
                        for s in &mut v {
                            s.points.iter_mut().for_each(|p| p.v = p.t as f64 / 1000.0);
                        }
                        v
                    }
                };
                v.iter_mut().for_each(|s| s.drop_name = true);
                Ok(Val::Vector(v))
            }
            "label_replace" => self.label_replace(&args),
            "label_join" => self.label_join(&args),
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
                self.sort_fn(name, &args, &self.pos_of_text(&c.to_string()))
            }
            "histogram_quantile" => self.histogram_quantile(&args),
            "histogram_quantiles" => self.histogram_quantiles(&args),
            "histogram_fraction" => self.histogram_fraction(&args),
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => {
                // These read native histograms only; float samples are
                // ignored, so a float-only input gives an empty result.
                for a in &args {
                    self.eval(a)?;
                }
                Ok(Val::Vector(Vec::new()))
            }
            "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour"
            | "minute" | "month" | "year" => self.date_fn(name, &args),
            "round" => {
                let v = self.eval_vector(args[0])?;
                let to = match args.get(1) {
                    Some(a) => self.eval_scalar(a)?,
                    None => vec![1.0; self.grid.len()],
                };
                Ok(Val::Vector(self.map_values(v, |i, x| {
                    let inv = 1.0 / to[i];
                    (x * inv + 0.5).floor() / inv
                })))
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let v = self.eval_vector(args[0])?;
                let (lo, hi) = match name {
                    "clamp" => (self.eval_scalar(args[1])?, self.eval_scalar(args[2])?),
                    "clamp_min" => (
                        self.eval_scalar(args[1])?,
                        vec![f64::INFINITY; self.grid.len()],
                    ),
                    _ => (
                        vec![f64::NEG_INFINITY; self.grid.len()],
                        self.eval_scalar(args[1])?,
                    ),
                };
                // Go's Max/Min, as Prometheus: a NaN sample stays NaN.
                let mut out =
                    self.map_values(v, |i, x| util::go_max(lo[i], util::go_min(hi[i], x)));
                // clamp with max < min returns nothing at that step.
                for s in &mut out {
                    s.points.retain(|p| {
                        let i = self.grid.index_of(p.t);
                        hi[i] >= lo[i]
                    });
                }
                out.retain(|s| !s.points.is_empty());
                Ok(Val::Vector(out))
            }
            "info" => self.info(&args),
            "start_timestamp" => Err(QueryError::exec(
                "start_timestamp() needs start timestamps, which Tessera does not store",
            )),
            _ => {
                if let Some(f) = math::simple_fn(name) {
                    let v = self.eval_vector(args[0])?;
                    return Ok(Val::Vector(self.map_values(v, |_, x| f(x))));
                }
                Err(QueryError::exec(format!(
                    "function {name}() is not supported"
                )))
            }
        }
    }

    /// Applies `f(step index, value)` to every point and drops the metric name.
    pub(crate) fn map_values(
        &self,
        mut v: Vec<Series>,
        f: impl Fn(usize, f64) -> f64,
    ) -> Vec<Series> {
        for s in &mut v {
            s.drop_name = true;
            for p in &mut s.points {
                p.v = f(self.grid.index_of(p.t), p.v);
            }
        }
        v
    }

    fn eval_range_fn(&self, name: &str, args: &[&Expr], idx: usize, f: RangeFn) -> Result<Val> {
        let mut params: Vec<Vec<f64>> = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if i != idx {
                params.push(self.eval_scalar(a)?);
            }
        }
        if name == "quantile_over_time" {
            for &q in &params[0] {
                if q.is_nan() || !(0.0..=1.0).contains(&q) {
                    self.warn(format!(
                        "PromQL warning: quantile value should be between 0 and 1, got {}{}",
                        util::fmt_g(q),
                        self.pos(args[0])
                    ));
                }
            }
        }
        let arg = self.eval_range_arg(args[idx])?;
        let keep_name = matches!(name, "last_over_time" | "first_over_time");
        let mut out = Vec::with_capacity(arg.series.len());
        let mut pbuf = vec![0.0; params.len()];
        let total: usize = arg.series.iter().map(|s| s.points.len()).sum();
        for (si, s) in arg.series.iter().enumerate() {
            if si % 16 == 0 {
                self.check()?;
            }
            let mut points = Vec::new();
            let win = (arg.range, arg.offset, arg.at);
            self.range_points(&s.points, win, f, &params, &mut pbuf, &mut points)?;
            if points.is_empty() {
                continue;
            }
            if matches!(name, "rate" | "increase")
                && let Some(metric) = s.labels.metric_name()
                && !["_total", "_sum", "_count", "_bucket"]
                    .iter()
                    .any(|sfx| metric.ends_with(sfx))
            {
                self.warn(format!(
                    "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}{}",
                    self.pos(args[idx])
                ));
            }
            self.add_samples(points.len())?;
            out.push(Series::new(
                s.labels.clone(),
                !keep_name || s.drop_name,
                points,
            ));
        }
        self.release_samples(total);
        if name == "absent_over_time" {
            return Ok(Val::Vector(self.absent_over_time(args[idx], out)));
        }
        Ok(Val::Vector(out))
    }

    /// One series' values of a range function on the grid (appended to
    /// `points`): `f` over the window `(end - range, end]` of each step,
    /// where `end` is `(at or step) - offset`. `pts` holds the series'
    /// samples without staleness markers; `pbuf` is scratch for the
    /// scalar parameters of one step.
    pub(crate) fn range_points(
        &self,
        pts: &[Sample],
        (range, offset, at): (i64, i64, Option<i64>),
        f: RangeFn,
        params: &[Vec<f64>],
        pbuf: &mut [f64],
        points: &mut Vec<Sample>,
    ) -> Result<()> {
        let (mut a, mut b) = (0usize, 0usize);
        for (step, ts) in self.grid.iter().enumerate() {
            if step % 4096 == 4095 {
                self.check()?;
            }
            let end = at.unwrap_or(ts) - offset;
            let (lo, hi) = (end - range, end);
            if at.is_some() {
                a = pts.partition_point(|p| p.t <= lo);
                b = pts.partition_point(|p| p.t <= hi);
            } else {
                // Windows only move forward with the steps.
                while a < pts.len() && pts[a].t <= lo {
                    a += 1;
                }
                b = b.max(a);
                while b < pts.len() && pts[b].t <= hi {
                    b += 1;
                }
            }
            if a >= b {
                continue;
            }
            for (k, p) in params.iter().enumerate() {
                pbuf[k] = p[step];
            }
            let w = Window {
                samples: &pts[a..b],
                start: lo,
                end: hi,
                ts,
                range,
            };
            if let Some(v) = f(&w, pbuf)? {
                points.push(Sample::new(ts, v));
            }
        }
        Ok(())
    }

    /// 1 at the steps where no series has a value in its window.
    fn absent_over_time(&self, arg: &Expr, present: Vec<Series>) -> Vec<Series> {
        let n = self.grid.len();
        let mut found = vec![false; n];
        for s in &present {
            for p in &s.points {
                found[self.grid.index_of(p.t)] = true;
            }
        }
        let pts: Vec<Sample> = (0..n)
            .filter(|&i| !found[i])
            .map(|i| Sample::new(self.grid.ts(i), 1.0))
            .collect();
        if pts.is_empty() {
            return Vec::new();
        }
        vec![Series::new(absent_labels(arg), true, pts)]
    }

    fn absent(&self, arg: &Expr) -> Result<Val> {
        let v = self.eval_vector(arg)?;
        let n = self.grid.len();
        let mut found = vec![false; n];
        for s in &v {
            for p in &s.points {
                found[self.grid.index_of(p.t)] = true;
            }
        }
        self.release_samples(v.iter().map(|s| s.points.len()).sum());
        let pts: Vec<Sample> = (0..n)
            .filter(|&i| !found[i])
            .map(|i| Sample::new(self.grid.ts(i), 1.0))
            .collect();
        if pts.is_empty() {
            return Ok(Val::Vector(Vec::new()));
        }
        Ok(Val::Vector(vec![Series::new(
            absent_labels(arg),
            false,
            pts,
        )]))
    }
}

/// The labels `absent()` reports: the equality matchers of a plain selector
/// (a label matched twice, or by another operator, is left out).
fn absent_labels(arg: &Expr) -> Labels {
    let vs = match unwrap_parens(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let Ok(ms) = super::selector::to_matchers(vs) else {
        return Labels::empty();
    };
    let mut out = Labels::empty();
    let mut has: Vec<&str> = Vec::new();
    for m in &ms {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Equal && !has.contains(&m.name.as_str()) {
            out.set(&m.name, &m.value);
            has.push(&m.name);
        } else {
            out.remove(&m.name);
        }
    }
    out
}
