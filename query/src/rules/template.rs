//! Alert label and annotation templates: the part of Go's `text/template`
//! and Prometheus' template functions that rule files use in practice.
//!
//! Supported: text with `{{ ... }}` actions (and `{{-`/`-}}` trimming,
//! `{{/* comments */}}`); the variables `$labels`, `$value`,
//! `$externalLabels`, `$externalURL` (and `.Labels`, `.Value`,
//! `.ExternalLabels`, `.ExternalURL`), fields such as `$labels.instance`;
//! string and number literals; pipelines (`$value | humanize`); the
//! functions [`FUNCTIONS`]. Anything else (`if`, `range`, `with`, `query`,
//! variables of one's own, parentheses) is refused by [`Template::parse`],
//! so a rule file that needs it fails at load instead of sending a wrong
//! message at 3 a.m.
//!
//! Output follows Go: `{{ $value }}` prints like `fmt.Print` (`1e+06`),
//! a missing label prints `<no value>`, `printf` verbs `%s %d %f %e %g %v %q
//! %%` with flags, width and precision, and misuse prints Go's `%!d(...)`
//! markers. A run-time error (e.g. `humanize` of a non-number) makes the
//! whole text `<error expanding template: ...>`, as in Prometheus.

use std::fmt::Write as _;

/// The template functions Tessera implements.
pub const FUNCTIONS: &[&str] = &[
    "humanize",
    "humanize1024",
    "humanizePercentage",
    "humanizeDuration",
    "printf",
    "toUpper",
    "toLower",
    "title",
];

/// What a template is expanded with.
#[derive(Clone, Debug, Default)]
pub struct TemplateData<'a> {
    pub labels: &'a [(String, String)],
    pub value: f64,
    pub external_labels: &'a [(String, String)],
    pub external_url: &'a str,
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    /// Commands separated by `|`.
    Action(Vec<Vec<Arg>>),
}

#[derive(Clone, Debug, PartialEq)]
enum Arg {
    Func(&'static str),
    Str(String),
    Num(f64),
    Value,
    Labels,
    Label(String),
    ExternalLabels,
    ExternalLabel(String),
    ExternalUrl,
}

#[derive(Clone, Debug, PartialEq)]
enum Val {
    Str(String),
    Num(f64),
    Map(Vec<(String, String)>),
    /// A missing map key (Go's invalid value).
    NoValue,
}

impl Template {
    /// Parses `text`; the error names the unsupported construct or function.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut nodes = Vec::new();
        let mut rest = text;
        let mut trim_next = false;
        while let Some(start) = rest.find("{{") {
            let mut before = &rest[..start];
            if trim_next {
                before = before.trim_start();
            }
            let mut inner = &rest[start + 2..];
            // `{{- ` trims the space before (the dash must be followed by
            // white space, or it is a negative number).
            if let Some(s) = inner.strip_prefix('-')
                && s.starts_with(char::is_whitespace)
            {
                before = before.trim_end();
                inner = s;
            }
            push_text(&mut nodes, before);
            let end = inner
                .find("}}")
                .ok_or_else(|| "unclosed action: missing \"}}\"".to_string())?;
            let mut body = &inner[..end];
            trim_next = false;
            if let Some(b) = body.strip_suffix('-')
                && b.ends_with(char::is_whitespace)
            {
                body = b;
                trim_next = true;
            }
            rest = &inner[end + 2..];
            let body = body.trim();
            if body.starts_with("/*") && body.ends_with("*/") {
                continue;
            }
            nodes.push(Node::Action(parse_action(body)?));
        }
        push_text(&mut nodes, if trim_next { rest.trim_start() } else { rest });
        Ok(Template { nodes })
    }

    /// Expands the template; the error is what went wrong (see
    /// [`error_text`]).
    pub fn expand(&self, data: &TemplateData<'_>) -> Result<String, String> {
        let mut out = String::new();
        for n in &self.nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(cmds) => out.push_str(&print(&run_pipeline(cmds, data)?)),
            }
        }
        Ok(out)
    }
}

