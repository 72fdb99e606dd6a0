//! `histogram_quantile`, `histogram_quantiles` and `histogram_fraction` over
//! classic histograms (series with an `le` label).
//! Native histograms are not supported by Tessera.

use std::collections::HashMap;

use promql_parser::parser::Expr;
use tessera_tsdb::{Labels, Sample};

use super::super::{Evaluator, Series, Val};
use super::util::fmt_g;
use crate::error::Result;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    pub upper: f64,
    pub count: f64,
}

/// Per step and group: `(step, group labels, buckets, outputs)`.
type BucketFn<'a> = dyn FnMut(usize, &Labels, &mut Vec<Bucket>, &mut [Option<f64>]) + 'a;

/// Prometheus' `almost.Equal`.
fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() || a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// The q-quantile from cumulative buckets, interpolating linearly within
/// the bucket; non-monotonic counts are forced monotonic (second value
/// true when that happened), as Prometheus' `BucketQuantile`.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if !buckets.last().is_some_and(|b| b.upper == f64::INFINITY) {
        return (f64::NAN, false);
    }
    // Coalesce buckets with the same upper bound.
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(l) if l.upper == b.upper => l.count += b.count,
            _ => merged.push(*b),
        }
    }
    *buckets = merged;
    let mut forced = false;
    let mut prev = buckets[0].count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            b.count = prev;
            continue;
        }
        if curr < prev {
            b.count = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let n = buckets.len() - 1;
    let b = buckets[..n].partition_point(|x| x.count < rank);
    let v = if b == n {
        buckets[n - 1].upper
    } else if b == 0 && buckets[0].upper <= 0.0 {
        buckets[0].upper
    } else {
        let mut start = 0.0;
        let end = buckets[b].upper;
        let mut count = buckets[b].count;
        if b > 0 {
            start = buckets[b - 1].upper;
            count -= buckets[b - 1].count;
            rank -= buckets[b - 1].count;
        }
        start + (end - start) * (rank / count)
    };
    (v, forced)
}

/// Prometheus' `BucketFraction`: the estimated fraction of observations
/// between `lower` and `upper`, interpolating linearly inside buckets.
pub(crate) fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [Bucket]) -> f64 {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if !buckets.last().is_some_and(|b| b.upper == f64::INFINITY) {
        return f64::NAN;
    }
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(l) if l.upper == b.upper => l.count += b.count,
            _ => merged.push(*b),
        }
    }
    let count = merged[merged.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if merged[0].upper <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, b) in merged.iter().enumerate() {
        if i > 0 {
            lower_bound = merged[i - 1].upper;
        }
        let upper_bound = b.upper;
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                return b.count;
            }
            rank + (b.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// OpenMetrics float text (`0.0`, `0.25`, `1.0`, `+Inf`), used for the
/// quantile label of `histogram_quantiles`.
fn openmetrics_float(f: f64) -> String {
    let s = super::util::fmt_g(f);
    if s.contains(['.', 'e', 'I', 'N']) {
        s
    } else {
        format!("{s}.0")
    }
}

impl Evaluator<'_> {
    fn warn_bad_quantile(&self, q: &[f64], pos: &str) {
        for &qv in q {
            if qv.is_nan() || !(0.0..=1.0).contains(&qv) {
                self.warn(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {}{pos}",
                    fmt_g(qv)
                ));
            }
        }
    }

    fn warn_monotonicity(&self, labels: &Labels, pos: &str) {
        let name = labels.metric_name().unwrap_or("");
        let mut msg = "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)".to_string();
        if !name.is_empty() {
            msg.push_str(&format!(" for metric name {name:?}"));
        }
        msg.push_str(pos);
        self.warn(msg);
    }

    /// Groups classic-histogram buckets per series once, then per step calls
    /// `f(step, group labels, buckets, outputs)`; output `k` of group `g`
    /// becomes a series labelled by `label_of(g labels, k)`.
    fn classic_histogram(
        &self,
        input: &[Series],
        pos: &str,
        nout: usize,
        label_of: &dyn Fn(&Labels, usize) -> Labels,
        f: &mut BucketFn<'_>,
    ) -> Result<Vec<Series>> {
        // Group every series once by its labels without `le`.
        let mut groups: HashMap<Labels, usize> = HashMap::new();
        let mut group_labels: Vec<Labels> = Vec::new();
        let mut member: Vec<Option<(usize, f64)>> = Vec::with_capacity(input.len());
        for s in input {
            let le = s.labels.get("le").unwrap_or("");
            let Some(upper) = parse_go_float(le) else {
                let name = s.labels.metric_name().unwrap_or("");
                let mut msg = format!(
                    "PromQL warning: bucket label \"le\" is missing or has a malformed value of {le:?}"
                );
                if !name.is_empty() {
                    msg.push_str(&format!(" for metric name {name:?}"));
                }
                msg.push_str(pos);
                self.warn(msg);
                member.push(None);
                continue;
            };
            let mut gl = s.labels.clone();
            gl.remove("le");
            let n = group_labels.len();
            let g = *groups.entry(gl.clone()).or_insert_with(|| {
                group_labels.push(gl);
                n
            });
            member.push(Some((g, upper)));
        }
        let ng = group_labels.len();
        let mut out: Vec<Vec<Sample>> = vec![Vec::new(); ng * nout];
        let mut buckets: Vec<Vec<Bucket>> = vec![Vec::new(); ng];
        let mut vals = vec![None; nout];
        let mut cursors = vec![0usize; input.len()];
        for step in 0..self.grid.len() {
            if step % 64 == 0 {
                self.check()?;
            }
            let ts = self.grid.ts(step);
            buckets.iter_mut().for_each(|b| b.clear());
            for (si, s) in input.iter().enumerate() {
                let Some((g, upper)) = member[si] else {
                    continue;
                };
                let c = &mut cursors[si];
                while *c < s.points.len() && s.points[*c].t < ts {
                    *c += 1;
                }
                if *c < s.points.len() && s.points[*c].t == ts {
                    buckets[g].push(Bucket {
                        upper,
                        count: s.points[*c].v,
                    });
                }
            }
            for (g, b) in buckets.iter_mut().enumerate() {
                if b.is_empty() {
                    continue;
                }
                vals.iter_mut().for_each(|v| *v = None);
                f(step, &group_labels[g], b, &mut vals);
                for (k, v) in vals.iter().enumerate() {
                    if let Some(v) = v {
                        out[g * nout + k].push(Sample::new(ts, *v));
                    }
                }
            }
        }
        self.release_samples(input.iter().map(|s| s.points.len()).sum());
        let mut result = Vec::new();
        for (i, pts) in out.into_iter().enumerate() {
            if !pts.is_empty() {
                self.add_samples(pts.len())?;
                let labels = label_of(&group_labels[i / nout], i % nout);
                result.push(Series::new(labels, true, pts));
            }
        }
        Ok(result)
    }

    pub(crate) fn histogram_quantile(&self, args: &[&Expr]) -> Result<Val> {
        let q = self.eval_scalar(args[0])?;
        let input = self.eval_vector(args[1])?;
        self.warn_bad_quantile(&q, &self.pos(args[0]));
        let pos = self.pos(args[1]);
        let out = self.classic_histogram(
            &input,
            &pos,
            1,
            &|l, _| l.clone(),
            &mut |step, labels, b, vals| {
                let (v, forced) = bucket_quantile(q[step], b);
                if forced {
                    self.warn_monotonicity(labels, &pos);
                }
                vals[0] = Some(v);
            },
        )?;
        Ok(Val::Vector(out))
    }

    pub(crate) fn histogram_quantiles(&self, args: &[&Expr]) -> Result<Val> {
        let input = self.eval_vector(args[0])?;
        let label = super::string_arg(args[1], "histogram_quantiles")?;
        let mut qs = Vec::new();
        for a in &args[2..] {
            let q = self.eval_scalar(a)?;
            self.warn_bad_quantile(&q, &self.pos(a));
            qs.push(q);
        }
        // The label value is the quantile's text; a quantile that varies
        // by step takes its first value's text.
        let names: Vec<String> = qs
            .iter()
            .map(|q| q.first().map(|v| openmetrics_float(*v)).unwrap_or_default())
            .collect();
        let label_of = |l: &Labels, k: usize| {
            let mut l = l.clone();
            l.set(&label, &names[k]);
            l
        };
        let pos = self.pos(args[0]);
        let out = self.classic_histogram(
            &input,
            &pos,
            qs.len(),
            &label_of,
            &mut |step, labels, b, vals| {
                for (k, q) in qs.iter().enumerate() {
                    let (v, forced) = bucket_quantile(q[step], b);
                    if forced {
                        self.warn_monotonicity(labels, &pos);
                    }
                    vals[k] = Some(v);
                }
            },
        )?;
        Ok(Val::Vector(out))
    }

    pub(crate) fn histogram_fraction(&self, args: &[&Expr]) -> Result<Val> {
        let lo = self.eval_scalar(args[0])?;
        let hi = self.eval_scalar(args[1])?;
        let input = self.eval_vector(args[2])?;
        let pos = self.pos(args[2]);
        let out = self.classic_histogram(
            &input,
            &pos,
            1,
            &|l, _| l.clone(),
            &mut |step, _, b, vals| {
                vals[0] = Some(bucket_fraction(lo[step], hi[step], b));
            },
        )?;
        Ok(Val::Vector(out))
    }
}

