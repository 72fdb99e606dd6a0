//! A reader for Prometheus' `promqltest` script format (see
//! `../shared/promql-testdata/FORMAT.md`): `load`, `clear` and `eval`
//! commands, series descriptions and expectations.

use tessera_tsdb::Labels;

/// One position of an expanded series description.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Item {
    Value(f64),
    Stale,
    /// `_`: no sample at this position.
    Gap,
    /// A native-histogram literal; Tessera stores no native histograms.
    Histogram,
}

#[derive(Clone, Debug)]
pub(crate) struct SeriesDesc {
    pub labels: Labels,
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ExpectKind {
    Fail,
    Warn,
    Info,
    NoWarn,
    NoInfo,
    Ordered,
}

#[derive(Clone, Debug)]
pub(crate) struct Expect {
    pub kind: ExpectKind,
    /// `msg:` text (exact) or `regex:` pattern.
    pub msg: Option<String>,
    pub regex: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) enum EvalTime {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

#[derive(Clone, Debug)]
pub(crate) struct Eval {
    pub line: usize,
    pub time: EvalTime,
    pub expr: String,
    pub expects: Vec<Expect>,
    pub series: Vec<SeriesDesc>,
    pub scalar: Option<f64>,
    pub string: Option<String>,
    /// `expect range vector from s to e step d`.
    pub range_vector: Option<(i64, i64, i64)>,
}

#[derive(Clone, Debug)]
pub(crate) enum Command {
    Load { step: i64, series: Vec<SeriesDesc> },
    Clear,
    Eval(Box<Eval>),
}

/// A Prometheus duration (`1h30m`, `10s53ms`, `0`) in milliseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    if b.is_empty() {
        return Err("empty duration".into());
    }
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if st == i {
            return Err(format!("bad duration {s:?}"));
        }
        let n: i64 = s[st..i]
            .parse()
            .map_err(|_| format!("bad duration {s:?}"))?;
        let unit_ms = if s[i..].starts_with("ms") {
            i += 2;
            1
        } else {
            let u = *b.get(i).ok_or_else(|| format!("bad duration {s:?}"))?;
            i += 1;
            match u {
                b'y' => 365 * 86_400_000,
                b'w' => 7 * 86_400_000,
                b'd' => 86_400_000,
                b'h' => 3_600_000,
                b'm' => 60_000,
                b's' => 1000,
                _ => return Err(format!("bad duration unit in {s:?}")),
            }
        };
        total += n * unit_ms;
    }
    Ok(total)
}

/// A number in a series description: decimal, `Inf`/`NaN`, underscores, or
/// a duration standing for its seconds.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim_start_matches(['+', '-']);
    let neg = s.starts_with('-');
    let lower = t.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if lower == "nan" {
        return Some(f64::NAN);
    }
    let cleaned: String = s.chars().filter(|c| *c != '_').collect();
    if lower.starts_with("0x") {
        return None;
    }
    if let Ok(v) = cleaned.parse::<f64>() {
        return Some(v);
    }
    let d = parse_duration(t).ok()? as f64 / 1000.0;
    Some(if neg { -d } else { d })
}

/// A lone scalar expectation line: integers with Go base prefixes first,
/// then floats.
pub(crate) fn parse_scalar_line(s: &str) -> Option<f64> {
    if s.contains(char::is_whitespace) || s.contains('{') {
        return None;
    }
    let (neg, t) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let int = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(b) = t.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if let Some(o) = t.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if t.len() > 1 && t.starts_with('0') && t.bytes().all(|c| c.is_ascii_digit()) {
        i64::from_str_radix(&t[1..], 8).ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Some(if neg { -(i as f64) } else { i as f64 });
    }
    let lower = t.to_ascii_lowercase();
    if lower == "inf" || lower == "+inf" {
        return Some(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if lower == "nan" {
        return Some(f64::NAN);
    }
    if !t
        .bytes()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == b'.')
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Reads a quoted PromQL string starting at `s[0]`; returns the value and
/// the bytes consumed.
pub(crate) fn parse_quoted(s: &str) -> Result<(String, usize), String> {
    let q = s.chars().next().ok_or("empty string")?;
    if !matches!(q, '"' | '\'' | '`') {
        return Err(format!("expected quote in {s:?}"));
    }
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        if c == q {
            return Ok((out, i + 1));
        }
        if c == '\\' && q != '`' {
            let (_, e) = it.next().ok_or("dangling escape")?;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'x' | 'u' | 'U' => {
                    let n = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let mut hex = String::new();
                    for _ in 0..n {
                        hex.push(it.next().ok_or("short escape")?.1);
                    }
                    let v = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                    out.push(char::from_u32(v).ok_or("bad escape")?);
                }
                d if d.is_digit(8) => {
                    let mut oct = String::from(d);
                    for _ in 0..2 {
                        oct.push(it.next().ok_or("short escape")?.1);
                    }
                    let v = u32::from_str_radix(&oct, 8).map_err(|e| e.to_string())?;
                    out.push(char::from_u32(v).ok_or("bad escape")?);
                }
                other => return Err(format!("unknown escape \\{other}")),
            }
        } else {
            out.push(c);
        }
    }
    Err(format!("unterminated string in {s:?}"))
}

