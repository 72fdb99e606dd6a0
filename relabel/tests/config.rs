//! Parsing relabel configs: Prometheus' defaults, accepted shapes and every
//! validation error, with the rule index and field each error names.

use tessera_relabel::{Action, RelabelConfigs, RelabelError};

fn parse(yaml: &str) -> Result<RelabelConfigs, RelabelError> {
    RelabelConfigs::from_yaml(yaml)
}

#[test]
fn absent_fields_take_prometheus_defaults() {
    let c = parse("- target_label: t\n").unwrap();
    let r = &c.rules()[0];
    assert_eq!(r.action(), Action::Replace);
    assert_eq!(r.separator(), ";");
    assert_eq!(r.regex(), "(.*)");
    assert_eq!(r.replacement(), "$1");
    assert_eq!(r.modulus(), 0);
    assert!(r.source_labels().is_empty());
    assert_eq!(r.target_label(), "t");
}

#[test]
fn keys_without_value_take_the_zero_value_as_yaml_v2_does() {
    // Prometheus' conf.good.yml has `regex:` with no value: it matches only
    // the empty string, unlike an absent regex.
    let c = parse("- target_label: t\n  regex:\n  separator:\n  replacement:\n").unwrap();
    let r = &c.rules()[0];
    assert_eq!(r.regex(), "");
    assert_eq!(r.separator(), "");
    assert_eq!(r.replacement(), "");
}

#[test]
fn accepts_a_list_or_an_object_holding_one() {
    let f = |yaml: &str, want_rules: usize| {
        let c = parse(yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
        assert_eq!(c.len(), want_rules, "{yaml:?}");
        assert_eq!(c.is_empty(), want_rules == 0);
    };
    f("", 0);
    f("# nothing yet\n", 0);
    f("[]", 0);
    f("- target_label: a\n- action: keep\n", 2);
    f("relabel_configs:\n  - target_label: a\n", 1);
    f("relabel_configs:\n", 0);
    f("metric_relabel_configs: [{action: drop}]\n", 1);
    f(
        "write_relabel_configs:\n- {action: labeldrop, regex: x}\n",
        1,
    );
    f("[{source_labels: [a, b], target_label: c}]", 1);
}

#[test]
fn parses_actions_in_any_case() {
    let f = |written: &str, want: Action| {
        let modulus = if want == Action::HashMod { "2" } else { "0" };
        let yaml = format!("- action: {written}\n  target_label: t\n  modulus: {modulus}\n");
        let c = parse(&yaml).unwrap_or_else(|e| panic!("{written}: {e}"));
        assert_eq!(c.rules()[0].action(), want);
        assert_eq!(want.to_string(), written.to_lowercase());
    };
    f("replace", Action::Replace);
    f("Replace", Action::Replace);
    f("HASHMOD", Action::HashMod);
    f("keep", Action::Keep);
    f("Drop", Action::Drop);
    f("lowercase", Action::Lowercase);
    f("UpperCase", Action::Uppercase);
    f("keepEqual", Action::KeepEqual);
    f("dropequal", Action::DropEqual);
}

#[test]
fn reads_scalars_as_text_like_go_string_fields() {
    let c = parse("- {target_label: t, replacement: 1, regex: 10, separator: 2}\n").unwrap();
    let r = &c.rules()[0];
    assert_eq!(
        (r.replacement(), r.regex(), r.separator()),
        ("1", "10", "2")
    );
}

#[test]
fn rejects_invalid_rules_naming_rule_action_and_field() {
    let f = |yaml: &str, want: RelabelError| {
        let got = parse(yaml).map(|c| c.len()).unwrap_err();
        assert_eq!(got, want, "{yaml}");
        assert_eq!(got.rule(), want.rule());
    };
    use Action::*;
    use RelabelError::*;
    let ok = "- target_label: a\n";
    // Errors name the index of the failing rule, after valid ones.
    f(
        &format!("{ok}{ok}- action: hashmod\n  target_label: s\n"),
        MissingModulus {
            rule: 2,
            action: HashMod,
        },
    );
    f("- action:\n", EmptyAction { rule: 0 });
    f(
        "- action: rewrite\n",
        UnknownAction {
            rule: 0,
            action: "rewrite".into(),
        },
    );
    f(
        "- {}\n",
        MissingTargetLabel {
            rule: 0,
            action: Replace,
        },
    );
    f(
        "- action: hashmod\n  modulus: 3\n",
        MissingTargetLabel {
            rule: 0,
            action: HashMod,
        },
    );
    for action in [Lowercase, Uppercase, KeepEqual, DropEqual] {
        f(
            &format!("- action: {action}\n"),
            MissingTargetLabel { rule: 0, action },
        );
        f(
            &format!("- action: {action}\n  target_label: 1x\n"),
            InvalidTargetLabel {
                rule: 0,
                action,
                target: "1x".into(),
            },
        );
        // Templates are only for replace.
        f(
            &format!("- action: {action}\n  target_label: ${{1}}\n"),
            InvalidTargetLabel {
                rule: 0,
                action,
                target: "${1}".into(),
            },
        );
        f(
            &format!("- action: {action}\n  target_label: t\n  replacement: x\n"),
            ReplacementNotAllowed { rule: 0, action },
        );
    }
    f(
        "- target_label: foo-bar\n",
        InvalidTargetLabel {
            rule: 0,
            action: Replace,
            target: "foo-bar".into(),
        },
    );
    // relabelTargetLegacy cases from Prometheus' TestTargetLabelLegacyValidity.
    for bad in [
        "-label",
        "${",
        "$",
        "${}",
        "foo${",
        "-foo${1}bar-",
        "bar.foo${1}bar",
    ] {
        f(
            &format!("- target_label: '{bad}'\n"),
            InvalidTargetLabel {
                rule: 0,
                action: Replace,
                target: bad.into(),
            },
        );
    }
    f(
        "- action: hashmod\n  modulus: 2\n  target_label: 'a$1'\n",
        InvalidTargetLabel {
            rule: 0,
            action: HashMod,
            target: "a$1".into(),
        },
    );
    f(
        "- action: labelmap\n  regex: (.*)\n  replacement: 'x-$1'\n",
        InvalidReplacement {
            rule: 0,
            action: LabelMap,
            replacement: "x-$1".into(),
        },
    );
    f(
        "- action: labelmap\n  replacement:\n",
        InvalidReplacement {
            rule: 0,
            action: LabelMap,
            replacement: "".into(),
        },
    );
    let eq_only = "'source_labels' and 'target_label'";
    for action in [KeepEqual, DropEqual] {
        // Even the default regex, written out, is rejected: Prometheus
        // compares the regex by identity.
        f(
            &format!("- action: {action}\n  target_label: t\n  regex: (.*)\n"),
            FieldNotAllowed {
                rule: 0,
                action,
                field: "regex",
                allowed: eq_only,
            },
        );
        f(
            &format!("- action: {action}\n  target_label: t\n  modulus: 2\n"),
            FieldNotAllowed {
                rule: 0,
                action,
                field: "modulus",
                allowed: eq_only,
            },
        );
        f(
            &format!("- action: {action}\n  target_label: t\n  separator: ','\n"),
            FieldNotAllowed {
                rule: 0,
                action,
                field: "separator",
                allowed: eq_only,
            },
        );
    }
    for action in [LabelDrop, LabelKeep] {
        let g = |extra: &str, field: &'static str| {
            f(
                &format!("- action: {action}\n  regex: x\n  {extra}\n"),
                FieldNotAllowed {
                    rule: 0,
                    action,
                    field,
                    allowed: "'regex'",
                },
            );
        };
        g("source_labels: [a]", "source_labels");
        g("source_labels: []", "source_labels");
        g("target_label: t", "target_label");
        g("modulus: 3", "modulus");
        g("separator: ','", "separator");
        g("replacement: x", "replacement");
    }
    f(
        "- source_labels: [ok, 'bad-name']\n  target_label: t\n",
        InvalidSourceLabel {
            rule: 0,
            action: Replace,
            name: "bad-name".into(),
        },
    );
    f(
        "- target_label: t\n  regex: '('\n",
        InvalidRegex {
            rule: 0,
            action: Replace,
            message: "cannot compile \"(\": unclosed group".into(),
        },
    );
    f(
        "- target_lable: t\n",
        UnknownField {
            rule: 0,
            field: "target_lable".into(),
        },
    );
}

