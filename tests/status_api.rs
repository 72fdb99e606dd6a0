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

#[test]
fn tsdb_status_takes_top_n_match_and_focus_label_like_victoriametrics() {
    let t = Tessera::start(&["--api.max-series", "10"]);
    let mut ts = Vec::new();
    for host in 0..3 {
        for gpu in 0..4 {
            ts.push(series(
                &[
                    ("__name__", "DCGM_FI_DEV_GPU_TEMP"),
                    ("Hostname", &format!("n{host}")),
                    ("gpu", &gpu.to_string()),
                ],
                &[(1000, 1.0)],
            ));
        }
        ts.push(series(
            &[("__name__", "up"), ("instance", &format!("n{host}"))],
            &[(1000, 1.0)],
        ));
    }
    assert_eq!(t.write(&request(ts)).0, 204);
    let count = |selector: &str| {
        t.data(&format!("/api/v1/series?match[]={selector}&start=0"))
            .as_array()
            .unwrap()
            .len() as u64
    };

    // match[] restricts every list to those series; focusLabel counts the
    // series per value of that label; the figures are /api/v1/series'.
    let sel = "DCGM_FI_DEV_GPU_TEMP{Hostname=~\"n0|n1\"}";
    let d = t.data(&format!(
        "/api/v1/status/tsdb?topN=3&focusLabel=gpu&match[]={sel}"
    ));
    assert_eq!(d["totalSeries"], count(sel));
    assert_eq!(d["seriesCountByMetricName"].as_array().unwrap().len(), 1);
    let by_gpu = d["seriesCountByFocusLabelValue"].as_array().unwrap();
    assert_eq!(by_gpu.len(), 3, "cut to topN: {d}");
    for e in by_gpu {
        let v = e["name"].as_str().unwrap();
        let one = format!("DCGM_FI_DEV_GPU_TEMP{{Hostname=~\"n0|n1\",gpu=\"{v}\"}}");
        assert_eq!(e["value"], count(&one), "{e}");
    }
    let names = &d["labelValueCountByLabelName"];
    assert!(
        !names.to_string().contains("instance"),
        "only the matched series' labels: {names}"
    );
    assert_eq!(
        d["seriesCountByLabelName"][0],
        serde_json::json!({"name": "Hostname", "value": 8})
    );
    // Churn: every series was created since the (absent) last cut.
    assert_eq!(d["churn"]["seriesCreatedSinceCut"], 15);
    assert_eq!(d["churn"]["seriesRemovedByLastCut"], 0);

    // Bounded like every other read: more matched series than
    // --api.max-series is a 422 naming the flag; a topN over the cap is
    // cut with a warning; a bad focus label or selector is a 400.
    let (status, v) = t.api("/api/v1/status/tsdb?match[]={__name__=~\".+\"}");
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("--api.max-series"),
        "{v}"
    );
    let (status, v) = t.api("/api/v1/status/tsdb?topN=5000");
    assert_eq!(status, 200, "{v}");
    assert!(v["warnings"][0].as_str().unwrap().contains("1000"), "{v}");
    let (status, v) = t.api("/api/v1/status/tsdb?focusLabel=a-b");
    assert_eq!(
        (status, v["errorType"].as_str()),
        (400, Some("bad_data")),
        "{v}"
    );
    let (status, v) = t.api("/api/v1/status/tsdb?match[]=sum(up)");
    assert_eq!(
        (status, v["errorType"].as_str()),
        (400, Some("bad_data")),
        "{v}"
    );
    let (status, v) = t.api("/api/v1/status/tsdb?topN=x");
    assert_eq!(status, 400, "{v}");
}
