//! `$1`, `${1}`, `$name`, `${name}` expansion with Go's `Regexp.Expand` rules.
//!
//! Prometheus expands `replacement` and `target_label` with Go's
//! `regexp.Expand`. The `regex` crate's `Captures::expand` is close but not
//! the same: it parses `$01` as group 1 (Go: a group *named* "01", so empty)
//! and accepts any character between braces. Relabel configs are copied
//! between Prometheus and Tessera verbatim, so the Go rules are reproduced
//! here exactly:
//!
//! - `$$` is a literal `$`;
//! - `$name` takes the longest run of letters, digits and `_`, so `$1x` is
//!   the group named "1x", not group 1 followed by `x`;
//! - `${name}` ends at `}`; a missing `}` or an empty name leaves the `$`
//!   as literal text;
//! - a name of ASCII digits without a leading zero (below 10^8) is a group
//!   number; a group that does not exist or did not participate expands to
//!   nothing.

use regex::{CaptureLocations, Regex};

/// A group reference parsed from a template.
#[derive(Debug, PartialEq, Eq)]
enum GroupRef<'t> {
    Index(usize),
    Name(&'t str),
}

/// Appends `template`, expanded with the match `locs` of `re` in
/// `haystack`, to `dst`.
pub(crate) fn expand(
    dst: &mut String,
    template: &str,
    re: &Regex,
    haystack: &str,
    locs: &CaptureLocations,
) {
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        dst.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            dst.push('$');
            rest = after;
            continue;
        }
        let Some((group, after)) = parse_ref(rest) else {
            // Malformed reference: Go writes the `$` as text and goes on
            // scanning right after it.
            dst.push('$');
            continue;
        };
        rest = after;
        let index = match group {
            GroupRef::Index(i) => Some(i),
            GroupRef::Name(name) => re.capture_names().position(|n| n == Some(name)),
        };
        if let Some((start, end)) = index.and_then(|i| locs.get(i)) {
            dst.push_str(&haystack[start..end]);
        }
    }
    dst.push_str(rest);
}

/// Go's `extract`: parses the reference after a `$`, returning it and the
/// text after it, or `None` when the reference is malformed.
fn parse_ref(s: &str) -> Option<(GroupRef<'_>, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    // Go accepts unicode.IsLetter, unicode.IsDigit and '_'.
    let len = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if len == 0 {
        return None;
    }
    let name = &body[..len];
    let mut rest = &body[len..];
    if braced {
        rest = rest.strip_prefix('}')?;
    }
    Some((group_ref(name), rest))
}

fn group_ref(name: &str) -> GroupRef<'_> {
    let b = name.as_bytes();
    let numeric = b.iter().all(u8::is_ascii_digit) && !(b[0] == b'0' && b.len() > 1);
    // Go gives up on numbers from 10^8 on; they then name a group, which
    // cannot exist, so both roads lead to an empty expansion.
    match name.parse::<usize>() {
        Ok(n) if numeric && n < 100_000_000 => GroupRef::Index(n),
        _ => GroupRef::Name(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_go_regexp_expand() {
        let re = Regex::new(r"^(?s:(?P<first>a+)(b*)(?P<x1>c)?(d)?)$").unwrap();
        let f = |template: &str, haystack: &str, want: &str| {
            let mut locs = re.capture_locations();
            assert!(re.captures_read(&mut locs, haystack).is_some());
            let mut got = String::new();
            expand(&mut got, template, &re, haystack, &locs);
            assert_eq!(got, want, "template {template:?} on {haystack:?}");
        };
        f("$1", "aab", "aa");
        f("${1}", "aab", "aa");
        f("$0", "aab", "aab");
        f("<$2>", "aab", "<b>");
        f("$first-$2", "aabb", "aa-bb");
        f("${first}x", "aab", "aax");
        // `$1x` is the group named "1x", which does not exist: empty.
        f("$1x", "aab", "");
        f("${1}x", "aab", "aax");
        // `$x1` is the named group x1 (here: did not participate, then did).
        f("[$x1]", "aab", "[]");
        f("[$x1]", "aabc", "[c]");
        // `$01` is a name in Go, not group 1.
        f("$01", "aab", "");
        f("$$1", "aab", "$1");
        f("$$$1", "aab", "$aa");
        // Malformed references stay as text.
        f("$", "aab", "$");
        f("a$", "aab", "a$");
        f("${", "aab", "${");
        f("${1", "aab", "${1");
        f("${}", "aab", "${}");
        f("$-1", "aab", "$-1");
        f("${1-}", "aab", "${1-}");
        // Out of range and non-participating groups expand to nothing.
        f("[$9]", "aab", "[]");
        f("[$4]", "aab", "[]");
        f("[$4]", "aabcd", "[d]");
        f("[$999999999]", "aab", "[]");
        f("no refs", "aab", "no refs");
        f("ch${1}-ch${1}", "aab", "chaa-chaa");
    }

    #[test]
    fn group_numbers_follow_go_rules() {
        let f = |name: &str, want: GroupRef<'_>| assert_eq!(group_ref(name), want, "{name:?}");
        f("0", GroupRef::Index(0));
        f("12", GroupRef::Index(12));
        f("012", GroupRef::Name("012"));
        f("1a", GroupRef::Name("1a"));
        f("99999999", GroupRef::Index(99_999_999));
        f("100000000", GroupRef::Name("100000000"));
        f("name", GroupRef::Name("name"));
    }
}
