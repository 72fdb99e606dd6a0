//! End to end with a real Prometheus (Debian's package): it scrapes itself
//! and `prometheus-node-exporter`, remote-writes into a real `tessera serve`,
//! and `promtool` (a real API client) must read back from Tessera the same
//! metric names and series Prometheus holds itself.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A child process killed on drop, so a failing assertion leaves nothing
/// running.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn promtool(args: &[&str]) -> Result<String, String> {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn names(url: &str) -> BTreeSet<String> {
    promtool(&["query", "labels", url, "__name__"])
        .map(|s| s.lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
        .unwrap_or_default()
}

fn series(url: &str, matcher: &str) -> BTreeSet<String> {
    promtool(&["query", "series", url, "--match", matcher])
        .map(|s| s.lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
        .unwrap_or_default()
}

#[test]
fn prometheus_remote_writes_into_tessera_and_promtool_reads_the_same_series() {
    if !have("prometheus") || !have("promtool") {
        return;
    }
    let tessera = Tessera::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let prom_port = free_port();

    let mut targets = vec![format!("          - job_name: prometheus\n            static_configs: [{{targets: ['127.0.0.1:{prom_port}']}}]")];
    let _node = if have("prometheus-node-exporter") {
        let port = free_port();
        let child = Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node exporter");
        targets.push(format!("          - job_name: node\n            static_configs: [{{targets: ['127.0.0.1:{port}']}}]"));
        Some(Proc(child))
    } else {
        None
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{}\nremote_write:\n  - url: {}\n    queue_config: {{batch_send_deadline: 1s, max_samples_per_send: 2000}}\n    metadata_config: {{send_interval: 1s}}\n",
        targets.iter().map(|t| t.trim_start().replacen("- job_name", "  - job_name", 1).replace("\n            ", "\n    ")).collect::<Vec<_>>().join("\n"),
        tessera.url("/api/v1/write"),
    );
    let cfg_path = tmp.path().join("prometheus.yml");
    std::fs::write(&cfg_path, &config).unwrap();
    promtool(&["check", "config", cfg_path.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("generated config is invalid: {e}\n{config}"));
    let _prom = Proc(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!("--storage.tsdb.path={}", tmp.path().join("prom").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    let tessera_url = tessera.url("");

    // Both sides keep growing for a while (new metrics appear after the
    // first scrapes); wait until Tessera holds exactly what Prometheus holds.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut want, mut got) = (BTreeSet::new(), BTreeSet::new());
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        want = names(&prom_url);
        got = names(&tessera_url);
        if want.len() > 50 && want == got {
            break;
        }
    }
    assert!(want.len() > 50, "Prometheus never scraped enough: {want:?}");
    assert_eq!(
        got, want,
        "metric names differ: only in Prometheus {:?}, only in Tessera {:?}",
        want.difference(&got).collect::<Vec<_>>(),
        got.difference(&want).collect::<Vec<_>>()
    );
    // The same series (all label pairs) for a sample of metrics.
    for m in ["up", "prometheus_build_info", "scrape_samples_scraped"] {
        assert_eq!(series(&tessera_url, m), series(&prom_url, m), "series of {m}");
    }
    if _node.is_some() {
        let m = "node_cpu_seconds_total";
        let s = series(&tessera_url, m);
        assert!(!s.is_empty(), "no node exporter series in Tessera");
        assert_eq!(s, series(&prom_url, m));
    }
    // Metadata arrived too.
    let md = tessera.data("/api/v1/metadata?metric=prometheus_http_requests_total");
    assert_eq!(md["prometheus_http_requests_total"][0]["type"], "counter", "{md}");
}
