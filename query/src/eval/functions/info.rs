//! The experimental `info(v [, {data label selector}])`: enriches each
//! series with the data labels of the info series (by default
//! `target_info`) that share its identifying labels `instance` and `job`.

use std::collections::{BTreeMap, HashMap};

use promql_parser::parser::{AtModifier, Expr, VectorSelector};
use tessera_tsdb::{Labels, METRIC_NAME, MatchOp, Matcher, Sample};

use super::super::selector::{PointValue, to_matchers};
use super::super::{Evaluator, Series, Val, go_labels_string, offset_ms};
use crate::error::{QueryError, Result};

const TARGET_INFO: &str = "target_info";
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// With no `=`/`=~` name matcher, `info` looks at `*_info` metrics only
/// (or at `target_info` when no name matcher was given at all).
fn effective_name_matchers(ms: Vec<Matcher>) -> Vec<Matcher> {
    if ms
        .iter()
        .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::RegexMatch))
    {
        return ms;
    }
    if !ms.is_empty() {
        let mut out =
            vec![Matcher::new(MatchOp::RegexMatch, METRIC_NAME, ".+_info").expect("valid regex")];
        out.extend(ms);
        return out;
    }
    vec![Matcher::equal(METRIC_NAME, TARGET_INFO)]
}

/// The `@` and offset of the first selector in the expression (plus the
/// offsets of the subqueries around it, up to the one that fixes the time).
fn first_selector_time(e: &Expr) -> (Option<&Option<AtModifier>>, i64) {
    fn walk<'a>(
        e: &'a Expr,
        path: &mut Vec<&'a Expr>,
    ) -> Option<(Option<&'a Option<AtModifier>>, i64)> {
        let vs: Option<&VectorSelector> = match e {
            Expr::VectorSelector(vs) => Some(vs),
            Expr::MatrixSelector(ms) => Some(&ms.vs),
            _ => None,
        };
        if let Some(vs) = vs {
            let mut at = vs.at.is_some().then_some(&vs.at);
            let mut offset = offset_ms(&vs.offset);
            for p in path.iter().rev() {
                if at.is_some() {
                    break;
                }
                if let Expr::Subquery(sq) = p {
                    offset += offset_ms(&sq.offset);
                    at = sq.at.is_some().then_some(&sq.at);
                }
            }
            return Some((at, offset));
        }
        path.push(e);
        let children: Vec<&Expr> = match e {
            Expr::Aggregate(a) => a
                .param
                .iter()
                .map(|p| p.as_ref())
                .chain([a.expr.as_ref()])
                .collect(),
            Expr::Unary(u) => vec![&u.expr],
            Expr::Binary(b) => vec![&b.lhs, &b.rhs],
            Expr::Paren(p) => vec![&p.expr],
            Expr::Subquery(s) => vec![&s.expr],
            Expr::Call(c) => c.args.args.iter().map(|a| a.as_ref()).collect(),
            _ => Vec::new(),
        };
        for c in children {
            if let Some(r) = walk(c, path) {
                return Some(r);
            }
        }
        path.pop();
        None
    }
    walk(e, &mut Vec::new()).unwrap_or((None, 0))
}

/// The join key of a series against the info metric `name`.
fn info_sig(name: &str, ls: &Labels) -> String {
    let mut s = String::from(name);
    for l in IDENTIFYING {
        if let Some(v) = ls.get(l) {
            s.push('\u{ff}');
            s.push_str(l);
            s.push('=');
            s.push_str(v);
        }
    }
    s
}