/// Parses and expands `text` (text without actions as is).
pub fn expand(text: &str, data: &TemplateData<'_>) -> Result<String, String> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    Template::parse(text)?.expand(data)
}

/// What Prometheus puts in a label or annotation whose template failed.
pub fn error_text(error: &str) -> String {
    format!("<error expanding template: {error}>")
}

fn push_text(nodes: &mut Vec<Node>, s: &str) {
    if !s.is_empty() {
        nodes.push(Node::Text(s.to_string()));
    }
}

const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

fn parse_action(body: &str) -> Result<Vec<Vec<Arg>>, String> {
    let tokens = tokenize(body)?;
    if tokens.is_empty() {
        return Err("empty action {{ }}".into());
    }
    let mut cmds = vec![Vec::new()];
    for (i, t) in tokens.into_iter().enumerate() {
        match t {
            Tok::Pipe => cmds.push(Vec::new()),
            Tok::Word(w) => {
                let arg = word_arg(&w, i == 0)?;
                cmds.last_mut().expect("one command at least").push(arg);
            }
            Tok::Str(s) => cmds.last_mut().expect("one command").push(Arg::Str(s)),
        }
    }
    for (i, c) in cmds.iter().enumerate() {
        match c.first() {
            None => return Err("missing command in pipeline".into()),
            Some(Arg::Func(_)) => {}
            Some(_) if c.len() > 1 => {
                return Err(format!("can't give argument to non-function {:?}", c[0]));
            }
            Some(_) if i > 0 => {
                return Err("non-function in a pipeline after \"|\"".into());
            }
            Some(_) => {}
        }
    }
    Ok(cmds)
}

fn word_arg(w: &str, first: bool) -> Result<Arg, String> {
    if first && KEYWORDS.contains(&w) {
        return Err(format!(
            "template action {w:?} is not supported by Tessera (only values, fields and the functions {})",
            FUNCTIONS.join(", ")
        ));
    }
    if let Some(f) = FUNCTIONS.iter().find(|f| **f == w) {
        return Ok(Arg::Func(f));
    }
    if let Ok(n) = w.parse::<f64>()
        && w.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.')
    {
        return Ok(Arg::Num(n));
    }
    let (var, field) = match w.split_once('.') {
        Some((v, f)) if v.starts_with('$') => (v, Some(f)),
        _ if w.starts_with('.') => {
            let (v, f) = w[1..]
                .split_once('.')
                .map_or((&w[1..], None), |(a, b)| (a, Some(b)));
            (
                match v {
                    "Labels" => "$labels",
                    "Value" => "$value",
                    "ExternalLabels" => "$externalLabels",
                    "ExternalURL" => "$externalURL",
                    _ => return Err(format!("field {w:?} is not supported by Tessera")),
                },
                f,
            )
        }
        _ => (w, None),
    };
    if let Some(f) = field
        && (f.is_empty() || f.contains('.'))
    {
        return Err(format!("bad field reference {w:?}"));
    }
    match (var, field) {
        ("$labels", None) => Ok(Arg::Labels),
        ("$labels", Some(f)) => Ok(Arg::Label(f.into())),
        ("$externalLabels", None) => Ok(Arg::ExternalLabels),
        ("$externalLabels", Some(f)) => Ok(Arg::ExternalLabel(f.into())),
        ("$value", None) => Ok(Arg::Value),
        ("$externalURL", None) => Ok(Arg::ExternalUrl),
        _ if var.starts_with('$') => Err(format!(
            "template variable {var:?} is not supported by Tessera (supported: $labels, $value, $externalLabels, $externalURL)"
        )),
        _ if var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Err(format!(
            "template function {var:?} is not supported by Tessera (supported: {})",
            FUNCTIONS.join(", ")
        )),
        _ => Err(format!("unexpected {w:?} in template action")),
    }
}

enum Tok {
    Word(String),
    Str(String),
    Pipe,
}

