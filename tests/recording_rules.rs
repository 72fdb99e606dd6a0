//! Recording rules end to end against a real `tessera serve`: a rule file
//! given with `--rules.file`, input written by remote write, the recorded
//! series read back through `/api/v1/query`, the group through
//! `/api/v1/rules`, the counters through `/metrics`, and a bad reload that
//! keeps the rules in force.

mod common;

use common::*;
use serde_json::Value;

const RULES: &str = "\
groups:
  - name: gpu.node
    rules:
      - record: Hostname:DCGM_FI_DEV_GPU_UTIL:sum
        expr: sum by (Hostname) (DCGM_FI_DEV_GPU_UTIL)
        labels:
          source: tessera-rules
      - record: Hostname:DCGM_FI_DEV_GPU_UTIL:sum_x2
        expr: Hostname:DCGM_FI_DEV_GPU_UTIL:sum * 2
      - alert: GpuIdle
        expr: DCGM_FI_DEV_GPU_UTIL == 0
        for: 5m
";

#[test]
fn recording_rules_write_series_readable_through_the_query_api() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("gpu.yml");
    std::fs::write(&rules, RULES).unwrap();
    let pattern = format!("{}/*.yml", dir.path().display());
    let t = Tessera::start(&[
        // POST /-/reload is part of the lifecycle API.
        "--web.enable-lifecycle",
        "--rules.file",
        &pattern,
        "--rules.evaluation-interval",
        "1s",
    ]);

    // Four GPUs on two nodes, sampled for the last minute up to now.
    let now = now_ms();
    let mut ts = Vec::new();
    for (host, gpu, util) in [
        ("n1", "0", 10.0),
        ("n1", "1", 20.0),
        ("n2", "0", 30.0),
        ("n2", "1", 40.0),
    ] {
        let samples: Vec<(i64, f64)> = (0..4).map(|i| (now - 45_000 + i * 15_000, util)).collect();
        ts.push(series(
            &[
                ("__name__", "DCGM_FI_DEV_GPU_UTIL"),
                ("Hostname", host),
                ("gpu", gpu),
            ],
            &samples,
        ));
    }
    assert_eq!(t.write(&request(ts)).0, 204);

    // Wait for an evaluation after the write (one racing it may have seen
    // part of the batch; the next slot, 1s later, sees all of it).
    let want: Vec<(String, String, String)> = vec![
        ("n1".into(), "tessera-rules".into(), "30".into()),
        ("n2".into(), "tessera-rules".into(), "70".into()),
    ];
    let result = eventually("the recorded series", || {
        let d = t.data("/api/v1/query?query=Hostname:DCGM_FI_DEV_GPU_UTIL:sum");
        let r = d["result"].as_array().cloned().unwrap_or_default();
        let mut got: Vec<(String, String, String)> = r
            .iter()
            .map(|s| {
                (
                    s["metric"]["Hostname"].as_str().unwrap_or("").to_string(),
                    s["metric"]["source"].as_str().unwrap_or("").to_string(),
                    s["value"][1].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        got.sort();
        if got == want {
            Ok(r)
        } else {
            Err(format!("{got:?}"))
        }
    });
    assert_eq!(
        result[0]["metric"]["__name__"],
        "Hostname:DCGM_FI_DEV_GPU_UTIL:sum"
    );
    // The second rule saw the first one's output.
    let x2 = eventually("the chained rule", || {
        let d = t.data("/api/v1/query?query=sum(Hostname:DCGM_FI_DEV_GPU_UTIL:sum_x2)");
        match d["result"][0]["value"][1].as_str() {
            Some("200") => Ok("200".to_string()),
            _ => Err(d.to_string()),
        }
    });
    assert_eq!(x2, "200");

    // /api/v1/rules in Prometheus' shape, the group evaluated and healthy.
    let group = eventually("an evaluated group", || {
        let d = t.data("/api/v1/rules");
        let g = d["groups"][0].clone();
        if g["rules"][0]["health"] == "ok" && g["rules"][1]["health"] == "ok" {
            Ok(g)
        } else {
            Err(d.to_string())
        }
    });
    assert_eq!(group["name"], "gpu.node");
    assert_eq!(group["file"], rules.display().to_string());
    assert_eq!(group["interval"], 1.0);
    assert_ne!(group["lastEvaluation"], "0001-01-01T00:00:00Z");
    let r0 = &group["rules"][0];
    assert_eq!(r0["type"], "recording");
    assert_eq!(r0["name"], "Hostname:DCGM_FI_DEV_GPU_UTIL:sum");
    assert_eq!(r0["query"], "sum by (Hostname) (DCGM_FI_DEV_GPU_UTIL)");
    assert_eq!(r0["labels"]["source"], "tessera-rules");
    let alert = &group["rules"][2];
    assert_eq!(alert["type"], "alerting");
    assert_eq!(alert["health"], "ok");
    assert_eq!(alert["state"], "inactive");
    assert!(alert.get("lastError").is_none(), "{alert}");

    // Filters.
    let d = t.data("/api/v1/rules?type=alert");
    let names: Vec<&Value> = d["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["name"])
        .collect();
    assert_eq!(names, vec!["GpuIdle"]);
    let d = t.data("/api/v1/rules?rule_group[]=nonexistent");
    assert_eq!(d["groups"].as_array().unwrap().len(), 0);
    let (status, v) = t.api("/api/v1/rules?type=both");
    assert_eq!(
        (status, v["errorType"].as_str()),
        (400, Some("bad_data")),
        "{v}"
    );

    // Self-metrics.
    let (status, metrics) = get(&t.url("/metrics")).unwrap();
    assert_eq!(status, 200);
    let key = format!("{};gpu.node", rules.display());
    assert!(
        metrics.contains(&format!(
            "tessera_rule_evaluations_total{{rule_group=\"{key}\"}}"
        )),
        "{metrics}"
    );
    // Rule results take remote write's append path, so its counters
    // include them: the write above created 4 series with 16 samples.
    let counter = |name: &str| -> f64 {
        metric_value(&metrics, name).unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    assert!(
        counter("tessera_ingest_series_created_total") > 4.0,
        "{metrics}"
    );
    assert!(
        counter("tessera_ingest_samples_appended_total") > 16.0,
        "{metrics}"
    );

    // A bad reload keeps the group in force and says why.
    std::fs::write(
        &rules,
        "groups:\n  - name: gpu.node\n    rules:\n      - record: 'bad name'\n        expr: up\n",
    )
    .unwrap();
    let (status, _) = post_form(&t.url("/-/reload"), &[]);
    assert_eq!(status, 500);
    let d = t.data("/api/v1/rules?type=record");
    assert_eq!(
        d["groups"][0]["rules"][0]["name"],
        "Hostname:DCGM_FI_DEV_GPU_UTIL:sum"
    );
}

#[test]
fn a_bad_rule_file_refuses_to_start_naming_file_group_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.yml");
    std::fs::write(&rules, "groups:\n  - name: g1\n    rules:\n      - record: ok\n        expr: up\n      - record: broken\n        expr: sum((\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--rules.file")
        .arg(&rules)
        .output()
        .expect("run tessera");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yml"), "{stderr}");
    assert!(
        stderr.contains("group \"g1\", rule 2 (\"broken\")"),
        "{stderr}"
    );
    assert!(stderr.contains("could not parse expression"), "{stderr}");
}
