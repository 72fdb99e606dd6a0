//! The Prometheus text exposition format (version 0.0.4): `# HELP` and
//! `# TYPE` lines, sample lines with escaped label values, numbers.

use std::fmt::Write;

/// Writes `# HELP` and `# TYPE` lines.
pub(crate) fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample line; `le` adds the bucket label.
pub(crate) fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    label_names: &[&str],
    label_values: &[String],
    le: Option<&str>,
    v: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !label_names.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (n, v) in label_names.iter().zip(label_values) {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{n}=\"{}\"", escape(v));
        }
        if let Some(le) = le {
            if !first {
                out.push(',');
            }
            let _ = write!(out, "le=\"{le}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", fmt_f64(v));
}

/// A single gauge or counter sample with no labels.
pub(crate) fn single(out: &mut String, name: &str, help: &str, kind: &str, v: f64) {
    header(out, name, help, kind);
    sample(out, name, "", &[], &[], None, v);
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text-format number: integers without a fraction, `+Inf`, `NaN`.
pub(super) fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        let mut out = String::new();
        sample(
            &mut out,
            "m",
            "",
            &["a"],
            &["x\"y\\z\n".into()],
            None,
            f64::INFINITY,
        );
        assert_eq!(out, "m{a=\"x\\\"y\\\\z\\n\"} +Inf\n");
    }
}
