//! `histogram_quantile` over classic histograms (series with an `le` label).
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
    buckets.sort_by(|a, b| a.upper.partial_cmp(&b.upper).unwrap_or(std::cmp::Ordering::Equal));
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

impl Evaluator<'_> {
    pub(crate) fn histogram_quantile(&self, args: &[&Expr]) -> Result<Val> {
        let q = self.eval_scalar(args[0])?;
        let input = self.eval_vector(args[1])?;
        for &qv in &q {
            if qv.is_nan() || !(0.0..=1.0).contains(&qv) {
                self.warn(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {}",
                    fmt_g(qv)
                ));
            }
        }
        // Group every series once by its labels without `le`.
        let mut groups: HashMap<Labels, usize> = HashMap::new();
        let mut group_labels: Vec<Labels> = Vec::new();
        let mut member: Vec<Option<(usize, f64)>> = Vec::with_capacity(input.len());
        for s in &input {
            let le = s.labels.get("le").unwrap_or("");
            let Some(upper) = parse_go_float(le) else {
                let name = s.labels.metric_name().unwrap_or("");
                let mut msg = format!(
                    "PromQL warning: bucket label \"le\" is missing or has a malformed value of {le:?}"
                );
                if !name.is_empty() {
                    msg.push_str(&format!(" for metric name {name:?}"));
                }
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
        let mut out: Vec<Vec<Sample>> = vec![Vec::new(); group_labels.len()];
        let mut buckets: Vec<Vec<Bucket>> = vec![Vec::new(); group_labels.len()];
        let mut cursors = vec![0usize; input.len()];
        for step in 0..self.grid.len() {
            if step % 64 == 0 {
                self.check()?;
            }
            let ts = self.grid.ts(step);
            buckets.iter_mut().for_each(|b| b.clear());
            for (si, s) in input.iter().enumerate() {
                let Some((g, upper)) = member[si] else { continue };
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
                let (v, forced) = bucket_quantile(q[step], b);
                if forced {
                    let name = group_labels[g].metric_name().unwrap_or("");
                    let mut msg = "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)".to_string();
                    if !name.is_empty() {
                        msg.push_str(&format!(" for metric name {name:?}"));
                    }
                    self.warn(msg);
                }
                out[g].push(Sample::new(ts, v));
            }
        }
        let mut result = Vec::new();
        for (labels, pts) in group_labels.into_iter().zip(out) {
            if !pts.is_empty() {
                self.add_samples(pts.len())?;
                result.push(Series::new(labels, true, pts));
            }
        }
        Ok(Val::Vector(result))
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
        v.iter().map(|&(upper, count)| Bucket { upper, count }).collect()
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
        assert!(bucket_quantile(0.5, &mut b(&[(1.0, 0.0), (f64::INFINITY, 0.0)])).0.is_nan());
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
