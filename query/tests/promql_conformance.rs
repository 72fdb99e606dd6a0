//! Runs Prometheus' PromQL acceptance scripts (`$TESSERA_PROMQL_TESTDATA`,
//! default `../shared/promql-testdata`, read at test time) against Tessera: every `load` goes into a
//! `tessera_tsdb::Db`, every `eval` through the query engine.
//!
//! Evals are classified with `eval-index.tsv`: native-histogram evals and
//! expressions `promql-parser` cannot parse are skipped (and counted). Known
//! failures are listed in `promql-known-failures.txt`; the test fails on any
//! other failure (a regression) and prints listed evals that now pass.
//! Set `PROMQL_WRITE_KNOWN_FAILURES=<path>` to write the current failure list.

#[path = "../../tests/common/input.rs"]
mod input;
mod promqltest;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use promql_parser::parser::{AtModifier, Expr};
use promqltest::{Command, Eval, EvalTime, ExpectKind, Item, SeriesDesc};
use tessera_query::{Engine, EngineOptions, QueryContext, QueryError, QueryResult, Value};
use tessera_tsdb::{Db, Labels, Sample, SeriesSamples, is_stale_nan, stale_nan};

/// Writes a line straight to stderr: unlike `println!`, this is not captured
/// by the test harness, so the figures show in every `cargo test` run.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

struct IndexRow {
    class: String,
    features: Vec<String>,
    parser_ok: bool,
}

