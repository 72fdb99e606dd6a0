//! Binary operators: arithmetic, comparison (with and without `bool`),
//! `atan2` and the set operators, with `on`/`ignoring` and
//! `group_left`/`group_right` vector matching and Prometheus' errors for
//! ambiguous matches.
//!
//! Matching signatures and result label sets are computed once per series
//! (or per matched pair), not per step: a range query only pays per-step
//! costs for the values.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB, TokenId,
};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};
use tessera_tsdb::{Labels, METRIC_NAME, Sample};

use super::{Evaluator, Series, Val, go_labels_string, val_type};
use crate::error::{QueryError, Result};

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Arithmetic drops the metric name at once (Prometheus' `changesMetricSchema`).
fn changes_schema(op: TokenId) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_POW | T_MOD | T_ATAN2)
}

/// Go's `math.Mod`: the result has the sign of `x` (Rust's `%` agrees).
fn go_mod(x: f64, y: f64) -> f64 {
    x % y
}

/// The value of `l op r` for scalars; comparisons give 1 or 0.
pub(crate) fn scalar_op(op: TokenId, l: f64, r: f64) -> f64 {
    let b = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        T_ADD => l + r,
        T_SUB => l - r,
        T_MUL => l * r,
        T_DIV => l / r,
        // Go's Pow and Atan2, bit for bit (Rust's differ in last bits).
        T_POW => super::functions::math::go_pow(l, r),
        T_MOD => go_mod(l, r),
        T_ATAN2 => super::functions::math::go_atan2(l, r),
        T_EQLC => b(l == r),
        T_NEQ => b(l != r),
        T_GTR => b(l > r),
        T_LSS => b(l < r),
        T_GTE => b(l >= r),
        T_LTE => b(l <= r),
        _ => f64::NAN,
    }
}

fn points(v: &[Series]) -> usize {
    v.iter().map(|s| s.points.len()).sum()
}

/// `(value, keep)` for vector elements: comparisons filter instead of
/// returning 0/1 and keep the left value.
fn elem_op(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    if is_comparison(op) {
        (l, scalar_op(op, l, r) == 1.0)
    } else {
        (scalar_op(op, l, r), true)
    }
}

/// How two vectors are matched.
struct Matching<'a> {
    card: &'a VectorMatchCardinality,
    /// `on(...)` when true, `ignoring(...)` otherwise.
    on: bool,
    names: Vec<String>,
    include: Vec<String>,
    fill_lhs: Option<f64>,
    fill_rhs: Option<f64>,
}

impl<'a> Matching<'a> {
    fn new(m: Option<&'a BinModifier>, default_card: &'a VectorMatchCardinality) -> Self {
        let (card, on, names, include, fl, fr) = match m {
            None => (default_card, false, Vec::new(), Vec::new(), None, None),
            Some(m) => {
                let (on, names) = match &m.matching {
                    Some(LabelModifier::Include(ls)) => (true, ls.labels.clone()),
                    Some(LabelModifier::Exclude(ls)) => (false, ls.labels.clone()),
                    None => (false, Vec::new()),
                };
                let include = m
                    .card
                    .labels()
                    .map(|l| l.labels.clone())
                    .unwrap_or_default();
                (
                    &m.card,
                    on,
                    names,
                    include,
                    m.fill_values.lhs,
                    m.fill_values.rhs,
                )
            }
        };
        Matching {
            card,
            on,
            names,
            include,
            fill_lhs: fl,
            fill_rhs: fr,
        }
    }

    /// The join key of a label set.
    fn signature(&self, ls: &Labels) -> String {
        let mut key = String::new();
        for l in ls.iter() {
            let used = if self.on {
                self.names.iter().any(|n| n == &l.name)
            } else {
                l.name != METRIC_NAME && !self.names.iter().any(|n| n == &l.name)
            };
            if used {
                key.push_str(&l.name);
                key.push('\u{ff}');
                key.push_str(&l.value);
                key.push('\u{ff}');
            }
        }
        key
    }