/// Go's `strconv.ParseFloat` for label values: decimals, exponents,
/// `+Inf`/`-Inf`/`Inf`/`NaN` (any case); NaN bounds are rejected.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches(['+', '-']);
    let neg = s.starts_with('-');
    let v = match t.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => return None,
        _ => {
            if s.is_empty() || s.contains('_') {
                return None;
            }
            return s.parse::<f64>().ok().filter(|v| !v.is_nan());
        }
    };
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[(f64, f64)]) -> Vec<Bucket> {
        v.iter()
            .map(|&(upper, count)| Bucket { upper, count })
            .collect()
    }

    #[test]
    fn interpolates_within_the_bucket() {
        let mut bs = b(&[(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (f64::INFINITY, 40.0)]);
        let (v, forced) = bucket_quantile(0.5, &mut bs);
        // rank 20 falls in (0.1, 0.5]: 0.1 + 0.4 * 10/20.
        assert!((v - 0.3).abs() < 1e-12, "{v}");
        assert!(!forced);
    }

    #[test]
    fn needs_an_inf_bucket_and_observations() {
        assert!(bucket_quantile(0.5, &mut b(&[(1.0, 3.0)])).0.is_nan());
        assert!(
            bucket_quantile(0.5, &mut b(&[(1.0, 0.0), (f64::INFINITY, 0.0)]))
                .0
                .is_nan()
        );
    }

    #[test]
    fn forces_monotonic_counts() {
        let mut bs = b(&[(1.0, 10.0), (2.0, 5.0), (f64::INFINITY, 10.0)]);
        let (_, forced) = bucket_quantile(0.5, &mut bs);
        assert!(forced);
    }

    #[test]
    fn parses_le_like_go() {
        assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("0.5"), Some(0.5));
        assert_eq!(parse_go_float("1e3"), Some(1000.0));
        assert_eq!(parse_go_float("NaN"), None);
        assert_eq!(parse_go_float("x"), None);
        assert_eq!(parse_go_float(""), None);
    }
}
