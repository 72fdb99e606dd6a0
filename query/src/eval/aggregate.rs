//! Aggregation operators (`sum`, `avg`, `count`, `min`, `max`, `group`,
//! `stddev`, `stdvar`, `quantile`, `topk`, `bottomk`, `count_values`,
//! `limitk`, `limit_ratio`) with `by`/`without`.
//!
//! The group of every input series is computed once; each step then only
//! folds values into per-group accumulators, as Prometheus' `rangeEvalAgg`.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMIT_RATIO, T_LIMITK, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK, TokenId,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};
use tessera_tsdb::{Labels, METRIC_NAME, Sample};

use super::functions::util::{kahan_inc, quantile};
use super::{Evaluator, Series, Val};
use crate::error::{QueryError, Result};

/// `by (...)` keeps the listed labels; `without (...)` drops them and the
/// metric name.
pub(crate) struct Grouping {
    without: bool,
    names: Vec<String>,
}

impl Grouping {
    pub(crate) fn new(m: &Option<LabelModifier>) -> Self {
        match m {
            None => Grouping {
                without: false,
                names: Vec::new(),
            },
            Some(LabelModifier::Include(l)) => Grouping {
                without: false,
                names: l.labels.clone(),
            },
            Some(LabelModifier::Exclude(l)) => Grouping {
                without: true,
                names: l.labels.clone(),
            },
        }
    }

    pub(crate) fn keeps(&self, name: &str) -> bool {
        if self.without {
            name != METRIC_NAME && !self.names.iter().any(|n| n == name)
        } else {
            self.names.iter().any(|n| n == name)
        }
    }

    pub(crate) fn labels(&self, ls: &Labels) -> Labels {
        let mut out = ls.clone();
        out.retain(|l| self.keeps(&l.name));
        out
    }
}

/// One group's running aggregate at one step for the operators that fold
/// values one at a time (`sum`, `avg`, `count`, `min`, `max`, `group`,
/// `stddev`, `stdvar`). Shared by the plain evaluation below and the
/// pushed-down one (`pushdown.rs`), so both apply the same arithmetic and
/// can differ only in the order values arrive.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Fold {
    pub seen: bool,
    value: f64,
    mean: f64,
    c: f64,
    count: f64,
    incremental: bool,
}

impl Fold {
    /// A group's first value at a step.
    pub(super) fn start(op: TokenId, f: f64) -> Fold {
        let mut a = Fold {
            seen: true,
            value: f,
            mean: f,
            c: 0.0,
            count: 1.0,
            incremental: false,
        };
        match op {
            T_STDDEV | T_STDVAR => {
                a.value = if f.is_nan() || f.is_infinite() {
                    f64::NAN
                } else {
                    0.0
                }
            }
            T_GROUP => a.value = 1.0,
            T_SUM => (a.value, a.c) = kahan_inc(f, 0.0, 0.0),
            _ => {}
        }
        a
    }

    /// Folds in one more value; false for an operator that does not fold.
    pub(super) fn add(&mut self, op: TokenId, f: f64) -> bool {
        match op {
            T_SUM => (self.value, self.c) = kahan_inc(f, self.value, self.c),
            T_AVG => {
                self.count += 1.0;
                if !self.incremental {
                    let (nv, nc) = kahan_inc(f, self.value, self.c);
                    if !nv.is_infinite() {
                        self.value = nv;
                        self.c = nc;
                        return true;
                    }
                    // The plain sum overflowed: continue with an
                    // incremental mean, as Prometheus does.
                    self.incremental = true;
                    self.mean = self.value / (self.count - 1.0);
                    self.c /= self.count - 1.0;
                }
                let q = (self.count - 1.0) / self.count;
                (self.mean, self.c) = kahan_inc(f / self.count, q * self.mean, q * self.c);
            }
            T_MAX => {
                if self.value < f || self.value.is_nan() {
                    self.value = f;
                }
            }
            T_MIN => {
                if self.value > f || self.value.is_nan() {
                    self.value = f;
                }
            }
            T_COUNT => self.count += 1.0,
            T_STDDEV | T_STDVAR => {
                self.count += 1.0;
                let delta = f - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (f - self.mean);
            }
            T_GROUP => {}
            _ => return false,
        }
        true
    }

    /// The aggregate's value once every value is in.
    pub(super) fn value(&self, op: TokenId) -> f64 {
        match op {
            T_AVG => {
                if self.incremental {
                    self.mean + self.c
                } else {
                    self.value / self.count + self.c / self.count
                }
            }
            T_COUNT => self.count,
            T_STDVAR => self.value / self.count,
            T_STDDEV => (self.value / self.count).sqrt(),
            T_SUM => {
                if self.value.is_infinite() {
                    self.value
                } else {
                    self.value + self.c
                }
            }
            _ => self.value,
        }
    }
}

