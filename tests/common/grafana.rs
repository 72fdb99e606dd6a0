//! Grafana's part in the dashboard tests, played as Grafana 10/11's
//! Prometheus datasource plays it (Grafana itself is not installable here):
//!
//! - template variables: `label_values(selector, label)` becomes
//!   `GET /api/v1/label/<label>/values?match[]=<selector>&start=&end=` and
//!   `label_values(label)` the same call without `match[]`; variables are
//!   resolved in order, each query interpolated with the ones before it;
//! - interpolation (`interpolateQueryExpr`): a single-valued variable is
//!   escaped with `prometheusRegularEscape`; a multi-value/include-all one
//!   with `prometheusSpecialRegexEscape` (regex metacharacters get `\\`),
//!   several values as `(a|b|c)`; "All" is the variable's `allValue`
//!   verbatim when it has one, else every value as above;
//! - `$__interval`: `max(roundInterval(range / maxDataPoints), min interval)`
//!   where the min interval is the panel's `interval`, else the datasource's
//!   `timeInterval`, and maxDataPoints the panel's width in pixels on a
//!   1920 px screen (80 px per grid column) unless the panel sets it;
//! - the backend's step, `$__rate_interval` = `max($__interval + scrape,
//!   4 × scrape)` formatted with Go's `Duration.String()` (`1m0s`: what
//!   Grafana really sends), `$__interval`/`$__range`/`_ms`/`_s` forms, and
//!   start/end aligned down to a multiple of the step (UTC browser);
//! - every target is a `POST /api/v1/query_range` form (the provisioned
//!   datasource has `httpMethod: POST`).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A path in the repository.
pub(crate) fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `jsonData.timeInterval` of the shipped datasource provisioning, in ms.
pub(crate) fn datasource_scrape_interval_ms() -> i64 {
    let path = repo("deploy/grafana/provisioning/datasources/tessera.yml");
    let text = std::fs::read_to_string(&path).expect("datasource provisioning");
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("timeInterval:"))
        .unwrap_or_else(|| panic!("{}: no timeInterval", path.display()));
    let v = line["timeInterval:".len()..]
        .trim()
        .trim_matches(['"', '\'']);
    parse_duration_ms(v).unwrap_or_else(|| panic!("timeInterval {v:?}"))
}

/// A dashboard of `deploy/grafana/dashboards/`.
pub(crate) fn dashboard(name: &str) -> Value {
    let path = repo(&format!("deploy/grafana/dashboards/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `5s`, `1m`, `1h30m`, `500ms` (Grafana's and Prometheus' duration forms).
pub(crate) fn parse_duration_ms(s: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !c.is_ascii_digit())?;
        let num: i64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Some(total)
}

/// Grafana's `roundInterval` (backend `gtime`), in ms.
pub(crate) fn round_interval(ms: i64) -> i64 {
    const TABLE: &[(i64, i64)] = &[
        (10, 1),
        (15, 10),
        (35, 20),
        (75, 50),
        (150, 100),
        (350, 200),
        (750, 500),
        (1_500, 1_000),
        (3_500, 2_000),
        (7_500, 5_000),
        (12_500, 10_000),
        (17_500, 15_000),
        (25_000, 20_000),
        (45_000, 30_000),
        (90_000, 60_000),
        (150_000, 120_000),
        (210_000, 180_000),
        (450_000, 300_000),
        (750_000, 600_000),
        (1_050_000, 900_000),
        (1_500_000, 1_200_000),
        (2_700_000, 1_800_000),
        (5_400_000, 3_600_000),
        (9_000_000, 7_200_000),
        (16_200_000, 10_800_000),
        (32_400_000, 21_600_000),
        (86_400_000, 43_200_000),
        (604_800_000, 86_400_000),
    ];
    TABLE
        .iter()
        .find(|(limit, _)| ms <= *limit)
        .map_or(604_800_000, |(_, v)| *v)
}

/// Grafana's `gtime.FormatInterval` (`$__interval`): the largest whole unit.
pub(crate) fn format_interval(ms: i64) -> String {
    for (unit, len) in [
        ("y", 31_536_000_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= len {
            return format!("{}{unit}", ms / len);
        }
    }
    "1ms".into()
}

/// Go's `time.Duration.String()` for whole milliseconds (`$__rate_interval`):
/// `1m0s`, `1m15s`, `2h0m0s`, `500ms`.
pub(crate) fn go_duration(ms: i64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, (ms / 60_000) % 60);
    let s = (ms % 60_000) as f64 / 1000.0;
    let s = if s.fract() == 0.0 {
        format!("{}s", s as i64)
    } else {
        format!("{s}s")
    };
    if h > 0 {
        format!("{h}h{m}m{s}")
    } else if m > 0 {
        format!("{m}m{s}")
    } else {
        s
    }
}

pub(crate) fn regular_escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\'', "\\\\'")
}

