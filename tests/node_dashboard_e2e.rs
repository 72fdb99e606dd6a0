//! The node dashboard (and Tessera's own) on real exporter data: Debian's
//! `prometheus` scrapes Debian's `prometheus-node-exporter`, itself and
//! Tessera, and remote-writes into a real `tessera serve` through a config
//! derived from the shipped `deploy/prometheus/remote-write.yml`; Tessera
//! evaluates `deploy/rules/*.yml`; then every panel is queried as Grafana
//! would (see `common/grafana.rs`) and must return data.
//!
//! What the derived config substitutes, and nothing else:
//! - `global.scrape_interval` 15s → 5s, so rate() windows fill in seconds
//!   (and `scrape_timeout` 10s → 4s, which must not exceed it);
//! - the Kubernetes-discovered jobs (dcgm-exporter, node-exporter, tessera)
//!   are dropped or made static: Debian's Prometheus is built without
//!   Kubernetes service discovery, and their `relabel_configs` keep only
//!   pods. `tessera` becomes a static job on the test's Tessera;
//! - the `gpu-hosts-static` job is kept as shipped (its `exporter` label
//!   and `node` relabelling) with its node-exporter targets replaced by the
//!   local exporter and its dcgm-exporter targets removed (none here);
//! - a `prometheus` job scraping Prometheus itself is added;
//! - `remote_write.url` points at the test's Tessera.
//!
//! `external_labels`, and `remote_write`'s `queue_config`,
//! `metadata_config`, `remote_timeout` and exemplar/native-histogram
//! settings are the shipped ones (the file has no write_relabel_configs).
//!
//! Skipped with a visible `SKIPPED:` when the packages are not installed
//! (a failure in CI: see `common/input.rs`).

mod common;
#[path = "common/grafana.rs"]
mod grafana;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Proc;
use common::*;
use grafana::{Choice, Expected, Range};

/// Host-dependent panels: empty exactly when the host has nothing to show.
const EXPECTED_EMPTY: &[Expected] = &[
    Expected {
        dashboard: "nodes",
        panel: "Disk throughput",
        ref_id: "A",
        why: "no physical block device (nvme/sd/vd/...) on this host",
        unless: Some(DISKS),
    },
    Expected {
        dashboard: "nodes",
        panel: "Disk throughput",
        ref_id: "B",
        why: "no physical block device (nvme/sd/vd/...) on this host",
        unless: Some(DISKS),
    },
    Expected {
        dashboard: "nodes",
        panel: "Disk busy time by device",
        ref_id: "A",
        why: "no physical block device (nvme/sd/vd/...) on this host",
        unless: Some(DISKS),
    },
    Expected {
        dashboard: "nodes",
        panel: "Filesystem space used",
        ref_id: "A",
        why: "only tmpfs/overlay filesystems on this host",
        unless: Some("node_filesystem_size_bytes{fstype!~\"tmpfs|overlay|squashfs|ramfs\"}"),
    },
    Expected {
        dashboard: "tessera",
        panel: "Series rejected by reason",
        ref_id: "A",
        why: "tessera_ingest_series_rejected_total{reason} appears with the first refused series",
        unless: Some("tessera_ingest_series_rejected_total"),
    },
    Expected {
        dashboard: "tessera",
        panel: "Non-2xx responses by handler and code",
        ref_id: "A",
        why: "no request failed",
        unless: Some("tessera_http_requests_total{code!~\"2..\"}"),
    },
    Expected {
        dashboard: "tessera",
        panel: "Limit hits by flag",
        ref_id: "A",
        why: "no read hit a limit",
        unless: Some("tessera_query_limit_hits_total"),
    },
    Expected {
        dashboard: "tessera",
        panel: "Cancelled reads by reason",
        ref_id: "A",
        why: "no read was cancelled",
        unless: Some("tessera_query_cancellations_total"),
    },
];

const DISKS: &str = "node_disk_read_bytes_total{device=~\"(/dev/)?(nvme.+|sd.+|vd.+|xvd.+|mmcblk.+|rbd.+|dasd.+)\"}";

/// Top-level YAML sections of `text` (key → its lines, key line included).
fn sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let top = !line.starts_with([' ', '#', '\t']) && !line.is_empty();
        if top {
            let key = line.split(':').next().unwrap_or_default().to_string();
            out.push((key, vec![line.to_string()]));
        } else if let Some(last) = out.last_mut() {
            last.1.push(line.to_string());
        }
    }
    out
}

fn section<'a>(s: &'a [(String, Vec<String>)], key: &str) -> &'a [String] {
    &s.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("remote-write.yml has no {key}:"))
        .1
}

/// Replaces the one line containing `needle` via `f`; panics unless exactly
/// one line matches (a changed shipped file must fail loudly here).
fn replace_one(lines: &mut Vec<String>, needle: &str, f: impl Fn(&str) -> Option<String>) {
    let hits: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(needle))
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one line with {needle:?} in {lines:#?}"
    );
    match f(&lines[hits[0]]) {
        Some(l) => lines[hits[0]] = l,
        None => {
            lines.remove(hits[0]);
        }
    }
}

