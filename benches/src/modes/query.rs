//! `query`: the calls a Grafana GPU-fleet dashboard makes on refresh —
//! template-variable lookups (`/api/v1/labels`, `label/<name>/values`,
//! `series`), instant stat panels and range graphs over dcgm-exporter and
//! node-exporter data — each repeated `--repeat` times, with p50/p99
//! latency and result sizes.
//!
//! Queries follow NVIDIA's dcgm-exporter dashboard and "Node Exporter Full":
//! fleet averages, per-host breakdowns, `rate()` over counters, `topk`, a
//! ratio and a classic-histogram `histogram_quantile`.

use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::{TargetArgs, parse_duration};
use crate::client::{Client, base_url, url_encode};
use crate::generator::host_name;
use crate::modes::ingest::now_ms;
use crate::proc_stats::ProcSampler;
use crate::report::{Latency, QueryReport, QueryStat};

/// Options of the query mode.
#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// Times each query is sent.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Time range of range queries and metadata calls, ending now.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub range: Duration,
    /// Step of range queries.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub step: Duration,
}

/// One dashboard call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: &'static str,
    pub kind: &'static str,
    /// Path and query string.
    pub request: String,
}

/// The dashboard set, for a window `[end - range, end]` (seconds).
pub fn dashboard(end: f64, range: f64, step: f64) -> Vec<Call> {
    let host = host_name(0);
    let start = end - range;
    let instant = |name, q: &str| Call {
        name,
        kind: "instant",
        request: format!("/api/v1/query?query={}&time={end:.3}", url_encode(q)),
    };
    let ranged = |name, q: &str| Call {
        name,
        kind: "range",
        request: format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step}",
            url_encode(q)
        ),
    };
    let window = format!("&start={start:.3}&end={end:.3}");
    vec![
        Call {
            name: "labels",
            kind: "api",
            request: format!("/api/v1/labels?{}", &window[1..]),
        },
        Call {
            name: "label Hostname values",
            kind: "api",
            request: format!("/api/v1/label/Hostname/values?{}", &window[1..]),
        },
        Call {
            name: "label gpu values for host",
            kind: "api",
            request: format!(
                "/api/v1/label/gpu/values?match[]={}{window}",
                url_encode(&format!("DCGM_FI_DEV_GPU_UTIL{{Hostname=\"{host}\"}}"))
            ),
        },
        Call {
            name: "label instance values",
            kind: "api",
            request: format!(
                "/api/v1/label/instance/values?match[]={}{window}",
                url_encode("node_uname_info")
            ),
        },
        Call {
            name: "series GPU_UTIL of host",
            kind: "api",
            request: format!(
                "/api/v1/series?match[]={}{window}",
                url_encode(&format!("DCGM_FI_DEV_GPU_UTIL{{Hostname=\"{host}\"}}"))
            ),
        },
        instant("fleet avg GPU util", "avg(DCGM_FI_DEV_GPU_UTIL)"),
        instant("fleet power, W", "sum(DCGM_FI_DEV_POWER_USAGE)"),
        instant("hottest 10 GPUs", "topk(10, DCGM_FI_DEV_GPU_TEMP)"),
        instant(
            "GPUs with XID errors",
            "count(DCGM_FI_DEV_XID_ERRORS != 0) or vector(0)",
        ),
        instant(
            "FB used ratio",
            "sum(DCGM_FI_DEV_FB_USED) / sum(DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)",
        ),
        ranged(
            "GPU util by host",
            "avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL)",
        ),
        ranged(
            "GPU temp of host",
            &format!("DCGM_FI_DEV_GPU_TEMP{{Hostname=\"{host}\"}}"),
        ),
        ranged(
            "energy rate by host",
            "sum by (Hostname) (rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[1m]))",
        ),
        ranged(
            "tensor active of host",
            &format!("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{{Hostname=\"{host}\"}}"),
        ),
        ranged(
            "CPU busy % by node",
            "100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[1m])))",
        ),
        ranged(
            "memory available ratio",
            "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
        ),
        ranged(
            "network rx by node",
            "sum by (instance) (rate(node_network_receive_bytes_total{device!=\"lo\"}[1m]))",
        ),
        ranged(
            "filesystem avail ratio",
            "node_filesystem_avail_bytes{fstype!=\"tmpfs\"} / node_filesystem_size_bytes{fstype!=\"tmpfs\"}",
        ),
        ranged(
            "kubelet p99 op latency",
            "histogram_quantile(0.99, sum by (le, operation_type) (rate(kubelet_runtime_operations_duration_seconds_bucket[1m])))",
        ),
    ]
}