/// The scripts' directory; `None` (a visible skip, or a failure in CI)
/// when it is missing.
fn testdata_dir() -> Option<PathBuf> {
    input::promql_testdata(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read_index(dir: &Path) -> HashMap<(String, usize), IndexRow> {
    let text = std::fs::read_to_string(dir.join("eval-index.tsv")).expect("eval-index.tsv");
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() < 9 {
            continue;
        }
        out.insert(
            (c[0].to_string(), c[1].parse().unwrap_or(0)),
            IndexRow {
                class: c[4].to_string(),
                features: c[7].split(',').map(str::to_string).collect(),
                parser_ok: c[8] == "ok",
            },
        );
    }
    out
}

/// The float comparison rule of FORMAT.md 6.4.
fn float_eq(e: f64, a: f64) -> bool {
    if is_stale_nan(e) || is_stale_nan(a) {
        return is_stale_nan(e) && is_stale_nan(a);
    }
    if e.is_nan() && a.is_nan() {
        return true;
    }
    if e == a {
        return true;
    }
    let sum = e.abs() + a.abs();
    let diff = (e - a).abs();
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if e == 0.0 || a == 0.0 || sum < MIN_NORMAL {
        return diff < 1e-6 * MIN_NORMAL;
    }
    diff / sum.min(f64::MAX) < 1e-6
}

enum Outcome {
    Pass,
    Fail(String),
    Skip(&'static str),
}

/// Strips a trailing ` (line:col)` position, which Tessera cannot produce
/// because the `promql-parser` AST carries no positions.
fn strip_position(s: &str) -> &str {
    if let Some(i) = s.rfind(" (")
        && s.ends_with(')')
        && s[i + 2..s.len() - 1]
            .split(':')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
    {
        return &s[..i];
    }
    s
}

fn annotation_matches(got: &str, e: &promqltest::Expect) -> bool {
    if let Some(m) = &e.msg {
        return strip_position(m) == got || m == got;
    }
    if let Some(r) = &e.regex {
        // Expected patterns often end in `\([0-9]+:[0-9]+\)`; try the
        // message with a placeholder position too.
        return regex::Regex::new(r).is_ok_and(|re| re.is_match(got));
    }
    true
}

fn check_annotations(ev: &Eval, res: &QueryResult) -> Result<(), String> {
    for (prefix, yes, no) in [
        ("PromQL warning", ExpectKind::Warn, ExpectKind::NoWarn),
        ("PromQL info", ExpectKind::Info, ExpectKind::NoInfo),
    ] {
        let got: Vec<&String> = res
            .warnings
            .iter()
            .filter(|w| w.starts_with(prefix))
            .collect();
        if ev.expects.iter().any(|e| e.kind == no) && !got.is_empty() {
            return Err(format!("expected no {prefix}, got {got:?}"));
        }
        let exp: Vec<&promqltest::Expect> = ev.expects.iter().filter(|e| e.kind == yes).collect();
        if exp.is_empty() {
            continue;
        }
        if got.is_empty() {
            return Err(format!("expected {prefix}, got none"));
        }
        for g in &got {
            if !exp.iter().any(|e| annotation_matches(g, e)) {
                return Err(format!("unexpected {prefix}: {g}"));
            }
        }
        for e in &exp {
            if !got.iter().any(|g| annotation_matches(g, e)) {
                return Err(format!("missing {prefix}: {:?}{:?}", e.msg, e.regex));
            }
        }
    }
    Ok(())
}

/// Compares expected series (one value each) with an instant vector.
fn compare_vector(ev: &Eval, got: &[(Labels, f64)], ordered: bool) -> Result<(), String> {
    if ev.series.len() != got.len() {
        return Err(format!(
            "expected {} series, got {}: {:?}",
            ev.series.len(),
            got.len(),
            got.iter()
                .map(|(l, v)| format!("{l} {v}"))
                .collect::<Vec<_>>()
        ));
    }
    for (i, exp) in ev.series.iter().enumerate() {
        let ev_val = match exp.items.as_slice() {
            [Item::Value(v)] => *v,
            [Item::Stale] => stale_nan(),
            other => return Err(format!("expected series needs one value, has {other:?}")),
        };
        let pos = got.iter().position(|(l, _)| *l == exp.labels);
        let Some(pos) = pos else {
            return Err(format!("missing series {}", exp.labels));
        };
        if ordered && pos != i {
            return Err(format!(
                "series {} at position {pos}, expected {i}",
                exp.labels
            ));
        }
        if !float_eq(ev_val, got[pos].1) {
            return Err(format!(
                "series {}: expected {ev_val}, got {}",
                exp.labels, got[pos].1
            ));
        }
    }
    Ok(())
}

/// Compares expected series (one item per step) with a matrix.
fn compare_matrix(
    exp: &[SeriesDesc],
    got: &[SeriesSamples],
    start: i64,
    end: i64,
    step: i64,
) -> Result<(), String> {
    if exp.len() != got.len() {
        return Err(format!(
            "expected {} series, got {}: {:?}",
            exp.len(),
            got.len(),
            got.iter().map(|s| s.labels.to_string()).collect::<Vec<_>>()
        ));
    }
    for e in exp {
        let Some(g) = got.iter().find(|g| g.labels == e.labels) else {
            return Err(format!("missing series {}", e.labels));
        };
        let mut want: Vec<(i64, f64)> = Vec::new();
        for (k, it) in e.items.iter().enumerate() {
            let t = start + k as i64 * step;
            if t > end {
                return Err("expected more points than the range allows".into());
            }
            match it {
                Item::Value(v) => want.push((t, *v)),
                Item::Stale => want.push((t, stale_nan())),
                Item::Gap => {}
                Item::Histogram => return Err("histogram expectation".into()),
            }
        }
        if want.len() != g.samples.len()
            || want
                .iter()
                .zip(&g.samples)
                .any(|((t, v), s)| *t != s.t || !float_eq(*v, s.v))
        {
            return Err(format!(
                "series {}: expected {:?}, got {:?}",
                e.labels,
                want,
                g.samples.iter().map(|s| (s.t, s.v)).collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}

/// Checks one query outcome against the eval's expectations. `Ok(true)`
/// means a result was compared; `Ok(false)` an expected error happened.
fn check_outcome(
    ev: &Eval,
    res: Result<QueryResult, QueryError>,
    annotations: bool,
) -> Result<bool, String> {
    let fail = ev.expects.iter().find(|e| e.kind == ExpectKind::Fail);
    let res = match (res, fail) {
        (Err(e), Some(f)) => {
            let msg = e.to_string();
            if let Some(m) = &f.msg
                && *m != msg
            {
                return Err(format!("expected error {m:?}, got {msg:?}"));
            }
            if let Some(r) = &f.regex
                && !regex::Regex::new(r).is_ok_and(|re| re.is_match(&msg))
            {
                return Err(format!("error {msg:?} does not match {r:?}"));
            }
            return Ok(false);
        }
        (Err(e), None) => return Err(format!("unexpected error: {e}")),
        (Ok(_), Some(_)) => return Err("expected an error, got a result".into()),
        (Ok(r), None) => r,
    };
    if annotations {
        check_annotations(ev, &res)?;
    }
    let ordered = ev.expects.iter().any(|e| e.kind == ExpectKind::Ordered);
    match (&ev.time, &res.value) {
        (EvalTime::Instant(_), Value::String { v, .. }) => match &ev.string {
            Some(s) if s == v => Ok(()),
            other => Err(format!("expected string {other:?}, got {v:?}")),
        },
        (EvalTime::Instant(_), Value::Scalar { v, .. }) => match ev.scalar {
            Some(s) if float_eq(s, *v) => Ok(()),
            other => Err(format!("expected {other:?}, got scalar {v}")),
        },
        (EvalTime::Instant(_), Value::Vector(vs)) => {
            if ev.scalar.is_some() || ev.string.is_some() {
                Err("expected a scalar/string, got a vector".into())
            } else {
                let got: Vec<(Labels, f64)> = vs.iter().map(|s| (s.labels.clone(), s.v)).collect();
                compare_vector(ev, &got, ordered)
            }
        }
        (EvalTime::Instant(_), Value::Matrix(m)) => match ev.range_vector {
            Some((s, e, d)) => compare_matrix(&ev.series, m, s, e, d),
            None => Err("got a range vector without 'expect range vector'".into()),
        },
        (EvalTime::Range { start, end, step }, Value::Matrix(m)) => {
            if m.windows(2).any(|w| w[0].labels > w[1].labels) {
                Err("matrix is not sorted by labels".into())
            } else {
                compare_matrix(&ev.series, m, *start, *end, *step)
            }
        }
        (_, v) => Err(format!("unexpected result type {}", v.type_name())),
    }?;
    Ok(true)
}

/// Prometheus also runs every instant eval as a range query from t-1m to
/// t+1m (step 1m) and compares the points at t (FORMAT.md section 7.1).
fn range_mode_check(engine: &Engine, db: &Db, ev: &Eval, t: i64) -> Result<(), String> {
    let ctx = QueryContext::new(Duration::from_secs(100));
    let m = match engine.range_query(db, &ev.expr, t - 60_000, t + 60_000, 60_000, &ctx) {
        Ok(QueryResult {
            value: Value::Matrix(m),
            ..
        }) => m,
        Ok(other) => return Err(format!("range-mode check: got {}", other.value.type_name())),
        Err(e) => return Err(format!("range-mode check: unexpected error: {e}")),
    };
    if ev.expects.iter().any(|e| e.kind == ExpectKind::Ordered) {
        return Ok(());
    }
    let got: Vec<(Labels, f64)> = m
        .iter()
        .filter_map(|s| {
            s.samples
                .iter()
                .find(|p| p.t == t)
                .map(|p| (s.labels.clone(), p.v))
        })
        .collect();
    match ev.scalar {
        Some(want) => match got.as_slice() {
            [(l, v)] if l.is_empty() && float_eq(want, *v) => Ok(()),
            other => Err(format!("expected scalar {want}, got {other:?}")),
        },
        None => compare_vector(ev, &got, false),
    }
    .map_err(|e| format!("range-mode check: {e}"))
}

/// Functions whose value depends on the evaluation time itself, which the
/// step-invariance check cannot pin with `@`.
const AT_UNSAFE: [&str; 15] = [
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "end",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "range",
    "start",
    "step",
    "time",
    "timestamp",
];

/// Pins every selector and subquery without `@` to `@ t` (not descending
/// into subqueries, which are pinned as a whole).
fn pin_at(e: &mut Expr, t: i64) {
    let at = || {
        let st = if t >= 0 {
            std::time::UNIX_EPOCH + Duration::from_millis(t as u64)
        } else {
            std::time::UNIX_EPOCH - Duration::from_millis(t.unsigned_abs())
        };
        Some(AtModifier::At(st))
    };
    match e {
        Expr::VectorSelector(vs) if vs.at.is_none() => vs.at = at(),
        Expr::MatrixSelector(ms) if ms.vs.at.is_none() => ms.vs.at = at(),
        Expr::Subquery(sq) if sq.at.is_none() => sq.at = at(),
        Expr::Aggregate(a) => {
            pin_at(&mut a.expr, t);
            if let Some(p) = &mut a.param {
                pin_at(p, t);
            }
        }
        Expr::Unary(u) => pin_at(&mut u.expr, t),
        Expr::Binary(b) => {
            pin_at(&mut b.lhs, t);
            pin_at(&mut b.rhs, t);
        }
        Expr::Paren(p) => pin_at(&mut p.expr, t),
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| pin_at(a, t)),
        _ => {}
    }
}

/// Prometheus' step-invariance check (FORMAT.md section 7.2): with every
/// selector pinned to `@ t`, the result must not depend on the evaluation
/// time. Annotations are not compared here (pinned expressions have no
/// source text for positions).
fn step_invariance_check(engine: &Engine, db: &Db, ev: &Eval, t: i64) -> Result<(), String> {
    let lower = ev.expr.to_ascii_lowercase();
    if AT_UNSAFE.iter().any(|f| lower.contains(&format!("{f}("))) {
        return Ok(());
    }
    let Ok(mut expr) = promql_parser::parser::parse(&ev.expr) else {
        return Ok(());
    };
    pin_at(&mut expr, t);
    let times: Vec<i64> = if t == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![-10 * t, 0, t / 5, t, 10 * t]
    };
    for at in times {
        let ctx = QueryContext::new(Duration::from_secs(100));
        let res = engine.instant_query_expr(db, &expr, at, &ctx);
        check_outcome(ev, res, false)
            .map_err(|e| format!("step-invariance check at {at}ms: {e}"))?;
    }
    Ok(())
}

fn run_eval(engine: &Engine, db: &Db, ev: &Eval) -> Outcome {
    let ctx = QueryContext::new(Duration::from_secs(100));
    let res = match ev.time {
        EvalTime::Instant(t) => engine.instant_query(db, &ev.expr, t, &ctx),
        EvalTime::Range { start, end, step } => {
            engine.range_query(db, &ev.expr, start, end, step, &ctx)
        }
    };
    let compared = match check_outcome(ev, res, true) {
        Ok(c) => c,
        Err(e) => return Outcome::Fail(e),
    };
    let EvalTime::Instant(t) = ev.time else {
        return Outcome::Pass;
    };
    if ev.range_vector.is_some() || ev.string.is_some() {
        return Outcome::Pass;
    }
    if compared
        && !["start()", "end()", "range()", "step()"]
            .iter()
            .any(|f| ev.expr.contains(f))
        && let Err(e) = range_mode_check(engine, db, ev, t)
    {
        return Outcome::Fail(e);
    }
    match step_invariance_check(engine, db, ev, t) {
        Ok(()) => Outcome::Pass,
        Err(e) => Outcome::Fail(e),
    }
}

fn load(db: &Db, step: i64, series: &[SeriesDesc]) {
    for s in series {
        let samples: Vec<Sample> = s
            .items
            .iter()
            .enumerate()
            .filter_map(|(k, it)| {
                let t = k as i64 * step;
                match it {
                    Item::Value(v) => Some(Sample::new(t, *v)),
                    Item::Stale => Some(Sample::new(t, stale_nan())),
                    // Gaps hold nothing; native histograms are not stored
                    // (the float series of the block are kept).
                    Item::Gap | Item::Histogram => None,
                }
            })
            .collect();
        if !samples.is_empty() {
            db.append(&s.labels, &samples)
                .expect("in-memory append cannot fail");
        }
    }
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: BTreeMap<&'static str, usize>,
}

#[test]
fn promql_conformance() {
    let Some(dir) = testdata_dir() else {
        return;
    };
    let index = read_index(&dir);
    let known_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql-known-failures.txt"),
    )
    .unwrap_or_default();
    let known: HashSet<String> = known_text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').next().unwrap_or("").trim().to_string())
        .collect();

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read testdata")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();

    let engine = Engine::new(EngineOptions::default());
    let mut total = Tally::default();
    let (mut stable_pass, mut stable_n) = (0usize, 0usize);
    let (mut float_pass, mut float_n) = (0usize, 0usize);
    let mut hist_n = 0usize;
    let mut failures: Vec<String> = Vec::new();
    let mut regressions: Vec<String> = Vec::new();
    let mut fixed: Vec<String> = Vec::new();

    for path in &files {
        let fname = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).expect("read test file");
        let cmds = match promqltest::parse_script(&text) {
            Ok(c) => c,
            Err(e) => panic!("{fname}: cannot read script: {e}"),
        };
        let mut tally = Tally::default();
        let mut db = Db::in_memory(4);
        for cmd in &cmds {
            match cmd {
                Command::Clear => db = Db::in_memory(4),
                Command::Load { step, series } => load(&db, *step, series),
                Command::Eval(ev) => {
                    let key = format!("{fname}:{}", ev.line);
                    let row = index.get(&(fname.clone(), ev.line));
                    let class_float = row.is_none_or(|r| r.class == "float");
                    let stable = row.is_some_and(|r| {
                        r.class == "float"
                            && r.features
                                .iter()
                                .all(|f| matches!(f.as_str(), "-" | "subquery" | "at_modifier"))
                    });
                    let outcome = if !class_float {
                        Outcome::Skip("native histograms")
                    } else if row.is_some_and(|r| !r.parser_ok) {
                        Outcome::Skip("promql-parser gap")
                    } else if row
                        .is_some_and(|r| r.features.iter().any(|f| f == "start_timestamps"))
                    {
                        Outcome::Skip("start timestamps")
                    } else {
                        run_eval(&engine, &db, ev)
                    };
                    if class_float {
                        float_n += 1;
                    } else {
                        hist_n += 1;
                    }
                    if stable {
                        stable_n += 1;
                    }
                    match outcome {
                        Outcome::Pass => {
                            tally.passed += 1;
                            float_pass += 1;
                            if stable {
                                stable_pass += 1;
                            }
                            if known.contains(&key) {
                                fixed.push(key);
                            }
                        }
                        Outcome::Fail(why) => {
                            tally.failed += 1;
                            let why = why.replace(['\t', '\n'], " ");
                            let why: String = why.chars().take(300).collect();
                            failures.push(format!("{key}\t{why}"));
                            if !known.contains(&key) {
                                regressions.push(format!("{key}\t{}\n    {why}", ev.expr));
                            }
                        }
                        Outcome::Skip(reason) => {
                            *tally.skipped.entry(reason).or_default() += 1;
                        }
                    }
                }
            }
        }
        let skipped: Vec<String> = tally
            .skipped
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        say(&format!(
            "promql conformance: {fname}: {} passed, {} failed, skipped: {}",
            tally.passed,
            tally.failed,
            if skipped.is_empty() {
                "none".to_string()
            } else {
                skipped.join(", ")
            }
        ));
        total.passed += tally.passed;
        total.failed += tally.failed;
        for (k, v) in tally.skipped {
            *total.skipped.entry(k).or_default() += v;
        }
    }
    let skipped: Vec<String> = total
        .skipped
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    let pct = |a: usize, b: usize| {
        if b == 0 {
            0.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    say(&format!(
        "promql conformance: total: {} passed, {} failed, skipped: {}",
        total.passed,
        total.failed,
        skipped.join(", ")
    ));
    say(&format!(
        "promql conformance: (a) stable float set {stable_pass}/{stable_n} ({:.1}%)",
        pct(stable_pass, stable_n)
    ));
    say(&format!(
        "promql conformance: (b) all float evals {float_pass}/{float_n} ({:.1}%)",
        pct(float_pass, float_n)
    ));
    say(&format!(
        "promql conformance: (c) native-histogram evals {hist_n} skipped"
    ));
    if let Ok(p) = std::env::var("PROMQL_WRITE_KNOWN_FAILURES") {
        let mut text = String::from(
            "# Evals of ../shared/promql-testdata that Tessera is known to fail: file:line<TAB>reason.\n\
             # Regenerate with PROMQL_WRITE_KNOWN_FAILURES=<path> cargo test -p tessera-query --test promql_conformance\n",
        );
        for f in &failures {
            text.push_str(f);
            text.push('\n');
        }
        std::fs::write(&p, text).expect("write known failures");
        say(&format!(
            "promql conformance: wrote {} known failures to {p}",
            failures.len()
        ));
    }
    if !fixed.is_empty() {
        say(&format!(
            "promql conformance: {} listed known failures now pass (remove them from the list):",
            fixed.len()
        ));
        for f in &fixed {
            say(&format!("  {f}"));
        }
    }
    if !regressions.is_empty() {
        say(&format!(
            "promql conformance: {} evals fail that are not in the known-failures list:",
            regressions.len()
        ));
        for r in &regressions {
            say(&format!("  {r}"));
        }
    }
    assert!(
        regressions.is_empty(),
        "{} PromQL conformance regressions (see the list above)",
        regressions.len()
    );
}

/// Every expression of the corpus (native-histogram ones included, on the
/// float data that loads) evaluated at odd steps and offsets: errors are
/// fine, panics and hangs are not.
#[test]
fn promql_corpus_never_panics() {
    let Some(dir) = testdata_dir() else {
        return;
    };
    let engine = Engine::new(EngineOptions::default());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read testdata")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut runs = 0;
    let mut problems = Vec::new();
    for path in &files {
        let fname = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).expect("read test file");
        let cmds = promqltest::parse_script(&text).expect("script");
        let mut db = Db::in_memory(4);
        for cmd in &cmds {
            match cmd {
                Command::Clear => db = Db::in_memory(4),
                Command::Load { step, series } => load(&db, *step, series),
                Command::Eval(ev) => {
                    let t = match ev.time {
                        EvalTime::Instant(t) => t,
                        EvalTime::Range { end, .. } => end,
                    };
                    let ctx = QueryContext::new(Duration::from_secs(10));
                    let results = [
                        engine.instant_query(&db, &ev.expr, t + 7_777, &ctx),
                        engine.range_query(&db, &ev.expr, t - 420_000, t + 180_000, 13_000, &ctx),
                    ];
                    for r in results {
                        runs += 1;
                        let bad = match &r {
                            Err(QueryError::Timeout(_)) => true,
                            Err(QueryError::Execution(m)) => m.contains("panicked"),
                            _ => false,
                        };
                        if let (true, Err(e)) = (bad, r) {
                            problems.push(format!("{fname}:{} {}: {e}", ev.line, ev.expr));
                        }
                    }
                }
            }
        }
    }
    say(&format!(
        "promql conformance: corpus sweep ran {runs} queries"
    ));
    assert!(problems.is_empty(), "{problems:#?}");
}
