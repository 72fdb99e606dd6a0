//! The three shipped Grafana dashboards against a real `tessera serve`,
//! with Grafana's part played as Grafana's Prometheus datasource plays it
//! (see `common/grafana.rs`: variables through `/api/v1/label/<l>/values`
//! with `match[]`, Grafana's escaping, `$__interval`/`$__rate_interval`,
//! step and alignment, `POST /api/v1/query_range`).
//!
//! Data: the bench generator's GPU fleet (dcgm-exporter + node-exporter
//! series of 3 nodes × 8 GPUs, 25 rounds 15 s apart ending now), one GPU
//! given a non-zero XID (the panels that draw only faulty GPUs need one), one
//! over-labelled series refused (the "series rejected" panel needs one),
//! a series call refused by `--api.max-series` (for "Limit hits by flag"),
//! and Tessera's own `/metrics` scraped every 5 s and remote-written with
//! `job="tessera"` as a Prometheus would.
//!
//! Rules: `deploy/rules/*.yml` as shipped except each group's `interval:`
//! (30s / 1m) rewritten to 1s in a temp copy, so the fleet-level groups,
//! which read the node-level ones, have results within seconds. Rules only
//! evaluate at wall-clock time, so panels with a 1m min interval (step
//! 60 s, end aligned down to the minute) see a rule result only once a
//! minute boundary has passed after the first evaluation: the test waits
//! for it, as a user opening the dashboard a minute later would. That wait
//! (0-60 s) is most of the run time.

mod common;
#[path = "common/grafana.rs"]
mod grafana;

use std::time::{Duration, Instant};

use common::*;
use grafana::{Choice, Expected, Range};
use prost::Message;
use tessera_bench::generator::{Fleet, FleetConfig};
use tessera_ingest::proto;

const NODES: usize = 3;
const GPUS: usize = 8;
const ROUNDS: u64 = 25;
const INTERVAL_MS: i64 = 15_000;

/// Targets allowed to return nothing on this data, and why.
const EXPECTED_EMPTY: &[Expected] = &[
    Expected {
        dashboard: "gpu-fleet",
        panel: "Engine activity (DCP profiling)",
        ref_id: "C",
        why: "DCGM_FI_PROF_SM_ACTIVE is commented out in dcgm-exporter's default-counters.csv, which the generator follows",
        unless: None,
    },
    Expected {
        dashboard: "gpu-fleet",
        panel: "SM activity per node",
        ref_id: "A",
        why: "DCGM_FI_PROF_SM_ACTIVE is commented out in dcgm-exporter's default-counters.csv, which the generator follows",
        unless: None,
    },
    Expected {
        dashboard: "tessera",
        panel: "Cancelled reads by reason",
        ref_id: "A",
        why: "no read was cancelled or stopped by a budget",
        unless: Some("tessera_query_cancellations_total"),
    },
];

/// Prometheus' text exposition format, enough for Tessera's `/metrics`:
/// `name{l="v",...} value`, comments skipped.
fn parse_exposition(text: &str) -> Vec<(Vec<(String, String)>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let mut labels = vec![("__name__".to_string(), line[..name_end].to_string())];
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let end;
            loop {
                while chars.next_if(|(_, c)| *c == ',' || *c == ' ').is_some() {}
                match chars.peek() {
                    Some((i, '}')) => {
                        end = i + 1;
                        break;
                    }
                    None => panic!("unclosed labels in {line:?}"),
                    _ => {}
                }
                let mut name = String::new();
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    name.push(c);
                }
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line:?}");
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next().map(|x| x.1) {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => panic!("{line:?}"),
                        },
                        c => value.push(c),
                    }
                }
                labels.push((name.trim().to_string(), value));
            }
            rest = &r[end..];
        }
        let v = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let v = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|e| panic!("{line:?}: {e}")),
        };
        out.push((labels, v));
    }
    out
}