pub(crate) fn special_regex_escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\\\\\"),
            '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '(' | ')' | '|' => {
                out.push_str("\\\\");
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Which values of each variable the simulated user has selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    /// What a freshly opened dashboard shows: "All" for include-all
    /// variables, else the first value.
    Default,
    /// Every value ticked one by one (multi-value variables), so the
    /// escaped `(a|b|c)` form reaches the server.
    EveryValue,
}

/// A resolved template variable.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub name: String,
    pub values: Vec<String>,
    /// What `$name` becomes in a query.
    pub text: String,
}

/// The dashboard time range, in ms since the epoch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Range {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Replaces `$name`, `${name}`, `${name:fmt}` and `[[name]]` with `lookup`;
/// an unknown name is an error (Grafana would send it verbatim and the
/// query would fail to parse or match nothing).
pub(crate) fn interpolate(
    expr: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let ident = |s: &str| {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (name, used) = if let Some(t) = tail.strip_prefix("${") {
            let end = t
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {expr}"))?;
            let inner = &t[..end];
            if inner.contains(':') {
                return Err(format!("variable format in ${{{inner}}} is not emulated"));
            }
            (inner, 3 + end)
        } else if let Some(t) = tail.strip_prefix("[[") {
            match t.find("]]") {
                Some(end) if end > 0 && ident(&t[..end]) == end => (&t[..end], 4 + end),
                _ => ("", 0),
            }
        } else if let Some(t) = tail.strip_prefix('$') {
            let n = ident(t);
            (&t[..n], 1 + n)
        } else {
            ("", 0)
        };
        if used == 0 || name.is_empty() {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
            continue;
        }
        let v = lookup(name).ok_or_else(|| format!("unknown variable ${name} in {expr}"))?;
        out.push_str(&v);
        rest = &tail[used..];
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup_vars(vars: &[Resolved]) -> impl Fn(&str) -> Option<String> + '_ {
    move |n| vars.iter().find(|v| v.name == n).map(|v| v.text.clone())
}

/// Splits `label_values(sel, label)` / `label_values(label)`.
pub(crate) fn parse_label_values(q: &str) -> Result<(Option<String>, String), String> {
    let inner = q
        .trim()
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("unsupported variable query {q:?} (only label_values)"))?;
    // The last comma outside braces and quotes separates the label.
    let (mut depth, mut quoted, mut split) = (0i32, false, None);
    let mut prev = ' ';
    for (i, c) in inner.char_indices() {
        match c {
            '"' if prev != '\\' => quoted = !quoted,
            '{' | '(' if !quoted => depth += 1,
            '}' | ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => split = Some(i),
            _ => {}
        }
        prev = c;
    }
    Ok(match split {
        Some(i) => (
            Some(inner[..i].trim().to_string()),
            inner[i + 1..].trim().to_string(),
        ),
        None => (None, inner.trim().to_string()),
    })
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

fn secs_up(ms: i64) -> i64 {
    (ms + 999).div_euclid(1000)
}

/// Resolves every query variable of `dash` against `base` in order.
pub(crate) fn resolve_variables(
    base: &str,
    dash: &Value,
    range: Range,
    choice: Choice,
) -> Result<Vec<Resolved>, String> {
    let mut out: Vec<Resolved> = Vec::new();
    for v in dash["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        match v["type"].as_str() {
            Some("datasource") => continue, // only in datasource fields, never in exprs
            Some("query") => {}
            other => return Err(format!("variable {name}: unsupported type {other:?}")),
        }
        let q = match &v["query"] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        };
        let (selector, label) = parse_label_values(&q)?;
        let mut params = vec![
            ("start".to_string(), secs(range.from_ms).to_string()),
            ("end".to_string(), secs_up(range.to_ms).to_string()),
        ];
        if let Some(sel) = &selector {
            let sel = interpolate(sel, &lookup_vars(&out))?;
            params.insert(0, ("match[]".to_string(), sel));
        }
        let url = format!(
            "{base}/api/v1/label/{label}/values?{}",
            serde_urlencoded::to_string(&params).expect("encode")
        );
        let (status, body) = crate::common::get(&url).map_err(|e| format!("{url}: {e}"))?;
        let json: Value = serde_json::from_str(&body).map_err(|e| format!("{url}: {e}: {body}"))?;
        if status != 200 || json["status"] != "success" {
            return Err(format!("variable {name}: {url} answered {status} {body}"));
        }
        let mut values: Vec<String> = json["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect();
        if let Some(re) = v["regex"].as_str().filter(|r| !r.is_empty()) {
            return Err(format!("variable {name}: regex {re:?} is not emulated"));
        }
        match v["sort"].as_i64().unwrap_or(0) {
            0 => {}
            1 => values.sort(),
            2 => values.sort_by(|a, b| b.cmp(a)),
            3 => values.sort_by(|a, b| num(a).total_cmp(&num(b))),
            4 => values.sort_by(|a, b| num(b).total_cmp(&num(a))),
            s => return Err(format!("variable {name}: sort {s} is not emulated")),
        }
        if values.is_empty() {
            return Err(format!(
                "variable {name}: {q} resolved to no values ({url})"
            ));
        }
        let multi = v["multi"].as_bool().unwrap_or(false);
        let include_all = v["includeAll"].as_bool().unwrap_or(false);
        let format = |vals: &[String]| -> String {
            if !multi && !include_all {
                return regular_escape(&vals[0]);
            }
            let esc: Vec<String> = vals.iter().map(|x| special_regex_escape(x)).collect();
            if esc.len() == 1 {
                esc[0].clone()
            } else {
                format!("({})", esc.join("|"))
            }
        };
        let text = match choice {
            Choice::Default if include_all => match v["allValue"].as_str() {
                Some(all) => all.to_string(),
                None => format(&values),
            },
            Choice::EveryValue if multi || include_all => format(&values),
            _ => format(&values[..1]),
        };
        out.push(Resolved { name, values, text });
    }
    Ok(out)
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or(f64::NAN)
}