#[derive(Clone, Default)]
struct Acc {
    fold: Fold,
    drop_name: bool,
    /// `quantile`'s values at the step.
    values: Vec<f64>,
}

/// Go's `container/heap` over sample indices, so `topk`/`bottomk` pick the
/// same series as Prometheus among equal values.
struct GoHeap<'a> {
    items: Vec<(usize, f64)>,
    less: &'a dyn Fn(f64, f64) -> bool,
}

impl GoHeap<'_> {
    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if i == j || !(self.less)(self.items[j].1, self.items[i].1) {
                break;
            }
            self.items.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, i0: usize) -> bool {
        let n = self.items.len();
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            let j2 = j1 + 1;
            if j2 < n && (self.less)(self.items[j2].1, self.items[j1].1) {
                j = j2;
            }
            if !(self.less)(self.items[j].1, self.items[i].1) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
        i > i0
    }

    fn push(&mut self, x: (usize, f64)) {
        self.items.push(x);
        let n = self.items.len() - 1;
        self.up(n);
    }

    fn fix0(&mut self) {
        if !self.down(0) {
            self.up(0);
        }
    }
}

/// vectorByValueHeap's order: NaN sorts first.
fn less_by_value(a: f64, b: f64) -> bool {
    a.is_nan() || a < b
}

/// vectorByReverseValueHeap's order.
fn less_by_reverse_value(a: f64, b: f64) -> bool {
    a.is_nan() || a > b
}

