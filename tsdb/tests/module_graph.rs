//! The crate's module graph has no circle through the `Db` module: `db/`
//! drives `shard`, `replay`, `shard_cut`, `shard_compaction`, `layout`,
//! `error`, `head`, `block`, `wal` and the rest, and none of them may
//! import from it (only `lib.rs`, which re-exports it, and the
//! `maintainer`, which runs `Db::maintain` from above, may name it).
//! Test code (`tests.rs` files, `#[cfg(test)]` modules) may build a `Db`.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

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

/// The source of a file without its test module (everything from the
/// first `#[cfg(test)]` on).
fn non_test_code(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

/// Paths that reach the `Db` module (or its items through the crate root).
fn names_db(line: &str) -> bool {
    let l = line.trim_start();
    if l.starts_with("//") {
        return false;
    }
    static RE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"crate::(db\b|Db\b|DbOptions\b)|use crate::\{[^}]*\b(Db|DbOptions|BlockPolicy|MaintenanceReport)\b",
        )
        .unwrap()
    });
    RE.is_match(l)
}

#[test]
fn no_module_imports_back_from_db() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 40, "found only {} source files", files.len());
    let allowed = |rel: &Path| {
        rel.starts_with("db")
            || rel == Path::new("lib.rs")
            || rel == Path::new("maintainer.rs")
            || rel.file_name().is_some_and(|n| n == "tests.rs")
    };
    let mut offenders = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        if allowed(rel) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in non_test_code(&text).lines().enumerate() {
            if names_db(line) {
                offenders.push(format!("{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "modules below the Db module import from it (a circle):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_check_sees_an_import_from_db() {
    assert!(names_db("use crate::db::DbError;"));
    assert!(names_db("use crate::{Db, Labels};"));
    assert!(names_db("    let x = crate::Db::in_memory(1);"));
    assert!(!names_db("use crate::error::DbError;"));
    assert!(!names_db("//! driven by `crate::db`"));
}
