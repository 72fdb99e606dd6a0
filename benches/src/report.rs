//! Results of a run: typed per mode, printed as a human summary or as JSON
//! (`--json`), and merged from several JSON files into the Markdown table
//! `benches/compare` writes (absolute figures and Tessera ÷ peer ratios).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proc_stats::ProcSummary;

/// Latency distribution of a set of requests, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `d` (sorted in place).
    pub fn from_durations(d: &mut [Duration]) -> Self {
        if d.is_empty() {
            return Latency::default();
        }
        d.sort_unstable();
        let rank = |p: f64| {
            let i = ((p * d.len() as f64).ceil() as usize).clamp(1, d.len()) - 1;
            d[i].as_secs_f64() * 1e3
        };
        Latency {
            count: d.len(),
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: rank(1.0),
        }
    }
}

/// `ingest` mode (and the ingest phase of `restart`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IngestReport {
    pub nodes: usize,
    pub series_per_node: usize,
    pub active_series: usize,
    /// Distinct series sent, including those churn replaced.
    pub series_created: u64,
    pub rounds: u64,
    pub interval_secs: f64,
    pub samples_sent: u64,
    pub samples_acked: u64,
    pub requests: u64,
    pub requests_ok: u64,
    pub requests_rejected: u64,
    pub samples_rejected: u64,
    pub requests_failed: u64,
    pub retries: u64,
    pub wall_secs: f64,
    /// Acknowledged samples per wall-clock second.
    pub samples_per_sec: f64,
    pub latency: Latency,
    pub first_error: Option<String>,
    /// Bounds of the sample timestamps sent, in ms.
    pub min_ts_ms: i64,
    pub max_ts_ms: i64,
    pub process: Option<ProcSummary>,
    /// CPU seconds the harness itself used (generation, snappy, HTTP): on a
    /// shared machine this is taken from the server's budget.
    pub harness_cpu_secs: f64,
    /// Peak RSS ÷ active series.
    pub rss_per_series_bytes: Option<f64>,
    pub disk_bytes: Option<u64>,
    pub disk_bytes_per_sample: Option<f64>,
}

/// One query of the dashboard set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QueryStat {
    pub name: String,
    pub kind: String,
    pub request: String,
    pub latency: Latency,
    pub ok: usize,
    pub errors: usize,
    /// Series (or names/values) in the last successful answer.
    pub result_items: usize,
    /// Points in the last successful range answer.
    pub result_points: usize,
    pub result_bytes: usize,
    pub first_error: Option<String>,
}

/// `query` mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QueryReport {
    pub repeat: usize,
    pub range_secs: f64,
    pub step_secs: f64,
    pub queries: Vec<QueryStat>,
    /// Sum over queries of their p50: one dashboard refresh, serially.
    pub dashboard_p50_ms: f64,
    /// The worst p99 of any query.
    pub worst_p99_ms: f64,
    pub errors: usize,
    pub process: Option<ProcSummary>,
}

/// One heavy metadata call of `series-flood`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FloodCall {
    pub matcher: String,
    /// `ok`, `timeout`, `HTTP <code>` or the transport error.
    pub outcome: String,
    pub latency_ms: f64,
    pub bytes: usize,
    pub series: usize,
}

/// `series-flood` mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FloodReport {
    pub timeout_secs: f64,
    pub after_secs: f64,
    pub calls: Vec<FloodCall>,
    pub rss_before_bytes: Option<u64>,
    pub rss_peak_during_bytes: Option<u64>,
    /// Peak RSS in the window after the client gave up.
    pub rss_peak_after_bytes: Option<u64>,
    pub rss_end_bytes: Option<u64>,
    /// CPU seconds the server burned after the client gave up: work that
    /// should have been cancelled.
    pub cpu_secs_after: Option<f64>,
    pub server_alive: Option<bool>,
}

