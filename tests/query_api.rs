//! `/api/v1/query` and `/api/v1/query_range` over HTTP against a real
//! `tessera serve`: Prometheus' JSON shapes, number formatting, parameters
//! and error codes.

mod common;

use common::*;
use serde_json::json;

fn loaded() -> Tessera {
    let t = Tessera::start(&[]);
    let mut ts = Vec::new();
    for gpu in 0..4 {
        let g = gpu.to_string();
        let samples: Vec<(i64, f64)> = (0..=40)
            .map(|i| (i * 15_000, (gpu * 10 + i) as f64))
            .collect();
        ts.push(series(
            &[
                ("__name__", "DCGM_FI_DEV_GPU_UTIL"),
                ("gpu", &g),
                ("Hostname", "n1"),
            ],
            &samples,
        ));
    }
    ts.push(series(
        &[("__name__", "weird")],
        &[(0, f64::NAN), (15_000, f64::INFINITY)],
    ));
    assert_eq!(t.write(&request(ts)).0, 204);
    t
}

#[test]
fn instant_query_returns_a_prometheus_vector() {
    let t = loaded();
    let d = t.data("/api/v1/query?query=sum by (Hostname) (DCGM_FI_DEV_GPU_UTIL)&time=600");
    // At t=600s the samples are i=40: 40 + 50 + 60 + 70.
    assert_eq!(
        d,
        json!({"resultType": "vector", "result": [{"metric": {"Hostname": "n1"}, "value": [600, "220"]}]})
    );
    let d = t.data("/api/v1/query?query=weird&time=15.5");
    assert_eq!(d["result"][0]["value"], json!([15.5, "+Inf"]));
    let d = t.data("/api/v1/query?query=1/0&time=1");
    assert_eq!(d, json!({"resultType": "scalar", "result": [1, "+Inf"]}));
    let d = t.data("/api/v1/query?query=\"hello\"&time=2");
    assert_eq!(d, json!({"resultType": "string", "result": [2, "hello"]}));
    let d = t.data("/api/v1/query?query=DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"}[31s]&time=30");
    assert_eq!(d["resultType"], "matrix");
    assert_eq!(
        d["result"][0]["values"],
        json!([[0, "0"], [15, "1"], [30, "2"]])
    );
}

#[test]
fn stats_parameter_adds_the_time_and_peak_samples() {
    let t = loaded();
    let d =
        t.data("/api/v1/query_range?query=DCGM_FI_DEV_GPU_UTIL&start=0&end=600&step=15&stats=all");
    assert_eq!(d["result"].as_array().unwrap().len(), 4);
    // 4 series of 41 points held at once.
    assert_eq!(d["stats"]["samples"]["peakSamples"], 164, "{d}");
    assert!(d["stats"]["timings"]["evalTotalTime"].as_f64().unwrap() >= 0.0);
    let d = t.data("/api/v1/query?query=DCGM_FI_DEV_GPU_UTIL&time=600");
    assert!(d.get("stats").is_none(), "only when asked: {d}");
}

#[test]
fn range_query_returns_a_matrix_and_form_post_works() {
    let t = loaded();
    let (st, v) = post_form(
        &t.url("/api/v1/query_range"),
        &[
            ("query", "DCGM_FI_DEV_GPU_UTIL{gpu=\"1\"}"),
            ("start", "1970-01-01T00:00:00Z"),
            ("end", "60"),
            ("step", "30s"),
        ],
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    assert_eq!(
        v["data"]["result"][0]["values"],
        json!([[0, "10"], [30, "12"], [60, "14"]])
    );
    let d = t.data("/api/v1/query_range?query=rate(DCGM_FI_DEV_GPU_UTIL{gpu=\"2\"}[1m])&start=300&end=300&step=15");
    // The series grows by 1 per 15 s: rate = 1/15 per second.
    let v: f64 = d["result"][0]["values"][0][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((v - 1.0 / 15.0).abs() < 1e-9, "{d}");
}

#[test]
fn query_errors_have_prometheus_types_and_codes() {
    let t = loaded();
    let f = |path: &str, status: u16, kind: &str, word: &str| {
        let (st, v) = t.api(path);
        assert_eq!(st, status, "{path}: {v}");
        assert_eq!(v["status"], "error", "{v}");
        assert_eq!(v["errorType"], kind, "{path}: {v}");
        assert!(
            v["error"].as_str().unwrap_or("").contains(word),
            "{path}: {v}"
        );
    };
    // Prometheus 2.42's text for both, position included (issue 20).
    f(
        "/api/v1/query?query=sum(",
        400,
        "bad_data",
        "invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis",
    );
    f(
        "/api/v1/query?query=x +",
        400,
        "bad_data",
        "invalid parameter \"query\": 1:4: parse error: unexpected end of input",
    );
    f("/api/v1/query", 400, "bad_data", "query");
    f(
        "/api/v1/query?query=up&time=tomorrow",
        400,
        "bad_data",
        "time",
    );
    f(
        "/api/v1/query_range?query=up&start=0&end=100000&step=1",
        400,
        "bad_data",
        "11,000",
    );
    f(
        "/api/v1/query_range?query=up&start=10&end=0&step=1",
        400,
        "bad_data",
        "end",
    );
    f(
        "/api/v1/query_range?query=up&start=0&end=10&step=0",
        400,
        "bad_data",
        "step",
    );
    f(
        "/api/v1/query_range?query=up&start=0&end=10",
        400,
        "bad_data",
        "step",
    );
    // Two series with the same labels after dropping the name: Prometheus' error.
    f(
        "/api/v1/query?query=label_replace(DCGM_FI_DEV_GPU_UTIL, \"gpu\", \"x\", \"gpu\", \".*\") * 1&time=600",
        422,
        "execution",
        "same labelset",
    );
}

#[test]
fn hostile_queries_get_an_error_or_an_answer_and_the_server_survives() {
    let t = loaded();
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    let queries = [
        deep.as_str(),
        "DCGM_FI_DEV_GPU_UTIL[100y]",
        "count_over_time(DCGM_FI_DEV_GPU_UTIL[10000d:1s])",
        "DCGM_FI_DEV_GPU_UTIL{gpu=~\"(a|b)*c{1000}\"}",
        "DCGM_FI_DEV_GPU_UTIL / 0",
        "{__name__=~\".*x\"}",
    ];
    for q in queries {
        let (st, v) = t.api(&format!("/api/v1/query?query={q}&time=600&timeout=5s"));
        assert!(
            st == 200 || st == 400 || st == 422 || st == 503,
            "{q:.60}: unexpected status {st}: {v}"
        );
        assert_eq!(
            get(&t.url("/-/healthy")).unwrap().0,
            200,
            "server died on {q:.60}"
        );
    }
}
