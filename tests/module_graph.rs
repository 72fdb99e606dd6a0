//! The binary's modules import downward: `serve.rs` (and `query_cmd.rs`,
//! the query tier's start-up) wires everything, the
//! HTTP layer (`http/`) uses the rules, metrics and append modules, and
//! none of those reaches back into `http` (the rule manager once imported
//! `http::AppState` and polled it for the database). The same check for
//! the store's `Db` module is `tsdb/tests/module_graph.rs`.

use std::path::Path;

#[path = "common/module_graph.rs"]
mod module_graph;

fn names_http(line: &str) -> bool {
    line.contains("crate::http") || line.contains("super::http")
}

#[test]
fn only_serve_and_http_itself_name_the_http_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let exempt = |rel: &Path| {
        rel.starts_with("http")
            || ["serve.rs", "query_cmd.rs", "main.rs"]
                .iter()
                .any(|f| rel == Path::new(f))
    };
    let offenders = module_graph::offending_lines(&src, exempt, names_http);
    assert!(
        offenders.is_empty(),
        "modules below the HTTP layer import from it (a circle):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_check_sees_an_import_from_http() {
    assert!(names_http("use crate::http::AppState;"));
    assert!(!names_http("use crate::metrics::METRICS;"));
}
