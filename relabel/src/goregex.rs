//! Go RE2 regex syntax → `regex` crate syntax, where the two disagree.
//!
//! Relabel regexes are written for Prometheus, i.e. Go's `regexp`. The
//! `regex` crate accepts almost the same syntax, with a few differences
//! that would silently change which label values match:
//!
//! - Go's Perl classes `\d \w \s \b` (and negations) are ASCII-only; in the
//!   `regex` crate they are Unicode (`\d` matches `٣`). They are rewritten
//!   to ASCII classes.
//! - Inside a bracket class Go treats `[`, `&&`, `--`, `~~` as literal text;
//!   the `regex` crate reads them as nested classes and set operations.
//!   They are escaped.
//! - `\Q...\E` quoting exists in Go only; the quoted text is escaped.
//!
//! Everything else is passed through, and the `regex` crate's parser
//! reports any remaining error.

/// Go's `\s`: `[\t\n\f\r ]` (no `\v`, unlike Perl).
const SPACE: &str = r"\t\n\f\r ";
const WORD: &str = "0-9A-Za-z_";
const DIGIT: &str = "0-9";

/// Rewrites a Go regex into the `regex` crate dialect with the same meaning.
pub(crate) fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    // Inside `[...]`; `class_start` is true right after `[` or `[^`, where
    // a `]` is a literal.
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_start = std::mem::replace(&mut class_start, false);
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    // A trailing backslash: let the regex parser report it.
                    out.push('\\');
                    break;
                };
                if n == 'Q' {
                    let mut quoted = String::new();
                    while let Some(q) = chars.next() {
                        if q == '\\' && chars.peek() == Some(&'E') {
                            chars.next();
                            break;
                        }
                        quoted.push(q);
                    }
                    out.push_str(&regex::escape(&quoted));
                    continue;
                }
                match perl_class(n, in_class) {
                    Some(rep) => out.push_str(&rep),
                    None => {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
            }
            '[' if chars.peek() == Some(&':') => {
                // A POSIX class such as [:alpha:], same in both dialects.
                out.push('[');
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
            }
            '[' | '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '-' if in_class && chars.peek() == Some(&'-') => out.push_str(r"\-"),
            ']' if in_class && !at_start => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

/// The ASCII replacement of a Perl class escape, or `None` for other
/// escapes. Inside a bracket class a positive class becomes a range list
/// and a negated one a nested class (a `regex` crate extension).
fn perl_class(c: char, in_class: bool) -> Option<String> {
    let (set, negated) = match c {
        'd' => (DIGIT, false),
        'D' => (DIGIT, true),
        'w' => (WORD, false),
        'W' => (WORD, true),
        's' => (SPACE, false),
        'S' => (SPACE, true),
        'b' if !in_class => return Some(r"(?-u:\b)".to_string()),
        'B' if !in_class => return Some(r"(?-u:\B)".to_string()),
        _ => return None,
    };
    Some(match (in_class, negated) {
        (true, false) => set.to_string(),
        (_, true) => format!("[^{set}]"),
        (false, false) => format!("[{set}]"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_what_differs_from_go() {
        let f = |go: &str, want: &str| assert_eq!(translate(go), want, "{go:?}");
        f("(.*)", "(.*)");
        f(r"foo\.bar", r"foo\.bar");
        f(r"\d+", "[0-9]+");
        f(r"\D", "[^0-9]");
        f(r"[\d.]", "[0-9.]");
        f(r"[^\W]", "[^[^0-9A-Za-z_]]");
        f(r"\s", r"[\t\n\f\r ]");
        f(r"\bx", r"(?-u:\b)x");
        f(r"\\d", r"\\d");
        f("[]a]", "[]a]");
        f("[^]a]", "[^]a]");
        f("[a[b]", r"[a\[b]");
        f("[a&&b]", r"[a\&\&b]");
        f("[a~~b]", r"[a\~\~b]");
        f("[a--b]", r"[a\--b]");
        f("[[:alpha:]_]", "[[:alpha:]_]");
        f(r"\Qa.b\E.", r"a\.b.");
        f(r"\Qa.b", r"a\.b");
        f(r"\pL\p{Greek}", r"\pL\p{Greek}");
        f("a&b~c", "a&b~c");
    }

    #[test]
    fn translated_classes_match_ascii_only_as_go_does() {
        let f = |go: &str, input: &str, want: bool| {
            let re = regex::Regex::new(&format!("^(?s:{})$", translate(go))).unwrap();
            assert_eq!(re.is_match(input), want, "{go:?} on {input:?}");
        };
        f(r"\d+", "123", true);
        f(r"\d+", "١٢٣", false);
        f(r"\w+", "abc_9", true);
        f(r"\w+", "é", false);
        f(r"\W", "é", true);
        f(r"\s", "\u{a0}", false);
        f(r"\s", "\u{b}", false);
        f(r"[\d]+", "42", true);
        f(r"a\b.*", "a-b", true);
        // Go's \b is an ASCII word boundary: between `a` and `é` there is one.
        f(r"a\b.*", "aé", true);
        f("[a&&b]+", "a&b", true);
    }
}
