//! `series-flood`: the two `/api/v1/series` calls Grafana sends that ran a
//! 7,500-node Prometheus out of memory — `match[]={le!=""}` (every
//! histogram bucket) and `match[]={__name__=~".+"}` (everything) — each
//! with a client timeout, then the server's RSS and CPU watched for
//! `--after` seconds once the client has given up. A server that cancels
//! work on disconnect shows flat CPU and RSS in that window.

use std::time::Duration;

use clap::Args;

use super::{TargetArgs, parse_duration};
use crate::client::{Client, base_url, url_encode};
use crate::modes::query::result_size;
use crate::proc_stats::{self, ProcSampler};
use crate::report::{FloodCall, FloodReport};

/// Options of the series-flood mode.
#[derive(Debug, Clone, Args)]
pub struct FloodArgs {
    /// Client timeout of each series call (Grafana's default is 30 s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub flood_timeout: Duration,
    /// How long to watch the server after the last call.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub after: Duration,
    /// Time range of the calls, ending now (Grafana sends the dashboard's).
    #[arg(long, default_value = "6h", value_parser = parse_duration)]
    pub range: Duration,
}

/// The matchers Grafana's variable queries and metric browser send.
pub const MATCHERS: [&str; 2] = ["{le!=\"\"}", "{__name__=~\".+\"}"];

pub async fn run(args: &FloodArgs, target: &TargetArgs, client: &Client) -> FloodReport {
    let base = base_url(&target.url);
    let end = crate::modes::ingest::now_ms() as f64 / 1000.0;
    let start = end - args.range.as_secs_f64();
    let before = target.pid.and_then(|p| proc_stats::read(p).ok());
    let during = target
        .pid
        .map(|pid| ProcSampler::start(pid, Duration::from_millis(100)));
    let mut calls = Vec::new();
    for m in MATCHERS {
        let url = format!(
            "{base}/api/v1/series?match[]={}&start={start:.3}&end={end:.3}",
            url_encode(m)
        );
        let t = std::time::Instant::now();
        let call = match client.get(&url, args.flood_timeout).await {
            Ok(r) => {
                let series = result_size(&r.body).map_or(0, |s| s.0);
                let outcome = if r.status == 200 {
                    "ok".into()
                } else {
                    format!("HTTP {}", r.status)
                };
                FloodCall {
                    matcher: m.into(),
                    outcome,
                    latency_ms: r.latency.as_secs_f64() * 1e3,
                    bytes: r.body.len(),
                    series,
                }
            }
            Err(e) => FloodCall {
                matcher: m.into(),
                outcome: if e.starts_with("timeout") {
                    "timeout".into()
                } else {
                    e
                },
                latency_ms: t.elapsed().as_secs_f64() * 1e3,
                bytes: 0,
                series: 0,
            },
        };
        calls.push(call);
    }
    let during = during.map(ProcSampler::finish);
    // The client has hung up (or got its answer); watch what the server
    // keeps doing.
    let after = target
        .pid
        .map(|pid| ProcSampler::start(pid, Duration::from_millis(100)));
    tokio::time::sleep(args.after).await;
    let after = after.map(ProcSampler::finish);
    FloodReport {
        timeout_secs: args.flood_timeout.as_secs_f64(),
        after_secs: args.after.as_secs_f64(),
        calls,
        rss_before_bytes: before.map(|b| b.0),
        rss_peak_during_bytes: during.as_ref().map(|d| d.peak_rss_bytes),
        rss_peak_after_bytes: after.as_ref().map(|a| a.peak_rss_bytes),
        rss_end_bytes: after.as_ref().map(|a| a.end_rss_bytes),
        cpu_secs_after: after.as_ref().map(|a| a.cpu_secs),
        server_alive: target.pid.map(|p| proc_stats::read(p).is_ok()),
    }
}
