//! Where a parse error is, as Prometheus says it (`1:4: parse error:
//! unexpected end of input`). `promql-parser` returns a bare message, and
//! for every grammar error the same one ("invalid promql query"), which is
//! all Grafana could show. This module finds the position (and, for
//! grammar errors, the unexpected token) by asking the parser about
//! prefixes of the query: the first token after which no prefix can be
//! completed is the unexpected one; when every prefix can be completed the
//! input ended too early.

use promql_parser::parser;

/// `promql-parser`'s message for any grammar error.
const GRAMMAR_ERROR: &str = "invalid promql query";

/// Above this many tokens a grammar error is reported without a position:
/// locating it costs a few parses per token.
const MAX_TOKENS: usize = 400;

/// Endings that complete a valid prefix into a valid query in the usual
/// places a query is cut (after an operator, inside a call, a grouping,
/// a matcher or a range). A prefix none of them completes is taken as not
/// completable.
const COMPLETIONS: &[&str] = &[
    "", " 1", " x", ")", " 1)", " x)", "))", " 1))", "]", "5m]", ":]", "}", "\"\"}", "=\"\"}",
    " (x)", "(a) (x)", "a) (x)", ") (x)", "(x)", " 5m", "(5m)", "5m])", "])",
];

/// The message and 1-based (line, column) of a parse error in `query`.
pub(crate) fn locate(query: &str, message: String) -> (String, Option<(usize, usize)>) {
    let end = || Some(line_col(query, query.len()));
    if message != GRAMMAR_ERROR {
        // Lexer errors: those about the end of the input are at its end,
        // as in Prometheus; the others at the offending character.
        let at = if message.contains("end of input") || message.starts_with("unclosed") {
            end()
        } else if message.starts_with("unterminated quoted string") {
            last_unclosed_quote(query).map(|p| line_col(query, p))
        } else {
            None
        };
        return (message, at);
    }
    let tokens = tokens(query);
    if tokens.len() > MAX_TOKENS {
        return (message, None);
    }
    for (start, stop) in &tokens {
        let prefix = &query[..*stop];
        let completable = COMPLETIONS
            .iter()
            .any(|c| parser::parse(&format!("{prefix}{c}")).is_ok());
        if !completable {
            let text = &query[*start..*stop];
            return (
                format!("unexpected {}", describe(text)),
                Some(line_col(query, *start)),
            );
        }
    }
    ("unexpected end of input".into(), end())
}

/// Prometheus' `line:col`, 1-based, columns in bytes.
fn line_col(query: &str, pos: usize) -> (usize, usize) {
    let before = &query[..pos];
    let line = before.matches('\n').count() + 1;
    let col = pos - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// How Prometheus names an unexpected token.
fn describe(text: &str) -> String {
    let first = text.chars().next().unwrap_or(' ');
    if first == '"' || first == '\'' || first == '`' {
        format!("string {text}")
    } else if first.is_ascii_digit() || first == '.' {
        format!("number {text:?}")
    } else if first.is_alphabetic() || first == '_' || first == ':' {
        format!("identifier {text:?}")
    } else if matches!(
        text,
        "+" | "-" | "*" | "/" | "%" | "^" | "==" | "!=" | "<" | ">" | "<=" | ">="
    ) {
        format!("<op:{text}>")
    } else {
        format!("{text:?}")
    }
}

/// Byte spans of the query's tokens: identifiers, numbers and durations,
/// strings, two-character operators and single punctuation.
fn tokens(q: &str) -> Vec<(usize, usize)> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        if c == b'"' || c == b'\'' || c == b'`' {
            i += 1;
            while i < b.len() && b[i] != c {
                i += if b[i] == b'\\' && c != b'`' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b':' || c == b'.' {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b':' | b'.'))
            {
                i += 1;
            }
        } else if i + 1 < b.len()
            && matches!(&b[i..i + 2], b"==" | b"!=" | b"<=" | b">=" | b"=~" | b"!~")
        {
            i += 2;
        } else {
            // One character, whole (it may be multi-byte).
            i += q[i..].chars().next().map_or(1, char::len_utf8);
        }
        out.push((start, i));
    }
    out
}

/// The byte offset of the quote that opens an unterminated string.
fn last_unclosed_quote(q: &str) -> Option<usize> {
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            let open = i;
            i += 1;
            while i < b.len() && b[i] != c {
                i += if b[i] == b'\\' && c != b'`' { 2 } else { 1 };
            }
            if i >= b.len() {
                return Some(open);
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(q: &str) -> String {
        let msg = parser::parse(q).expect_err(q);
        let (m, pos) = locate(q, msg);
        match pos {
            Some((l, c)) => format!("{l}:{c}: {m}"),
            None => m,
        }
    }

    #[test]
    fn positions_and_messages_match_prometheus() {
        // Each `want` is Prometheus 2.42's answer to the query.
        let f = |q: &str, want: &str| assert_eq!(at(q), want, "{q}");
        f("x +", "1:4: unexpected end of input");
        f("sum by (a) b", "1:12: unexpected identifier \"b\"");
        f("1 +* 2", "1:4: unexpected <op:*>");
        f("foo bar", "1:5: unexpected identifier \"bar\"");
        f("sum(", "1:5: unclosed left parenthesis");
        f("rate(x[5m]", "1:11: unclosed left parenthesis");
        f("foo{", "1:5: unexpected end of input inside braces");
        f("foo{a=\"b\"", "1:10: unexpected end of input inside braces");
        f(
            "x offset",
            "1:9: unexpected end of input in offset, expected duration",
        );
        f("\"unterminated", "1:1: unterminated quoted string \"");
        f("x\n+", "2:2: unexpected end of input");
    }
}
