//! Applying rules: every action and default, the cases of Prometheus'
//! `TestRelabel` (model/relabel/relabel_test.go) that apply to legacy
//! label names, template expansion and the Builder ordering details.

use tessera_relabel::{Outcome, RelabelConfigs, Scratch, hashmod};
use tessera_tsdb::{Labels, LabelsError};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// Applies `yaml` to `input`; `want` None means the series is dropped.
fn check(yaml: &str, input: &[(&str, &str)], want: Option<&[(&str, &str)]>) {
    let rules = RelabelConfigs::from_yaml(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    let mut ls = labels(input);
    let outcome = rules.apply(&mut ls);
    match want {
        Some(want) => {
            assert_eq!(outcome, Outcome::Keep, "{yaml}");
            assert_eq!(ls, labels(want), "{yaml}");
        }
        None => assert!(
            matches!(outcome, Outcome::Drop { .. }),
            "{yaml}: {outcome:?} {ls}"
        ),
    }
}

const ABC: &[(&str, &str)] = &[("a", "foo"), ("b", "bar"), ("c", "baz")];

#[test]
fn replace_matches_prometheus_test_relabel() {
    let f = check;
    f(
        "- {source_labels: [a], regex: f(.*), target_label: d, replacement: 'ch${1}-ch${1}'}",
        ABC,
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
    );
    f(
        "- {source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'}
- {source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, replacement: '$1$2$2$3'}",
        ABC,
        Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
    );
    f(
        "- {source_labels: [a], regex: '.*(b).*', target_label: d}",
        &[("a", "abc")],
        Some(&[("a", "abc"), ("d", "b")]),
    );
    // No match: no replacement.
    f(
        "- {source_labels: [a], regex: f, target_label: b, replacement: bar}",
        &[("a", "boo")],
        Some(&[("a", "boo")]),
    );
    // An empty replacement deletes the (templated) target.
    f(
        "- {source_labels: [a], regex: '(f).*', target_label: $1, replacement: $2}",
        &[("a", "foo"), ("f", "baz")],
        Some(&[("a", "foo")]),
    );
    f(
        "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${1}', replacement: '${2}'}",
        &[("a", "some-name-value")],
        Some(&[("a", "some-name-value"), ("name", "value")]),
    );
    f(
        "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${1}', replacement: '${3}'}",
        &[("a", "some-name-value")],
        Some(&[("a", "some-name-value")]),
    );
    // A target that expands to an invalid name ("" or "0") skips the rule.
    f(
        "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${3}', replacement: '${1}'}
- {source_labels: [a], regex: 'some-([^-]+)(-[^,]+)', target_label: '${3}', replacement: '${1}'}
- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${2}', replacement: '${1}'}",
        &[("a", "some-name-0")],
        Some(&[("a", "some-name-0")]),
    );
    f(
        r"- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)path:(/[^,]+).*', target_label: __metrics_path__, replacement: '${1}'}
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)job:([^,]+).*', target_label: job, replacement: '${1}'}
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', target_label: '${1}', replacement: '${2}'}",
        &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
        Some(&[
            ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
            ("__metrics_path__", "/secret"),
            ("job", "some-job"),
            ("foo", "bar"),
        ]),
    );
    // `.` matches newlines: the regex is wrapped in (?s:...).
    f(
        "- {source_labels: [a], regex: 'line1.*line2', target_label: d, replacement: 'match${1}'}",
        &[("a", "line1\nline2"), ("b", "bar")],
        Some(&[("a", "line1\nline2"), ("b", "bar"), ("d", "match")]),
    );
    f(
        "- {source_labels: [a], regex: '(line1).*(?P<second>line2)', target_label: 'label1_${1}', replacement: 'val_${second}'}
- {source_labels: [a], regex: '(line1).*(?P<second>line2)', target_label: 'label2_$1', replacement: 'val_$second'}",
        &[("a", "line1\nline2")],
        Some(&[("a", "line1\nline2"), ("label1_line1", "val_line2"), ("label2_line1", "val_line2")]),
    );
    f(
        "- {source_labels: [__name__], regex: '.*_total$', target_label: __type__, replacement: counter}",
        &[("__name__", "http_requests_total")],
        Some(&[("__name__", "http_requests_total"), ("__type__", "counter")]),
    );
    // prometheus/prometheus#12283: a label dropped then set again.
    f(
        "- {regex: '^__meta_kubernetes_pod_container_port_name$', action: labeldrop}
- {source_labels: [__meta_kubernetes_pod_annotation_XXX_metrics_port], regex: '(.+)', replacement: metrics, target_label: __meta_kubernetes_pod_container_port_name}
- {source_labels: [__meta_kubernetes_pod_container_port_name], regex: '^metrics$', action: keep}",
        &[
            ("__meta_kubernetes_pod_container_port_name", "foo"),
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
        ],
        Some(&[
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
            ("__meta_kubernetes_pod_container_port_name", "metrics"),
        ]),
    );
}

