//! Subqueries: evaluate the inner expression on its own step grid (aligned
//! to multiples of the step, as Prometheus aligns it) covering every window
//! the outer grid will slide over.

use promql_parser::parser::SubqueryExpr;

use super::{Evaluator, Grid, RangeArg, Val, offset_ms};
use crate::error::{QueryError, Result};

impl Evaluator<'_> {
    pub(crate) fn eval_subquery(&self, sq: &SubqueryExpr) -> Result<RangeArg> {
        let range = super::duration_ms(sq.range);
        let offset = offset_ms(&sq.offset);
        let at = self.at_ms(&sq.at);
        let step = match sq.step {
            Some(d) if !d.is_zero() => super::duration_ms(d),
            _ => self.settings.subquery_step,
        };
        if step <= 0 {
            return Err(QueryError::exec("subquery step must be positive"));
        }
        let (first, last) = match at {
            Some(t) => (t, t),
            None => (self.grid.start, self.grid.end),
        };
        let end = last - offset;
        let lower = first - offset - range;
        // First multiple of `step` strictly after `lower` (Go's truncating
        // division, exactly as Prometheus computes it).
        let mut start = step * (lower / step);
        if start <= lower {
            start += step;
        }
        let steps = if end >= start {
            (end - start) / step + 1
        } else {
            0
        };
        // Every step holds at least one value: more steps than the sample
        // budget can never succeed, and would allocate before failing.
        if steps as usize > self.settings.max_samples {
            return Err(QueryError::TooManySamples {
                limit: self.settings.max_samples,
            });
        }
        let child = self.with_grid(Grid { start, end, step });
        let series = if steps == 0 {
            Vec::new()
        } else {
            match child.eval(&sq.expr)? {
                Val::Vector(v) => v,
                Val::Scalar(xs) => {
                    // A scalar subquery yields one series without labels.
                    let pts = child
                        .grid
                        .iter()
                        .zip(xs)
                        .map(|(t, v)| tessera_tsdb::Sample::new(t, v))
                        .collect();
                    vec![super::Series::new(
                        tessera_tsdb::Labels::empty(),
                        false,
                        pts,
                    )]
                }
                other => {
                    return Err(QueryError::exec(format!(
                        "subquery is only allowed on instant vector, got {}",
                        super::val_type(&other)
                    )));
                }
            }
        };
        Ok(RangeArg {
            series,
            range,
            offset,
            at,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Engine, QueryContext, Value, VecStorage};

    fn scalar_at(q: &str, t: i64) -> f64 {
        let ctx = QueryContext::new(Duration::from_secs(5));
        match Engine::default()
            .instant_query(&VecStorage::default(), q, t, &ctx)
            .unwrap()
            .value
        {
            Value::Vector(v) => v[0].v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subquery_steps_are_aligned_to_multiples_of_the_step() {
        // (30s, 330s] holds 60s, 120s, ..., 300s; (0, 300s] holds 60s..300s.
        assert_eq!(scalar_at("count_over_time(vector(1)[5m:1m])", 330_000), 5.0);
        assert_eq!(scalar_at("count_over_time(vector(1)[5m:1m])", 300_000), 5.0);
        assert_eq!(scalar_at("count_over_time(vector(1)[5m:1m])", 299_999), 5.0);
        // Negative times align with Go's truncating division too.
        assert_eq!(scalar_at("count_over_time(vector(1)[5m:1m])", -1), 5.0);
        // The latest inner step is the last multiple of the step.
        assert_eq!(
            scalar_at("max_over_time(vector(time())[5m:1m])", 330_000),
            300.0
        );
        assert_eq!(
            scalar_at("min_over_time(vector(time())[5m:1m] offset 1m)", 330_000),
            0.0
        );
    }
}