/// `restart` mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestartReport {
    pub ingest: IngestReport,
    pub disk_bytes_at_kill: u64,
    /// From the restart to the first 200 on the readiness path.
    pub ready_secs: f64,
    /// From the restart until every acknowledged sample answered a query;
    /// `None` if that never happened within the timeout.
    pub queryable_secs: Option<f64>,
    pub acked_samples: u64,
    pub queried_samples: u64,
    /// The restarted server while it replayed (until ready).
    pub replay: Option<ProcSummary>,
}

/// Everything one invocation produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Label of the system under test (`--name`), e.g. `prometheus`.
    pub name: String,
    pub mode: String,
    pub url: String,
    pub ingest: Option<IngestReport>,
    pub query: Option<QueryReport>,
    pub flood: Option<FloodReport>,
    pub restart: Option<RestartReport>,
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn proc_lines(out: &mut String, p: &Option<ProcSummary>) {
    if let Some(p) = p {
        let _ = writeln!(
            out,
            "  server pid {}: peak RSS {}, end RSS {}, CPU {:.1} s over {:.1} s = {:.2} cores{}",
            p.pid,
            mib(p.peak_rss_bytes),
            mib(p.end_rss_bytes),
            p.cpu_secs,
            p.wall_secs,
            p.cores_used,
            if p.exited { " (PROCESS EXITED)" } else { "" }
        );
    }
}

fn ingest_lines(out: &mut String, i: &IngestReport) {
    let _ = writeln!(
        out,
        "  {} nodes × {} series = {} active ({} created), {} rounds every {} s",
        i.nodes, i.series_per_node, i.active_series, i.series_created, i.rounds, i.interval_secs
    );
    let _ = writeln!(
        out,
        "  {} samples acked of {} sent in {:.2} s = {:.0} samples/s",
        i.samples_acked, i.samples_sent, i.wall_secs, i.samples_per_sec
    );
    let _ = writeln!(
        out,
        "  requests: {} ok, {} rejected ({} samples), {} failed, {} retries; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        i.requests_ok,
        i.requests_rejected,
        i.samples_rejected,
        i.requests_failed,
        i.retries,
        i.latency.p50_ms,
        i.latency.p99_ms,
        i.latency.max_ms
    );
    if let Some(e) = &i.first_error {
        let _ = writeln!(out, "  first error: {e}");
    }
    proc_lines(out, &i.process);
    let _ = writeln!(out, "  harness CPU: {:.1} s", i.harness_cpu_secs);
    if let Some(r) = i.rss_per_series_bytes {
        let _ = writeln!(out, "  RSS per active series: {r:.0} bytes");
    }
    if let (Some(d), Some(ps)) = (i.disk_bytes, i.disk_bytes_per_sample) {
        let _ = writeln!(out, "  data dir: {} on disk = {ps:.2} bytes/sample", mib(d));
    }
}

