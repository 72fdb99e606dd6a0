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
