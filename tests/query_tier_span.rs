//! `tessera query` skips partitions whose time span cannot hold samples in
//! the window a read needs, with real processes: an "old" partition holding
//! only data from three hours ago (as one kept for history after a
//! re-shard) and a live one. Queries over the last minutes do not reach the
//! old partition at all (pushed down or raw); a query at the old time does,
//! and its answer is the old data.

mod common;

use common::*;

fn requests(t: &Tessera, handler: &str) -> f64 {
    let (_, m) = get(&t.url("/metrics")).expect("metrics");
    let s = format!("tessera_http_requests_total{{handler=\"{handler}\",code=\"200\"}}");
    metric_value(&m, &s).unwrap_or(0.0)
}

#[test]
fn partitions_whose_span_cannot_hold_the_window_are_not_asked() {
    let now = now_ms() / 1000 * 1000;
    let old_end = now - 3 * 3600 * 1000;
    let points = |end: i64, v: f64| -> Vec<(i64, f64)> {
        (0..20).map(|i| (end - (19 - i) * 15_000, v)).collect()
    };
    let s = |instance: &str, samples: &[(i64, f64)]| {
        series(
            &[("__name__", "gpu_temp_celsius"), ("instance", instance)],
            samples,
        )
    };
    let (old, live) = (Tessera::start(&[]), Tessera::start(&[]));
    assert_eq!(
        old.write(&request(vec![s("n-old", &points(old_end, 40.0))]))
            .0,
        204
    );
    assert_eq!(
        live.write(&request(vec![s("n-live", &points(now, 60.0))]))
            .0,
        204
    );
    // The stores state their spans.
    let (_, m) = get(&old.url("/metrics")).expect("metrics");
    assert_eq!(
        metric_value(&m, "tessera_tsdb_highest_timestamp_seconds"),
        Some(old_end as f64 / 1000.0)
    );
    let tier = Tessera::start_tier(&[
        "--store",
        &format!("http://127.0.0.1:{}", old.port),
        "--store",
        &format!("http://127.0.0.1:{}", live.port),
    ]);
    let t = now / 1000;
    // Pushed down (sum) and raw (quantile) over the last minutes: the live
    // partition's answer only, the old partition never asked.
    let v = |d: &serde_json::Value| d["result"][0]["value"][1].as_str().map(str::to_string);
    for q in ["sum(gpu_temp_celsius)", "quantile(0.5, gpu_temp_celsius)"] {
        let d = tier.data(&format!("/api/v1/query?query={q}&time={t}"));
        assert_eq!(v(&d).as_deref(), Some("60"), "{q}: {d}");
    }
    let d = tier.data(&format!(
        "/api/v1/query_range?query=max(rate(gpu_temp_celsius[1m]))&start={}&end={t}&step=15",
        t - 300
    ));
    assert_eq!(d["result"].as_array().map(Vec::len), Some(1), "{d}");
    for h in ["/api/v1/query", "/api/v1/query_range", "/api/v1/read"] {
        assert_eq!(requests(&old, h), 0.0, "{h} reached the old partition");
    }
    assert!(requests(&live, "/api/v1/query") > 0.0);
    assert!(requests(&live, "/api/v1/read") > 0.0);
    let (_, m) = get(&tier.url("/metrics")).expect("metrics");
    assert!(metric_value(&m, "tessera_query_partitions_skipped_total").unwrap_or(0.0) >= 3.0);

    // At the old time the old partition is asked, and answers.
    let t_old = old_end / 1000;
    for q in ["sum(gpu_temp_celsius)", "quantile(0.5, gpu_temp_celsius)"] {
        let d = tier.data(&format!("/api/v1/query?query={q}&time={t_old}"));
        assert_eq!(v(&d).as_deref(), Some("40"), "{q}: {d}");
    }
    assert!(requests(&old, "/api/v1/query") > 0.0);
    assert!(requests(&old, "/api/v1/read") > 0.0);
}