/// One panel target as Grafana sends it.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub panel_id: i64,
    pub panel_type: String,
    pub panel_title: String,
    pub ref_id: String,
    pub raw_expr: String,
    /// The panel's min interval (`interval`), if any.
    pub min_interval: Option<String>,
    pub max_data_points: i64,
}

/// Every target of every panel (rows' nested panels too).
pub(crate) fn targets(dash: &Value) -> Vec<Target> {
    let mut panels: Vec<Value> = Vec::new();
    for p in dash["panels"].as_array().cloned().unwrap_or_default() {
        panels.extend(p["panels"].as_array().cloned().unwrap_or_default());
        panels.push(p);
    }
    let mut out = Vec::new();
    for p in panels {
        let width_px = p["gridPos"]["w"].as_i64().unwrap_or(24) * 1920 / 24;
        for t in p["targets"].as_array().cloned().unwrap_or_default() {
            if t["hide"].as_bool() == Some(true) {
                continue;
            }
            out.push(Target {
                panel_id: p["id"].as_i64().unwrap_or(-1),
                panel_type: p["type"].as_str().unwrap_or_default().to_string(),
                panel_title: p["title"].as_str().unwrap_or_default().to_string(),
                ref_id: t["refId"].as_str().unwrap_or_default().to_string(),
                raw_expr: t["expr"].as_str().unwrap_or_default().to_string(),
                min_interval: p["interval"].as_str().map(str::to_string),
                max_data_points: p["maxDataPoints"].as_i64().unwrap_or(width_px),
            });
        }
    }
    out
}

/// Panels whose targets are expected to return series.
pub(crate) fn is_data_panel(panel_type: &str) -> bool {
    matches!(
        panel_type,
        "timeseries" | "stat" | "gauge" | "bargauge" | "table" | "graph" | "singlestat"
    )
}

