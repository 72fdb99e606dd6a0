//! Driving Debian's `prometheus` and `promtool` in end-to-end tests: child
//! processes that die with the test, promtool queries, and comparing the
//! answers of two servers.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::process::Command;

/// Runs `promtool <args>`; its stdout, or its stderr as the error.
pub(crate) fn promtool(args: &[&str]) -> Result<String, String> {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One query's result as `metric labels -> [(t, v)]`, from `promtool -o json`.
pub(crate) fn result_map(json: &str) -> BTreeMap<String, Vec<(f64, f64)>> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let mut out = BTreeMap::new();
    for s in v.as_array().cloned().unwrap_or_default() {
        let key = s["metric"].to_string();
        let pts: Vec<serde_json::Value> = match (s.get("value"), s.get("values")) {
            (Some(p), _) => vec![p.clone()],
            (_, Some(ps)) => ps.as_array().cloned().unwrap_or_default(),
            _ => vec![],
        };
        let parse = |p: &serde_json::Value| -> (f64, f64) {
            let v = p[1].as_str().unwrap();
            let v = match v {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                _ => v.parse().unwrap(),
            };
            (p[0].as_f64().unwrap(), v)
        };
        out.insert(key, pts.iter().map(parse).collect());
    }
    out
}

/// Equal, both NaN, or within 1e-6 relative.
pub(crate) fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

/// Runs `promtool <args> <server> <q>` against `want_url` and `got_url`
/// and asserts the same series, timestamps and values ([`close`]).
pub(crate) fn assert_same_answers(want_url: &str, got_url: &str, q: &str, args: &[&str]) {
    let run = |url: &str| {
        let mut a = args.to_vec();
        a.extend([url, q]);
        promtool(&a).unwrap_or_else(|e| panic!("{q} against {url}: {e}"))
    };
    let (want, got) = (result_map(&run(want_url)), result_map(&run(got_url)));
    assert_same_results(
        &want,
        &got,
        &format!("{q} ({got_url} vs {want_url})"),
        close,
    );
}

/// Asserts two results (of [`result_map`]) hold the same series and
/// timestamps, and values `same` says are equal.
pub(crate) fn assert_same_results(
    want: &BTreeMap<String, Vec<(f64, f64)>>,
    got: &BTreeMap<String, Vec<(f64, f64)>>,
    what: &str,
    same: impl Fn(f64, f64) -> bool,
) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "series differ for {what}"
    );
    for (k, w) in want {
        let g = &got[k];
        assert_eq!(g.len(), w.len(), "{what} {k}: points differ");
        for (a, b) in g.iter().zip(w) {
            assert_eq!(a.0, b.0, "timestamp differs for {what} {k}");
            assert!(
                same(a.1, b.1),
                "{what} {k} at {}: got {} want {}",
                a.0,
                a.1,
                b.1
            );
        }
    }
}