impl Evaluator<'_> {
    pub(crate) fn eval_aggregate(&self, a: &AggregateExpr) -> Result<Val> {
        let op = a.op.id();
        let grouping = Grouping::new(&a.modifier);
        if op == T_COUNT_VALUES {
            return self.count_values(a, &grouping);
        }
        if let Some(v) = self.try_pushdown(a, op, &grouping)? {
            return Ok(v);
        }
        let param = match (&a.param, op) {
            (Some(p), T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO | T_QUANTILE) => {
                Some(self.eval_scalar(p)?)
            }
            _ => None,
        };
        let input = self.eval_vector(&a.expr)?;

        // Series → group index, computed once per series.
        let mut groups: HashMap<Labels, usize> = HashMap::new();
        let mut group_labels: Vec<Labels> = Vec::new();
        let mut series_group = Vec::with_capacity(input.len());
        for s in &input {
            let gl = grouping.labels(&s.labels);
            let n = group_labels.len();
            let g = *groups.entry(gl.clone()).or_insert_with(|| {
                group_labels.push(gl);
                n
            });
            series_group.push(g);
        }
        let ngroups = group_labels.len();

        match op {
            T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO => {
                let param =
                    param.ok_or_else(|| QueryError::exec("missing aggregation parameter"))?;
                let pos = a.param.as_deref().map(|p| self.pos(p)).unwrap_or_default();
                return self.aggregate_k(op, &input, &series_group, ngroups, &param, &pos);
            }
            T_QUANTILE => {
                let q = param
                    .as_ref()
                    .ok_or_else(|| QueryError::exec("missing quantile"))?;
                let pos = a.param.as_deref().map(|p| self.pos(p)).unwrap_or_default();
                for &qv in q {
                    if qv.is_nan() || !(0.0..=1.0).contains(&qv) {
                        self.warn(format!(
                            "PromQL warning: quantile value should be between 0 and 1, got {}{pos}",
                            super::functions::util::fmt_g(qv)
                        ));
                    }
                }
            }
            _ => {}
        }

        let mut out: Vec<Vec<Sample>> = vec![Vec::new(); ngroups];
        let mut out_drop = vec![false; ngroups];
        let mut accs = vec![Acc::default(); ngroups];
        let mut cursors = vec![0usize; input.len()];
        for step in 0..self.grid.len() {
            if step % 64 == 0 {
                self.check()?;
            }
            let ts = self.grid.ts(step);
            for acc in accs.iter_mut() {
                acc.fold.seen = false;
                acc.values.clear();
            }
            for (si, s) in input.iter().enumerate() {
                let c = &mut cursors[si];
                while *c < s.points.len() && s.points[*c].t < ts {
                    *c += 1;
                }
                if *c >= s.points.len() || s.points[*c].t != ts {
                    continue;
                }
                let f = s.points[*c].v;
                let acc = &mut accs[series_group[si]];
                if !acc.fold.seen {
                    acc.fold = Fold::start(op, f);
                    acc.drop_name = s.drop_name;
                    if op == T_QUANTILE {
                        acc.values.push(f);
                    }
                    continue;
                }
                acc.drop_name |= s.drop_name;
                if op == T_QUANTILE {
                    acc.values.push(f);
                } else if !acc.fold.add(op, f) {
                    return Err(QueryError::exec(format!(
                        "unsupported aggregation operator {}",
                        a.op
                    )));
                }
            }
            for (g, acc) in accs.iter_mut().enumerate() {
                if !acc.fold.seen {
                    continue;
                }
                let v = if op == T_QUANTILE {
                    let q = param.as_ref().map(|p| p[step]).unwrap_or(f64::NAN);
                    quantile(q, &mut acc.values)
                } else {
                    acc.fold.value(op)
                };
                out[g].push(Sample::new(ts, v));
                out_drop[g] |= acc.drop_name;
            }
        }
        let total: usize = input.iter().map(|s| s.points.len()).sum();
        self.release_samples(total);
        let mut result = Vec::with_capacity(ngroups);
        for (g, (labels, pts)) in group_labels.into_iter().zip(out).enumerate() {
            if !pts.is_empty() {
                self.add_samples(pts.len())?;
                result.push(Series::new(labels, out_drop[g], pts));
            }
        }
        Ok(Val::Vector(result))
    }

    fn aggregate_k(
        &self,
        op: TokenId,
        input: &[Series],
        series_group: &[usize],
        ngroups: usize,
        param: &[f64],
        pos: &str,
    ) -> Result<Val> {
        let ratio_op = op == T_LIMIT_RATIO;
        if ratio_op {
            if param.iter().any(|p| p.is_nan()) {
                return Err(QueryError::exec("Ratio value is NaN"));
            }
            for &r in param {
                if !(-1.0..=1.0).contains(&r) {
                    let to = if r > 1.0 { 1.0 } else { -1.0 };
                    self.warn(format!(
                        "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {}{pos}",
                        super::functions::util::fmt_g(r),
                        super::functions::util::fmt_g(to)
                    ));
                }
            }
        } else {
            if param.iter().any(|p| p.is_nan()) {
                return Err(QueryError::exec("Parameter value is NaN"));
            }
            if param.iter().cloned().fold(f64::NEG_INFINITY, f64::max) < 1.0 {
                return Ok(Val::Vector(Vec::new()));
            }
            for &p in param {
                if p <= i64::MIN as f64 {
                    return Err(QueryError::exec(format!(
                        "Scalar value {p} underflows int64"
                    )));
                }
                if p >= i64::MAX as f64 {
                    return Err(QueryError::exec(format!(
                        "Scalar value {p} overflows int64"
                    )));
                }
            }
        }
        let instant = self.grid.len() == 1;
        // Per input series output points; for instant queries the order of
        // the result follows the heap order, kept in `order`.
        let mut out: Vec<Vec<Sample>> = vec![Vec::new(); input.len()];
        let mut order: Vec<usize> = Vec::new();
        let mut cursors = vec![0usize; input.len()];
        let less: &dyn Fn(f64, f64) -> bool = if op == T_BOTTOMK {
            &less_by_reverse_value
        } else {
            &less_by_value
        };
        let mut heaps: Vec<GoHeap<'_>> = (0..ngroups)
            .map(|_| GoHeap {
                items: Vec::new(),
                less,
            })
            .collect();
        let mut seen = vec![false; ngroups];
        for (step, &fp) in param.iter().enumerate() {
            if step % 64 == 0 {
                self.check()?;
            }
            let ts = self.grid.ts(step);
            let k = if ratio_op {
                0
            } else {
                (fp as i64).min(input.len() as i64)
            };
            if !ratio_op && k < 1 {
                continue;
            }
            if ratio_op && fp == 0.0 {
                continue;
            }
            let r = fp.clamp(-1.0, 1.0);
            for h in heaps.iter_mut() {
                h.items.clear();
            }
            seen.iter_mut().for_each(|s| *s = false);
            for (si, s) in input.iter().enumerate() {
                let c = &mut cursors[si];
                while *c < s.points.len() && s.points[*c].t < ts {
                    *c += 1;
                }
                if *c >= s.points.len() || s.points[*c].t != ts {
                    continue;
                }
                let f = s.points[*c].v;
                let g = series_group[si];
                let heap = &mut heaps[g];
                if !seen[g] {
                    seen[g] = true;
                    if !ratio_op || ratio_sample(r, &s.labels) {
                        heap.push((si, f));
                    }
                    continue;
                }
                match op {
                    T_TOPK => {
                        if (heap.items.len() as i64) < k {
                            heap.push((si, f));
                        } else if heap.items[0].1 < f || (heap.items[0].1.is_nan() && !f.is_nan()) {
                            heap.items[0] = (si, f);
                            if k > 1 {
                                heap.fix0();
                            }
                        }
                    }
                    T_BOTTOMK => {
                        if (heap.items.len() as i64) < k {
                            heap.push((si, f));
                        } else if heap.items[0].1 > f || (heap.items[0].1.is_nan() && !f.is_nan()) {
                            heap.items[0] = (si, f);
                            if k > 1 {
                                heap.fix0();
                            }
                        }
                    }
                    T_LIMITK => {
                        if (heap.items.len() as i64) < k {
                            heap.push((si, f));
                        }
                    }
                    _ => {
                        if ratio_sample(r, &s.labels) {
                            heap.push((si, f));
                        }
                    }
                }
            }
            for heap in heaps.iter_mut() {
                let mut items = std::mem::take(&mut heap.items);
                match op {
                    // sort.Reverse of the heap order: largest first for topk,
                    // smallest first for bottomk.
                    T_TOPK | T_BOTTOMK => items.sort_by(|a, b| {
                        if less(b.1, a.1) {
                            std::cmp::Ordering::Less
                        } else if less(a.1, b.1) {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Equal
                        }
                    }),
                    _ => {}
                }
                for (si, f) in &items {
                    out[*si].push(Sample::new(ts, *f));
                    if instant {
                        order.push(*si);
                    }
                }
                heap.items = items;
            }
        }
        let mut result = Vec::new();
        if instant {
            for si in order {
                let pts = std::mem::take(&mut out[si]);
                if !pts.is_empty() {
                    result.push(Series::new(
                        input[si].labels.clone(),
                        input[si].drop_name,
                        pts,
                    ));
                }
            }
        } else {
            for (si, pts) in out.into_iter().enumerate() {
                if !pts.is_empty() {
                    result.push(Series::new(
                        input[si].labels.clone(),
                        input[si].drop_name,
                        pts,
                    ));
                }
            }
        }
        Ok(Val::Vector(result))
    }

    fn count_values(&self, a: &AggregateExpr, grouping: &Grouping) -> Result<Val> {
        let label = match a.param.as_deref() {
            Some(p) => match self.eval(p)? {
                Val::String(s) => s,
                _ => {
                    return Err(QueryError::exec(
                        "expected string parameter for count_values",
                    ));
                }
            },
            None => return Err(QueryError::exec("count_values needs a label name")),
        };
        if !tessera_tsdb::labels::is_valid_label_name(&label) {
            return Err(QueryError::exec(format!("invalid label name {label:?}")));
        }
        let input = self.eval_vector(&a.expr)?;
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut out: Vec<Series> = Vec::new();
        let mut counts: Vec<(usize, f64)> = Vec::new();
        let mut cursors = vec![0usize; input.len()];
        for step in 0..self.grid.len() {
            if step % 64 == 0 {
                self.check()?;
            }
            let ts = self.grid.ts(step);
            counts.clear();
            for (si, s) in input.iter().enumerate() {
                let c = &mut cursors[si];
                while *c < s.points.len() && s.points[*c].t < ts {
                    *c += 1;
                }
                if *c >= s.points.len() || s.points[*c].t != ts {
                    continue;
                }
                let mut ls = s.labels.clone();
                ls.set(&label, &super::functions::util::fmt_float(s.points[*c].v));
                let mut gl = ls.clone();
                gl.retain(|l| {
                    if grouping.without {
                        grouping.keeps(&l.name)
                    } else {
                        grouping.keeps(&l.name) || l.name == label
                    }
                });
                let n = out.len();
                let g = *index.entry(gl.clone()).or_insert_with(|| {
                    out.push(Series::new(gl, false, Vec::new()));
                    n
                });
                match counts.iter_mut().find(|(i, _)| *i == g) {
                    Some((_, c)) => *c += 1.0,
                    None => counts.push((g, 1.0)),
                }
            }
            for &(g, c) in &counts {
                out[g].points.push(Sample::new(ts, c));
            }
        }
        out.retain(|s| !s.points.is_empty());
        Ok(Val::Vector(out))
    }
}

/// Prometheus' `HashRatioSampler`: a series is kept when its label hash,
/// scaled to [0, 1), falls below the ratio (or, for negative ratios, at or
/// above `1 + ratio`), so `limit_ratio(r, x)` and `limit_ratio(r - 1, x)`
/// partition the input.
fn ratio_sample(ratio: f64, ls: &Labels) -> bool {
    let offset = ls.stable_hash() as f64 / u64::MAX as f64;
    if ratio >= 0.0 {
        offset < ratio
    } else {
        offset >= 1.0 + ratio
    }
}
