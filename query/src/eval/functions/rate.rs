//! Counter and gauge change functions over a range: `rate`, `increase`,
//! `delta` (extrapolated), `irate`, `idelta`, `deriv`, `predict_linear`,
//! `resets` and `changes`.

use tessera_tsdb::Sample;

use super::Window;
use super::util::kahan_inc;

/// `rate`, `increase` and `delta`: the change over the window, corrected for
/// counter resets and extrapolated towards the window edges (by at most half
/// a sample interval, and never below zero for counters), as Prometheus'
/// `extrapolatedRate`.
pub(crate) fn extrapolated_rate(w: &Window<'_>, is_counter: bool, is_rate: bool) -> Option<f64> {
    let s = w.samples;
    if s.len() < 2 {
        return None;
    }
    let first = s[0];
    let last = s[s.len() - 1];
    let mut result = last.v - first.v;
    if is_counter {
        for p in s.windows(2) {
            if p[1].v < p[0].v {
                result += p[0].v;
            }
        }
    }
    let range_start = w.start;
    let range_end = w.end;
    let mut duration_to_start = (first.t - range_start) as f64 / 1000.0;
    let mut duration_to_end = (range_end - last.t) as f64 / 1000.0;
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let avg_between = sampled_interval / (s.len() - 1) as f64;
    let threshold = avg_between * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = avg_between / 2.0;
    }
    if is_counter {
        // A counter cannot have been below zero: do not extrapolate past
        // the point where it would have been zero.
        let mut duration_to_zero = duration_to_start;
        if result > 0.0 && first.v >= 0.0 {
            duration_to_zero = sampled_interval * (first.v / result);
        }
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = avg_between / 2.0;
    }
    let mut factor = if sampled_interval != 0.0 {
        (sampled_interval + duration_to_start + duration_to_end) / sampled_interval
    } else {
        1.0
    };
    if is_rate {
        factor /= w.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples only.
pub(crate) fn instant_value(w: &Window<'_>, is_rate: bool) -> Option<f64> {
    let s = w.samples;
    if s.len() < 2 {
        return None;
    }
    let a = s[s.len() - 2];
    let b = s[s.len() - 1];
    let dt = b.t - a.t;
    if dt == 0 {
        return None;
    }
    let mut v = if is_rate && b.v < a.v {
        // A counter reset: the last value is the increase since the reset.
        b.v
    } else {
        b.v - a.v
    };
    if is_rate {
        v /= dt as f64 / 1000.0;
    }
    Some(v)
}

/// Least-squares slope and intercept at `intercept_t` (Prometheus'
/// `linearRegression`, Kahan-summed).
pub(crate) fn linear_regression(s: &[Sample], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = s[0].v;
    let mut const_y = true;
    for (i, p) in s.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(p.v, sy, cy);
        (sxy, cxy) = kahan_inc(x * p.v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

pub(crate) fn deriv(w: &Window<'_>) -> Option<f64> {
    if w.samples.len() < 2 {
        return None;
    }
    Some(linear_regression(w.samples, w.samples[0].t).0)
}

pub(crate) fn predict_linear(w: &Window<'_>, duration: f64) -> Option<f64> {
    if w.samples.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(w.samples, w.ts);
    Some(slope * duration + intercept)
}

pub(crate) fn resets(w: &Window<'_>) -> Option<f64> {
    if w.samples.is_empty() {
        return None;
    }
    Some(w.samples.windows(2).filter(|p| p[1].v < p[0].v).count() as f64)
}

pub(crate) fn changes(w: &Window<'_>) -> Option<f64> {
    if w.samples.is_empty() {
        return None;
    }
    Some(
        w.samples
            .windows(2)
            .filter(|p| p[1].v != p[0].v && !(p[1].v.is_nan() && p[0].v.is_nan()))
            .count() as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win(samples: &[Sample], start: i64, end: i64) -> Window<'_> {
        Window {
            samples,
            start,
            end,
            ts: end,
            range: end - start,
        }
    }

    #[test]
    fn rate_extrapolates_to_window_edges() {
        // 10,20,..,50 at 60s..300s in the window (0s, 300s].
        let s: Vec<Sample> = (0..5)
            .map(|i| Sample::new(i * 60_000 + 60_000, i as f64 * 10.0 + 10.0))
            .collect();
        let w = win(&s, 0, 300_000);
        // Increase 40 over 240s sampled, extrapolated by the 60s gap to the
        // window start (the zero point is exactly there) to 300s.
        let inc = extrapolated_rate(&w, true, false).unwrap();
        assert!((inc - 50.0).abs() < 1e-9, "{inc}");
        let rate = extrapolated_rate(&w, true, true).unwrap();
        assert!((rate - 50.0 / 300.0).abs() < 1e-12);
    }

    #[test]
    fn rate_handles_counter_resets() {
        let s = vec![
            Sample::new(0, 10.0),
            Sample::new(60_000, 20.0),
            Sample::new(120_000, 5.0),
        ];
        let w = win(&s, 0, 120_000);
        // 10 -> 20 (+10), reset, 0 -> 5 (+5): 15 over a fully covered window.
        assert_eq!(extrapolated_rate(&w, true, false), Some(15.0));
        assert_eq!(resets(&w), Some(1.0));
        assert_eq!(changes(&w), Some(2.0));
    }

    #[test]
    fn irate_uses_last_two_samples() {
        let s = vec![
            Sample::new(0, 1.0),
            Sample::new(10_000, 5.0),
            Sample::new(20_000, 2.0),
        ];
        let w = win(&s, -1, 20_000);
        assert_eq!(instant_value(&w, true), Some(0.2));
        assert_eq!(instant_value(&w, false), Some(-3.0));
    }

    #[test]
    fn deriv_of_a_line_is_its_slope() {
        let s: Vec<Sample> = (0..10)
            .map(|i| Sample::new(i * 1000, 3.0 * i as f64))
            .collect();
        let w = win(&s, -1, 9000);
        assert!((deriv(&w).unwrap() - 3.0).abs() < 1e-9);
        assert!((predict_linear(&w, 1.0).unwrap() - 30.0).abs() < 1e-9);
    }
}