impl Report {
    /// The human summary printed at the end of a run.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "== {} {} against {}", self.name, self.mode, self.url);
        if let Some(i) = &self.ingest {
            ingest_lines(&mut out, i);
        }
        if let Some(q) = &self.query {
            let _ = writeln!(
                out,
                "  {:<34} {:>9} {:>9} {:>9} {:>8} {:>8} {:>5}",
                "query", "p50 ms", "p99 ms", "max ms", "items", "points", "err"
            );
            for s in &q.queries {
                let _ = writeln!(
                    out,
                    "  {:<34} {:>9.1} {:>9.1} {:>9.1} {:>8} {:>8} {:>5}",
                    s.name,
                    s.latency.p50_ms,
                    s.latency.p99_ms,
                    s.latency.max_ms,
                    s.result_items,
                    s.result_points,
                    s.errors
                );
                if let Some(e) = &s.first_error {
                    let _ = writeln!(out, "    error: {e}");
                }
            }
            let _ = writeln!(
                out,
                "  dashboard (sum of p50s) {:.1} ms, worst p99 {:.1} ms, {} errors",
                q.dashboard_p50_ms, q.worst_p99_ms, q.errors
            );
            proc_lines(&mut out, &q.process);
        }
        if let Some(f) = &self.flood {
            for c in &f.calls {
                let _ = writeln!(
                    out,
                    "  series {:<22} {:>9.1} ms {:>10} bytes {:>8} series  {}",
                    c.matcher, c.latency_ms, c.bytes, c.series, c.outcome
                );
            }
            let m = |v: Option<u64>| v.map_or("n/a".to_owned(), mib);
            let _ = writeln!(
                out,
                "  RSS before {}, peak during {}, peak in {} s after client gave up {}, end {}; CPU after {}; alive {}",
                m(f.rss_before_bytes),
                m(f.rss_peak_during_bytes),
                f.after_secs,
                m(f.rss_peak_after_bytes),
                m(f.rss_end_bytes),
                f.cpu_secs_after
                    .map_or("n/a".into(), |c| format!("{c:.2} s")),
                f.server_alive.map_or("n/a".into(), |a| a.to_string())
            );
        }
        if let Some(r) = &self.restart {
            ingest_lines(&mut out, &r.ingest);
            let _ = writeln!(
                out,
                "  killed with SIGKILL; data dir {} at kill",
                mib(r.disk_bytes_at_kill)
            );
            let _ = writeln!(
                out,
                "  restart: ready after {:.2} s; all {} acked samples queryable after {}; queried {}",
                r.ready_secs,
                r.acked_samples,
                r.queryable_secs
                    .map_or("NEVER (timeout)".into(), |s| format!("{s:.2} s")),
                r.queried_samples
            );
            proc_lines(&mut out, &r.replay);
        }
        out
    }
}

/// One row of the comparison table: a label, how to read it from a
/// report, and whether lower is better (for the reader; ratios are always
/// Tessera ÷ peer).
struct Row {
    label: &'static str,
    get: fn(&Report) -> Option<f64>,
}