#[test]
fn replace_defaults_copy_the_joined_sources() {
    let f = check;
    // Default regex (.*), replacement $1, separator ';'.
    f(
        "- {source_labels: [a, b], target_label: t}",
        ABC,
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("t", "foo;bar")]),
    );
    // Absent sources join as empty strings.
    f(
        "- {source_labels: [a, x, c], target_label: t}",
        ABC,
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("t", "foo;;baz")]),
    );
    f(
        "- {source_labels: [a, b], separator: '', target_label: t}",
        ABC,
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("t", "foobar")]),
    );
    // No sources: static value.
    f(
        "- {target_label: cluster, replacement: gpu-east}",
        &[("a", "1")],
        Some(&[("a", "1"), ("cluster", "gpu-east")]),
    );
    // Copying an absent label removes the target.
    f(
        "- {source_labels: [x], target_label: a}",
        &[("a", "1")],
        Some(&[]),
    );
    // `regex:` with no value matches only the empty string.
    f(
        "- {target_label: t, regex: , replacement: static}",
        &[("a", "1")],
        Some(&[("a", "1"), ("t", "static")]),
    );
    f(
        "- {source_labels: [a], target_label: t, regex: , replacement: static}",
        &[("a", "1")],
        Some(&[("a", "1")]),
    );
    // The regex is anchored at both ends.
    f(
        "- {source_labels: [a], regex: o, target_label: t, replacement: hit}",
        ABC,
        Some(ABC),
    );
    f(
        "- {source_labels: [a], regex: 'f|o', target_label: t, replacement: hit}",
        ABC,
        Some(ABC),
    );
    f(
        "- {source_labels: [a], regex: 'fo+', target_label: t, replacement: hit}",
        ABC,
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("t", "hit")]),
    );
}

#[test]
fn keep_and_drop_decide_on_the_anchored_regex() {
    let f = check;
    f(
        "- {source_labels: [a], regex: '.*o.*', action: drop}",
        &[("a", "foo"), ("b", "bar")],
        None,
    );
    f(
        "- {source_labels: [a], regex: no-match, action: drop}",
        &[("a", "foo")],
        Some(&[("a", "foo")]),
    );
    f(
        "- {source_labels: [a], regex: 'f|o', action: drop}",
        &[("a", "foo")],
        Some(&[("a", "foo")]),
    );
    f(
        "- {source_labels: [a], regex: no-match, action: keep}",
        &[("a", "foo")],
        None,
    );
    f(
        "- {source_labels: [a], regex: 'f.*', action: keep}",
        &[("a", "foo")],
        Some(&[("a", "foo")]),
    );
    // Default regex matches everything, including an absent label.
    f(
        "- {source_labels: [x], action: drop}",
        &[("a", "foo")],
        None,
    );
    f(
        "- {source_labels: [x], regex: '.+', action: keep}",
        &[("a", "foo")],
        None,
    );
    f(
        "- {source_labels: [a], regex: '.*o.*', action: drop}\n- {source_labels: [a], regex: 'f(.*)', target_label: d}",
        &[("a", "foo")],
        None,
    );
}

#[test]
fn drop_reports_the_index_of_the_rule_that_dropped() {
    let rules = RelabelConfigs::from_yaml(
        "- {target_label: t, replacement: x}\n- {source_labels: [a], regex: 'n.*', action: drop}\n- {source_labels: [a], regex: 'y', action: keep}",
    )
    .unwrap();
    let f = |a: &str, want: Outcome| assert_eq!(rules.apply(&mut labels(&[("a", a)])), want, "{a}");
    f("no", Outcome::Drop { rule: 1 });
    f("maybe", Outcome::Drop { rule: 2 });
    f("y", Outcome::Keep);
}