fn tokenize(body: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '|' => {
                chars.next();
                out.push(Tok::Pipe);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated quoted string".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(e @ ('\\' | '"')) => s.push(e),
                            other => return Err(format!("unsupported escape \\{other:?}")),
                        },
                        Some(ch) => s.push(ch),
                    }
                }
                out.push(Tok::Str(s));
            }
            '`' => {
                chars.next();
                let s: String = chars.by_ref().take_while(|&ch| ch != '`').collect();
                out.push(Tok::Str(s));
            }
            '(' | ')' => return Err("parenthesised pipelines are not supported by Tessera".into()),
            ':' | '=' => {
                return Err("template variable assignment is not supported by Tessera".into());
            }
            _ => {
                let mut w = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || matches!(ch, '|' | '"' | '`' | '(' | ')') {
                        break;
                    }
                    if matches!(ch, ':' | '=') {
                        return Err(
                            "template variable assignment is not supported by Tessera".into()
                        );
                    }
                    w.push(ch);
                    chars.next();
                }
                out.push(Tok::Word(w));
            }
        }
    }
    Ok(out)
}

fn run_pipeline(cmds: &[Vec<Arg>], data: &TemplateData<'_>) -> Result<Val, String> {
    let mut piped: Option<Val> = None;
    for c in cmds {
        let v = match &c[0] {
            Arg::Func(f) => {
                let mut args: Vec<Val> = c[1..].iter().map(|a| arg_value(a, data)).collect();
                args.extend(piped.take());
                call(f, args)?
            }
            a => arg_value(a, data),
        };
        piped = Some(v);
    }
    Ok(piped.unwrap_or(Val::NoValue))
}

fn lookup(map: &[(String, String)], k: &str) -> Val {
    map.iter()
        .find(|(n, _)| n == k)
        .map_or(Val::NoValue, |(_, v)| Val::Str(v.clone()))
}

fn arg_value(a: &Arg, d: &TemplateData<'_>) -> Val {
    match a {
        Arg::Func(f) => Val::Str((*f).to_string()),
        Arg::Str(s) => Val::Str(s.clone()),
        Arg::Num(n) => Val::Num(*n),
        Arg::Value => Val::Num(d.value),
        Arg::Labels => Val::Map(d.labels.to_vec()),
        Arg::Label(k) => lookup(d.labels, k),
        Arg::ExternalLabels => Val::Map(d.external_labels.to_vec()),
        Arg::ExternalLabel(k) => lookup(d.external_labels, k),
        Arg::ExternalUrl => Val::Str(d.external_url.to_string()),
    }
}

/// Go's `fmt.Print` of a value.
fn print(v: &Val) -> String {
    match v {
        Val::Str(s) => s.clone(),
        Val::Num(n) => go_float(*n, 'g', None),
        Val::Map(m) => {
            let mut m = m.clone();
            m.sort();
            let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("map[{}]", inner.join(" "))
        }
        Val::NoValue => "<no value>".into(),
    }
}

/// Prometheus' `convertToFloat`.
fn to_float(v: &Val) -> Result<f64, String> {
    match v {
        Val::Num(n) => Ok(*n),
        Val::Str(s) => s
            .parse::<f64>()
            .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        other => Err(format!("can't convert {} to float", print(other))),
    }
}

fn one_arg(f: &str, args: &[Val]) -> Result<f64, String> {
    match args {
        [v] => to_float(v),
        _ => Err(format!(
            "wrong number of args for {f}: want 1 got {}",
            args.len()
        )),
    }
}

