//! Test inputs from outside the repository (Debian's `prometheus` packages,
//! the PromQL test scripts and fixtures under `../shared/`): where they
//! are looked for, and what a test does when one is missing.
//!
//! Outside CI a missing input is a visible skip: a `SKIPPED: ...` line on
//! stdout (shown with `--nocapture` or when the test fails) and straight on
//! stderr (shown even while the harness captures output). In CI (the `CI`
//! environment variable set and non-empty) it is a failure naming what is
//! missing and how to provide it, so a CI run never passes by skipping.
//!
//! Every crate's tests include this one file by path (`#[path]`), so the
//! rule is written once.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The Debian packages the end-to-end tests drive.
pub(crate) const PROMETHEUS_PACKAGES: &str = "apt-get install prometheus prometheus-node-exporter \
     prometheus-alertmanager (scripts/test installs them when missing)";

/// Is this a CI run (`CI` set and non-empty)?
pub(crate) fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Reports a missing input: panics in CI, else prints a visible skip and
/// returns so the caller can return. `what` says what is missing, `fix`
/// what to install or where the input is expected.
pub(crate) fn missing(what: &str, fix: &str) {
    if in_ci() {
        panic!("missing test input: {what}; {fix} (CI is set, so this fails instead of skipping)");
    }
    let line = format!("SKIPPED: {what}; {fix}");
    println!("{line}");
    // Written to the handle, not with eprintln!, which the harness captures.
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Is `bin` on PATH? When not, reports it as [`missing`].
pub(crate) fn installed(bin: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()));
    if !found {
        missing(&format!("{bin} is not installed"), PROMETHEUS_PACKAGES);
    }
    found
}

/// The directory named by the environment variable `var`, else `default`;
/// `None` (after [`missing`]) when it does not exist. `what` names its
/// contents, e.g. "the Prometheus PromQL test scripts".
pub(crate) fn input_dir(var: &str, default: &Path, what: &str) -> Option<PathBuf> {
    let dir = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| default.to_path_buf(), PathBuf::from);
    if dir.is_dir() {
        return Some(dir);
    }
    missing(
        &format!("{what} not found at {}", dir.display()),
        &format!(
            "set {var} to their directory or put them at {}",
            default.display()
        ),
    );
    None
}

/// `<workspace>/../shared/<name>`, where the project's machines keep the
/// shared inputs (`workspace` is the workspace root, as a path).
pub(crate) fn shared_dir(workspace: &str, name: &str) -> PathBuf {
    let ws = Path::new(workspace);
    let ws = ws.canonicalize().unwrap_or_else(|_| ws.to_path_buf());
    let beside = ws.parent().map_or_else(|| ws.join(".."), Path::to_path_buf);
    beside.join("shared").join(name)
}

/// The Prometheus PromQL test scripts: `$TESSERA_PROMQL_TESTDATA`, default
/// `<workspace>/../shared/promql-testdata`.
pub(crate) fn promql_testdata(workspace: &str) -> Option<PathBuf> {
    input_dir(
        "TESSERA_PROMQL_TESTDATA",
        &shared_dir(workspace, "promql-testdata"),
        "the Prometheus PromQL test scripts (promql/promqltest/testdata/*.test with eval-index.tsv)",
    )
}

/// The exporter fixtures: `$TESSERA_FIXTURES`, default
/// `<workspace>/../shared/fixtures`.
pub(crate) fn fixtures(workspace: &str) -> Option<PathBuf> {
    input_dir(
        "TESSERA_FIXTURES",
        &shared_dir(workspace, "fixtures"),
        "the exporter fixtures (dcgm/default-counters.csv, ...)",
    )
}