#[test]
fn keepequal_and_dropequal_compare_with_the_target_label() {
    let ports = &[
        ("__tmp_port", "1234"),
        ("__port1", "1234"),
        ("__port2", "5678"),
    ];
    let f = check;
    f(
        "- {source_labels: [__tmp_port], action: keepequal, target_label: __port1}",
        ports,
        Some(ports),
    );
    f(
        "- {source_labels: [__tmp_port], action: dropequal, target_label: __port1}",
        ports,
        None,
    );
    f(
        "- {source_labels: [__tmp_port], action: dropequal, target_label: __port2}",
        ports,
        Some(ports),
    );
    f(
        "- {source_labels: [__tmp_port], action: keepequal, target_label: __port2}",
        ports,
        None,
    );
    // An absent label equals the empty string.
    f(
        "- {source_labels: [x], action: keepequal, target_label: y}",
        ports,
        Some(ports),
    );
    f(
        "- {source_labels: [x], action: dropequal, target_label: y}",
        ports,
        None,
    );
}

#[test]
fn hashmod_sets_prometheus_shard_numbers() {
    let f = check;
    f(
        "- {source_labels: [c], target_label: d, action: hashmod, modulus: 1000}",
        ABC,
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
    );
    f(
        "- {source_labels: [a], target_label: b, action: hashmod, modulus: 1000}",
        &[("a", "foo\nbar")],
        Some(&[("a", "foo\nbar"), ("b", "734")]),
    );
    // Multiple sources hash the joined string.
    let joined = hashmod(b"foo;bar", 7).to_string();
    f(
        "- {source_labels: [a, b], target_label: s, action: HashMod, modulus: 7}",
        &[("a", "foo"), ("b", "bar")],
        Some(&[("a", "foo"), ("b", "bar"), ("s", &joined)]),
    );
    // Prometheus' kubernetes benchmark config: shard on __address__ then keep shard 0.
    let addr = "10.132.183.40:80";
    let keep = hashmod(addr.as_bytes(), 3) == 0;
    let yaml =
        "- {source_labels: [__address__], target_label: __tmp_hash, modulus: 3, action: hashmod}
- {source_labels: [__tmp_hash], regex: ^0$, action: keep}
- {regex: __tmp_hash, action: labeldrop}";
    f(
        yaml,
        &[("__address__", addr)],
        keep.then_some(&[("__address__", addr)][..]),
    );
}

#[test]
fn labelmap_copies_matching_labels_under_new_names() {
    let f = check;
    f(
        "- {regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}",
        &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
        Some(&[
            ("a", "foo"),
            ("b1", "bar"),
            ("b2", "baz"),
            ("bar_b1", "bar"),
            ("bar_b2", "baz"),
        ]),
    );
    f(
        "- {regex: '__meta_(my.*)', replacement: '${1}', action: labelmap}",
        &[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
        ],
        Some(&[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
            ("my_bar", "aaa"),
            ("my_baz", "bbb"),
        ]),
    );
    // Default replacement $1.
    f(
        "- {regex: '__meta_kubernetes_pod_label_(.+)', action: labelmap}",
        &[("__meta_kubernetes_pod_label_app", "web"), ("job", "x")],
        Some(&[
            ("__meta_kubernetes_pod_label_app", "web"),
            ("app", "web"),
            ("job", "x"),
        ]),
    );
    // Values come from the labels as they were when the rule started:
    // a→b then b→c copies b's old value, not the one just set.
    f(
        "- {regex: '(a|b)', replacement: 'x$1', action: labelmap}\n- {regex: 'x(a|b)', replacement: '$1', action: labelmap}",
        &[("a", "1"), ("b", "2")],
        Some(&[("a", "1"), ("b", "2"), ("xa", "1"), ("xb", "2")]),
    );
    f(
        "- {regex: '(a|b)', replacement: b, action: labelmap}",
        &[("a", "1"), ("b", "2")],
        Some(&[("a", "1"), ("b", "2")]),
    );
}

