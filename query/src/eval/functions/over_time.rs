//! `*_over_time` aggregations of each series' samples within the window,
//! plus `double_exponential_smoothing`.

use super::Window;
use super::util::{kahan_inc, quantile};
use crate::error::{QueryError, Result};

pub(crate) fn avg(w: &Window<'_>) -> Option<f64> {
    let s = w.samples;
    let first = s.first()?;
    // Kahan sum, switching to an incremental mean only if the sum overflows.
    let (mut sum, mut count, mut mean, mut c, mut incremental) = (first.v, 1.0, 0.0, 0.0, false);
    for (i, p) in s[1..].iter().enumerate() {
        count = (i + 2) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(p.v, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(p.v / count, q * mean, q * c);
    }
    Some(if incremental {
        mean + c
    } else {
        sum / count + c / count
    })
}

pub(crate) fn sum(w: &Window<'_>) -> Option<f64> {
    w.samples.first()?;
    let (mut s, mut c) = (0.0, 0.0);
    for p in w.samples {
        (s, c) = kahan_inc(p.v, s, c);
    }
    Some(if s.is_infinite() { s } else { s + c })
}

pub(crate) fn count(w: &Window<'_>) -> Option<f64> {
    (!w.samples.is_empty()).then_some(w.samples.len() as f64)
}

/// Shared by min/max and ts_of_min/ts_of_max: `better(cur, best)` picks.
fn compare(w: &Window<'_>, better: fn(f64, f64) -> bool, timestamp: bool) -> Option<f64> {
    let first = w.samples.first()?;
    let (mut best, mut best_t) = (first.v, first.t);
    for p in w.samples {
        if better(p.v, best) {
            best = p.v;
            best_t = p.t;
        }
    }
    Some(if timestamp {
        best_t as f64 / 1000.0
    } else {
        best
    })
}

pub(crate) fn max(w: &Window<'_>) -> Option<f64> {
    compare(w, |c, m| c > m || m.is_nan(), false)
}

pub(crate) fn min(w: &Window<'_>) -> Option<f64> {
    compare(w, |c, m| c < m || m.is_nan(), false)
}

pub(crate) fn ts_of_max(w: &Window<'_>) -> Option<f64> {
    compare(w, |c, m| c >= m || m.is_nan(), true)
}

pub(crate) fn ts_of_min(w: &Window<'_>) -> Option<f64> {
    compare(w, |c, m| c <= m || m.is_nan(), true)
}

pub(crate) fn last(w: &Window<'_>) -> Option<f64> {
    w.samples.last().map(|p| p.v)
}

pub(crate) fn first(w: &Window<'_>) -> Option<f64> {
    w.samples.first().map(|p| p.v)
}

pub(crate) fn ts_of_last(w: &Window<'_>) -> Option<f64> {
    w.samples.last().map(|p| p.t as f64 / 1000.0)
}

pub(crate) fn ts_of_first(w: &Window<'_>) -> Option<f64> {
    w.samples.first().map(|p| p.t as f64 / 1000.0)
}

pub(crate) fn present(w: &Window<'_>) -> Option<f64> {
    (!w.samples.is_empty()).then_some(1.0)
}

/// Population variance with Kahan-compensated Welford updates.
pub(crate) fn stdvar(w: &Window<'_>) -> Option<f64> {
    w.samples.first()?;
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in w.samples {
        count += 1.0;
        let delta = p.v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (p.v - (mean + c_mean)), aux, c_aux);
    }
    Some((aux + c_aux) / count)
}

pub(crate) fn stddev(w: &Window<'_>) -> Option<f64> {
    stdvar(w).map(f64::sqrt)
}

pub(crate) fn quantile_over(w: &Window<'_>, q: f64) -> Option<f64> {
    w.samples.first()?;
    let mut vals: Vec<f64> = w.samples.iter().map(|p| p.v).collect();
    Some(quantile(q, &mut vals))
}

/// Median absolute deviation from the median.
pub(crate) fn mad(w: &Window<'_>) -> Option<f64> {
    w.samples.first()?;
    let mut vals = Vec::with_capacity(w.samples.len());
    for p in w.samples {
        if p.v.is_nan() {
            return Some(f64::NAN);
        }
        vals.push(p.v);
    }
    let median = quantile(0.5, &mut vals);
    vals.iter_mut().for_each(|v| *v = (*v - median).abs());
    Some(quantile(0.5, &mut vals))
}

/// Holt's linear smoothing (`double_exponential_smoothing`, formerly
/// `holt_winters`).
pub(crate) fn double_exponential_smoothing(
    w: &Window<'_>,
    sf: f64,
    tf: f64,
) -> Result<Option<f64>> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(QueryError::exec(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        )));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(QueryError::exec(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        )));
    }
    let s = w.samples;
    if s.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, s[0].v);
    let mut b = s[1].v - s[0].v;
    for (i, p) in s.iter().enumerate().skip(1) {
        let x = sf * p.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_tsdb::Sample;

    fn w(v: &[f64]) -> Vec<Sample> {
        v.iter()
            .enumerate()
            .map(|(i, v)| Sample::new(i as i64 * 1000, *v))
            .collect()
    }

    fn win(s: &[Sample]) -> Window<'_> {
        Window {
            samples: s,
            start: -1,
            end: 1_000_000,
            ts: 1_000_000,
            range: 1_000_001,
        }
    }

    #[test]
    fn over_time_aggregates_the_window() {
        let s = w(&[1.0, 2.0, 3.0, 4.0]);
        let x = win(&s);
        assert_eq!(avg(&x), Some(2.5));
        assert_eq!(sum(&x), Some(10.0));
        assert_eq!(count(&x), Some(4.0));
        assert_eq!(min(&x), Some(1.0));
        assert_eq!(max(&x), Some(4.0));
        assert_eq!(last(&x), Some(4.0));
        assert_eq!(first(&x), Some(1.0));
        assert_eq!(stdvar(&x), Some(1.25));
        assert_eq!(quantile_over(&x, 0.5), Some(2.5));
        assert_eq!(mad(&x), Some(1.0));
        assert_eq!(ts_of_max(&x), Some(3.0));
    }

    #[test]
    fn avg_survives_overflowing_sums() {
        let s = w(&[f64::MAX, f64::MAX]);
        assert_eq!(avg(&win(&s)), Some(f64::MAX));
    }

    #[test]
    fn smoothing_rejects_factors_outside_zero_one() {
        let s = w(&[1.0, 2.0]);
        assert!(double_exponential_smoothing(&win(&s), 1.0, 0.5).is_err());
        assert!(double_exponential_smoothing(&win(&s), 0.5, 0.0).is_err());
    }
}
