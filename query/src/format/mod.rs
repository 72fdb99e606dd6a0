//! Go's float formatting, the one owner of it: Prometheus writes sample
//! values in JSON and `count_values` labels with `strconv.FormatFloat(v,
//! 'f', -1, 64)`, and templates and error texts with `%g`, so every digit
//! Tessera prints must be the digit Go prints.
//!
//! Go's shortest form (Ryū) takes the fewest digits that read back as the
//! same float and, among those, the one nearest the exact binary value,
//! ties to even. Rust's `{}` finds the same digit count but may pick the
//! other neighbour on a tie (`113397885350929.625` prints `…929.63` in
//! Rust, `…929.62` in Go), so the digits come from the `ryu` crate, the
//! same algorithm as Go's.

/// The shortest significant digits of `|v|` that Go prints (no trailing
/// zeros) and the decimal exponent of the first one: `1.25` is `("125", 0)`.
/// `v` must be finite and non-zero.
///
/// Go's `ryuFtoaShortest` and the `ryu` crate are both Ryū: the shortest
/// digits in the rounding interval, the nearest on a tie to even. (The
/// tests check it against Rust's exact mode, a slower route to the same
/// digits.)
pub(crate) fn shortest_digits(v: f64) -> (String, i32) {
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(v.abs());
    // `ryu` writes `123.45`, `0.0012` or `1.5e-7` / `1e22`.
    let (mant, exp) = match s.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().expect("integer exponent")),
        None => (s, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let all: String = int.chars().chain(frac.chars()).collect();
    let lead = all.chars().take_while(|c| *c == '0').count();
    let digits = all[lead..].trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    // The first digit's place: int.len() - 1 - leading zeros, plus `e`.
    let point = int.len() as i32 - 1 - lead as i32 + exp;
    (digits.to_string(), point)
}

