//! `lowercase` / `uppercase` with Go's `strings.ToLower` / `ToUpper` results.
//!
//! Go maps each character with Unicode's *simple* case mapping (one
//! character to one character); Rust's `to_lowercase`/`to_uppercase` use
//! the *full* mapping, which turns `ß` into `SS` and `İ` into `i̇`. A
//! series relabeled by Prometheus and by Tessera must get the same label
//! value, so characters whose full mapping is several characters take
//! their simple mapping here. ASCII, by far the common case, takes a fast
//! path.

/// Appends `s` lower-cased as Go does to `dst`.
pub(crate) fn push_lower(dst: &mut String, s: &str) {
    if s.is_ascii() {
        let start = dst.len();
        dst.push_str(s);
        dst[start..].make_ascii_lowercase();
        return;
    }
    for c in s.chars() {
        let mut it = c.to_lowercase();
        match (it.next(), it.next()) {
            (Some(l), None) => dst.push(l),
            // U+0130 İ is the only character with a multi-character full
            // lowercase; its simple lowercase is `i`.
            _ if c == '\u{130}' => dst.push('i'),
            _ => dst.push(c),
        }
    }
}

/// Appends `s` upper-cased as Go does to `dst`.
pub(crate) fn push_upper(dst: &mut String, s: &str) {
    if s.is_ascii() {
        let start = dst.len();
        dst.push_str(s);
        dst[start..].make_ascii_uppercase();
        return;
    }
    for c in s.chars() {
        let mut it = c.to_uppercase();
        match (it.next(), it.next()) {
            (Some(u), None) => dst.push(u),
            _ => dst.push(simple_upper_of_multi(c)),
        }
    }
}

/// The simple uppercase of a character whose full uppercase is several
/// characters (SpecialCasing.txt). Only the Greek letters with iota
/// subscript have a simple mapping other than themselves (to their
/// titlecase form); `ß`, ligatures and the rest stay as they are.
fn simple_upper_of_multi(c: char) -> char {
    let u = c as u32;
    let mapped = match u {
        // ᾀ..ᾇ → ᾈ..ᾏ, ᾐ..ᾗ → ᾘ..ᾟ, ᾠ..ᾧ → ᾨ..ᾯ; ᾈ..ᾏ etc. map to themselves.
        0x1F80..=0x1FAF if u & 0xF < 8 => u + 8,
        0x1FB3 => 0x1FBC,
        0x1FC3 => 0x1FCC,
        0x1FF3 => 0x1FFC,
        _ => u,
    };
    char::from_u32(mapped).unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_case_like_go_strings_package() {
        let f = |input: &str, lower: &str, upper: &str| {
            let mut got = String::from("<");
            push_lower(&mut got, input);
            assert_eq!(got, format!("<{lower}"), "lower {input:?}");
            got.clear();
            push_upper(&mut got, input);
            assert_eq!(got, upper, "upper {input:?}");
        };
        f("bAr123Foo", "bar123foo", "BAR123FOO");
        f("", "", "");
        f("ÀÉÎõü", "àéîõü", "ÀÉÎÕÜ");
        f("straße", "straße", "STRAßE");
        f("İx", "ix", "İX");
        f("ΣΑΣ", "σασ", "ΣΑΣ");
        f("ﬁ", "ﬁ", "ﬁ");
        f("ᾀᾈ", "ᾀᾀ", "ᾈᾈ");
        f("ᾳ", "ᾳ", "ᾼ");
    }
}
