//! Remote write against a real `tessera serve`: what Prometheus clients rely
//! on, and what hostile or broken clients get. After every bad request the
//! server must still be healthy and still accept a good write.

mod common;

use common::*;
use prost::Message;

fn assert_still_serving(t: &Tessera, ts: i64) {
    assert_eq!(get(&t.url("/-/healthy")).unwrap().0, 200);
    let ok = request(vec![series(
        &[("__name__", "canary"), ("job", "t")],
        &[(ts, 1.0)],
    )]);
    assert_eq!(t.write(&ok).0, 204, "server stopped accepting good writes");
}

#[test]
fn accepts_a_write_and_serves_it_back_through_the_metadata_api() {
    let t = Tessera::start(&[]);
    let mut req = request(vec![
        series(
            &[
                ("__name__", "DCGM_FI_DEV_GPU_UTIL"),
                ("gpu", "0"),
                ("Hostname", "n1"),
                ("UUID", "GPU-1"),
            ],
            &[(1000, 42.0), (16000, 43.0)],
        ),
        series(
            // Unsorted labels are fine: the receiver sorts them.
            &[
                ("job", "node"),
                ("__name__", "node_load1"),
                ("instance", "n1:9100"),
            ],
            &[(1000, 0.5)],
        ),
    ]);
    req.metadata.push(tessera_ingest::proto::MetricMetadata {
        r#type: 2,
        metric_family_name: "DCGM_FI_DEV_GPU_UTIL".into(),
        help: "GPU utilization (in %).".into(),
        unit: String::new(),
    });
    let (status, body) = t.write(&req);
    assert_eq!(status, 204, "{body}");

    let s = t.data("/api/v1/series?match[]=DCGM_FI_DEV_GPU_UTIL&start=0");
    assert_eq!(
        s,
        serde_json::json!([{"Hostname": "n1", "UUID": "GPU-1", "__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0"}])
    );
    let names = t.data("/api/v1/label/__name__/values?start=0");
    assert_eq!(
        names,
        serde_json::json!(["DCGM_FI_DEV_GPU_UTIL", "node_load1"])
    );
    let labels = t.data("/api/v1/labels?match[]=node_load1&start=0");
    assert_eq!(labels, serde_json::json!(["__name__", "instance", "job"]));
    let md = t.data("/api/v1/metadata");
    assert_eq!(md["DCGM_FI_DEV_GPU_UTIL"][0]["type"], "gauge");
    assert_eq!(
        md["DCGM_FI_DEV_GPU_UTIL"][0]["help"],
        "GPU utilization (in %)."
    );
    // Form-encoded POST, as Grafana sends for long selectors.
    let (st, v) = post_form(
        &t.url("/api/v1/series"),
        &[("match[]", "{__name__=~\"node_.*\"}"), ("start", "0")],
    );
    assert_eq!(st, 200);
    assert_eq!(v["data"][0]["__name__"], "node_load1");
}

#[test]
fn rejects_malformed_bodies_with_the_right_status_and_keeps_serving() {
    let t = Tessera::start(&["--ingest.max-request-bytes", "100000"]);
    let url = t.url("/api/v1/write");
    let good = request(vec![series(&[("__name__", "up")], &[(1, 1.0)])]).encode_to_vec();
    let compressed = snappy(&good);

    // (body, expected status, a word the message must contain)
    let mut cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "garbage",
            b"this is not snappy at all".to_vec(),
            400,
            "snappy",
        ),
        (
            "truncated snappy",
            compressed[..compressed.len() / 2].to_vec(),
            400,
            "snappy",
        ),
        (
            "valid snappy, garbage protobuf",
            snappy(b"\xff\xff\xff\xff garbage"),
            400,
            "protobuf",
        ),
        ("oversized body", vec![0u8; 200_000], 413, "100000"),
    ];
    // A snappy header declaring 4 GiB followed by a few bytes: refused from
    // the header alone, before any allocation.
    let mut bomb = Vec::new();
    let mut n: u64 = 4 << 30;
    while n >= 0x80 {
        bomb.push((n as u8) | 0x80);
        n >>= 7;
    }
    bomb.push(n as u8);
    bomb.extend_from_slice(b"\x00\x01\x02");
    cases.push(("4 GiB decompression bomb", bomb, 413, "declares"));

    for (i, (what, body, want, word)) in cases.into_iter().enumerate() {
        let (status, msg) = post_raw(&url, &body);
        assert_eq!(status, want, "{what}: {msg}");
        assert!(
            msg.contains(word),
            "{what}: message {msg:?} should mention {word:?}"
        );
        assert_still_serving(&t, 1000 + i as i64);
    }
}