/// Counts what an answer holds: (series or names, points of a matrix).
pub fn result_size(body: &[u8]) -> Result<(usize, usize), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!(
            "{}: {}",
            v["errorType"].as_str().unwrap_or("error"),
            v["error"].as_str().unwrap_or("?")
        ));
    }
    let data = &v["data"];
    if let Some(items) = data.as_array() {
        return Ok((items.len(), 0));
    }
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("matrix") => {
            let series = result.as_array().map_or(0, Vec::len);
            let points = result.as_array().map_or(0, |a| {
                a.iter()
                    .map(|s| s["values"].as_array().map_or(0, Vec::len))
                    .sum()
            });
            Ok((series, points))
        }
        Some("vector") => Ok((result.as_array().map_or(0, Vec::len), 0)),
        _ => Ok((1, 0)),
    }
}

/// Runs the dashboard set serially (one Grafana panel at a time keeps the
/// latencies comparable between servers).
pub async fn run(args: &QueryArgs, target: &TargetArgs, client: &Client) -> QueryReport {
    let base = base_url(&target.url);
    let end = now_ms() as f64 / 1000.0;
    let (range, step) = (args.range.as_secs_f64(), args.step.as_secs_f64().max(0.001));
    let sampler = target
        .pid
        .map(|pid| ProcSampler::start(pid, Duration::from_millis(250)));
    let mut stats = Vec::new();
    for call in dashboard(end, range, step) {
        let mut lat = Vec::with_capacity(args.repeat);
        let mut stat = QueryStat {
            name: call.name.into(),
            kind: call.kind.into(),
            request: call.request.clone(),
            ..QueryStat::default()
        };
        for _ in 0..args.repeat.max(1) {
            match client
                .get(&format!("{base}{}", call.request), target.timeout)
                .await
            {
                Ok(r) => {
                    lat.push(r.latency);
                    match (r.status, result_size(&r.body)) {
                        (200, Ok((items, points))) => {
                            stat.ok += 1;
                            (stat.result_items, stat.result_points, stat.result_bytes) =
                                (items, points, r.body.len());
                        }
                        (status, res) => {
                            stat.errors += 1;
                            let why = res.err().unwrap_or_default();
                            stat.first_error
                                .get_or_insert_with(|| format!("HTTP {status} {why}"));
                        }
                    }
                }
                Err(e) => {
                    stat.errors += 1;
                    stat.first_error.get_or_insert(e);
                }
            }
        }
        stat.latency = Latency::from_durations(&mut lat);
        stats.push(stat);
    }
    QueryReport {
        repeat: args.repeat,
        range_secs: range,
        step_secs: step,
        dashboard_p50_ms: stats.iter().map(|s| s.latency.p50_ms).sum(),
        worst_p99_ms: stats.iter().map(|s| s.latency.p99_ms).fold(0.0, f64::max),
        errors: stats.iter().map(|s| s.errors).sum(),
        queries: stats,
        process: sampler.map(ProcSampler::finish),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_size_counts_series_points_and_names() {
        let f = |body: &str, want: Result<(usize, usize), ()>| {
            assert_eq!(result_size(body.as_bytes()).map_err(|_| ()), want, "{body}")
        };
        f(r#"{"status":"success","data":["a","b"]}"#, Ok((2, 0)));
        f(
            r#"{"status":"success","data":{"resultType":"vector","result":[{},{},{}]}}"#,
            Ok((3, 0)),
        );
        f(
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1,"1"],[2,"2"]]},{"values":[[1,"1"]]}]}}"#,
            Ok((2, 3)),
        );
        f(
            r#"{"status":"error","errorType":"bad_data","error":"x"}"#,
            Err(()),
        );
        f("not json", Err(()));
    }

    #[test]
    fn dashboard_covers_metadata_instant_and_range_calls_with_encoded_queries() {
        let calls = dashboard(1000.0, 900.0, 15.0);
        for kind in ["api", "instant", "range"] {
            assert!(
                calls.iter().filter(|c| c.kind == kind).count() >= 4,
                "{kind}"
            );
        }
        assert!(
            calls
                .iter()
                .all(|c| !c.request.contains(' ') && !c.request.contains('"'))
        );
        let r = calls
            .iter()
            .find(|c| c.kind == "range")
            .expect("range call");
        assert!(
            r.request.ends_with("&start=100.000&end=1000.000&step=15"),
            "{}",
            r.request
        );
    }
}
