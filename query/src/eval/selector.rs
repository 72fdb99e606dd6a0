//! Vector and matrix selectors: one storage selection per selector per
//! query, then a seek per step (lookback for instant vectors, a sliding
//! window for range vectors).

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{Expr, VectorSelector};
use tessera_tsdb::{METRIC_NAME, MatchOp, Matcher, Sample, SeriesSamples, is_stale_nan};

use super::{Evaluator, RangeArg, Series, offset_ms};
use crate::error::{QueryError, Result};
use crate::storage::SelectStop;

/// Converts the parser's matchers to the store's, adding the `__name__`
/// matcher for `metric{...}` when the parser kept the name apart.
pub(crate) fn to_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::exec(
            "\"or\" inside label matchers is not supported by PromQL",
        ));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    for m in &vs.matchers.matchers {
        let op = match m.op {
            PMatchOp::Equal => MatchOp::Equal,
            PMatchOp::NotEqual => MatchOp::NotEqual,
            PMatchOp::Re(_) => MatchOp::RegexMatch,
            PMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
        };
        let matcher = Matcher::new(op, m.name.clone(), m.value.clone())
            .map_err(|e| QueryError::BadData(e.to_string()))?;
        out.push(matcher);
    }
    if let Some(name) = &vs.name
        && !out
            .iter()
            .any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal && &m.value == name)
    {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    Ok(out)
}

/// What a point on the grid holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PointValue {
    Value,
    /// The sample's own timestamp in seconds (`timestamp()`).
    SampleSeconds,
    /// The sample's own timestamp in milliseconds (`info()` picks the
    /// newest info sample by it).
    SampleMillis,
}

impl Evaluator<'_> {
    /// Fetches the series of a selector for `mint..=maxt`, sorted by labels
    /// (Prometheus' storage order, which `limitk` and result order rely on).
    pub(crate) fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesSamples>> {
        self.check()?;
        let budget = self
            .settings
            .max_samples
            .saturating_sub(self.shared.current.get())
            .max(1);
        let stop = || self.check().is_err();
        let mut series = match self.storage.select(matchers, mint, maxt, budget, &stop) {
            Ok(s) => s,
            Err(SelectStop::TooManySamples) => {
                return Err(QueryError::TooManySamples {
                    limit: self.settings.max_samples,
                });
            }
            Err(SelectStop::Stopped) => {
                self.check()?;
                return Err(QueryError::Canceled("query execution"));
            }
            Err(SelectStop::Failed(e)) => return Err(QueryError::Storage(e.to_string())),
        };
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let n: usize = series.iter().map(|s| s.samples.len()).sum();
        // Loaded samples count against the budget while the selector's
        // output is built, then are released.
        self.add_samples(n)?;
        self.release_samples(n);
        Ok(series)
    }

    /// An instant-vector selector over the grid. With `sample_time` the value
    /// of each point is the sample's own timestamp in seconds (`timestamp()`).
    pub(crate) fn eval_vector_selector(
        &self,
        vs: &VectorSelector,
        sample_time: bool,
    ) -> Result<Vec<Series>> {
        let offset = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let (first, last) = match at {
            Some(t) => (t, t),
            None => (self.grid.start, self.grid.end),
        };
        let matchers = to_matchers(vs)?;
        let selected = self.select(
            &matchers,
            first - offset - self.settings.lookback,
            last - offset,
        )?;
        let mode = if sample_time {
            PointValue::SampleSeconds
        } else {
            PointValue::Value
        };
        self.on_grid(selected, offset, at, mode)
    }

    /// Puts selected series on the grid: at each step the last sample within
    /// the lookback window before `(at or step) - offset`, unless stale.
    pub(crate) fn on_grid(
        &self,
        selected: Vec<SeriesSamples>,
        offset: i64,
        at: Option<i64>,
        mode: PointValue,
    ) -> Result<Vec<Series>> {
        let mut out = Vec::with_capacity(selected.len());
        for (i, s) in selected.into_iter().enumerate() {
            if i % 64 == 0 {
                self.check()?;
            }
            let mut points = Vec::new();
            self.grid_points(&s.samples, offset, at, mode, &mut points)?;
            if !points.is_empty() {
                self.add_samples(points.len())?;
                out.push(Series::new(s.labels, false, points));
            }
        }
        Ok(out)
    }

    /// One series' points on the grid (appended to `points`): at each step
    /// the last sample within the lookback window before `(at or step) -
    /// offset`, unless stale.
    pub(crate) fn grid_points(
        &self,
        samples: &[Sample],
        offset: i64,
        at: Option<i64>,
        mode: PointValue,
        points: &mut Vec<Sample>,
    ) -> Result<()> {
        let lookback = self.settings.lookback;
        let mut cursor = 0usize;
        for (step, ts) in self.grid.iter().enumerate() {
            if step % 4096 == 4095 {
                self.check()?;
            }
            let ref_t = at.unwrap_or(ts) - offset;
            // Advance to the last sample at or before ref_t; steps are
            // increasing so the cursor never moves back.
            if at.is_some() {
                cursor = samples.partition_point(|p| p.t <= ref_t);
            } else {
                while cursor < samples.len() && samples[cursor].t <= ref_t {
                    cursor += 1;
                }
            }
            if cursor == 0 {
                continue;
            }
            let p = samples[cursor - 1];
            if p.t <= ref_t - lookback || is_stale_nan(p.v) {
                continue;
            }
            let v = match mode {
                PointValue::Value => p.v,
                PointValue::SampleSeconds => p.t as f64 / 1000.0,
                PointValue::SampleMillis => p.t as f64,
            };
            points.push(Sample::new(ts, v));
        }
        Ok(())
    }

    /// A range-vector argument: a matrix selector or a subquery (parentheses
    /// unwrapped), with the samples every step of the grid will look at.
    pub(crate) fn eval_range_arg(&self, expr: &Expr) -> Result<RangeArg> {
        match expr {
            Expr::Paren(p) => self.eval_range_arg(&p.expr),
            Expr::MatrixSelector(ms) => {
                let vs = &ms.vs;
                let range = super::duration_ms(ms.range);
                let offset = offset_ms(&vs.offset);
                let at = self.at_ms(&vs.at);
                let (first, last) = match at {
                    Some(t) => (t, t),
                    None => (self.grid.start, self.grid.end),
                };
                let selected =
                    self.select(&to_matchers(vs)?, first - offset - range, last - offset)?;
                let mut series = Vec::with_capacity(selected.len());
                let mut total = 0;
                for s in selected {
                    let points: Vec<Sample> = s
                        .samples
                        .into_iter()
                        .filter(|p| !is_stale_nan(p.v))
                        .collect();
                    if !points.is_empty() {
                        total += points.len();
                        series.push(Series::new(s.labels, false, points));
                    }
                }
                self.add_samples(total)?;
                Ok(RangeArg {
                    series,
                    range,
                    offset,
                    at,
                })
            }
            Expr::Subquery(sq) => self.eval_subquery(sq),
            other => Err(QueryError::exec(format!(
                "expected type range vector, got {}",
                expr_kind(other)
            ))),
        }
    }
}

fn expr_kind(e: &Expr) -> &'static str {
    match e {
        Expr::NumberLiteral(_) => "scalar",
        Expr::StringLiteral(_) => "string",
        _ => "instant vector",
    }
}