#[test]
fn labelmap_conflicts_resolve_in_prometheus_builder_order() {
    let f = check;
    // Input labels are visited in sorted order: the later one wins.
    f(
        "- {regex: '(?:p|q)_(.*)', action: labelmap}",
        &[("p_x", "from_p"), ("q_x", "from_q")],
        Some(&[("p_x", "from_p"), ("q_x", "from_q"), ("x", "from_q")]),
    );
    // A label set by an earlier rule is visited after the input labels,
    // even if it sorts first, so it wins.
    // Re-setting an input label to its own value moves it there too.
    f(
        "- {source_labels: [p_x], target_label: p_x}\n- {regex: '(?:p|q)_(.*)', action: labelmap}",
        &[("p_x", "from_p"), ("q_x", "from_q")],
        Some(&[("p_x", "from_p"), ("q_x", "from_q"), ("x", "from_p")]),
    );
    f(
        "- {target_label: p_x, replacement: set}\n- {regex: '(?:p|q)_(.*)', action: labelmap}",
        &[("q_x", "from_q")],
        Some(&[("p_x", "set"), ("q_x", "from_q"), ("x", "set")]),
    );
    // Labels set later are visited later: among two set labels, the
    // second set wins.
    f(
        "- {target_label: q_x, replacement: one}\n- {target_label: p_x, replacement: two}\n- {regex: '(?:p|q)_(.*)', action: labelmap}",
        &[],
        Some(&[("p_x", "two"), ("q_x", "one"), ("x", "two")]),
    );
}

#[test]
fn labeldrop_and_labelkeep_filter_names() {
    let f = check;
    let input = &[("a", "foo"), ("b1", "bar"), ("b2", "baz")];
    f(
        "- {regex: '(b.*)', action: labelkeep}",
        input,
        Some(&[("b1", "bar"), ("b2", "baz")]),
    );
    f(
        "- {regex: '(b.*)', action: labeldrop}",
        input,
        Some(&[("a", "foo")]),
    );
    // Anchored: `b` alone matches no name here.
    f("- {regex: b, action: labeldrop}", input, Some(input));
    f(
        "- {regex: '__tmp_.*', action: LabelDrop}",
        &[("__tmp_x", "1"), ("job", "j")],
        Some(&[("job", "j")]),
    );
}

#[test]
fn lowercase_and_uppercase_write_the_target() {
    let f = check;
    f(
        "- {source_labels: [foo], action: uppercase, target_label: foo_uppercase}\n- {source_labels: [foo], action: lowercase, target_label: foo_lowercase}",
        &[("foo", "bAr123Foo")],
        Some(&[
            ("foo", "bAr123Foo"),
            ("foo_lowercase", "bar123foo"),
            ("foo_uppercase", "BAR123FOO"),
        ]),
    );
    f(
        "- {source_labels: [a, b], action: Uppercase, target_label: a}",
        ABC,
        Some(&[("a", "FOO;BAR"), ("b", "bar"), ("c", "baz")]),
    );
    // Go maps ß to itself (simple case mapping), not to SS.
    f(
        "- {source_labels: [a], action: uppercase, target_label: a}",
        &[("a", "straße")],
        Some(&[("a", "STRAßE")]),
    );
    // An empty result removes the target.
    f(
        "- {source_labels: [x], action: lowercase, target_label: a}",
        &[("a", "A")],
        Some(&[]),
    );
}

#[test]
fn go_regex_classes_are_ascii_like_prometheus() {
    let f = check;
    f(
        r"- {source_labels: [a], regex: '\d+', action: keep}",
        &[("a", "123")],
        Some(&[("a", "123")]),
    );
    // Arabic-Indic digits are not \d in Go.
    f(
        r"- {source_labels: [a], regex: '\d+', action: keep}",
        &[("a", "١٢٣")],
        None,
    );
    f(
        r"- {source_labels: [a], regex: '\w+', action: drop}",
        &[("a", "é")],
        Some(&[("a", "é")]),
    );
}

