//! Prometheus status endpoints Grafana and tooling call: tsdb cardinality,
//! runtime info, flags, build info, and Tessera's running-queries view.

mod common;

use common::*;

#[test]
fn status_endpoints_answer_in_prometheus_shapes() {
    let t = Tessera::start(&["--api.max-series", "5000"]);
    let mut ts = Vec::new();
    for host in 0..2 {
        for gpu in 0..8 {
            ts.push(series(
                &[
                    ("__name__", "DCGM_FI_DEV_GPU_UTIL"),
                    ("Hostname", &format!("n{host}")),
                    ("gpu", &gpu.to_string()),
                ],
                &[(1000, 1.0)],
            ));
        }
    }
    ts.push(series(
        &[("__name__", "up"), ("job", "node")],
        &[(2000, 1.0)],
    ));
    assert_eq!(t.write(&request(ts)).0, 204);

    let d = t.data("/api/v1/status/tsdb?limit=2");
    assert_eq!(d["headStats"]["numSeries"], 17);
    assert_eq!(d["headStats"]["minTime"], 1000);
    assert_eq!(d["headStats"]["maxTime"], 2000);
    assert_eq!(
        d["seriesCountByMetricName"][0],
        serde_json::json!({"name": "DCGM_FI_DEV_GPU_UTIL", "value": 16})
    );
    assert_eq!(d["seriesCountByMetricName"].as_array().unwrap().len(), 2);
    assert_eq!(
        d["labelValueCountByLabelName"][0],
        serde_json::json!({"name": "gpu", "value": 8})
    );
    assert!(d["memoryInBytesByLabelName"].is_array());
    assert_eq!(
        d["seriesCountByLabelValuePair"][0]["name"],
        "__name__=DCGM_FI_DEV_GPU_UTIL"
    );

    let d = t.data("/api/v1/status/flags");
    assert_eq!(d["api_max_series"], "5000", "{d}");
    let d = t.data("/api/v1/status/runtimeinfo");
    assert!(d["startTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(d["reloadConfigSuccess"], true);
    let d = t.data("/api/v1/status/buildinfo");
    assert_eq!(d["application"], "tessera");
    let d = t.data("/api/v1/status/queries");
    assert_eq!(d["running"], serde_json::json!([]));
}