impl Evaluator<'_> {
    pub(crate) fn info(&self, args: &[&Expr]) -> Result<Val> {
        let (at_mod, offset) = first_selector_time(args[0]);
        let at = at_mod.and_then(|a| self.at_ms(a));
        let base = self.eval_vector(args[0])?;

        let mut data: BTreeMap<String, Vec<Matcher>> = BTreeMap::new();
        let mut name_matchers = Vec::new();
        match args.get(1) {
            Some(Expr::VectorSelector(vs)) => {
                for m in to_matchers(vs)? {
                    if m.name == METRIC_NAME {
                        name_matchers.push(m.clone());
                    }
                    data.entry(m.name.clone()).or_default().push(m);
                }
            }
            Some(_) => {
                return Err(QueryError::exec(
                    "expected label selector as the second argument of info()",
                ));
            }
            None => name_matchers.push(Matcher::equal(METRIC_NAME, TARGET_INFO)),
        }
        let effective = effective_name_matchers(name_matchers);
        let ignored: Vec<bool> = base
            .iter()
            .map(|s| {
                let name = s.labels.metric_name().unwrap_or("");
                effective.iter().all(|m| m.matches(name))
            })
            .collect();

        // Identifying label values of the series to enrich.
        let mut id_values: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (s, ign) in base.iter().zip(&ignored) {
            if *ign {
                continue;
            }
            for l in IDENTIFYING {
                if let Some(v) = s.labels.get(l) {
                    let vals = id_values.entry(l).or_default();
                    if !vals.iter().any(|x| x == v) {
                        vals.push(v.to_string());
                    }
                }
            }
        }
        let data_name: Vec<Matcher> = data.remove(METRIC_NAME).unwrap_or_default();
        let info_series = if id_values.is_empty() {
            Vec::new()
        } else {
            let mut ms = Vec::new();
            for (name, vals) in &id_values {
                let re = vals
                    .iter()
                    .map(|v| regex::escape(v))
                    .collect::<Vec<_>>()
                    .join("|");
                ms.push(
                    Matcher::new(MatchOp::RegexMatch, *name, re)
                        .map_err(|e| QueryError::exec(e.to_string()))?,
                );
            }
            ms.extend(data.values().flatten().cloned());
            ms.extend(effective_name_matchers(data_name));
            let (first, last) = match at {
                Some(t) => (t, t),
                None => (self.grid.start, self.grid.end),
            };
            let selected = self.select(
                &ms,
                first - (self.settings.lookback - 1) - offset,
                last - offset,
            )?;
            self.on_grid(selected, offset, at, PointValue::SampleMillis)?
        };
        self.combine_info(base, &ignored, &info_series, &data)
    }

    fn combine_info(
        &self,
        base: Vec<Series>,
        ignored: &[bool],
        info: &[Series],
        data: &BTreeMap<String, Vec<Matcher>>,
    ) -> Result<Val> {
        let mut info_names: Vec<&str> =
            info.iter().filter_map(|s| s.labels.metric_name()).collect();
        info_names.sort_unstable();
        info_names.dedup();
        let base_sigs: Vec<Vec<String>> = base
            .iter()
            .map(|s| info_names.iter().map(|n| info_sig(n, &s.labels)).collect())
            .collect();
        let info_sigs: Vec<String> = info
            .iter()
            .map(|s| info_sig(s.labels.metric_name().unwrap_or(""), &s.labels))
            .collect();
        let all_match_empty = data.values().flatten().all(|m| m.matches_empty());

        let mut out: Vec<Series> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut bcur = vec![0usize; base.len()];
        let mut icur = vec![0usize; info.len()];
        let mut newest: HashMap<&str, (usize, f64)> = HashMap::new();
        for step in 0..self.grid.len() {
            if step % 64 == 0 {
                self.check()?;
            }
            let ts = self.grid.ts(step);
            newest.clear();
            for (i, s) in info.iter().enumerate() {
                let Some(orig_t) = at_step(&s.points, &mut icur[i], ts) else {
                    continue;
                };
                match newest.get(info_sigs[i].as_str()) {
                    // An older info sample keeps the newer one.
                    Some(&(_, t)) if t > orig_t => {}
                    Some(&(j, t)) if t == orig_t => {
                        return Err(QueryError::exec(format!(
                            "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                            go_labels_string(&info[j].labels),
                            t as i64,
                            go_labels_string(&s.labels),
                            orig_t as i64
                        )));
                    }
                    _ => {
                        newest.insert(info_sigs[i].as_str(), (i, orig_t));
                    }
                }
            }
            for (bi, s) in base.iter().enumerate() {
                let Some(v) = at_step(&s.points, &mut bcur[bi], ts) else {
                    continue;
                };
                let labels = if ignored[bi] {
                    s.labels.clone()
                } else {
                    let mut added = Labels::empty();
                    let mut seen = 0;
                    for sig in &base_sigs[bi] {
                        let Some(&(ii, _)) = newest.get(sig.as_str()) else {
                            continue;
                        };
                        for l in info[ii].labels.iter() {
                            if l.name == METRIC_NAME
                                || (!data.is_empty() && !data.contains_key(&l.name))
                            {
                                continue;
                            }
                            if let Some(v) = added.get(&l.name)
                                && v != l.value
                            {
                                return Err(QueryError::exec(format!(
                                    "conflicting label: {}",
                                    l.name
                                )));
                            }
                            if s.labels.get(&l.name).is_some() {
                                continue;
                            }
                            added.set(&l.name, &l.value);
                        }
                        seen += 1;
                    }
                    if seen == 0 && !all_match_empty {
                        continue;
                    }
                    let mut ls = s.labels.clone();
                    for l in added.iter() {
                        ls.set(&l.name, &l.value);
                    }
                    ls
                };
                let n = out.len();
                let k = *index.entry(labels.clone()).or_insert_with(|| {
                    out.push(Series::new(labels, s.drop_name, Vec::new()));
                    n
                });
                if out[k].points.last().is_some_and(|p| p.t == ts) {
                    return Err(QueryError::exec(
                        "vector cannot contain metrics with the same labelset",
                    ));
                }
                out[k].points.push(Sample::new(ts, v));
            }
        }
        out.retain(|s| !s.points.is_empty());
        Ok(Val::Vector(out))
    }
}

/// The value of a grid-aligned series at step `ts`, advancing its cursor.
fn at_step(points: &[Sample], cursor: &mut usize, ts: i64) -> Option<f64> {
    while *cursor < points.len() && points[*cursor].t < ts {
        *cursor += 1;
    }
    (*cursor < points.len() && points[*cursor].t == ts).then(|| points[*cursor].v)
}