#[test]
fn rejects_invalid_series_but_keeps_the_valid_rest() {
    let t = Tessera::start(&[]);
    let many: Vec<(String, String)> = (0..100_000)
        .map(|i| (format!("l{i}"), "v".to_string()))
        .collect();
    let mut huge: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    huge.push(("__name__", "huge"));
    let cases: Vec<(&str, proto_series::T, &str)> = vec![
        (
            "invalid label name",
            series(&[("__name__", "x"), ("bad-name", "v")], &[(1, 1.0)]),
            "bad-name",
        ),
        (
            "duplicate label",
            series(&[("__name__", "x"), ("a", "1"), ("a", "2")], &[(1, 1.0)]),
            "duplicate",
        ),
        (
            "missing name",
            series(&[("job", "x")], &[(1, 1.0)]),
            "__name__",
        ),
        (
            "empty value",
            series(&[("__name__", "x"), ("a", "")], &[(1, 1.0)]),
            "empty",
        ),
        ("100k labels", series(&huge, &[(1, 1.0)]), "labels"),
    ];
    for (i, (what, bad, word)) in cases.into_iter().enumerate() {
        let keep = format!("kept_{i}");
        let req = request(vec![bad, series(&[("__name__", &keep)], &[(1, 1.0)])]);
        let (status, msg) = t.write(&req);
        assert_eq!(status, 400, "{what}: {msg}");
        assert!(
            msg.contains(word),
            "{what}: {msg:?} should mention {word:?}"
        );
        assert!(msg.contains("accepted 1 samples"), "{what}: {msg}");
        let s = t.data(&format!("/api/v1/series?match[]={keep}&start=0"));
        assert_eq!(
            s.as_array().unwrap().len(),
            1,
            "{what}: the valid series was not kept"
        );
        assert_still_serving(&t, 10 + i as i64);
    }
}

/// Lets the table above name the series type.
mod proto_series {
    pub(crate) type T = tessera_ingest::proto::TimeSeries;
}

#[test]
fn out_of_order_and_duplicate_samples_are_rejected_per_sample() {
    let t = Tessera::start(&[]);
    let s =
        |samples: &[(i64, f64)]| request(vec![series(&[("__name__", "m"), ("i", "0")], samples)]);
    assert_eq!(t.write(&s(&[(1000, 1.0), (2000, 2.0)])).0, 204);
    // Exact re-send of the last sample is accepted silently (a retry).
    assert_eq!(t.write(&s(&[(2000, 2.0)])).0, 204);
    let (status, msg) = t.write(&s(&[(1500, 9.0), (2000, 7.0), (3000, 3.0)]));
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("accepted 1 samples"), "{msg}");
    assert!(
        msg.contains("1 out of order") && msg.contains("1 duplicate"),
        "{msg}"
    );
    let (_, text) = get(&t.url("/metrics")).unwrap();
    assert!(
        text.contains("tessera_ingest_samples_rejected_total{reason=\"out_of_order\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tessera_ingest_samples_appended_total 3"),
        "{text}"
    );
}

#[test]
fn nan_inf_and_staleness_markers_are_accepted() {
    let t = Tessera::start(&[]);
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let req = request(vec![series(
        &[("__name__", "weird")],
        &[
            (1, f64::NAN),
            (2, f64::INFINITY),
            (3, f64::NEG_INFINITY),
            (4, stale),
        ],
    )]);
    assert_eq!(t.write(&req).0, 204);
    assert_still_serving(&t, 5);
}

