//! `--ingest.relabel-config` against a real `tessera serve`: rules applied
//! before storage, drops counted by rule, reload by `POST /-/reload` and
//! SIGHUP, and a bad file keeping the old rules in force.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn names(t: &Tessera) -> Vec<String> {
    serde_json::from_value(t.data("/api/v1/label/__name__/values?start=0")).unwrap()
}

fn metric(t: &Tessera, line_prefix: &str) -> Option<f64> {
    let (_, text) = get(&t.url("/metrics")).unwrap();
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn post_reload(t: &Tessera) -> (u16, String) {
    let mut r = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .post(&t.url("/-/reload"))
        .send_empty()
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

#[test]
fn relabels_at_ingest_and_reloads_safely() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("relabel.yml");
    std::fs::write(
        &rules,
        "# drop Go runtime noise, rename a label\n\
         - source_labels: [__name__]\n  regex: go_.*\n  action: drop\n\
         - source_labels: [Hostname]\n  target_label: node\n\
         - regex: Hostname\n  action: labeldrop\n",
    )
    .unwrap();
    let t = Tessera::start(&[
        "--ingest.relabel-config",
        rules.to_str().unwrap(),
        // POST /-/reload is part of the lifecycle API.
        "--web.enable-lifecycle",
    ]);
    let w = |name: &str, ts: i64| {
        t.write(&request(vec![series(
            &[("__name__", name), ("Hostname", "gpu-1")],
            &[(ts, 1.0)],
        )]))
    };
    assert_eq!(w("go_goroutines", 1).0, 204);
    assert_eq!(w("DCGM_FI_DEV_GPU_UTIL", 1).0, 204);
    assert_eq!(names(&t), vec!["DCGM_FI_DEV_GPU_UTIL"]);
    let s = t.data("/api/v1/series?match[]=DCGM_FI_DEV_GPU_UTIL&start=0");
    assert_eq!(s[0]["node"], "gpu-1");
    assert!(s[0].get("Hostname").is_none(), "{s}");
    assert_eq!(
        metric(&t, "tessera_relabel_series_dropped_total{rule=\"0\"}"),
        Some(1.0)
    );

    // A broken file: reload fails with the reason, the old rules stay.
    std::fs::write(
        &rules,
        "- action: hashmod\n  source_labels: [a]\n  target_label: b\n",
    )
    .unwrap();
    let (status, body) = post_reload(&t);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("modulus"), "{body}");
    assert_eq!(w("go_threads", 2).0, 204);
    assert!(
        !names(&t).contains(&"go_threads".to_string()),
        "old drop rule not applied"
    );

    // A good file through SIGHUP: from now on nothing is dropped.
    std::fs::write(&rules, "[]\n").unwrap();
    // SAFETY: kill(2) with a pid we spawned and a standard signal.
    unsafe { libc::kill(t.child.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&t, "tessera_relabel_rules") != Some(0.0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&t, "tessera_relabel_rules"), Some(0.0));
    assert_eq!(w("go_gc_total", 3).0, 204);
    assert!(names(&t).contains(&"go_gc_total".to_string()));
    assert_eq!(
        metric(
            &t,
            "tessera_relabel_config_reloads_total{result=\"failure\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &t,
            "tessera_relabel_config_reloads_total{result=\"success\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn refuses_to_start_with_an_invalid_relabel_file() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("bad.yml");
    std::fs::write(&rules, "- action: nonsense\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(tmp.path().join("d"))
        .arg("--ingest.relabel-config")
        .arg(&rules)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yml") && err.contains("nonsense"), "{err}");
}