/// The `query_range` request Grafana makes for one target.
#[derive(Clone, Debug)]
pub(crate) struct RangeQuery {
    pub expr: String,
    pub start: i64,
    pub end: i64,
    pub step_ms: i64,
}

pub(crate) fn range_query(
    t: &Target,
    vars: &[Resolved],
    range: Range,
    scrape_ms: i64,
) -> Result<RangeQuery, String> {
    let span = range.to_ms - range.from_ms;
    // Frontend: $__interval.
    let low_limit = match &t.min_interval {
        Some(i) => parse_duration_ms(i).ok_or_else(|| format!("panel interval {i:?}"))?,
        None => scrape_ms,
    };
    let interval_ms = round_interval(span / t.max_data_points.max(1)).max(low_limit);
    // Backend: the step (never below the interval, nor below range/11000).
    let per_point = span / t.max_data_points.max(1);
    let calculated = if per_point < interval_ms {
        interval_ms
    } else {
        round_interval(per_point)
    };
    let step_ms = calculated.max(round_interval(span / 11_000));
    let rate_ms = (interval_ms + scrape_ms).max(4 * scrape_ms);
    let range_s = (span as f64 / 1000.0).round() as i64;
    let user = lookup_vars(vars);
    let lookup = |n: &str| -> Option<String> {
        Some(match n {
            "__interval" => format_interval(step_ms),
            "__interval_ms" => step_ms.to_string(),
            "__rate_interval" => go_duration(rate_ms),
            "__rate_interval_ms" => rate_ms.to_string(),
            "__range" => format!("{range_s}s"),
            "__range_s" => range_s.to_string(),
            "__range_ms" => span.to_string(),
            _ => return user(n),
        })
    };
    let expr = interpolate(&t.raw_expr, &lookup)?;
    let step_s = step_ms / 1000;
    if step_ms % 1000 != 0 || step_s == 0 {
        return Err(format!("sub-second step {step_ms}ms is not emulated"));
    }
    Ok(RangeQuery {
        expr,
        start: secs(range.from_ms).div_euclid(step_s) * step_s,
        end: secs(range.to_ms).div_euclid(step_s) * step_s,
        step_ms,
    })
}

/// The outcome of one target.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub target: Target,
    pub query: RangeQuery,
    pub status: u16,
    pub body: Value,
}

impl Outcome {
    pub(crate) fn ok(&self) -> bool {
        self.status == 200
            && self.body["status"] == "success"
            && self.body["data"]["resultType"] == "matrix"
    }

