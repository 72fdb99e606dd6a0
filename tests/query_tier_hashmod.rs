//! The query tier fed the way a fleet is (issue 14): a real Debian
//! Prometheus 2.42 scrapes itself as six `instance`s and remote-writes to
//! two `tessera serve` partitions, each remote_write entry keeping its half
//! with the shipped `write_relabel_configs` of `deploy/prometheus/fleet`
//! (`hashmod` of `node`, else `instance`, then `keep`; modulus 2 here);
//! `tessera query`
//! over the two must answer the same queries as the Prometheus that
//! scraped, evaluated at one past timestamp both hold. Partition 0 has two
//! replicas, each fed by its own remote_write entry, and the one the tier
//! reads first is killed before the queries.
//!
//! Skipped with a visible `SKIPPED:` when Prometheus is not installed (a
//! failure in CI: see `common/input.rs`).

mod common;

use std::time::{Duration, Instant};

use common::prometheus::{assert_same_results, close, result_map};
use common::*;

const INSTANCES: [&str; 6] = ["gpu-a", "gpu-b", "gpu-c", "gpu-d", "gpu-e", "gpu-f"];
const PARTITIONS: usize = 2;

/// The `write_relabel_configs` of partition `p`: the shipped ones of
/// deploy/prometheus/fleet/prometheus-agent.yml (partition 0's, which the
/// others reuse with their shard number), for `PARTITIONS` partitions.
fn write_relabel(p: usize) -> String {
    let agent = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/fleet/prometheus-agent.yml"
    ))
    .unwrap();
    let mut lines = agent
        .lines()
        .skip_while(|l| !l.contains("write_relabel_configs: &partition0"));
    let head = lines.next().expect("the fleet example's partition 0 rules");
    let indent = head.len() - head.trim_start().len();
    let rules: Vec<&str> = lines
        .take_while(|l| l.len() - l.trim_start().len() > indent)
        .collect();
    let text = rules.join("\n");
    assert!(
        text.contains("action: hashmod") && text.contains("regex: \"0\""),
        "{text}"
    );
    let text = text
        .replace("modulus: 3", &format!("modulus: {PARTITIONS}"))
        .replace("regex: \"0\"", &format!("regex: \"{p}\""));
    format!("    write_relabel_configs:\n{text}\n")
}

/// Prometheus scraping its own `/metrics` once per instance name, every
/// second, writing each partition's share to every replica of it.
fn config(prom_port: u16, partitions: &[Vec<Tessera>]) -> String {
    let mut s = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n  - job_name: prometheus\n    static_configs:\n",
    );
    for i in INSTANCES {
        s.push_str(&format!(
            "      - targets: ['127.0.0.1:{prom_port}']\n        labels: {{instance: '{i}'}}\n"
        ));
    }
    s.push_str("remote_write:\n");
    for (p, replicas) in partitions.iter().enumerate() {
        for t in replicas {
            s.push_str(&format!(
                "  - url: http://127.0.0.1:{}/api/v1/write\n    queue_config:\n      \
                 batch_send_deadline: 1s\n      min_backoff: 100ms\n{}",
                t.port,
                write_relabel(p)
            ));
        }
    }
    s
}

/// `GET url` of a Prometheus API call: its `data`.
fn data(url: &str) -> Result<serde_json::Value, String> {
    let (status, body) = get(url).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if status != 200 || v["status"] != "success" {
        return Err(format!("{url}: {status} {body}"));
    }
    Ok(v["data"].clone())
}