#[test]
fn api_errors_use_the_prometheus_envelope() {
    let t = Tessera::start(&[]);
    let f = |path: &str, status: u16, word: &str| {
        let (st, v) = t.api(path);
        assert_eq!(st, status, "{path}: {v}");
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "bad_data");
        assert!(v["error"].as_str().unwrap().contains(word), "{path}: {v}");
    };
    f("/api/v1/series", 400, "no match[]");
    f("/api/v1/series?match[]=up{", 400, "match[]");
    f("/api/v1/series?match[]={a=~\".*\"}", 400, "empty");
    f("/api/v1/series?match[]=up&start=yesterday", 400, "start");
    f("/api/v1/series?match[]=up&limit=-3", 400, "limit");
    f("/api/v1/label/bad-name/values", 400, "label name");
}

#[test]
fn limit_parameter_truncates_with_a_warning_and_the_cap_is_a_422() {
    let t = Tessera::start(&["--api.max-series", "5"]);
    let ts: Vec<_> = (0..8)
        .map(|i| series(&[("__name__", "m"), ("i", &i.to_string())], &[(1, 1.0)]))
        .collect();
    assert_eq!(t.write(&request(ts)).0, 204);
    let (st, v) = t.api("/api/v1/series?match[]=m&limit=3&start=0");
    assert_eq!(st, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    assert!(
        v["warnings"][0].as_str().unwrap().contains("truncated"),
        "{v}"
    );
    let (st, v) = t.api("/api/v1/label/i/values?limit=2&start=0");
    assert_eq!((st, v["data"].as_array().unwrap().len()), (200, 2));
    assert!(v["warnings"][0].as_str().unwrap().contains("truncated"));
    let (st, v) = t.api("/api/v1/labels?limit=1&start=0");
    assert_eq!((st, v["data"].as_array().unwrap().len()), (200, 1));
    // Just under the cap succeeds, over it is a clear 422.
    let (st, _) = t.api("/api/v1/series?match[]=m&limit=5&start=0");
    assert_eq!(st, 200);
    let (st, v) = t.api("/api/v1/series?match[]=m&start=0");
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["errorType"], "execution");
    assert!(
        v["error"].as_str().unwrap().contains("--api.max-series"),
        "{v}"
    );
}

#[test]
fn refuses_to_start_with_a_different_shard_count() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    drop(Tessera::start_in(&dir, &["--shards", "4"]));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--shards",
            "8",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--shards 4") && err.contains("--shards 8"),
        "{err}"
    );
}

#[test]
fn metadata_calls_without_start_search_the_default_window() {
    let t = Tessera::start(&["--api.default-window", "1h"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let req = request(vec![
        series(&[("__name__", "recent")], &[(now - 60_000, 1.0)]),
        series(&[("__name__", "old")], &[(now - 3 * 3_600_000, 1.0)]),
    ]);
    assert_eq!(t.write(&req).0, 204);
    assert_eq!(
        t.data("/api/v1/label/__name__/values"),
        serde_json::json!(["recent"])
    );
    assert_eq!(
        t.data("/api/v1/series?match[]={__name__=~\".+\"}")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        t.data("/api/v1/label/__name__/values?start=0"),
        serde_json::json!(["old", "recent"])
    );
}

#[test]
fn samples_from_the_far_future_get_400_and_cannot_stall_the_head() {
    let t = Tessera::start(&[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // A client with a broken clock: the year-2100 sample is refused, the
    // honest one in the same request is kept.
    let req = request(vec![series(
        &[("__name__", "skewed")],
        &[(now - 1000, 1.0), (4_102_444_800_000, 2.0)],
    )]);
    let (status, msg) = t.write(&req);
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("too far in the future"), "{msg}");
    assert!(msg.contains("--ingest.max-future"), "{msg}");
    let d = t.data(&format!(
        "/api/v1/query?query=count_over_time(skewed[1m])&time={}",
        now / 1000
    ));
    assert_eq!(d["result"][0]["value"][1], "1", "{d}");
    let (_, metrics) = get(&t.url("/metrics")).unwrap();
    assert!(
        metrics.contains("tessera_ingest_samples_rejected_total{reason=\"too_far_in_future\"} 1"),
        "counted by reason"
    );
    // And a limit that would let the head run past a block cut is refused.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--block.duration", "2h", "--ingest.max-future", "1h"])
        .arg("--data-dir")
        .arg(t.data_dir.join("other"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("less than half of --block.duration"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
