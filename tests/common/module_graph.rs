//! Checks that a crate's modules import downward: lists the lines of code
//! (comments and test modules left out) that name a module they must not.
//! Used by `tests/module_graph.rs` (the binary) and
//! `tsdb/tests/module_graph.rs` (the store), included by path.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `file:line: code` for every line of code under `src` that `names`
/// flags, in files `exempt` does not cover (paths relative to `src`).
/// A file's test module (from its first `#[cfg(test)]` on) and comment
/// lines are not code for this purpose.
pub(crate) fn offending_lines(
    src: &Path,
    exempt: impl Fn(&Path) -> bool,
    names: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    assert!(files.len() > 10, "found only {} source files", files.len());
    let mut out = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        if exempt(rel) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let code = text.find("#[cfg(test)]").map_or(&*text, |i| &text[..i]);
        for (n, line) in code.lines().enumerate() {
            if !line.trim_start().starts_with("//") && names(line) {
                out.push(format!("{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    out
}