#[test]
fn dollar_one_x_is_a_named_group_as_in_go() {
    let f = check;
    // `$1x` names group "1x" (absent): empty result, target removed.
    f(
        "- {source_labels: [a], regex: '(.*)', target_label: a, replacement: '$1x'}",
        &[("a", "v")],
        Some(&[]),
    );
    f(
        "- {source_labels: [a], regex: '(.*)', target_label: a, replacement: '${1}x'}",
        &[("a", "v")],
        Some(&[("a", "vx")]),
    );
    f(
        "- {source_labels: [a], regex: '(.*)', target_label: a, replacement: '$$1'}",
        &[("a", "v")],
        Some(&[("a", "$1")]),
    );
    f(
        "- {source_labels: [a], regex: '(?P<n>.*)', target_label: 'x_$n', replacement: '<${n}>'}",
        &[("a", "v")],
        Some(&[("a", "v"), ("x_v", "<v>")]),
    );
}

#[test]
fn invalid_label_names_after_relabeling_are_reported() {
    let f = |yaml: &str, input: &[(&str, &str)], want: Outcome| {
        let rules = RelabelConfigs::from_yaml(yaml).unwrap();
        assert_eq!(rules.apply(&mut labels(input)), want, "{yaml}");
    };
    // labelmap's replacement `$2` refers to no group: an empty name.
    f(
        "- {regex: '(a)', replacement: $2, action: labelmap}",
        &[("a", "1")],
        Outcome::Invalid(LabelsError::InvalidName(String::new())),
    );
    f(
        "- {regex: '(.*)', replacement: '$1', action: labelmap}",
        &[("__name__", "up"), ("bad-name", "1")],
        Outcome::Invalid(LabelsError::InvalidName("bad-name".into())),
    );
    // `__`-prefixed labels are valid names and are kept for the caller.
    f(
        "- {target_label: __tmp_x, replacement: v}",
        &[("__name__", "up")],
        Outcome::Keep,
    );
}

#[test]
fn one_scratch_serves_several_rule_lists() {
    let first = RelabelConfigs::from_yaml(
        "- {source_labels: [a], regex: '(.)(.)', target_label: t, replacement: '$2$1'}",
    )
    .unwrap();
    let second = RelabelConfigs::from_yaml(
        "- {source_labels: [a], regex: '(.)(.)(.)', target_label: t, replacement: '$3'}",
    )
    .unwrap();
    let mut scratch = Scratch::default();
    for _ in 0..3 {
        let mut ls = labels(&[("a", "xy")]);
        assert_eq!(first.apply_with(&mut ls, &mut scratch), Outcome::Keep);
        assert_eq!(ls.get("t"), Some("yx"));
        let mut ls = labels(&[("a", "xyz")]);
        assert_eq!(second.apply_with(&mut ls, &mut scratch), Outcome::Keep);
        assert_eq!(ls.get("t"), Some("z"));
    }
}

#[test]
fn an_empty_rule_list_keeps_labels_unchanged() {
    let rules = RelabelConfigs::from_yaml("").unwrap();
    let mut ls = labels(ABC);
    assert_eq!(rules.apply(&mut ls), Outcome::Keep);
    assert_eq!(ls, labels(ABC));
}

#[test]
fn rules_are_shared_across_ingest_threads() {
    let rules = std::sync::Arc::new(
        RelabelConfigs::from_yaml(
            "- {source_labels: [a], target_label: s, action: hashmod, modulus: 16}",
        )
        .unwrap(),
    );
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let rules = rules.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let v = format!("{t}-{i}");
                    let mut ls = labels(&[("a", &v)]);
                    assert_eq!(rules.apply(&mut ls), Outcome::Keep);
                    assert_eq!(
                        ls.get("s"),
                        Some(hashmod(v.as_bytes(), 16).to_string().as_str())
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn long_alternations_of_metric_names_compile() {
    // Operators drop or keep thousands of metric names with one regex.
    let names: Vec<String> = (0..5000)
        .map(|i| format!("DCGM_FI_PROF_METRIC_NUMBER_{i}_total"))
        .collect();
    let yaml = format!(
        "- source_labels: [__name__]\n  regex: '{}'\n  action: drop\n",
        names.join("|")
    );
    let rules = RelabelConfigs::from_yaml(&yaml).unwrap();
    let f = |name: &str, dropped: bool| {
        let out = rules.apply(&mut labels(&[("__name__", name)]));
        assert_eq!(out == (Outcome::Drop { rule: 0 }), dropped, "{name}");
    };
    f("DCGM_FI_PROF_METRIC_NUMBER_4999_total", true);
    f("DCGM_FI_PROF_METRIC_NUMBER_5000_total", false);
}