/// `strconv.FormatFloat(v, 'f', -1, 64)`, with Prometheus' spellings of
/// the specials (`NaN`, `+Inf`, `-Inf`).
pub fn go_shortest_f(v: f64) -> String {
    if let Some(s) = special(v) {
        return s.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let (d, exp) = shortest_digits(v);
    if exp < 0 {
        format!("{sign}0.{}{d}", "0".repeat((-exp - 1) as usize))
    } else {
        let int = exp as usize + 1;
        if d.len() <= int {
            format!("{sign}{d}{}", "0".repeat(int - d.len()))
        } else {
            format!("{sign}{}.{}", &d[..int], &d[int..])
        }
    }
}

/// A sample value as Prometheus writes it in JSON (`jsonutil.MarshalFloat`):
/// `strconv.FormatFloat(v, 'f', -1, 64)`, but `'e'` (`1.5e-07`, `1e+21`)
/// below 1e-6 and from 1e21 in magnitude.
pub fn prometheus_json_value(v: f64) -> String {
    let abs = v.abs();
    if abs != 0.0 && abs.is_finite() && !(1e-6..1e21).contains(&abs) {
        go_shortest_e(v)
    } else {
        go_shortest_f(v)
    }
}

/// `strconv.FormatFloat(v, 'e', -1, 64)` for finite non-zero `v`.
fn go_shortest_e(v: f64) -> String {
    let sign = if v < 0.0 { "-" } else { "" };
    let (d, exp) = shortest_digits(v);
    let mant = if d.len() > 1 {
        format!("{}.{}", &d[..1], &d[1..])
    } else {
        d
    };
    let esign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{mant}e{esign}{:02}", exp.abs())
}

/// Go's `%g` (`strconv.FormatFloat(v, 'g', -1, 64)`): shortest digits,
/// exponent form below 1e-4 and from 1e+06, as Prometheus' error texts and
/// `le`/`quantile` checks print numbers.
pub(crate) fn go_g(v: f64) -> String {
    if let Some(s) = special(v) {
        return s.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (_, exp) = shortest_digits(v);
    if !(-4..6).contains(&exp) {
        return go_shortest_e(v);
    }
    go_shortest_f(v)
}

fn special(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_f_matches_go_on_known_outputs() {
        let mut n = 0;
        for line in include_str!("go_f_vectors.txt").lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (bits, want) = line.split_once(' ').expect("bits and text");
            let v = f64::from_bits(u64::from_str_radix(bits, 16).expect("hex bits"));
            assert_eq!(go_shortest_f(v), want, "bits {bits}");
            n += 1;
        }
        assert!(n > 200, "{n} vectors");
    }

    #[test]
    fn shortest_f_rounds_ties_to_even_like_go() {
        let f = |v: f64, want: &str| assert_eq!(go_shortest_f(v), want, "{v:?}");
        f(f64::from_bits(0x42d9_c8a0_2b2d_0468), "113397885350929.62"); // ...929.625
        f(1.0, "1");
        f(0.1, "0.1");
        f(-2.5, "-2.5");
        f(1e21, "1000000000000000000000");
        f(1.5e-7, "0.00000015");
        f(f64::NAN, "NaN");
        f(f64::NEG_INFINITY, "-Inf");
        f(-0.0, "-0");
    }

    /// Go's choice by a slower route: the shortest length (Rust's `{:e}`),
    /// then Rust's exact mode (correctly rounded, ties to even) at that
    /// length, unless that leaves the rounding interval.
    fn exact_route(v: f64) -> (String, i32) {
        let v = v.abs();
        let short = format!("{v:e}");
        let count = short.split('e').next().unwrap().replace('.', "").len();
        let nearest = format!("{:.*e}", count - 1, v);
        let pick = if nearest.parse::<f64>() == Ok(v) {
            nearest
        } else {
            short
        };
        let (m, e) = pick.split_once('e').unwrap();
        let d = m.replace('.', "");
        let d = d.trim_end_matches('0');
        (
            if d.is_empty() { "0" } else { d }.to_string(),
            e.parse().unwrap(),
        )
    }

    #[test]
    fn ryu_digits_equal_the_exact_route() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Random bits, and tie-prone values: integers over powers of two.
            let v = if i % 2 == 0 {
                f64::from_bits(x)
            } else {
                (x >> 11) as f64 / (1u64 << (x % 24)) as f64
            };
            if !v.is_finite() || v == 0.0 {
                continue;
            }
            assert_eq!(shortest_digits(v), exact_route(v), "{v:e}");
        }
    }

    #[test]
    fn shortest_digits_read_back_and_are_no_longer_than_rusts() {
        // A cheap property over many bit patterns: Go's pick is a
        // shortest round-trip form, so it has Rust's length and parses back.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if !v.is_finite() || v == 0.0 {
                continue;
            }
            let s = go_shortest_f(v);
            assert_eq!(s.parse::<f64>().ok(), Some(v), "{s}");
            let (d, _) = shortest_digits(v);
            let rust = format!("{:e}", v.abs());
            let rust_len = rust.split('e').next().unwrap().replace('.', "").len();
            assert_eq!(d.len(), rust_len, "{v:e}");
        }
    }

    #[test]
    fn json_values_switch_to_exponent_form_like_prometheus() {
        // Answers of Debian's Prometheus 2.42 to `vector(x)`.
        let f = |v: f64, want: &str| assert_eq!(prometheus_json_value(v), want, "{v:?}");
        f(1e21, "1e+21");
        f(1.5e-7, "1.5e-07");
        f(-1.5e-7, "-1.5e-07");
        f(1e-6, "0.000001");
        f(9.99e20, "999000000000000000000");
        f(1.0142320547350045e304, "1.0142320547350045e+304");
        f(-0.0, "-0");
        f(0.0, "0");
        f(f64::NAN, "NaN");
    }

    #[test]
    fn g_matches_go_fmt() {
        let f = |v: f64, want: &str| assert_eq!(go_g(v), want, "{v:?}");
        f(1.5, "1.5");
        f(2.0, "2");
        f(1e6, "1e+06");
        f(0.0001, "0.0001");
        f(0.00001, "1e-05");
        f(123456.0, "123456");
        f(1234567.0, "1.234567e+06");
        f(f64::INFINITY, "+Inf");
    }
}