    pub(crate) fn series(&self) -> Vec<Value> {
        self.body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Series that have at least one point.
    pub(crate) fn series_with_points(&self) -> usize {
        self.series()
            .iter()
            .filter(|s| s["values"].as_array().is_some_and(|v| !v.is_empty()))
            .count()
    }

    /// The last value of the first series.
    pub(crate) fn last_value(&self) -> Option<f64> {
        let s = self.series();
        let v = s.first()?["values"].as_array()?.last()?[1]
            .as_str()?
            .parse()
            .ok()?;
        Some(v)
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "panel {} {:?} target {}: POST query_range query={} start={} end={} step={}s -> {} {}",
            self.target.panel_id,
            self.target.panel_title,
            self.target.ref_id,
            self.query.expr,
            self.query.start,
            self.query.end,
            self.query.step_ms / 1000,
            self.status,
            truncate(&self.body.to_string(), 400)
        )
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Runs every target of `dash` as Grafana would.
pub(crate) fn run_dashboard(
    base: &str,
    dash: &Value,
    vars: &[Resolved],
    range: Range,
    scrape_ms: i64,
) -> Result<Vec<Outcome>, String> {
    let mut out = Vec::new();
    for t in targets(dash) {
        let q = range_query(&t, vars, range, scrape_ms)
            .map_err(|e| format!("panel {} {:?} {}: {e}", t.panel_id, t.panel_title, t.ref_id))?;
        let (start, end, step) = (
            q.start.to_string(),
            q.end.to_string(),
            (q.step_ms / 1000).to_string(),
        );
        let (status, body) = crate::common::post_form(
            &format!("{base}/api/v1/query_range"),
            &[
                ("query", q.expr.as_str()),
                ("start", &start),
                ("end", &end),
                ("step", &step),
            ],
        );
        out.push(Outcome {
            target: t,
            query: q,
            status,
            body,
        });
    }
    Ok(out)
}

/// Copies `deploy/rules/*.yml` into `dir` with every group's `interval:`
/// rewritten to `interval` (the shipped 30s/1m would make a test wait
/// minutes for the first evaluation of the fleet-level groups, which read
/// the node-level ones). Returns the glob for `--rules.file` and the number
/// of rules (recording and alerting).
pub(crate) fn rules_with_interval(dir: &Path, interval: &str) -> (String, usize) {
    let mut rules = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(repo("deploy/rules")).expect("deploy/rules") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("rule file");
        let mut rewritten = 0;
        let out: Vec<String> = text
            .lines()
            .map(|l| {
                let t = l.trim_start();
                if t.starts_with("interval:") {
                    rewritten += 1;
                    format!("{}interval: {interval}", &l[..l.len() - t.len()])
                } else {
                    if t.starts_with("- record:") || t.starts_with("- alert:") {
                        rules += 1;
                    }
                    l.to_string()
                }
            })
            .collect();
        let groups = text
            .lines()
            .filter(|l| l.trim_start().starts_with("- name:"))
            .count();
        assert_eq!(
            rewritten,
            groups,
            "{}: every group should set interval:",
            path.display()
        );
        std::fs::write(dir.join(path.file_name().unwrap()), out.join("\n") + "\n")
            .expect("write rules");
        files += 1;
    }
    assert!(files >= 2 && rules > 0, "no rule files found");
    (format!("{}/*.yml", dir.display()), rules)
}

/// Every rule of `/api/v1/rules` is healthy; returns how many there are.
pub(crate) fn healthy_rules(base: &str) -> Result<usize, String> {
    let (status, body) =
        crate::common::get(&format!("{base}/api/v1/rules")).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if status != 200 {
        return Err(body);
    }
    let mut n = 0;
    for g in v["data"]["groups"].as_array().cloned().unwrap_or_default() {
        for r in g["rules"].as_array().cloned().unwrap_or_default() {
            if r["health"] != "ok" {
                return Err(format!(
                    "group {} rule {}: health {} {}",
                    g["name"], r["name"], r["health"], r["lastError"]
                ));
            }
            n += 1;
        }
    }
    Ok(n)
}

/// One instant query's result.
pub(crate) fn instant(base: &str, q: &str) -> Vec<Value> {
    let (status, body) = crate::common::post_form(&format!("{base}/api/v1/query"), &[("query", q)]);
    assert_eq!(status, 200, "{q}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub(crate) use crate::common::now_ms;

/// The first multiple of `step_ms` strictly after `t`.
pub(crate) fn next_boundary(t: i64, step_ms: i64) -> i64 {
    (t.div_euclid(step_ms) + 1) * step_ms
}

/// Which targets may return no series, and why.
pub(crate) struct Expected {
    pub dashboard: &'static str,
    pub panel: &'static str,
    pub ref_id: &'static str,
    pub why: &'static str,
    /// `None`: always empty on the test's data. `Some(q)`: empty exactly
    /// when the instant query `q` (the raw input the panel needs) is, e.g.
    /// a host without physical disks.
    pub unless: Option<&'static str>,
}

/// Per-dashboard counts, printed as Grafana users would summarise them.
#[derive(Default, Debug)]
pub(crate) struct Summary {
    pub targets: usize,
    pub ok: usize,
    pub with_data: usize,
    pub expected_empty: usize,
}

/// Checks the outcomes: every target 200 `success`; every data panel's
/// target has a series with points unless listed in `expected`, and a
/// listed one really is empty (so the list cannot go stale). Failures are
/// appended to `failures`.
pub(crate) fn check(
    base: &str,
    dashboard: &str,
    outcomes: &[Outcome],
    expected: &[Expected],
    failures: &mut Vec<String>,
) -> Summary {
    let mut s = Summary::default();
    for o in outcomes {
        s.targets += 1;
        if !o.ok() {
            failures.push(format!(
                "{dashboard}: not a successful matrix: {}",
                o.describe()
            ));
            continue;
        }
        s.ok += 1;
        let with_points = o.series_with_points();
        if with_points > 0 {
            s.with_data += 1;
        }
        let listed = expected
            .iter()
            .find(|e| {
                e.dashboard == dashboard
                    && e.panel == o.target.panel_title
                    && e.ref_id == o.target.ref_id
            })
            .filter(|e| e.unless.is_none_or(|q| instant(base, q).is_empty()));
        match listed {
            Some(e) if with_points > 0 => failures.push(format!(
                "{dashboard}: listed as expected-empty ({}) but returned {with_points} series: remove it from the list: {}",
                e.why,
                o.describe()
            )),
            Some(_) => s.expected_empty += 1,
            None if with_points == 0 && is_data_panel(&o.target.panel_type) => {
                failures.push(format!("{dashboard}: no data: {}", o.describe()))
            }
            None => {}
        }
    }
    s
}

/// The outcome of the target `panel`/`ref_id`.
pub(crate) fn find<'a>(outcomes: &'a [Outcome], panel: &str, ref_id: &str) -> &'a Outcome {
    outcomes
        .iter()
        .find(|o| o.target.panel_title == panel && o.target.ref_id == ref_id)
        .unwrap_or_else(|| panic!("no panel {panel:?} target {ref_id} in the dashboard"))
}

/// One pass over a dashboard as Grafana would make it: resolve the
/// variables with `choice`, run every target, check them against
/// `expected` (failures collected), and print a one-line summary. Returns
/// the variables and outcomes for the caller's own assertions.
pub(crate) fn run_and_check(
    base: &str,
    name: &str,
    range: Range,
    scrape_ms: i64,
    choice: Choice,
    expected: &[Expected],
    failures: &mut Vec<String>,
) -> (Vec<Resolved>, Vec<Outcome>) {
    let dash = dashboard(name);
    let vars =
        resolve_variables(base, &dash, range, choice).unwrap_or_else(|e| panic!("{name}: {e}"));
    let outcomes = run_dashboard(base, &dash, &vars, range, scrape_ms)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let s = check(base, name, &outcomes, expected, failures);
    eprintln!(
        "{name} ({choice:?}: {}): {} targets, {} ok, {} with data, {} expected empty",
        vars.iter()
            .map(|v| format!("${}={}", v.name, v.text))
            .collect::<Vec<_>>()
            .join(" "),
        s.targets,
        s.ok,
        s.with_data,
        s.expected_empty
    );
    (vars, outcomes)
}

/// The values a resolved variable offers (empty when it does not exist).
pub(crate) fn values_of(vars: &[Resolved], name: &str) -> Vec<String> {
    vars.iter()
        .find(|v| v.name == name)
        .map(|v| v.values.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod emulation {
    use super::*;

    #[test]
    fn grafana_formats_match_its_source() {
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(75_000), "1m15s");
        assert_eq!(go_duration(45_000), "45s");
        assert_eq!(go_duration(7_200_000), "2h0m0s");
        assert_eq!(format_interval(60_000), "1m");
        assert_eq!(format_interval(15_000), "15s");
        assert_eq!(round_interval(3_600_000 / 320), 10_000);
        assert_eq!(
            special_regex_escape("127.0.0.1:9100"),
            r"127\\.0\\.0\\.1:9100"
        );
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        let vars = vec![Resolved {
            name: "x".into(),
            values: vec![],
            text: "(a|b)".into(),
        }];
        let l = lookup_vars(&vars);
        assert_eq!(
            interpolate("m{a=~\"$x\", b=~\"${x}\", c=~\"[[x]]\"}[5m]", &l).unwrap(),
            "m{a=~\"(a|b)\", b=~\"(a|b)\", c=~\"(a|b)\"}[5m]"
        );
        assert!(interpolate("m{a=\"$nope\"}", &l).is_err());
        assert!(interpolate("m{a=\"${x:csv}\"}", &l).is_err());
        assert_eq!(
            parse_label_values("label_values(m{a=~\"x,y\"}, gpu)").unwrap(),
            (Some("m{a=~\"x,y\"}".to_string()), "gpu".to_string())
        );
    }
}