const ROWS: &[Row] = &[
    Row {
        label: "ingest samples/s (higher is better)",
        get: |r| r.ingest.as_ref().map(|i| i.samples_per_sec),
    },
    Row {
        label: "write p50 latency, ms",
        get: |r| r.ingest.as_ref().map(|i| i.latency.p50_ms),
    },
    Row {
        label: "write p99 latency, ms",
        get: |r| r.ingest.as_ref().map(|i| i.latency.p99_ms),
    },
    Row {
        label: "failed + rejected write requests",
        get: |r| {
            r.ingest
                .as_ref()
                .map(|i| (i.requests_failed + i.requests_rejected) as f64)
        },
    },
    Row {
        label: "server CPU cores used while ingesting",
        get: |r| r.ingest.as_ref()?.process.as_ref().map(|p| p.cores_used),
    },
    Row {
        label: "server peak RSS, MiB",
        get: |r| {
            r.ingest
                .as_ref()?
                .process
                .as_ref()
                .map(|p| p.peak_rss_bytes as f64 / 1048576.0)
        },
    },
    Row {
        label: "RSS per active series, bytes",
        get: |r| r.ingest.as_ref()?.rss_per_series_bytes,
    },
    Row {
        label: "on-disk bytes per sample (right after ingest)",
        get: |r| r.ingest.as_ref()?.disk_bytes_per_sample,
    },
    Row {
        label: "dashboard refresh (sum of query p50s), ms",
        get: |r| r.query.as_ref().map(|q| q.dashboard_p50_ms),
    },
    Row {
        label: "worst query p99, ms",
        get: |r| r.query.as_ref().map(|q| q.worst_p99_ms),
    },
    Row {
        label: "query errors",
        get: |r| r.query.as_ref().map(|q| q.errors as f64),
    },
    Row {
        label: "series-flood: peak RSS after client gave up, MiB",
        get: |r| {
            r.flood
                .as_ref()?
                .rss_peak_after_bytes
                .map(|b| b as f64 / 1048576.0)
        },
    },
    Row {
        label: "series-flood: CPU s burned after client gave up",
        get: |r| r.flood.as_ref()?.cpu_secs_after,
    },
    Row {
        label: "restart: seconds until ready",
        get: |r| r.restart.as_ref().map(|x| x.ready_secs),
    },
    Row {
        label: "restart: seconds until all acked samples queryable",
        get: |r| r.restart.as_ref()?.queryable_secs,
    },
];

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Merges reports by `name` (later modes fill in what earlier ones lacked)
/// and renders the Markdown comparison: one column per system, then one
/// ratio column `baseline ÷ peer` per peer.
pub fn markdown_table(reports: &[Report], baseline: &str) -> String {
    let mut merged: BTreeMap<String, Report> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for r in reports {
        if !merged.contains_key(&r.name) {
            order.push(r.name.clone());
        }
        let m = merged.entry(r.name.clone()).or_insert_with(|| Report {
            name: r.name.clone(),
            ..Report::default()
        });
        m.ingest = m.ingest.take().or(r.ingest.clone());
        m.query = m.query.take().or(r.query.clone());
        m.flood = m.flood.take().or(r.flood.clone());
        m.restart = m.restart.take().or(r.restart.clone());
    }
    // The baseline first, peers in the order given.
    order.sort_by_key(|n| n != baseline);
    let peers: Vec<&String> = order.iter().filter(|n| *n != baseline).collect();
    let has_base = merged.contains_key(baseline);
    let mut out = String::new();
    out.push_str("| metric |");
    for n in &order {
        let _ = write!(out, " {n} |");
    }
    if has_base {
        for p in &peers {
            let _ = write!(out, " {baseline} ÷ {p} |");
        }
    }
    out.push_str("\n|---|");
    for _ in 0..order.len() + if has_base { peers.len() } else { 0 } {
        out.push_str("---:|");
    }
    out.push('\n');
    for row in ROWS {
        let vals: Vec<Option<f64>> = order.iter().map(|n| (row.get)(&merged[n])).collect();
        if vals.iter().all(Option::is_none) {
            continue;
        }
        let _ = write!(out, "| {} |", row.label);
        for v in &vals {
            let _ = write!(out, " {} |", v.map_or("–".into(), fmt_num));
        }
        if has_base {
            let base = (row.get)(&merged[baseline]);
            for p in &peers {
                let ratio = match (base, (row.get)(&merged[*p])) {
                    (Some(b), Some(v)) if v != 0.0 => format!("{:.2}×", b / v),
                    _ => "–".into(),
                };
                let _ = write!(out, " {ratio} |");
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_use_nearest_rank() {
        let mut d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::from_durations(&mut d);
        assert_eq!(
            (l.count, l.p50_ms, l.p99_ms, l.max_ms),
            (100, 50.0, 99.0, 100.0)
        );
        assert_eq!(Latency::from_durations(&mut []), Latency::default());
    }

    #[test]
    fn table_puts_baseline_first_and_divides_it_by_each_peer() {
        let rep = |name: &str, sps: f64| Report {
            name: name.into(),
            mode: "ingest".into(),
            ingest: Some(IngestReport {
                samples_per_sec: sps,
                ..IngestReport::default()
            }),
            ..Report::default()
        };
        let t = markdown_table(
            &[rep("prometheus", 100.0), rep("tessera", 250.0)],
            "tessera",
        );
        let header = t.lines().next().expect("header");
        assert_eq!(
            header,
            "| metric | tessera | prometheus | tessera ÷ prometheus |"
        );
        let row = t
            .lines()
            .find(|l| l.starts_with("| ingest samples/s"))
            .expect("row");
        assert!(row.ends_with("| 250.0 | 100.0 | 2.50× |"), "{row}");
        assert!(!t.contains("restart"), "rows without data are left out");
    }
}
