//! The rule files shipped in `deploy/rules/` load in Tessera's parser (and
//! Tessera therefore accepts what `promtool check rules` accepts there,
//! alert templates included). `rules_promtool.rs` checks what they fire.

use std::path::Path;

use tessera_query::rules::file::{expand_patterns, load_file};

#[test]
fn shipped_rule_files_load_without_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rules");
    let files = expand_patterns(&[format!("{}/*.yml", dir.display())]).unwrap();
    assert!(!files.is_empty(), "no rule files under {}", dir.display());
    for f in files {
        let groups = load_file(&f).unwrap_or_else(|e| panic!("{e}"));
        assert!(!groups.is_empty(), "{}: no groups", f.display());
        for g in &groups {
            assert!(
                !g.rules.is_empty(),
                "{}: group {} is empty",
                f.display(),
                g.name
            );
        }
    }
}