/// `name{a="b", ...}`, `{...}` or `name`; returns labels and the rest.
pub(crate) fn parse_metric(s: &str) -> Result<(Labels, &str), String> {
    let s = s.trim_start();
    let name_len = s
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
        .count();
    let mut pairs: Vec<(String, String)> = Vec::new();
    if name_len > 0 {
        pairs.push(("__name__".into(), s[..name_len].to_string()));
    }
    let mut rest = &s[name_len..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (lname, used) = if rest.starts_with(['"', '\'', '`']) {
                parse_quoted(rest)?
            } else {
                let n = rest
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    .count();
                if n == 0 {
                    return Err(format!("bad label in {s:?}"));
                }
                (rest[..n].to_string(), n)
            };
            rest = rest[used..].trim_start();
            if let Some(r) = rest.strip_prefix('=') {
                let r = r.trim_start();
                let (val, used) = parse_quoted(r)?;
                pairs.push((lname, val));
                rest = &r[used..];
            } else {
                // A quoted metric name alone: `{"metric.name", a="b"}`.
                pairs.push(("__name__".into(), lname));
            }
        }
    }
    Ok((Labels::from_pairs(pairs), rest))
}

/// Expands the value items of a series description.
pub(crate) fn parse_items(s: &str) -> Result<Vec<Item>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        if rest.starts_with("{{") {
            // Histogram literal, maybe followed by +{{..}} / -{{..}} and xN.
            let end = rest.find("}}").ok_or("unterminated histogram")? + 2;
            let mut tok_end = end;
            let tail = &rest[end..];
            if tail.starts_with("+{{") || tail.starts_with("-{{") {
                let e2 = tail[1..].find("}}").ok_or("unterminated histogram")? + 3;
                tok_end += e2;
            }
            let after = &rest[tok_end..];
            let n_end = after.find(char::is_whitespace).unwrap_or(after.len());
            let reps = if let Some(n) = after[..n_end].strip_prefix('x') {
                n.parse::<usize>().map_err(|e| e.to_string())? + 1
            } else {
                1
            };
            out.extend(std::iter::repeat_n(Item::Histogram, reps));
            rest = after[n_end..].trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let tok = &rest[..end];
        rest = rest[end..].trim_start();
        if tok == "_" {
            out.push(Item::Gap);
            continue;
        }
        if tok == "stale" {
            out.push(Item::Stale);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad item {tok}"))?;
            out.extend(std::iter::repeat_n(Item::Gap, n));
            continue;
        }
        if let Some(v) = parse_number(tok) {
            out.push(Item::Value(v));
            continue;
        }
        let (lhs, n) = tok
            .rsplit_once('x')
            .ok_or_else(|| format!("bad item {tok}"))?;
        let n: usize = n.parse().map_err(|_| format!("bad item {tok}"))?;
        if lhs == "stale" {
            out.extend(std::iter::repeat_n(Item::Stale, n + 1));
            continue;
        }
        if let Some(v) = parse_number(lhs) {
            out.extend(std::iter::repeat_n(Item::Value(v), n + 1));
            continue;
        }
        let b = lhs.as_bytes();
        let op = (1..b.len())
            .find(|&i| (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E'))
            .ok_or_else(|| format!("bad item {tok}"))?;
        let start = parse_number(&lhs[..op]).ok_or_else(|| format!("bad item {tok}"))?;
        let mut delta = parse_number(&lhs[op + 1..]).ok_or_else(|| format!("bad item {tok}"))?;
        if b[op] == b'-' {
            delta = -delta;
        }
        let mut v = start;
        for _ in 0..=n {
            out.push(Item::Value(v));
            v += delta;
        }
    }
    Ok(out)
}

pub(crate) fn parse_series(line: &str) -> Result<SeriesDesc, String> {
    let (labels, rest) = parse_metric(line)?;
    Ok(SeriesDesc {
        labels,
        items: parse_items(rest)?,
    })
}

fn parse_expect(rest: &str) -> Result<Expect, String> {
    let (kind, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    let kind = match kind {
        "fail" => ExpectKind::Fail,
        "warn" => ExpectKind::Warn,
        "info" => ExpectKind::Info,
        "no_warn" => ExpectKind::NoWarn,
        "no_info" => ExpectKind::NoInfo,
        "ordered" => ExpectKind::Ordered,
        other => return Err(format!("unknown expectation {other:?}")),
    };
    let tail = tail.trim();
    let mut e = Expect {
        kind,
        msg: None,
        regex: None,
    };
    if let Some(m) = tail.strip_prefix("msg:") {
        e.msg = Some(m.trim().to_string());
    } else if let Some(r) = tail.strip_prefix("regex:") {
        e.regex = Some(r.trim().to_string());
    }
    Ok(e)
}

/// Splits a script into commands.
pub(crate) fn parse_script(text: &str) -> Result<Vec<Command>, String> {
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| {
            let t = l.trim_matches([' ', '\t', '\r']);
            if t.starts_with('#') {
                String::new()
            } else {
                t.to_string()
            }
        })
        .collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        if line.is_empty() {
            i += 1;
            continue;
        }
        let lineno = i + 1;
        let (word, rest) = line
            .split_once([' ', '\t'])
            .map(|(a, b)| (a, b.trim()))
            .unwrap_or((line.as_str(), ""));
        let word_l = word.to_ascii_lowercase();
        i += 1;
        if word_l == "clear" {
            cmds.push(Command::Clear);
        } else if word_l.starts_with("load") {
            let step = parse_duration(rest).map_err(|e| format!("line {lineno}: {e}"))?;
            let mut series: Vec<SeriesDesc> = Vec::new();
            while i < lines.len() && !lines[i].is_empty() {
                let l = &lines[i];
                i += 1;
                let first = l.split_whitespace().next().unwrap_or("");
                if first.ends_with("@st") {
                    continue;
                }
                let sd = parse_series(l).map_err(|e| format!("line {i}: {e}"))?;
                // Within a block the later line for a label set wins.
                series.retain(|s| s.labels != sd.labels);
                series.push(sd);
            }
            cmds.push(Command::Load { step, series });
        } else if word_l.starts_with("eval") {
            let modifier = word_l.strip_prefix("eval").unwrap_or("");
            let (mode, rest) = rest.split_once(' ').ok_or("bad eval line")?;
            let (time, expr) = match mode {
                "instant" => {
                    let r = rest.strip_prefix("at ").ok_or("expected 'at'")?.trim();
                    let (t, e) = r.split_once(' ').ok_or("bad eval instant")?;
                    (EvalTime::Instant(parse_duration(t)?), e.trim().to_string())
                }
                "range" => {
                    let parts: Vec<&str> = rest.splitn(7, ' ').collect();
                    if parts.len() < 7
                        || parts[0] != "from"
                        || parts[2] != "to"
                        || parts[4] != "step"
                    {
                        return Err(format!("line {lineno}: bad eval range"));
                    }
                    (
                        EvalTime::Range {
                            start: parse_duration(parts[1])?,
                            end: parse_duration(parts[3])?,
                            step: parse_duration(parts[5])?,
                        },
                        parts[6].trim().to_string(),
                    )
                }
                other => return Err(format!("line {lineno}: unknown eval mode {other}")),
            };
            let mut ev = Eval {
                line: lineno,
                time,
                expr,
                expects: Vec::new(),
                series: Vec::new(),
                scalar: None,
                string: None,
                range_vector: None,
            };
            match modifier {
                "_fail" => ev.expects.push(Expect {
                    kind: ExpectKind::Fail,
                    msg: None,
                    regex: None,
                }),
                "_warn" => ev.expects.push(Expect {
                    kind: ExpectKind::Warn,
                    msg: None,
                    regex: None,
                }),
                "_info" => ev.expects.push(Expect {
                    kind: ExpectKind::Info,
                    msg: None,
                    regex: None,
                }),
                "_ordered" => ev.expects.push(Expect {
                    kind: ExpectKind::Ordered,
                    msg: None,
                    regex: None,
                }),
                _ => {}
            }
            while i < lines.len() && !lines[i].is_empty() {
                let l = lines[i].clone();
                i += 1;
                if let Some(r) = l.strip_prefix("expected_fail_message") {
                    if let Some(e) = ev.expects.iter_mut().find(|e| e.kind == ExpectKind::Fail) {
                        e.msg = Some(r.trim().to_string());
                    }
                    break;
                }
                if let Some(r) = l.strip_prefix("expected_fail_regexp") {
                    if let Some(e) = ev.expects.iter_mut().find(|e| e.kind == ExpectKind::Fail) {
                        e.regex = Some(r.trim().to_string());
                    }
                    break;
                }
                if let Some(r) = l.strip_prefix("expect range vector ") {
                    let p: Vec<&str> = r.split_whitespace().collect();
                    if p.len() != 6 {
                        return Err(format!("line {i}: bad expect range vector"));
                    }
                    ev.range_vector = Some((
                        parse_duration(p[1])?,
                        parse_duration(p[3])?,
                        parse_duration(p[5])?,
                    ));
                    continue;
                }
                if let Some(r) = l.strip_prefix("expect string ") {
                    ev.string = Some(parse_quoted(r.trim())?.0);
                    continue;
                }
                if let Some(r) = l.strip_prefix("expect ") {
                    ev.expects.push(parse_expect(r.trim())?);
                    continue;
                }
                if let Some(v) = parse_scalar_line(&l) {
                    ev.scalar = Some(v);
                    break;
                }
                ev.series
                    .push(parse_series(&l).map_err(|e| format!("line {i}: {e}"))?);
            }
            cmds.push(Command::Eval(Box::new(ev)));
        } else {
            return Err(format!("line {lineno}: unknown command {word:?}"));
        }
    }
    Ok(cmds)
}
