//! The query entry points: parse, guard, evaluate, shape the result.

use std::time::Duration;

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr, NumberLiteral};
use tessera_tsdb::{Labels, Sample, SeriesSamples};

use crate::context::QueryContext;
use crate::error::{QueryError, Result};
use crate::eval::{self, Evaluator, Grid, MAX_DEPTH, Series, Settings, Shared, Val};
use crate::storage::Storage;
use crate::value::{QueryResult, Value, VectorSample};

/// Prometheus' limit on points per series in a range query result.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`).
    pub lookback_delta_ms: i64,
    /// Samples a query may hold in memory at once (`--query.max-samples`).
    pub max_samples: usize,
    /// Deadline for queries whose caller does not set one (`--query.timeout`).
    pub default_timeout: Duration,
    /// Step of subqueries written without one (`x[5m:]`); Prometheus uses
    /// the global evaluation interval.
    pub default_subquery_step_ms: i64,
    /// Evaluate splittable aggregations (`sum`/`avg`/`count`/`min`/`max`/
    /// `group` of a selector or of a range function of one) by folding
    /// storage batches as they come (`eval/pushdown.rs`) instead of
    /// materialising every input series first. On by default; off gives
    /// the plain evaluation (differential tests compare the two).
    pub pushdown: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            default_timeout: Duration::from_secs(120),
            default_subquery_step_ms: 60 * 1000,
            pushdown: true,
        }
    }
}

/// Evaluates PromQL against a [`Storage`].
#[derive(Clone, Debug, Default)]
pub struct Engine {
    opts: EngineOptions,
}

