//! Calendar functions (`day_of_week`, `month`, `year`, ...) in UTC, computed
//! with the days-from-civil algorithm so no time-zone database is needed.

use promql_parser::parser::Expr;
use tessera_tsdb::{Labels, Sample};

use super::super::{Evaluator, Series, Val};
use crate::error::Result;
use crate::time::civil_from_days;

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// The calendar field `name` of a Unix time in seconds (truncated like Go's
/// `time.Unix(int64(v), 0)`).
pub(crate) fn date_field(name: &str, secs: f64) -> f64 {
    let s = secs as i64;
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let days_before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    match name {
        "year" => y as f64,
        "month" => m as f64,
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let leap = is_leap(y) && m > 2;
            (days_before[(m - 1) as usize] + d + u32::from(leap)) as f64
        }
        "hour" => (sod / 3600) as f64,
        "minute" => ((sod % 3600) / 60) as f64,
        "days_in_month" => match m {
            2 if is_leap(y) => 29.0,
            2 => 28.0,
            4 | 6 | 9 | 11 => 30.0,
            _ => 31.0,
        },
        _ => f64::NAN,
    }
}

impl Evaluator<'_> {
    /// With no argument the field of the evaluation time, else of each value.
    pub(crate) fn date_fn(&self, name: &str, args: &[&Expr]) -> Result<Val> {
        match args.first() {
            None => {
                let pts = self
                    .grid
                    .iter()
                    .map(|t| Sample::new(t, date_field(name, (t / 1000) as f64)))
                    .collect();
                Ok(Val::Vector(vec![Series::new(Labels::empty(), false, pts)]))
            }
            Some(a) => {
                let v = self.eval_vector(a)?;
                Ok(Val::Vector(self.map_values(v, |_, x| {
                    if x.is_nan() || x.is_infinite() {
                        // Go converts NaN/Inf to a huge int64: a far date.
                        date_field(name, i64::MIN as f64)
                    } else {
                        date_field(name, x)
                    }
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_fields_in_utc() {
        // 2024-02-29T13:45:00Z, a Thursday.
        let t = 1_709_214_300.0;
        let f = |n: &str| date_field(n, t);
        assert_eq!(f("year"), 2024.0);
        assert_eq!(f("month"), 2.0);
        assert_eq!(f("day_of_month"), 29.0);
        assert_eq!(f("day_of_week"), 4.0);
        assert_eq!(f("day_of_year"), 60.0);
        assert_eq!(f("hour"), 13.0);
        assert_eq!(f("minute"), 45.0);
        assert_eq!(f("days_in_month"), 29.0);
        assert_eq!(date_field("day_of_week", 0.0), 4.0); // 1970-01-01 was a Thursday
        assert_eq!(date_field("year", -1.0), 1969.0);
    }
}