#[test]
fn accepts_the_rules_prometheus_accepts() {
    let f = |yaml: &str| {
        parse(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    };
    // From TestTargetLabelLegacyValidity: valid templated targets.
    for good in [
        "label",
        "label${1}",
        "${1}label",
        "${1}",
        "$1",
        "asd$2asd",
        "_${1}_",
        "foo${bar}foo",
    ] {
        f(&format!("- target_label: '{good}'\n"));
    }
    f("- action: labelmap\n  regex: __meta_kubernetes_pod_label_(strimzi_io_.+)\n");
    f("- action: labelmap\n  regex: __meta_(.+)\n  replacement: ${1}\n");
    f("- action: keepequal\n  source_labels: [a]\n  target_label: b\n  separator: ';'\n");
    f("- action: labeldrop\n  regex: x\n  source_labels:\n  separator: ';'\n");
    f("- action: hashmod\n  source_labels: [a]\n  target_label: s\n  modulus: 8\n");
    f("- action: drop\n  source_labels: [__name__]\n  regex: 'go_.*'\n");
}

#[test]
fn reports_type_and_shape_errors_with_rule_and_field() {
    let f = |yaml: &str, rule: Option<usize>, field: Option<&str>| {
        let e = parse(yaml).map(|c| c.len()).unwrap_err();
        assert_eq!((e.rule(), e.field()), (rule, field), "{yaml}: {e}");
    };
    f(
        "- target_label: a\n- modulus: -1\n",
        Some(1),
        Some("modulus"),
    );
    f("- source_labels: a\n", Some(0), Some("source_labels"));
    f(
        "- source_labels: [{a: b}]\n",
        Some(0),
        Some("source_labels"),
    );
    f(
        "- target_label: a\n  target_label: b\n",
        Some(0),
        Some("target_label"),
    );
    f("- [a]\n", None, None);
    f("just text\n", None, None);
    f("{\n", None, None);
    f("foo: []\n", None, None);
    f("relabel_configs: []\nrelabel_configs: []\n", None, None);
}

#[test]
fn error_messages_say_where_and_what() {
    let f = |yaml: &str, want: &str| {
        let e = parse(yaml).map(|c| c.len()).unwrap_err();
        assert_eq!(e.to_string(), want);
    };
    f(
        "- target_label: a\n- action: hashmod\n  target_label: s\n",
        "relabel_configs[1] (hashmod): field 'modulus': relabel configuration for hashmod requires non-zero modulus",
    );
    f(
        "- action: Lowercase\n",
        "relabel_configs[0] (lowercase): field 'target_label': relabel configuration for lowercase action requires 'target_label' value",
    );
    f(
        "- action: labelkeep\n  regex: a\n  target_label: b\n",
        "relabel_configs[0] (labelkeep): field 'target_label': labelkeep action requires only 'regex', and no other fields",
    );
}
