//! The crate's module graph has no circle through the `Db` module: `db/`
//! drives `shard`, `replay`, `shard_cut`, `shard_compaction`, `layout`,
//! `error`, `head`, `block`, `wal` and the rest, and none of them may
//! import from it (only `lib.rs`, which re-exports it, and the
//! `maintainer`, which runs `Db::maintain` from above, may name it).
//! Test code (`tests.rs` files, `#[cfg(test)]` modules) may build a `Db`.

use std::path::Path;
use std::sync::LazyLock;

#[path = "../../tests/common/module_graph.rs"]
mod module_graph;

/// Paths that reach the `Db` module (or its items through the crate root).
fn names_db(line: &str) -> bool {
    static RE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"crate::(db\b|Db\b|DbOptions\b)|use crate::\{[^}]*\b(Db|DbOptions|BlockPolicy|MaintenanceReport)\b",
        )
        .unwrap()
    });
    RE.is_match(line)
}

#[test]
fn no_module_imports_back_from_db() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let exempt = |rel: &Path| {
        rel.starts_with("db")
            || rel == Path::new("lib.rs")
            || rel == Path::new("maintainer.rs")
            || rel.file_name().is_some_and(|n| n == "tests.rs")
    };
    let offenders = module_graph::offending_lines(&src, exempt, names_db);
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
}