fn call(f: &str, args: Vec<Val>) -> Result<Val, String> {
    let s = match f {
        "humanize" => humanize(one_arg(f, &args)?),
        "humanize1024" => humanize1024(one_arg(f, &args)?),
        "humanizePercentage" => format!("{}%", go_float(one_arg(f, &args)? * 100.0, 'g', Some(4))),
        "humanizeDuration" => humanize_duration(one_arg(f, &args)?),
        "printf" => match args.split_first() {
            Some((Val::Str(fmt), rest)) => sprintf(fmt, rest),
            _ => return Err("printf: the first argument must be a format string".into()),
        },
        "toUpper" | "toLower" | "title" => {
            let [Val::Str(s)] = args.as_slice() else {
                return Err(format!("{f}: want one string argument"));
            };
            match f {
                "toUpper" => s.to_uppercase(),
                "toLower" => s.to_lowercase(),
                _ => title(s),
            }
        }
        other => return Err(format!("function {other:?} not defined")),
    };
    Ok(Val::Str(s))
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start && c.is_alphanumeric() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !c.is_alphanumeric() && c != '\'';
    }
    out
}

fn humanize(mut v: f64) -> String {
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 || v == 0.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_float(v, 'g', Some(4)))
}

fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 {
        return go_float(v, 'g', Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_float(v, 'g', Some(4)))
}

fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return go_float(v, 'g', Some(4));
    }
    if v == 0.0 {
        return format!("{}s", go_float(v, 'g', Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        return match (days, h, m) {
            (0, 0, 0) => format!("{sign}{}s", go_float(v, 'g', Some(4))),
            (0, 0, _) => format!("{sign}{m}m {s}s"),
            (0, _, _) => format!("{sign}{h}h {m}m {s}s"),
            _ => format!("{sign}{days}d {h}h {m}m {s}s"),
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_float(v, 'g', Some(4)))
}

/// Significant digits (no trailing zeros) and the decimal exponent of
/// `|v|`, shortest when `sig` is `None`.
fn digits(v: f64, sig: Option<usize>) -> (String, i32) {
    let s = match sig {
        None if v != 0.0 => return crate::format::shortest_digits(v),
        None => format!("{:e}", v.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, v.abs()),
    };
    let (m, e) = s.split_once('e').expect("exponent form");
    let d: String = m.chars().filter(|c| *c != '.').collect();
    let d = d.trim_end_matches('0');
    let d = if d.is_empty() { "0" } else { d };
    (d.to_string(), e.parse().expect("integer exponent"))
}

fn exp_suffix(e: i32) -> String {
    format!("e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// Go's `strconv.FormatFloat(v, verb, prec)` for `e`, `f` and `g`, with
/// `fmt`'s spelling of infinities (`+Inf`).
pub fn go_float(v: f64, verb: char, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    match verb {
        'f' => format!("{:.*}", prec.unwrap_or(6), v),
        'e' => {
            let s = match prec {
                Some(p) => format!("{:.*e}", p, v.abs()),
                None => format!("{:e}", v.abs()),
            };
            let (m, e) = s.split_once('e').expect("exponent form");
            format!("{sign}{m}{}", exp_suffix(e.parse().expect("exponent")))
        }
        _ => {
            let (d, exp) = digits(v, prec.map(|p| p.max(1)));
            // Shortest form (`%v`, `%g`) switches to exponent form from
            // 1e+06, as strconv does.
            let eprec = prec.map_or(6, |p| p.max(1) as i32);
            if exp < -4 || exp >= eprec {
                let mant = if d.len() > 1 {
                    format!("{}.{}", &d[..1], &d[1..])
                } else {
                    d.clone()
                };
                format!("{sign}{mant}{}", exp_suffix(exp))
            } else if exp >= 0 {
                let e = exp as usize + 1;
                if d.len() <= e {
                    format!("{sign}{d}{}", "0".repeat(e - d.len()))
                } else {
                    format!("{sign}{}.{}", &d[..e], &d[e..])
                }
            } else {
                format!("{sign}0.{}{d}", "0".repeat((-exp - 1) as usize))
            }
        }
    }
}

/// Go's `fmt.Sprintf` for the verbs rule files use.
fn sprintf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let bad = |a: &Val| match a {
            Val::Num(n) => format!("%!{verb}(float64={})", print(&Val::Num(*n))),
            Val::Str(s) => format!("%!{verb}(string={s})"),
            other => format!("%!{verb}({})", print(other)),
        };
        let mut numeric = false;
        let s = match (verb, arg) {
            ('v', a) => {
                numeric = matches!(a, Val::Num(_));
                match a {
                    Val::Num(n) => go_float(*n, 'g', prec),
                    a => print(a),
                }
            }
            ('s', Val::Str(s)) => match prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('q', Val::Str(s)) => format!("{s:?}"),
            ('f' | 'F' | 'e' | 'g', Val::Num(n)) => {
                numeric = true;
                let (verb, prec) = match verb {
                    'g' => ('g', prec),
                    'F' => ('f', prec.or(Some(6))),
                    v => (v, prec.or(Some(6))),
                };
                go_float(*n, verb, prec)
            }
            (_, a) => bad(a),
        };
        let s = if numeric && !s.starts_with('-') && (plus || space) {
            format!("{}{s}", if plus { '+' } else { ' ' })
        } else {
            s
        };
        let w: usize = width.parse().unwrap_or(0);
        let len = s.chars().count();
        if len >= w {
            out.push_str(&s);
        } else if minus {
            out.push_str(&s);
            out.push_str(&" ".repeat(w - len));
        } else if zero && numeric {
            let (sign, digits) = match s.strip_prefix(['-', '+', ' ']) {
                Some(d) => (&s[..1], d),
                None => ("", s.as_str()),
            };
            out.push_str(sign);
            out.push_str(&"0".repeat(w - len));
            out.push_str(digits);
        } else {
            out.push_str(&" ".repeat(w - len));
            out.push_str(&s);
        }
    }
    let extra: Vec<String> = args
        .map(|a| match a {
            Val::Num(n) => format!("float64={}", print(&Val::Num(*n))),
            Val::Str(s) => format!("string={s}"),
            other => print(other),
        })
        .collect();
    if !extra.is_empty() {
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data<'a>(labels: &'a [(String, String)], value: f64) -> TemplateData<'a> {
        TemplateData {
            labels,
            value,
            external_labels: &[],
            external_url: "http://tessera:9480",
        }
    }

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn expands_labels_value_and_external_labels() {
        let labels = l(&[("instance", "n1:9100"), ("gpu", "3")]);
        let ext = l(&[("cluster", "eu1")]);
        let d = TemplateData {
            external_labels: &ext,
            ..data(&labels, 91.5)
        };
        let e = |t: &str| expand(t, &d).unwrap();
        assert_eq!(
            e("GPU {{ $labels.gpu }} on {{$labels.instance}} is at {{ $value }} C"),
            "GPU 3 on n1:9100 is at 91.5 C"
        );
        assert_eq!(e("{{ .Labels.gpu }}/{{ .Value }}"), "3/91.5");
        assert_eq!(e("{{ $externalLabels.cluster }}"), "eu1");
        assert_eq!(e("{{ $labels.missing }}"), "<no value>");
        assert_eq!(e("a  {{- $labels.gpu -}}  b"), "a3b");
        assert_eq!(e("a\n{{-\t$labels.gpu\n-}}\nb"), "a3b");
        assert_eq!(e("{{ -1 }}"), "-1");
        assert_eq!(e("x{{/* note */}}y"), "xy");
        assert_eq!(e("{{ $externalURL }}"), "http://tessera:9480");
        assert_eq!(e("{{ $labels }}"), "map[gpu:3 instance:n1:9100]");
    }

    #[test]
    fn prints_values_as_go_does() {
        let f = |v: f64| expand("{{ $value }}", &data(&[], v)).unwrap();
        assert_eq!(f(95.0), "95");
        assert_eq!(f(0.5), "0.5");
        assert_eq!(f(1e6), "1e+06");
        assert_eq!(f(123456.0), "123456");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(0.00001), "1e-05");
        assert_eq!(f(-2.25), "-2.25");
        assert_eq!(f(f64::INFINITY), "+Inf");
        assert_eq!(f(f64::NAN), "NaN");
    }

    #[test]
    fn humanize_functions_match_prometheus() {
        let f = |t: &str, v: f64| expand(t, &data(&[], v)).unwrap_or_else(|e| error_text(&e));
        assert_eq!(f("{{ $value | humanize }}", 1234567.0), "1.235M");
        assert_eq!(f("{{ humanize $value }}", 0.0123), "12.3m");
        assert_eq!(f("{{ humanize $value }}", 0.0), "0");
        assert_eq!(f("{{ humanize $value }}", 999.0), "999");
        assert_eq!(f("{{ $value | humanize1024 }}", 1048576.0), "1Mi");
        assert_eq!(f("{{ $value | humanizePercentage }}", 0.1234), "12.34%");
        assert_eq!(f("{{ $value | humanizePercentage }}", 1.0), "100%");
        assert_eq!(f("{{ $value | humanizeDuration }}", 3661.0), "1h 1m 1s");
        assert_eq!(f("{{ $value | humanizeDuration }}", 90061.0), "1d 1h 1m 1s");
        assert_eq!(f("{{ $value | humanizeDuration }}", 5.5), "5.5s");
        assert_eq!(f("{{ $value | humanizeDuration }}", 0.25), "250ms");
        assert_eq!(f("{{ $value | humanizeDuration }}", 0.0), "0s");
        assert_eq!(f("{{ \"2048\" | humanize1024 }}", 0.0), "2ki");
        assert_eq!(
            f("{{ \"x\" | humanize }}", 0.0),
            "<error expanding template: strconv.ParseFloat: parsing \"x\": invalid syntax>"
        );
    }

    #[test]
    fn printf_follows_go() {
        let labels = l(&[("device", "sda")]);
        let f = |t: &str| expand(t, &data(&labels, 0.98765)).unwrap();
        assert_eq!(f("{{ printf \"%.2f\" $value }}"), "0.99");
        assert_eq!(f("{{ $value | printf \"%.1f%%\" }}"), "1.0%");
        assert_eq!(
            f("{{ printf \"%s=%g\" $labels.device $value }}"),
            "sda=0.98765"
        );
        assert_eq!(
            f("{{ printf \"%5.1f|%-5s|%05.1f\" 3.14159 \"ab\" 2.5 }}"),
            "  3.1|ab   |002.5"
        );
        assert_eq!(f("{{ printf \"%e\" 1234.5 }}"), "1.234500e+03");
        assert_eq!(f("{{ printf \"%d\" $value }}"), "%!d(float64=0.98765)");
        assert_eq!(f("{{ printf \"%s %s\" \"a\" }}"), "a %!s(MISSING)");
        assert_eq!(f("{{ printf \"%q\" $labels.device }}"), "\"sda\"");
        assert_eq!(f("{{ $labels.device | toUpper }}"), "SDA");
        assert_eq!(f("{{ \"gpu node\" | title }}"), "Gpu Node");
    }

    #[test]
    fn unsupported_constructs_are_refused_by_name() {
        let err = |t: &str| Template::parse(t).unwrap_err();
        assert!(err("{{ query \"up\" }}").contains("template function \"query\" is not supported"));
        assert!(err("{{ $value | reReplaceAll \"a\" \"b\" }}").contains("\"reReplaceAll\""));
        assert!(err("{{ if gt $value 1.0 }}x{{ end }}").contains("template action \"if\""));
        assert!(err("{{ range $labels }}{{ end }}").contains("\"range\""));
        assert!(err("{{ $x := 1 }}").contains("assignment"));
        assert!(err("{{ $foo }}").contains("variable \"$foo\""));
        assert!(err("{{ $value").contains("unclosed"));
        assert!(err("{{ (humanize $value) }}").contains("parenthesised"));
        assert!(err("{{ $value 1 }}").contains("non-function"));
        assert!(Template::parse("plain text, no actions").is_ok());
    }
}