/// The runnable config derived from the shipped example (see the module
/// comment for what is substituted).
fn derived_config(shipped: &str, prom: &str, node: &str, tessera: &str) -> String {
    let s = sections(shipped);
    let mut global = section(&s, "global").to_vec();
    replace_one(&mut global, "  scrape_interval:", |_| {
        Some("  scrape_interval: 5s".into())
    });
    replace_one(&mut global, "  scrape_timeout:", |_| {
        Some("  scrape_timeout: 4s".into())
    });

    // The static GPU-hosts job, as shipped, retargeted.
    let scrape = section(&s, "scrape_configs");
    let start = scrape
        .iter()
        .position(|l| l.trim() == "- job_name: gpu-hosts-static")
        .expect("shipped job gpu-hosts-static");
    let len = scrape[start + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with("- job_name:"))
        .map_or(scrape.len() - start, |n| n + 1);
    let mut hosts = scrape[start..start + len].to_vec();
    let dcgm = hosts
        .iter()
        .position(|l| l.contains(":9400'"))
        .expect("dcgm-exporter targets");
    assert!(
        hosts[dcgm + 1].contains("exporter: dcgm-exporter"),
        "{hosts:#?}"
    );
    hosts.drain(dcgm..dcgm + 2);
    replace_one(&mut hosts, ":9100'", |l| {
        let indent = &l[..l.len() - l.trim_start().len()];
        Some(format!("{indent}- targets: ['{node}']"))
    });

    // The shipped TLS and basic-auth settings point at files of a cluster;
    // this Tessera speaks plain HTTP.
    let mut remote: Vec<String> = section(&s, "remote_write")
        .iter()
        .filter(|l| {
            let l = l.trim_start();
            !l.starts_with("basic_auth:") && !l.starts_with("tls_config:")
        })
        .cloned()
        .collect();
    replace_one(&mut remote, "- url:", |l| {
        let indent = &l[..l.len() - l.trim_start().len()];
        Some(format!("{indent}- url: {tessera}/api/v1/write"))
    });

    let tessera_addr = tessera.trim_start_matches("http://");
    [
        global.join("\n"),
        "scrape_configs:".to_string(),
        format!("  - job_name: prometheus\n    static_configs:\n      - targets: ['{prom}']"),
        hosts.join("\n"),
        format!("  - job_name: tessera\n    static_configs:\n      - targets: ['{tessera_addr}']"),
        remote.join("\n"),
    ]
    .join("\n")
        + "\n"
}

fn spawn(cmd: &str, args: &[String]) -> Proc {
    Proc(
        Command::new(cmd)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd}: {e}")),
    )
}

#[test]
fn node_dashboard_panels_show_data_from_a_real_prometheus_and_node_exporter() {
    if !have("prometheus") || !have("promtool") || !have("prometheus-node-exporter") {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let rules_dir = tmp.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    let (rules_glob, rules) = grafana::rules_with_interval(&rules_dir, "1s");
    let t = Tessera::start(&["--rules.file", &rules_glob]);
    let base = t.url("");

    let node_addr = format!("127.0.0.1:{}", free_port());
    let _node = spawn(
        "prometheus-node-exporter",
        &[format!("--web.listen-address={node_addr}")],
    );
    let prom_port = free_port();
    let prom_addr = format!("127.0.0.1:{prom_port}");
    let shipped =
        std::fs::read_to_string(grafana::repo("deploy/prometheus/remote-write.yml")).unwrap();
    let config = derived_config(&shipped, &prom_addr, &node_addr, &base);
    let _prom = start_prometheus(&config, tmp.path(), prom_port);

    // Raw series, then node-level rules (rate5m needs two scrapes), then
    // fleet-level rules built on them, and Tessera's own metrics.
    let deadline = Instant::now() + Duration::from_secs(60);
    for q in [
        "node_uname_info",
        "instance:node_cpu_utilisation:rate5m",
        "cluster:node_cpu_utilisation:ratio",
        "tessera_ready{job=\"tessera\"}",
    ] {
        while grafana::instant(&base, q).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{q} not in Tessera after 60 s; derived config:\n{config}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let ready = grafana::now_ms();
    eprintln!(
        "data and rule results in Tessera after {:?}",
        started.elapsed()
    );
    // Panels with a 1m min interval end at the last whole minute: wait for
    // one to pass after the first fleet-level rule result.
    let query_at = grafana::next_boundary(ready, 60_000) + 1_000;
    std::thread::sleep(Duration::from_millis(
        (query_at - grafana::now_ms()).max(0) as u64
    ));
    assert_eq!(
        grafana::healthy_rules(&base),
        Ok(rules),
        "every rule healthy"
    );

    let to_ms = grafana::now_ms();
    let range = Range {
        from_ms: to_ms - 1_800_000,
        to_ms,
    };
    let scrape_ms = grafana::datasource_scrape_interval_ms();
    let mut failures = Vec::new();
    for name in ["nodes", "tessera"] {
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
            if name == "nodes" {
                assert_eq!(
                    values("instance"),
                    std::slice::from_ref(&node_addr),
                    "the node exporter's instance"
                );
                let cpu = grafana::find(&outcomes, "CPU utilisation", "A").series();
                assert_eq!(cpu.len(), 1, "{cpu:?}");
                // The shipped relabelling and external labels arrived.
                assert_eq!(cpu[0]["metric"]["node"], "127.0.0.1", "{cpu:?}");
                assert_eq!(cpu[0]["metric"]["exporter"], "node-exporter", "{cpu:?}");
                assert_eq!(cpu[0]["metric"]["cluster"], "gpu-prod", "{cpu:?}");
                let mem = grafana::find(&outcomes, "Memory used", "A").last_value();
                assert!(
                    mem.is_some_and(|m| m > 0.0 && m < 1.0),
                    "memory used ratio {mem:?}"
                );
            } else {
                assert_eq!(values("job"), ["tessera"]);
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