    /// The labels the signature is made of (for error messages and fills).
    fn match_labels(&self, ls: &Labels) -> Labels {
        let mut out = ls.clone();
        if self.on {
            out.retain(|l| self.names.iter().any(|n| n == &l.name));
        } else {
            out.retain(|l| l.name != METRIC_NAME && !self.names.iter().any(|n| n == &l.name));
        }
        out
    }
}

/// A forward-only position in one series' points, advanced step by step.
struct Cursor {
    pos: usize,
}

impl Cursor {
    fn at(&mut self, pts: &[Sample], ts: i64) -> Option<f64> {
        while self.pos < pts.len() && pts[self.pos].t < ts {
            self.pos += 1;
        }
        (self.pos < pts.len() && pts[self.pos].t == ts).then(|| pts[self.pos].v)
    }
}

impl Evaluator<'_> {
    pub(crate) fn eval_binary(&self, b: &BinaryExpr) -> Result<Val> {
        let op = b.op.id();
        let return_bool = b.return_bool();
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
                l.into_iter()
                    .zip(r)
                    .map(|(l, r)| scalar_op(op, l, r))
                    .collect(),
            )),
            (Val::Vector(v), Val::Scalar(s)) => Ok(Val::Vector(self.vector_scalar(
                op,
                v,
                &s,
                false,
                return_bool,
            )?)),
            (Val::Scalar(s), Val::Vector(v)) => Ok(Val::Vector(self.vector_scalar(
                op,
                v,
                &s,
                true,
                return_bool,
            )?)),
            (Val::Vector(l), Val::Vector(r)) => {
                let many = VectorMatchCardinality::ManyToMany;
                let one = VectorMatchCardinality::OneToOne;
                let default_card = if matches!(op, T_LAND | T_LOR | T_LUNLESS) {
                    &many
                } else {
                    &one
                };
                let m = Matching::new(b.modifier.as_ref(), default_card);
                // The inputs are released once the output exists (the
                // output's points were counted as they were produced).
                let n_in = points(&l) + points(&r);
                let out = match op {
                    T_LAND | T_LOR | T_LUNLESS => {
                        let out = self.set_op(op, l, r, &m)?;
                        self.add_samples(points(&out))?;
                        out
                    }
                    _ => self.vector_vector(op, l, r, &m, return_bool)?,
                };
                self.release_samples(n_in);
                Ok(Val::Vector(out))
            }
            (l, r) => Err(QueryError::exec(format!(
                "binary operator {} not allowed between {} and {}",
                b.op,
                val_type(&l),
                val_type(&r)
            ))),
        }
    }

    fn vector_scalar(
        &self,
        op: TokenId,
        mut v: Vec<Series>,
        s: &[f64],
        scalar_left: bool,
        return_bool: bool,
    ) -> Result<Vec<Series>> {
        let comparison = is_comparison(op);
        for series in &mut v {
            let mut removed = 0;
            series.points.retain_mut(|p| {
                let sv = s[self.grid.index_of(p.t)];
                let (l, r) = if scalar_left { (sv, p.v) } else { (p.v, sv) };
                let (mut val, keep) = elem_op(op, l, r);
                // A comparison keeps the vector's value even when the scalar
                // is on the left.
                if comparison {
                    val = p.v;
                }
                if return_bool {
                    p.v = if keep { 1.0 } else { 0.0 };
                    return true;
                }
                if keep {
                    p.v = val;
                } else {
                    removed += 1;
                }
                keep
            });
            self.release_samples(removed);
            if changes_schema(op) || return_bool {
                series.drop_name = true;
            }
        }
        v.retain(|s| !s.points.is_empty());
        Ok(v)
    }

    fn set_op(
        &self,
        op: TokenId,
        lhs: Vec<Series>,
        rhs: Vec<Series>,
        m: &Matching<'_>,
    ) -> Result<Vec<Series>> {
        // Signature ordinals, shared between both sides.
        let mut ords: HashMap<String, usize> = HashMap::new();
        let mut ord = |ls: &Labels| {
            let n = ords.len();
            *ords.entry(m.signature(ls)).or_insert(n)
        };
        let lsig: Vec<usize> = lhs.iter().map(|s| ord(&s.labels)).collect();
        let rsig: Vec<usize> = rhs.iter().map(|s| ord(&s.labels)).collect();
        let nsig = ords.len();
        let n = self.grid.len();
        // present[step][sig] would be steps×sigs; instead mark per step in a
        // reused buffer holding the step number that last set it.
        let mut seen = vec![usize::MAX; nsig];
        let mut lcur: Vec<Cursor> = lhs.iter().map(|_| Cursor { pos: 0 }).collect();
        let mut rcur: Vec<Cursor> = rhs.iter().map(|_| Cursor { pos: 0 }).collect();
        let mut lout: Vec<Vec<Sample>> = vec![Vec::new(); lhs.len()];
        let mut rout: Vec<Vec<Sample>> = vec![Vec::new(); rhs.len()];
        for step in 0..n {
            if step % 256 == 0 {
                self.check()?;
            }
            let ts = self.grid.ts(step);
            match op {
                T_LAND | T_LUNLESS => {
                    for (j, s) in rhs.iter().enumerate() {
                        if rcur[j].at(&s.points, ts).is_some() {
                            seen[rsig[j]] = step;
                        }
                    }
                    for (i, s) in lhs.iter().enumerate() {
                        if let Some(v) = lcur[i].at(&s.points, ts) {
                            let matched = seen[lsig[i]] == step;
                            if matched == (op == T_LAND) {
                                lout[i].push(Sample::new(ts, v));
                            }
                        }
                    }
                }
                _ => {
                    for (i, s) in lhs.iter().enumerate() {
                        if let Some(v) = lcur[i].at(&s.points, ts) {
                            seen[lsig[i]] = step;
                            lout[i].push(Sample::new(ts, v));
                        }
                    }
                    for (j, s) in rhs.iter().enumerate() {
                        if let Some(v) = rcur[j].at(&s.points, ts)
                            && seen[rsig[j]] != step
                        {
                            rout[j].push(Sample::new(ts, v));
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(lhs.len() + rhs.len());
        for (s, pts) in lhs.into_iter().zip(lout) {
            if !pts.is_empty() {
                out.push(Series::new(s.labels, s.drop_name, pts));
            }
        }
        for (s, pts) in rhs.into_iter().zip(rout) {
            if !pts.is_empty() {
                out.push(Series::new(s.labels, s.drop_name, pts));
            }
        }
        super::merge_same_labels(out)
    }

    fn vector_vector(
        &self,
        op: TokenId,
        lhs: Vec<Series>,
        rhs: Vec<Series>,
        m: &Matching<'_>,
        return_bool: bool,
    ) -> Result<Vec<Series>> {
        // For one-to-many, swap sides so the "one" side is always on the
        // right, and swap back when computing values.
        let swapped = matches!(m.card, VectorMatchCardinality::OneToMany(_));
        let (lhs, rhs) = if swapped { (rhs, lhs) } else { (lhs, rhs) };

        let mut ords: HashMap<String, usize> = HashMap::new();
        let mut ord = |ls: &Labels| {
            let n = ords.len();
            *ords.entry(m.signature(ls)).or_insert(n)
        };
        let lsig: Vec<usize> = lhs.iter().map(|s| ord(&s.labels)).collect();
        let rsig: Vec<usize> = rhs.iter().map(|s| ord(&s.labels)).collect();
        let nsig = ords.len();

        let mut join = Join {
            op,
            m,
            swapped,
            one_to_one: matches!(m.card, VectorMatchCardinality::OneToOne),
            return_bool,
            lhs: &lhs,
            rhs: &rhs,
            matched_step: vec![usize::MAX; nsig],
            group_seen: HashSet::new(),
            pair_out: HashMap::new(),
            by_labels: HashMap::new(),
            out: Vec::new(),
        };
        // The rhs sample (series index, value) of each signature at the
        // current step, valid when `right_step[sig] == step`.
        let mut right_at: Vec<(usize, f64)> = vec![(0, 0.0); nsig];
        let mut right_step = vec![usize::MAX; nsig];
        let mut lcur: Vec<Cursor> = lhs.iter().map(|_| Cursor { pos: 0 }).collect();
        let mut rcur: Vec<Cursor> = rhs.iter().map(|_| Cursor { pos: 0 }).collect();
        let mut lvals: Vec<Option<f64>> = vec![None; lhs.len()];
        let mut rvals: Vec<(usize, f64)> = Vec::new();

        for step in 0..self.grid.len() {
            if step % 256 == 0 {
                self.check()?;
            }
            let ts = self.grid.ts(step);
            rvals.clear();
            for (j, s) in rhs.iter().enumerate() {
                if let Some(v) = rcur[j].at(&s.points, ts) {
                    rvals.push((j, v));
                }
            }
            let mut any_left = false;
            for (i, s) in lhs.iter().enumerate() {
                lvals[i] = lcur[i].at(&s.points, ts);
                any_left |= lvals[i].is_some();
            }
            // With one side empty nothing can match, and Prometheus returns
            // at once: no duplicate checks either (VectorBinop's
            // short-circuit).
            if (!any_left || rvals.is_empty()) && m.fill_lhs.is_none() && m.fill_rhs.is_none() {
                continue;
            }
            for &(j, v) in &rvals {
                let sig = rsig[j];
                if right_step[sig] == step {
                    return Err(duplicate_on_one_side(
                        m,
                        swapped,
                        &rhs[j].labels,
                        &rhs[right_at[sig].0].labels,
                    ));
                }
                right_step[sig] = step;
                right_at[sig] = (j, v);
            }
            join.group_seen.clear();
            for (i, lv) in lvals.iter().enumerate() {
                let Some(lv) = *lv else { continue };
                let sig = lsig[i];
                let (j, rv) = if right_step[sig] == step {
                    right_at[sig]
                } else if let Some(f) = m.fill_rhs {
                    (FILL, f)
                } else {
                    continue;
                };
                join.pair(self, i, j, lv, rv, sig, step, ts)?;
            }
            if let Some(fill) = m.fill_lhs {
                for (j, &sig) in rsig.iter().enumerate() {
                    if right_step[sig] != step || right_at[sig].0 != j {
                        continue;
                    }
                    let already = if join.one_to_one {
                        join.matched_step[sig] == step
                    } else {
                        join.group_seen.iter().any(|(g, _)| *g == sig)
                    };
                    if !already {
                        join.pair(self, FILL, j, fill, right_at[sig].1, sig, step, ts)?;
                    }
                }
            }
        }
        let mut out = join.out;
        out.retain(|s| !s.points.is_empty());
        Ok(out)
    }
}

/// Stands for the missing side of a `fill(...)` match.
const FILL: usize = usize::MAX;

/// Prometheus' error for two series with the same signature on the "one" side.
fn duplicate_on_one_side(m: &Matching<'_>, swapped: bool, a: &Labels, b: &Labels) -> QueryError {
    let side = if swapped { "left" } else { "right" };
    let mut a_s = go_labels_string(a);
    let mut b_s = go_labels_string(b);
    if a_s > b_s {
        std::mem::swap(&mut a_s, &mut b_s);
    }
    QueryError::exec(format!(
        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{a_s}, {b_s}];many-to-many matching not allowed: matching labels must be unique on one side",
        go_labels_string(&m.match_labels(a)),
    ))
}

/// State of one vector-to-vector operation: output series per matched pair
/// (labels computed once per pair) and the per-step uniqueness checks.
struct Join<'a> {
    op: TokenId,
    m: &'a Matching<'a>,
    swapped: bool,
    one_to_one: bool,
    return_bool: bool,
    lhs: &'a [Series],
    rhs: &'a [Series],
    /// Step at which each signature last matched (one-to-one).
    matched_step: Vec<usize>,
    /// (signature, output series) pairs produced this step (many-to-one).
    group_seen: HashSet<(usize, usize)>,
    pair_out: HashMap<(usize, usize), usize>,
    by_labels: HashMap<Labels, usize>,
    out: Vec<Series>,
}

impl Join<'_> {
    /// Applies the operator to left series `i` and right series `j` (either
    /// may be [`FILL`]) at one step.
    #[allow(clippy::too_many_arguments)]
    fn pair(
        &mut self,
        ev: &Evaluator<'_>,
        i: usize,
        j: usize,
        lv: f64,
        rv: f64,
        sig: usize,
        step: usize,
        ts: i64,
    ) -> Result<()> {
        let (fl, fr) = if self.swapped { (rv, lv) } else { (lv, rv) };
        let (mut val, keep) = elem_op(self.op, fl, fr);
        if self.return_bool {
            val = if keep { 1.0 } else { 0.0 };
        }
        let idx = match self.pair_out.get(&(i, j)) {
            Some(&k) => k,
            None => {
                let left = if i == FILL {
                    self.m.match_labels(&self.rhs[j].labels)
                } else {
                    self.lhs[i].labels.clone()
                };
                let right = if j == FILL {
                    self.m.match_labels(&left)
                } else {
                    self.rhs[j].labels.clone()
                };
                let labels = result_labels(left, &right, self.op, self.m, self.one_to_one);
                let k = match self.by_labels.get(&labels) {
                    Some(&k) => k,
                    None => {
                        let k = self.out.len();
                        self.by_labels.insert(labels.clone(), k);
                        self.out
                            .push(Series::new(labels, self.return_bool, Vec::new()));
                        k
                    }
                };
                // The result carries the left labels, and with them the
                // left side's pending name removal: `f(m) != on(..) x`
                // must not bring back the name `f` dropped.
                if i != FILL && self.lhs[i].drop_name {
                    self.out[k].drop_name = true;
                }
                self.pair_out.insert((i, j), k);
                k
            }
        };
        // Duplicate matches are checked before the comparison filters, as
        // Prometheus 3 does (its operators.test: "track many-to-one vector
        // matching errors even when all but 0 or 1 series on the many side
        // are filtered away"); 2.42 checked only kept samples.
        if self.one_to_one {
            if self.matched_step[sig] == step {
                return Err(QueryError::exec(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
            self.matched_step[sig] = step;
        } else if !self.group_seen.insert((sig, idx)) {
            return Err(QueryError::exec(
                "multiple matches for labels: grouping labels must ensure unique matches",
            ));
        }
        if !keep && !self.return_bool {
            return Ok(());
        }
        let s = &mut self.out[idx];
        if s.points.last().is_some_and(|p| p.t == ts) {
            return Err(QueryError::exec(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        s.points.push(Sample::new(ts, val));
        ev.add_samples(1)
    }
}

/// The labels of `l op r` (Prometheus' `resultMetric`).
fn result_labels(
    mut ls: Labels,
    rhs: &Labels,
    op: TokenId,
    m: &Matching<'_>,
    one_to_one: bool,
) -> Labels {
    if changes_schema(op) {
        super::drop_metadata_labels(&mut ls);
    }
    if one_to_one {
        if m.on {
            ls.retain(|l| m.names.iter().any(|n| n == &l.name));
        } else {
            ls.retain(|l| !m.names.iter().any(|n| n == &l.name));
        }
    }
    for name in &m.include {
        match rhs.get(name) {
            Some(v) => {
                let v = v.to_string();
                ls.set(name, &v);
            }
            None => ls.remove(name),
        }
    }
    ls
}