/// Checks Prometheus' resolution limit for a range query: at most 11,000
/// points per series.
pub fn check_resolution(start_ms: i64, end_ms: i64, step_ms: i64) -> Result<()> {
    if step_ms <= 0 {
        return Err(QueryError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        ));
    }
    if (end_ms - start_ms) / step_ms > MAX_POINTS_PER_SERIES {
        return Err(QueryError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    Ok(())
}

/// Most binary/unary operators a query may contain; the parser recurses per
/// operator, so this keeps hostile `1+1+...+1` chains from exhausting the
/// stack before the depth check can see the tree.
const MAX_OPERATORS: usize = 1000;

/// Parses a query, rejecting nesting deeper than the evaluator allows.
pub fn parse(query: &str) -> Result<Expr> {
    // A lexical pre-scan (strings skipped) bounds parenthesis depth and the
    // number of operators before the parser builds anything.
    let too_deep = || QueryError::Parse {
        message: format!("query is nested too deeply (more than {MAX_DEPTH} levels)"),
        position: None,
    };
    let (mut depth, mut max, mut ops) = (0usize, 0usize, 0usize);
    let mut chars = query.char_indices().peekable();
    let mut word = String::new();
    while let Some((_, c)) = chars.next() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if matches!(word.as_str(), "and" | "or" | "unless" | "atan2") {
            ops += 1;
        }
        word.clear();
        match c {
            '"' | '\'' | '`' => {
                while let Some((_, d)) = chars.next() {
                    if d == '\\' && c != '`' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '^' | '<' | '>' | '=' | '!' => ops += 1,
            _ => {}
        }
    }
    if max > MAX_DEPTH {
        return Err(too_deep());
    }
    if ops > MAX_OPERATORS {
        return Err(QueryError::Parse {
            message: format!("query has too many operators (more than {MAX_OPERATORS})"),
            position: None,
        });
    }
    let expr = parser::parse(query).map_err(|message| {
        let (message, position) = crate::parse_error::locate(query, message);
        QueryError::Parse { message, position }
    })?;
    if eval::expr_depth(&expr) > MAX_DEPTH {
        drop_iteratively(expr);
        return Err(too_deep());
    }
    Ok(expr)
}

/// Drops a (possibly very deep) tree without recursion.
fn drop_iteratively(root: Expr) {
    let placeholder = || Expr::NumberLiteral(NumberLiteral::new(0.0));
    let mut stack = vec![root];
    while let Some(mut e) = stack.pop() {
        match &mut e {
            Expr::Aggregate(a) => {
                stack.push(std::mem::replace(&mut *a.expr, placeholder()));
                if let Some(p) = &mut a.param {
                    stack.push(std::mem::replace(&mut **p, placeholder()));
                }
            }
            Expr::Unary(u) => stack.push(std::mem::replace(&mut *u.expr, placeholder())),
            Expr::Binary(b) => {
                stack.push(std::mem::replace(&mut *b.lhs, placeholder()));
                stack.push(std::mem::replace(&mut *b.rhs, placeholder()));
            }
            Expr::Paren(p) => stack.push(std::mem::replace(&mut *p.expr, placeholder())),
            Expr::Subquery(s) => stack.push(std::mem::replace(&mut *s.expr, placeholder())),
            Expr::Call(c) => {
                for a in &mut c.args.args {
                    stack.push(std::mem::replace(&mut **a, placeholder()));
                }
            }
            _ => {}
        }
    }
}

/// Refuses an already parsed expression nested deeper than the parser
/// allows.
fn check_depth(expr: &Expr) -> Result<()> {
    if eval::expr_depth(expr) > MAX_DEPTH {
        return Err(QueryError::Parse {
            message: format!("query is nested too deeply (more than {MAX_DEPTH} levels)"),
            position: None,
        });
    }
    Ok(())
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `time_ms`.
    pub fn instant_query(
        &self,
        storage: &dyn Storage,
        query: &str,
        time_ms: i64,
        ctx: &QueryContext,
    ) -> Result<QueryResult> {
        let t = eval::clamp_time(time_ms);
        on_eval_stack(|| {
            let expr = parse(query)?;
            self.exec(storage, query, &expr, (t, t, 0), ctx)
        })
    }

    /// Evaluates an already parsed expression at `time_ms` (recording rules
    /// parse once; tests rewrite ASTs). Annotations carry no positions.
    pub fn instant_query_expr(
        &self,
        storage: &dyn Storage,
        expr: &Expr,
        time_ms: i64,
        ctx: &QueryContext,
    ) -> Result<QueryResult> {
        check_depth(expr)?;
        let t = eval::clamp_time(time_ms);
        on_eval_stack(|| self.exec(storage, "", expr, (t, t, 0), ctx))
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms`.
    pub fn range_query(
        &self,
        storage: &dyn Storage,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        ctx: &QueryContext,
    ) -> Result<QueryResult> {
        let (start_ms, end_ms) = self.check_range(start_ms, end_ms, step_ms, ctx)?;
        on_eval_stack(|| {
            let expr = parse(query)?;
            Self::check_range_type(&expr)?;
            self.exec(storage, query, &expr, (start_ms, end_ms, step_ms), ctx)
        })
    }

    /// [`Engine::range_query`] of an already parsed expression (a query
    /// tier rewrites the AST: [`crate::split`]).
    pub fn range_query_expr(
        &self,
        storage: &dyn Storage,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        ctx: &QueryContext,
    ) -> Result<QueryResult> {
        let (start_ms, end_ms) = self.check_range(start_ms, end_ms, step_ms, ctx)?;
        check_depth(expr)?;
        Self::check_range_type(expr)?;
        on_eval_stack(|| self.exec(storage, "", expr, (start_ms, end_ms, step_ms), ctx))
    }

    /// A range query's step and bounds, checked and clamped.
    fn check_range(
        &self,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        ctx: &QueryContext,
    ) -> Result<(i64, i64)> {
        if step_ms <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(QueryError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        let (start_ms, end_ms) = (eval::clamp_time(start_ms), eval::clamp_time(end_ms));
        let max_samples = ctx.max_samples().unwrap_or(self.opts.max_samples);
        let steps = (end_ms - start_ms) / step_ms + 1;
        // Each step holds at least one value; refuse up front what could
        // only fail after allocating (tiny steps over long ranges).
        if steps as u64 > max_samples as u64 {
            return Err(QueryError::TooManySamples { limit: max_samples });
        }
        Ok((start_ms, end_ms))
    }

    fn check_range_type(expr: &Expr) -> Result<()> {
        match expr.value_type() {
            t @ (ValueType::Matrix | ValueType::String) => {
                let name = match t {
                    ValueType::Matrix => "range vector",
                    ValueType::String => "string",
                    _ => "unknown",
                };
                Err(QueryError::BadData(format!(
                    "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
                )))
            }
            _ => Ok(()),
        }
    }

    fn exec(
        &self,
        storage: &dyn Storage,
        query: &str,
        expr: &Expr,
        (start, end, step): (i64, i64, i64),
        ctx: &QueryContext,
    ) -> Result<QueryResult> {
        ctx.check("query execution")?;
        let shared = Shared::default();
        let settings = Settings {
            lookback: self.opts.lookback_delta_ms,
            max_samples: ctx.max_samples().unwrap_or(self.opts.max_samples),
            subquery_step: self.opts.default_subquery_step_ms,
            query_start: start,
            query_end: end,
            query_step: step,
            pushdown: self.opts.pushdown,
        };
        let ev = Evaluator {
            query,
            storage,
            ctx,
            shared: &shared,
            settings,
            // An instant query is a one-step range query.
            grid: Grid {
                start,
                end,
                step: if step == 0 { 1 } else { step },
            },
        };
        let val = ev.eval(expr)?;
        let instant = step == 0;
        let value = match val {
            Val::Scalar(xs) => {
                if instant {
                    Value::Scalar {
                        t: start,
                        v: xs.first().copied().unwrap_or(f64::NAN),
                    }
                } else {
                    let pts = ev
                        .grid
                        .iter()
                        .zip(xs)
                        .map(|(t, v)| Sample::new(t, v))
                        .collect();
                    Value::Matrix(vec![SeriesSamples {
                        labels: Labels::empty(),
                        samples: pts,
                    }])
                }
            }
            Val::String(s) => Value::String { t: start, v: s },
            Val::Vector(v) => {
                let v = eval::cleanup_names(v)?;
                if instant {
                    Value::Vector(
                        v.into_iter()
                            .filter_map(|s| {
                                s.points.first().map(|p| VectorSample {
                                    labels: s.labels.clone(),
                                    t: start,
                                    v: p.v,
                                })
                            })
                            .collect(),
                    )
                } else {
                    Value::Matrix(to_matrix(v))
                }
            }
            Val::Matrix(m) => Value::Matrix(to_matrix(eval::cleanup_names(m)?)),
        };
        let warnings = shared.warnings.borrow().clone();
        Ok(QueryResult {
            value,
            warnings,
            peak_samples: shared.peak.get(),
        })
    }
}

/// Stack for parsing and evaluation: the evaluator recurses once per
/// expression level (bounded by `MAX_DEPTH`), which in debug builds needs
/// more than the 2 MiB of a tokio worker or test thread.
const EVAL_STACK_BYTES: usize = 64 << 20;

/// Runs `f` on a scoped thread with [`EVAL_STACK_BYTES`] of stack (only
/// reserved, not committed), or inline if the thread cannot be spawned.
fn on_eval_stack<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("promql-eval".into())
            .stack_size(EVAL_STACK_BYTES)
            .spawn_scoped(s, f)
        {
            Ok(h) => h
                .join()
                .unwrap_or_else(|_| Err(QueryError::exec("query evaluation panicked"))),
            Err(_) => Err(QueryError::exec(
                "could not start the query evaluation thread",
            )),
        }
    })
}

fn to_matrix(v: Vec<Series>) -> Vec<SeriesSamples> {
    let mut m: Vec<SeriesSamples> = v
        .into_iter()
        .map(|s| SeriesSamples {
            labels: s.labels,
            samples: s.points,
        })
        .collect();
    m.sort_by(|a, b| a.labels.cmp(&b.labels));
    m
}