/// Scrapes Tessera's `/metrics` and writes it back with the target labels a
/// Prometheus `job: tessera` scrape would add.
fn self_scrape(t: &Tessera, instance: &str) -> usize {
    let (status, text) = get(&t.url("/metrics")).expect("GET /metrics");
    assert_eq!(status, 200);
    let ts = grafana::now_ms();
    let mut all = Vec::new();
    for (mut labels, v) in parse_exposition(&text) {
        assert!(
            labels.iter().all(|(n, _)| n != "job" && n != "instance"),
            "Tessera exposes a target label itself: {labels:?}"
        );
        labels.push(("job".into(), "tessera".into()));
        labels.push(("instance".into(), instance.into()));
        labels.sort();
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        all.push(series(&pairs, &[(ts, v)]));
    }
    let n = all.len();
    let (status, body) = t.write(&request(all));
    assert_eq!(status, 204, "self-scrape write: {body}");
    n
}

/// Loads the fleet; returns the labels of GPU 3 of node 2's XID series.
fn load_fleet(t: &Tessera, now: i64) -> Vec<(String, String)> {
    let mut fleet = Fleet::new(FleetConfig {
        nodes: NODES,
        gpus_per_node: GPUS,
        seed: 11,
        ..FleetConfig::default()
    });
    let mut xid = None;
    for r in 0..ROUNDS {
        let base = now - (ROUNDS - 1 - r) as i64 * INTERVAL_MS;
        let mut bodies = Vec::new();
        fleet.round(r, base, INTERVAL_MS, 2000, |b| bodies.push(b.proto));
        for b in &bodies {
            let (status, body) = post_raw(&t.url("/api/v1/write"), &snappy(b));
            assert_eq!(status, 204, "round {r}: {body}");
            if r == 0 && xid.is_none() {
                let req = proto::WriteRequest::decode(b.as_slice()).expect("generator protobuf");
                xid = req.timeseries.into_iter().find_map(|s| {
                    let l: Vec<(String, String)> = s
                        .labels
                        .iter()
                        .map(|l| {
                            (
                                String::from_utf8_lossy(&l.name).into_owned(),
                                String::from_utf8_lossy(&l.value).into_owned(),
                            )
                        })
                        .collect();
                    let has = |n: &str, v: &str| l.iter().any(|(a, b)| a == n && b == v);
                    (has("__name__", "DCGM_FI_DEV_XID_ERRORS")
                        && has("Hostname", "gpu-node-0002")
                        && has("gpu", "3"))
                    .then_some(l)
                });
            }
        }
    }
    xid.expect("the generator emits DCGM_FI_DEV_XID_ERRORS for gpu-node-0002 gpu 3")
}

