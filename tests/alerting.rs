//! Alerting rules end to end: a real `tessera serve` evaluating an
//! alerting rule over remote-written series and sending to a real
//! Alertmanager (Debian's `prometheus-alertmanager`, started here on
//! 127.0.0.1); `/api/v1/alerts` and `/api/v1/rules`; the `for` clock kept
//! across a restart; and an unreachable Alertmanager that neither blocks
//! evaluation nor ingest while the queue drops past its capacity.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const RULES: &str = "\
groups:
  - name: gpu.alerts
    rules:
      - alert: GpuTooHot
        expr: DCGM_FI_DEV_GPU_TEMP > 90
        for: 16s
        labels:
          severity: page
        annotations:
          summary: 'GPU {{ $labels.gpu }} on {{ $labels.Hostname }} is at {{ $value }} C'
          where: '{{ $externalLabels.cluster }}'
";

/// A real Alertmanager on a free loopback port, no clustering.
fn start_alertmanager(dir: &Path) -> Option<(Proc, String)> {
    if !have("prometheus-alertmanager") {
        return None;
    }
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn prometheus-alertmanager");
    let am = Proc(child);
    let url = format!("http://127.0.0.1:{port}");
    eventually("Alertmanager ready", || {
        match get(&format!("{url}/-/ready")) {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    Some((am, url))
}

/// Alertmanager's active alerts named `name`.
fn am_alerts(url: &str, name: &str) -> Vec<Value> {
    let (status, body) = get(&format!("{url}/api/v2/alerts")).expect("GET alerts");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == name)
        .collect()
}

fn temp(t: &Tessera, value: f64) {
    let s = series(
        &[
            ("__name__", "DCGM_FI_DEV_GPU_TEMP"),
            ("Hostname", "gpu-node-1"),
            ("gpu", "3"),
        ],
        &[(now_ms(), value)],
    );
    assert_eq!(t.write(&request(vec![s])).0, 204);
}

/// Tessera's alerts named `GpuTooHot` as `(state, activeAt ms)`.
fn tessera_alert(t: &Tessera) -> Option<(String, i64, Value)> {
    let d = t.data("/api/v1/alerts");
    let a = d["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == "GpuTooHot")?
        .clone();
    let at = a["activeAt"].as_str()?;
    let ms = tessera_query::time::parse_rfc3339(at)?;
    Some((a["state"].as_str()?.to_string(), ms, a))
}

#[test]
fn alerts_reach_alertmanager_after_for_survive_a_restart_and_resolve() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_am, am_url)) = start_alertmanager(tmp.path()) else {
        return;
    };
    let rules = tmp.path().join("alerts.yml");
    std::fs::write(&rules, RULES).unwrap();
    let data = tmp.path().join("data");
    let rules_arg = rules.display().to_string();
    let args = [
        "--rules.file",
        rules_arg.as_str(),
        "--rules.evaluation-interval",
        "1s",
        "--rules.alert.resend-delay",
        "1s",
        // Restore even a short `for` (the default grace is 10m).
        "--rules.alert.for-grace-period",
        "0s",
        "--alertmanager.url",
        am_url.as_str(),
        "--external-label",
        "cluster=e2e",
    ];
    let t = Tessera::start_in(&data, &args);
    temp(&t, 95.0);

    // Pending first, with its clock started.
    let (_, active_at, _) = eventually("a pending alert", || match tessera_alert(&t) {
        Some((s, at, a)) if s == "pending" => Ok((s, at, a)),
        other => Err(format!("{other:?}")),
    });
    // Pending for 10 of its 16 seconds, then a restart. (The margin makes
    // the check below hold for any restart shorter than about 7 s.)
    eventually_within(
        "10s of pending",
        Duration::from_secs(30),
        || match tessera_alert(&t) {
            Some((s, at, _)) if s == "pending" && now_ms() - at >= 10_000 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let rules_json = t.data("/api/v1/rules?type=alert");
    let rule = &rules_json["groups"][0]["rules"][0];
    assert_eq!(rule["state"], "pending", "{rule}");
    assert_eq!(rule["health"], "ok", "{rule}");
    assert_eq!(rule["duration"], 16.0);
    assert!(
        am_alerts(&am_url, "GpuTooHot").is_empty(),
        "pending is not sent"
    );
    let killed_at = now_ms();
    drop(t);

    let t = Tessera::start_in(&data, &args);
    // The restored clock: activeAt moved by the downtime only, so it is
    // before the restart; a fresh clock would start after it.
    let (restored_at, fired) = eventually_within(
        "the alert firing after the restart",
        Duration::from_secs(30),
        || match tessera_alert(&t) {
            Some((s, at, a)) if s == "firing" => Ok((at, a)),
            other => Err(format!("{other:?}")),
        },
    );
    assert!(
        restored_at < killed_at,
        "activeAt {restored_at} restored from before the restart at {killed_at} (first activeAt {active_at})"
    );
    assert!(
        restored_at >= active_at / 1000 * 1000,
        "{restored_at} vs {active_at}"
    );
    assert_eq!(
        fired["annotations"]["summary"],
        "GPU 3 on gpu-node-1 is at 95 C"
    );
    assert_eq!(fired["value"], "9.5e+01");

    // Alertmanager has it, with the rule's, the series' and the external
    // labels and the expanded annotations.
    let am = eventually("the alert in Alertmanager", || {
        match am_alerts(&am_url, "GpuTooHot").pop() {
            Some(a) => Ok(a),
            None => Err("no alert yet".into()),
        }
    });
    assert_eq!(
        am["labels"],
        serde_json::json!({
            "alertname": "GpuTooHot",
            "severity": "page",
            "Hostname": "gpu-node-1",
            "gpu": "3",
            "cluster": "e2e",
        })
    );
    assert_eq!(
        am["annotations"],
        serde_json::json!({
            "summary": "GPU 3 on gpu-node-1 is at 95 C",
            "where": "e2e",
        })
    );
    assert_eq!(am["status"]["state"], "active", "{am}");

    // ALERTS is a series like any other.
    let d = t.data("/api/v1/query?query=ALERTS{alertname=\"GpuTooHot\"}");
    assert_eq!(d["result"][0]["metric"]["alertstate"], "firing", "{d}");

    // Cooling down resolves it, in Tessera and in Alertmanager.
    temp(&t, 60.0);
    eventually("resolved in Tessera", || match tessera_alert(&t) {
        None => Ok(()),
        Some(a) => Err(format!("{a:?}")),
    });
    eventually("resolved in Alertmanager", || {
        match am_alerts(&am_url, "GpuTooHot").as_slice() {
            [] => Ok(()),
            still => Err(format!("{still:?}")),
        }
    });
    let (_, metrics) = get(&t.url("/metrics")).unwrap();
    let sent =
        format!("tessera_notifications_sent_total{{alertmanager=\"{am_url}/api/v2/alerts\"}}");
    let n = metric_value(&metrics, &sent).unwrap_or_else(|| panic!("no {sent} in {metrics}"));
    assert!(n >= 2.0, "firing and resolved sent: {n}");
}

#[test]
fn an_unreachable_alertmanager_fills_the_queue_and_blocks_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("alerts.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: always\n    rules:\n      - alert: Always\n        expr: DCGM_FI_DEV_GPU_TEMP > 0\n",
    )
    .unwrap();
    // Nothing listens there.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let t = Tessera::start(&[
        "--rules.file",
        &rules.display().to_string(),
        "--rules.evaluation-interval",
        "1s",
        "--rules.alert.resend-delay",
        "1s",
        "--alertmanager.url",
        &dead,
        "--alertmanager.notification-queue-capacity",
        "3",
    ]);
    // Five firing alerts, re-sent every second.
    let ts: Vec<_> = (0..5)
        .map(|gpu| {
            series(
                &[
                    ("__name__", "DCGM_FI_DEV_GPU_TEMP"),
                    ("gpu", &gpu.to_string()),
                ],
                &[(now_ms(), 50.0)],
            )
        })
        .collect();
    assert_eq!(t.write(&request(ts)).0, 204);
    let metric = |metrics: &str, name: &str| metric_value(metrics, name).unwrap_or(-1.0);
    let errors =
        format!("tessera_notifications_errors_total{{alertmanager=\"{dead}/api/v2/alerts\"}}");
    let m = eventually("alerts dropped past the queue capacity", || {
        let (_, m) = get(&t.url("/metrics")).unwrap();
        if metric(&m, "tessera_notifications_dropped_total") > 0.0 && metric(&m, &errors) > 0.0 {
            Ok(m)
        } else {
            Err(m
                .lines()
                .filter(|l| l.starts_with("tessera_notif"))
                .collect::<Vec<_>>()
                .join("\n"))
        }
    });
    let queued = metric(&m, "tessera_notifications_queue_length");
    assert!((0.0..=3.0).contains(&queued), "queue length {queued}");
    assert_eq!(metric(&m, "tessera_notifications_queue_capacity"), 3.0);
    assert_eq!(
        metric(&m, "tessera_notifications_sent_total"),
        -1.0,
        "no sample without a label"
    );

    // Evaluation goes on: more evaluations after the drops.
    let key = format!(
        "tessera_rule_evaluations_total{{rule_group=\"{};always\"}}",
        rules.display()
    );
    let before = metric(&m, &key);
    eventually("evaluations continuing", || {
        let (_, m) = get(&t.url("/metrics")).unwrap();
        let now = metric(&m, &key);
        if now > before + 1.0 {
            Ok(())
        } else {
            Err(format!("{before} -> {now}"))
        }
    });
    // Ingest and queries answer.
    let s = series(&[("__name__", "ingest_probe")], &[(now_ms(), 7.0)]);
    assert_eq!(t.write(&request(vec![s])).0, 204);
    let d = t.data("/api/v1/query?query=ingest_probe");
    assert_eq!(d["result"][0]["value"][1], "7");
    let d = t.data("/api/v1/alerts");
    assert_eq!(d["alerts"].as_array().unwrap().len(), 5);
}
