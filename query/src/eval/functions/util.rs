//! Numeric helpers shared by functions and aggregations: Kahan summation,
//! quantiles, Go-compatible float formatting (through `crate::format`) and
//! natural sort order.

use std::cmp::Ordering;

/// Kahan–Neumaier summation step (Prometheus' `kahansum.Inc`).
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Go's `math.Max`: +Inf wins over NaN, NaN over numbers, +0 over -0
/// (Rust's `f64::max` drops a NaN instead).
pub(crate) fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        f64::INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() { y } else { x }
    } else if x > y {
        x
    } else {
        y
    }
}

/// Go's `math.Min`: -Inf wins over NaN, NaN over numbers, -0 over +0.
pub(crate) fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() { x } else { y }
    } else if x < y {
        x
    } else {
        y
    }
}

/// The φ-quantile of `values` with linear interpolation between ranks
/// (Prometheus' `quantile`); NaN sorts first as in its heap order.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Go's `%g`; `crate::format` owns it.
pub(crate) fn fmt_g(f: f64) -> String {
    crate::format::go_g(f)
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`; `crate::format` owns it.
pub(crate) fn fmt_float(f: f64) -> String {
    crate::format::go_shortest_f(f)
}

/// Natural order: runs of digits compare as numbers, the rest as text.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let da = a[0].is_ascii_digit();
        let db = b[0].is_ascii_digit();
        let ca = a.iter().take_while(|c| c.is_ascii_digit() == da).count();
        let cb = b.iter().take_while(|c| c.is_ascii_digit() == db).count();
        let (ra, rb) = (&a[..ca], &b[..cb]);
        let ord = if da && db {
            let ta = trim_zeros(ra);
            let tb = trim_zeros(rb);
            ta.len().cmp(&tb.len()).then(ta.cmp(tb))
        } else {
            ra.cmp(rb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[ca..];
        b = &b[cb..];
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| **c == b'0').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_between_ranks() {
        let f = |q: f64, mut v: Vec<f64>, want: f64| {
            let got = quantile(q, &mut v);
            assert!(
                got == want || (got - want).abs() < 1e-12 || (got.is_nan() && want.is_nan()),
                "{q}: {got}"
            );
        };
        f(0.5, vec![1.0, 2.0, 3.0, 4.0], 2.5);
        f(0.0, vec![3.0, 1.0], 1.0);
        f(1.0, vec![3.0, 1.0], 3.0);
        f(2.0, vec![1.0], f64::INFINITY);
        f(-1.0, vec![1.0], f64::NEG_INFINITY);
        f(0.5, vec![], f64::NAN);
    }

    #[test]
    fn formats_like_go() {
        let f = |x: f64, g: &str, ff: &str| {
            assert_eq!(fmt_g(x), g);
            assert_eq!(fmt_float(x), ff);
        };
        f(1.5, "1.5", "1.5");
        f(2.0, "2", "2");
        f(-0.5, "-0.5", "-0.5");
        f(1e6, "1e+06", "1000000");
        f(f64::INFINITY, "+Inf", "+Inf");
        f(f64::NAN, "NaN", "NaN");
        f(0.0001, "0.0001", "0.0001");
        f(0.00001, "1e-05", "0.00001");
    }

    #[test]
    fn min_and_max_keep_nan_like_go() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert!(go_min(f64::NAN, 1.0).is_nan());
        assert_eq!(go_max(f64::NAN, f64::INFINITY), f64::INFINITY);
        assert_eq!(go_min(f64::NAN, f64::NEG_INFINITY), f64::NEG_INFINITY);
        assert!(go_max(-0.0, 0.0).is_sign_positive());
        assert!(go_min(0.0, -0.0).is_sign_negative());
        assert_eq!(go_max(2.0, 3.0), 3.0);
        assert_eq!(go_min(2.0, 3.0), 2.0);
    }

    #[test]
    fn natural_order_compares_numbers_by_value() {
        assert_eq!(natural_cmp("a2", "a10"), Ordering::Less);
        assert_eq!(natural_cmp("a10", "a10"), Ordering::Equal);
        assert_eq!(natural_cmp("b", "a10"), Ordering::Greater);
    }

    #[test]
    fn kahan_sum_keeps_small_terms() {
        let (mut s, mut c) = (0.0, 0.0);
        for x in [1e100, 1.0, -1e100] {
            (s, c) = kahan_inc(x, s, c);
        }
        assert_eq!(s + c, 1.0);
    }
}