#[test]
fn every_dashboard_panel_answers_grafanas_queries_with_data() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (rules_glob, rules) = grafana::rules_with_interval(tmp.path(), "1s");
    // --api.max-series below the fleet's series count, so a bare series
    // call hits the limit and the "Limit hits by flag" panel has an event.
    let t = Tessera::start(&[
        "--rules.file",
        &rules_glob,
        "--cpus",
        "2",
        "--api.max-series",
        "10000",
    ]);
    let base = t.url("");
    let instance = format!("127.0.0.1:{}", t.port);
    let scrape_ms = grafana::datasource_scrape_interval_ms();

    let now = grafana::now_ms();
    let xid_labels = load_fleet(&t, now);
    // A GPU reports XID 79 (fallen off the bus) for the last minute: as
    // dcgm-exporter does, the code is the value and the err_code label.
    let faulty: Vec<(&str, &str)> = xid_labels
        .iter()
        .map(|(n, v)| (n.as_str(), if n == "err_code" { "79" } else { v.as_str() }))
        .collect();
    let samples: Vec<(i64, f64)> = (0..4).map(|i| (now - 45_000 + i * 15_000, 79.0)).collect();
    assert_eq!(t.write(&request(vec![series(&faulty, &samples)])).0, 204);
    // One series over --ingest.max-labels-per-series (128) is refused.
    let many: Vec<(String, String)> = (0..130)
        .map(|i| (format!("l{i:03}"), "x".to_string()))
        .collect();
    let mut pairs: Vec<(&str, &str)> = vec![("__name__", "too_many_labels")];
    pairs.extend(many.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let (status, body) = t.write(&request(vec![series(&pairs, &[(now, 1.0)])]));
    assert_eq!(status, 400, "{body}");
    let (status, body) = t.api("/api/v1/series?match[]={__name__=~\".+\"}");
    assert_eq!(status, 422, "series call over --api.max-series: {body}");
    eprintln!(
        "loaded {NODES} nodes x {ROUNDS} rounds in {:?}",
        started.elapsed()
    );

    // The fleet-level rules, two groups deep, have a result.
    let deadline = Instant::now() + Duration::from_secs(30);
    while grafana::instant(&base, "cluster:DCGM_FI_DEV_GPU_UTIL:count").is_empty()
        || grafana::instant(&base, "cluster:node_cpu_utilisation:ratio").is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "fleet-level rules produced nothing in 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rules_ready = grafana::now_ms();
    // Self-scrapes every 5 s until a minute boundary has passed after the
    // first rule results, and for at least 31 s (rate() over 1m0s needs two
    // scrapes before the last 15 s step).
    let first_scrape = grafana::now_ms();
    let query_at = (grafana::next_boundary(rules_ready, 60_000) + 1_000).max(first_scrape + 31_000);
    let mut scrapes = 0;
    loop {
        self_scrape(&t, &instance);
        scrapes += 1;
        let left = query_at - grafana::now_ms();
        if left <= 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(left.min(5_000) as u64));
    }
    let healthy = grafana::healthy_rules(&base).expect("rules healthy");
    assert_eq!(
        healthy, rules,
        "every rule of deploy/rules is loaded and healthy"
    );
    eprintln!(
        "{scrapes} self-scrapes; querying at {:?}",
        started.elapsed()
    );

    let to_ms = grafana::now_ms();
    let range = Range {
        from_ms: to_ms - 3_600_000,
        to_ms,
    };
    let mut failures = Vec::new();
    for name in ["gpu-fleet", "nodes", "tessera"] {
        for choice in [Choice::Default, Choice::EveryValue] {
            let (vars, outcomes) = grafana::run_and_check(
                &base,
                name,
                range,
                scrape_ms,
                choice,
                EXPECTED_EMPTY,
                &mut failures,
            );
            let values = |n: &str| grafana::values_of(&vars, n);
            match name {
                "gpu-fleet" => {
                    assert_eq!(
                        values("Hostname"),
                        ["gpu-node-0001", "gpu-node-0002", "gpu-node-0003"]
                    );
                    assert_eq!(
                        values("gpu"),
                        (0..GPUS).map(|g| g.to_string()).collect::<Vec<_>>()
                    );
                    assert_eq!(values("modelName").len(), 1, "{:?}", values("modelName"));
                    let gpus = grafana::find(&outcomes, "GPUs reporting", "A").last_value();
                    assert_eq!(gpus, Some((NODES * GPUS) as f64), "GPUs reporting");
                    let xid = grafana::find(&outcomes, "GPUs with an XID error", "A").last_value();
                    assert_eq!(xid, Some(1.0), "GPUs with an XID error");
                    let per_node =
                        grafana::find(&outcomes, "GPUs with an XID error per node", "A").series();
                    assert_eq!(per_node.len(), 1, "{per_node:?}");
                    assert_eq!(per_node[0]["metric"]["Hostname"], "gpu-node-0002");
                    let raw =
                        grafana::find(&outcomes, "XID errors (last code, non-zero only)", "A")
                            .series();
                    assert_eq!(raw.len(), 1, "{raw:?}");
                    assert_eq!(raw[0]["metric"]["err_code"], "79");
                }
                "nodes" => {
                    let want: Vec<String> = (1..=NODES)
                        .map(|n| format!("gpu-node-{n:04}:9100"))
                        .collect();
                    assert_eq!(values("instance"), want);
                    let cpu = grafana::find(&outcomes, "CPU utilisation", "A").series();
                    assert_eq!(cpu.len(), NODES, "one CPU utilisation series per node");
                }
                "tessera" => {
                    assert_eq!(values("job"), ["tessera"]);
                    assert_eq!(values("instance"), std::slice::from_ref(&instance));
                    assert_eq!(
                        grafana::find(&outcomes, "Ready replicas", "A").last_value(),
                        Some(1.0)
                    );
                    assert_eq!(
                        grafana::find(&outcomes, "CPU budget (cores)", "A").last_value(),
                        Some(2.0)
                    );
                    let appended =
                        grafana::find(&outcomes, "Samples appended /s", "A").last_value();
                    assert!(
                        appended.is_some_and(|v| v > 0.0),
                        "samples appended /s: {appended:?}"
                    );
                }
                _ => unreachable!(),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing targets:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("done in {:?}", started.elapsed());
}
