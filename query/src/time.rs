//! Time as Prometheus writes it: the proleptic Gregorian calendar (UTC, no
//! time-zone database), RFC 3339 timestamps and Prometheus durations.
//!
//! One owner for what PromQL's calendar functions, rule files, the HTTP API
//! and the command-line flags share:
//! - [`civil_from_days`] / [`days_from_civil`]: day numbers counted from
//!   1970-01-01 to and from (year, month, day), Howard Hinnant's
//!   algorithms, valid before 1970 too;
//! - [`rfc3339_millis`] / [`rfc3339_trimmed`]: millisecond timestamps as
//!   RFC 3339 in UTC;
//! - [`parse_duration`]: the Prometheus duration grammar (`1h30m`, `15d`),
//!   as rule files take it; [`parse_duration_any_order`]: the same units in
//!   any order; [`parse_seconds`]: a bare number of seconds (`30`, `0.5`),
//!   which Prometheus' HTTP API also takes.

/// (year, month 1-12, day 1-31) of a day number counted from 1970-01-01
/// (negative before it).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The day number (counted from 1970-01-01) of a date; the inverse of
/// [`civil_from_days`]. `m` is 1-12 and `d` 1-31; a day past the month's
/// end rolls into the next month.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let (m, d) = (i64::from(m), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a Unix time in milliseconds, and the
/// milliseconds within that second.
fn date_time(ms: i64) -> (String, i64) {
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    (s, ms.rem_euclid(1000))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`: always three fractional digits.
pub fn rfc3339_millis(ms: i64) -> String {
    let (s, frac) = date_time(ms);
    format!("{s}.{frac:03}Z")
}

/// RFC 3339 as Go's `time.RFC3339Nano` writes it (and so Prometheus' JSON):
/// the fraction without trailing zeros, none for a whole second.
pub fn rfc3339_trimmed(ms: i64) -> String {
    let (mut s, frac) = date_time(ms);
    if frac != 0 {
        s.push('.');
        s.push_str(format!("{frac:03}").trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to milliseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() {
            return None;
        }
        let padded: String = digits.chars().chain("000".chars()).take(3).collect();
        frac_ms = padded.parse().ok()?;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        b'+' | b'-' if i + 6 == b.len() && b[i + 3] == b':' => {
            let sign = if b[i] == b'-' { -1 } else { 1 };
            sign * (num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?)
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + frac_ms)
}

/// Parses a Prometheus duration (`model.ParseDuration`): `0`, or integers
/// with units in the order `y w d h m s ms`, each at most once (`1h30m`,
/// `15d`, `2w`, `500ms`). A year is 365 days. Returns milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    sum_units(s, true)
}

/// [`parse_duration`] with the units in any order and repeatable, summed
/// (`30m1h` is 90 minutes, `1m1m` two): what Tessera's HTTP API and
/// `serve` flags have always read. Prometheus' grammar is the one to
/// document; this only keeps such values working.
pub fn parse_duration_any_order(s: &str) -> Result<i64, String> {
    sum_units(s, false)
}

fn sum_units(s: &str, in_order: bool) -> Result<i64, String> {
    let bad = || format!("not a valid duration string: {s:?}");
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    if s == "0" {
        return Ok(0);
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let from = if in_order { next_unit } else { 0 };
        let i = from
            + UNITS[from..]
                .iter()
                .position(|(u, _)| *u == unit)
                .ok_or_else(bad)?;
        next_unit = i + 1;
        total = n
            .checked_mul(UNITS[i].1)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| format!("duration {s:?} overflows"))?;
    }
    Ok(total)
}

/// A duration written as a bare number of seconds (`30`, `0.5`, `1e3`), as
/// Prometheus' HTTP API takes it before trying [`parse_duration`]. `None`
/// when `s` is not a number; an error when it is one too large for
/// milliseconds in an `i64` (or not finite). Returns milliseconds, rounded.
pub fn parse_seconds(s: &str) -> Option<Result<i64, String>> {
    let f = s.parse::<f64>().ok()?;
    let ms = f * 1000.0;
    Some(if !ms.is_finite() || ms.abs() > i64::MAX as f64 {
        Err(format!(
            "cannot parse {s:?} to a valid duration. It overflows int64"
        ))
    } else {
        Ok(ms.round() as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2000-02-29 and 2100-03-01 as day numbers (2000 is a leap year, 2100
    /// is not).
    const D2000_02_29: i64 = 11_016;
    const D2100_03_01: i64 = 47_541;

    #[test]
    fn civil_dates_round_trip() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (-1, (1969, 12, 31)),
            (-719_162, (1, 1, 1)),
            (-25_567, (1900, 1, 1)),
            (-25_508, (1900, 3, 1)),
            (-25_509, (1900, 2, 28)),
            (D2000_02_29, (2000, 2, 29)),
            (D2000_02_29 + 1, (2000, 3, 1)),
            (19_782, (2024, 2, 29)),
            (D2100_03_01 - 1, (2100, 2, 28)),
            (D2100_03_01, (2100, 3, 1)),
        ] {
            assert_eq!(civil_from_days(days), date, "{days}");
            assert_eq!(days_from_civil(date.0, date.1, date.2), days, "{date:?}");
        }
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn formats_rfc3339() {
        let f = |ms: i64, millis: &str, trimmed: &str| {
            assert_eq!(rfc3339_millis(ms), millis, "{ms}");
            assert_eq!(rfc3339_trimmed(ms), trimmed, "{ms}");
        };
        f(0, "1970-01-01T00:00:00.000Z", "1970-01-01T00:00:00Z");
        f(
            1_435_781_451_781,
            "2015-07-01T20:10:51.781Z",
            "2015-07-01T20:10:51.781Z",
        );
        f(
            1_435_781_451_500,
            "2015-07-01T20:10:51.500Z",
            "2015-07-01T20:10:51.5Z",
        );
        f(
            1_700_000_000_120,
            "2023-11-14T22:13:20.120Z",
            "2023-11-14T22:13:20.12Z",
        );
        f(
            D2000_02_29 * 86_400_000,
            "2000-02-29T00:00:00.000Z",
            "2000-02-29T00:00:00Z",
        );
        f(
            D2100_03_01 * 86_400_000,
            "2100-03-01T00:00:00.000Z",
            "2100-03-01T00:00:00Z",
        );
        f(-1, "1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z");
        f(
            -62_135_596_800_000,
            "0001-01-01T00:00:00.000Z",
            "0001-01-01T00:00:00Z",
        );
    }

    #[test]
    fn parses_durations_in_prometheus_order_or_any_order() {
        let f = |s: &str, prometheus: Option<i64>, any_order: Option<i64>| {
            assert_eq!(parse_duration(s).ok(), prometheus, "{s:?}");
            assert_eq!(parse_duration_any_order(s).ok(), any_order, "{s:?}");
        };
        let both = |s: &str, want: Option<i64>| f(s, want, want);
        both("0", Some(0));
        both("0s", Some(0));
        both("250ms", Some(250));
        both("30s", Some(30_000));
        both("1m", Some(60_000));
        both("1h30m", Some(5_400_000));
        both("1d", Some(86_400_000));
        both("15d", Some(15 * 86_400_000));
        both("2w", Some(14 * 86_400_000));
        both("1y", Some(31_536_000_000));
        both("1m30s500ms", Some(90_500));
        both("1d2h3m4s5ms", Some(93_784_005));
        f("30s1m", None, Some(90_000));
        f("1m1m", None, Some(120_000));
        for bad in ["", "30", "1.5m", "-1m", "5x", "m", "99999999999y"] {
            both(bad, None);
        }
    }

    #[test]
    fn parses_bare_seconds() {
        let f = |s: &str, want: Option<Result<i64, ()>>| {
            assert_eq!(parse_seconds(s).map(|r| r.map_err(|_| ())), want, "{s:?}")
        };
        f("0", Some(Ok(0)));
        f("15", Some(Ok(15_000)));
        f("0.5", Some(Ok(500)));
        f("-1.5", Some(Ok(-1500)));
        f("1e3", Some(Ok(1_000_000)));
        f("NaN", Some(Err(())));
        f("1e300", Some(Err(())));
        f("5m", None);
        f("", None);
    }
}