#[test]
fn tier_over_hashmod_partitions_answers_as_the_prometheus_that_scraped() {
    if !have("prometheus") || !have("promtool") {
        return;
    }
    // Partition 0 on two replicas (copies, as the fleet example writes
    // them), partition 1 on one.
    let mut partitions: Vec<Vec<Tessera>> = vec![
        vec![Tessera::start(&[]), Tessera::start(&[])],
        vec![Tessera::start(&[])],
    ];
    assert_eq!(partitions.len(), PARTITIONS);
    let tmp = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    let _prom = start_prometheus(&config(prom_port, &partitions), tmp.path(), prom_port);
    let prom = format!("http://127.0.0.1:{prom_port}");
    let store_args: Vec<String> = partitions
        .iter()
        .flat_map(|replicas| {
            let urls: Vec<String> = replicas
                .iter()
                .map(|t| format!("http://127.0.0.1:{}", t.port))
                .collect();
            ["--store".to_string(), urls.join(",")]
        })
        .collect();
    let store_args: Vec<&str> = store_args.iter().map(String::as_str).collect();
    let tier = Tessera::start_tier(&store_args);

    // Scrape for a while, then evaluate at a moment already written: a few
    // seconds back, so both sides have every scrape before it.
    let started = Instant::now();
    eventually_within("Prometheus to scrape", Duration::from_secs(60), || {
        let d = data(&format!("{prom}/api/v1/query?query=count(up==1)"))?;
        match d["result"][0]["value"][1].as_str() {
            Some("6") => Ok(()),
            _ => Err(d.to_string()),
        }
    });
    std::thread::sleep(Duration::from_secs(20).saturating_sub(started.elapsed()));
    let at = (now_ms() - 3_000) as f64 / 1000.0;

    // Each partition holds some instances and none of the other's: the
    // hashmod placement, not a copy of everything; replicas are copies.
    let mut held = Vec::new();
    for t in partitions.iter().flatten() {
        let d = eventually("a partition to receive its share", || {
            let d = data(&t.url(&format!(
                "/api/v1/query?query=count by (instance) (up)&time={at}"
            )))?;
            match d["result"].as_array() {
                Some(r) if !r.is_empty() => Ok(d),
                _ => Err(d.to_string()),
            }
        });
        let mut mine: Vec<String> = d["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["metric"]["instance"].as_str().unwrap().to_string())
            .collect();
        mine.sort();
        held.push(mine);
    }
    assert_eq!(held[0], held[1], "the replicas of partition 0 differ");
    assert!(
        held[0].iter().all(|i| !held[2].contains(i)),
        "partitions overlap: {held:?}"
    );
    assert_eq!(held[1..].concat().len(), INSTANCES.len(), "{held:?}");
    // The replica the tier reads first goes away: its twin answers.
    drop(partitions[0].remove(0));

    let queries = [
        "sum by (instance) (up)",
        "count by (instance) ({job=\"prometheus\"})",
        "sum by (instance) (rate(prometheus_tsdb_head_samples_appended_total[10s]))",
        "rate(prometheus_http_requests_total{handler=\"/metrics\"}[10s])",
        "topk(3, scrape_samples_scraped + on(instance) group_left scrape_duration_seconds)",
        "count(prometheus_build_info)",
        "max by (instance) (scrape_duration_seconds)",
        "avg(scrape_samples_scraped)",
    ];
    for q in queries {
        let path = format!("/api/v1/query?query={q}&time={at}");
        // Remote write may still be sending the last scrapes before `at`:
        // compare until equal, the last difference shown on failure.
        eventually(&format!("the tier to answer {q} as Prometheus"), || {
            let want = data(&format!("{prom}{}", encode_query(&path)))?;
            let got = data(&tier.url(&path))?;
            let (w, g) = (
                result_map(&want["result"].to_string()),
                result_map(&got["result"].to_string()),
            );
            if w.is_empty() {
                return Err(format!("Prometheus has no answer to {q}"));
            }
            std::panic::catch_unwind(|| assert_same_results(&w, &g, q, close))
                .map_err(|_| format!("want {want}\ngot {got}"))
        });
    }

    // The killed replica cost nothing: no partition was left out.
    let (status, v) = tier.api(&format!("/api/v1/query?query=up&time={at}"));
    assert_eq!(status, 200, "{v}");
    assert!(v.get("warnings").is_none(), "{v}");

    // Label values over the same window.
    let window = format!("start={}&end={at}", at - 15.0);
    let want = data(&format!("{prom}/api/v1/label/instance/values?{window}")).unwrap();
    let got = data(&tier.url(&format!("/api/v1/label/instance/values?{window}"))).unwrap();
    assert_eq!(got, want);
    assert_eq!(got.as_array().unwrap().len(), INSTANCES.len());
}
