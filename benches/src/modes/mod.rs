//! The harness' modes and the command-line options they share.
//!
//! * [`ingest`]: send the fleet's rounds, measure throughput and latency.
//! * [`query`]: a Grafana-style dashboard set of PromQL and metadata calls.
//! * [`series_flood`]: the `{le!=""}` / `{__name__=~".+"}` series calls
//!   that took Prometheus down, with a client timeout, then watch the server.
//! * [`restart`]: ingest, `kill -9`, restart, time to ready and to queryable.
//! * [`block_size`]: in-process, no server: bytes per sample of the blocks
//!   the fleet's data makes, before and after compaction.
//! * [`cut_stall`]: in-process, no server: append latency while a head
//!   range is cut into a block, against steady state.

pub mod block_size;
pub mod cut_stall;
pub mod ingest;
pub mod query;
pub mod restart;
pub mod series_flood;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::generator::FleetConfig;
use crate::generator::dcgm::CounterSet;

/// Shape of the simulated fleet.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// GPU nodes to simulate; series scale linearly (about 4,500 per node).
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    /// Number the hosts from this index (`--node-offset 1000` starts at
    /// gpu-node-1001): lets several harness processes share one server.
    #[arg(long, default_value_t = 0)]
    pub node_offset: usize,
    /// GPUs per node (dcgm-exporter: 25 series per GPU with the default CSV).
    #[arg(long, default_value_t = 8)]
    pub gpus_per_node: usize,
    /// Logical CPUs per node (node-exporter: 26 series per CPU).
    #[arg(long, default_value_t = 128)]
    pub cpus_per_node: usize,
    /// Percent of all series replaced per round by GPUs getting new pods.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Do not attach pod/namespace/container to GPUs (disables churn).
    #[arg(long)]
    pub no_pods: bool,
    /// Seed of the deterministic generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The shared fixtures folder (with dcgm/default-counters.csv); default:
    /// $TESSERA_FIXTURES, else `shared/fixtures` found above the working
    /// directory or the binary, else the built-in counter list.
    #[arg(long)]
    pub fixtures: Option<PathBuf>,
}

impl FleetArgs {
    /// The generator configuration; says on stderr where the counter list
    /// came from.
    /// `nodes` default nodes (8 GPUs, 128 CPUs, pods, no churn) from the
    /// first one: the fleet the in-process modes build.
    pub fn whole_nodes(nodes: usize, seed: u64, fixtures: Option<PathBuf>) -> Self {
        FleetArgs {
            nodes,
            node_offset: 0,
            gpus_per_node: 8,
            cpus_per_node: 128,
            churn: 0.0,
            no_pods: false,
            seed,
            fixtures,
        }
    }

    pub fn config(&self, quiet: bool) -> FleetConfig {
        let counters = match self.fixtures.clone().or_else(find_fixtures) {
            Some(dir) => match CounterSet::load(&dir) {
                Ok(c) => {
                    if !quiet {
                        eprintln!(
                            "dcgm counters: {} metrics from {}",
                            c.metrics.len(),
                            dir.join("dcgm/default-counters.csv").display()
                        );
                    }
                    c
                }
                Err(e) => {
                    eprintln!("warning: {e}; using the built-in dcgm counter list");
                    CounterSet::builtin()
                }
            },
            None => CounterSet::builtin(),
        };
        FleetConfig {
            nodes: self.nodes,
            first_node: self.node_offset,
            gpus_per_node: self.gpus_per_node,
            cpus_per_node: self.cpus_per_node,
            churn_percent: self.churn,
            pods: !self.no_pods,
            seed: self.seed,
            counters,
        }
    }
}

/// `shared/fixtures` next to an ancestor of the working directory or of
/// the binary (the workspace lives at `/work/main`, fixtures at
/// `/work/shared/fixtures`).
pub fn find_fixtures() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TESSERA_FIXTURES") {
        return Some(PathBuf::from(p));
    }
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    for start in starts.into_iter().flatten() {
        for anc in start.ancestors() {
            let cand = anc.join("shared/fixtures");
            if cand.join("dcgm/default-counters.csv").is_file() {
                return Some(cand);
            }
        }
    }
    None
}

/// How the rounds are sent.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Scrape interval: sample timestamps advance by this per round.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Rounds (scrapes) to send.
    #[arg(long, default_value_t = 3)]
    pub rounds: u64,
    /// `max` (as fast as the server takes it, timestamps back-filled to end
    /// now), `realtime` (one round per interval, stamped with the wall
    /// clock), or a number of samples per second.
    #[arg(long, default_value = "max", value_parser = parse_rate)]
    pub rate: Rate,
    /// Requests in flight.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Samples per remote-write request (Prometheus' max_samples_per_send
    /// defaults to 2,000).
    #[arg(long, default_value_t = 2000)]
    pub batch_samples: usize,
    /// Stop sending after this long even if rounds remain.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub max_duration: Duration,
}

/// Pacing of the generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Max,
    RealTime,
    SamplesPerSec(f64),
}

/// Parses `max`, `realtime` or a positive number of samples per second.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    match s {
        "max" => Ok(Rate::Max),
        "realtime" => Ok(Rate::RealTime),
        _ => match s.parse::<f64>() {
            Ok(v) if v > 0.0 => Ok(Rate::SamplesPerSec(v)),
            _ => Err(format!(
                "--rate: expected max, realtime or samples/s, got {s:?}"
            )),
        },
    }
}

/// Parses `15s`, `500ms`, `2m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The server under test and what to observe of it.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Base URL of the server (`http://127.0.0.1:9090`) or its full write
    /// URL (`…/api/v1/write`).
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    pub url: String,
    /// Name of the system under test, used in reports and tables.
    #[arg(long, default_value = "server")]
    pub name: String,
    /// PID of the server, to sample its RSS and CPU time from /proc.
    #[arg(long)]
    pub pid: Option<u32>,
    /// The server's data directory, to measure bytes on disk.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the report as JSON on stdout (the human summary goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// TLS and basic auth towards the server.
    #[command(flatten)]
    pub auth: crate::client::ClientAuth,
}

/// Whether `dir` looks usable as a data directory to measure.
pub fn measurable(dir: &Option<PathBuf>) -> Option<&Path> {
    dir.as_deref().filter(|d| d.is_dir())
}

/// The fleet's series as the database's label sets, in the fleet's order
/// (the in-process modes append or write them directly).
pub(crate) fn fleet_labels(fleet: &crate::generator::Fleet) -> Vec<tessera_tsdb::Labels> {
    fleet
        .series
        .iter()
        .map(|s| {
            tessera_tsdb::Labels::from_pairs(
                s.labels
                    .iter()
                    .map(|&(k, v)| (fleet.syms.get(k), fleet.syms.get(v))),
            )
        })
        .collect()
}

/// Deletes a scratch directory on every exit path unless kept.
pub(crate) struct Scratch {
    pub(crate) dir: PathBuf,
    pub(crate) keep: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_parse_like_prometheus_flags() {
        let d = |s: &str| parse_duration(s).map(|d| d.as_millis());
        assert_eq!(d("15s"), Ok(15_000));
        assert_eq!(d("500ms"), Ok(500));
        assert_eq!(d("2m"), Ok(120_000));
        assert_eq!(d("1h"), Ok(3_600_000));
        assert_eq!(d("7"), Ok(7_000));
        assert!(d("5x").is_err());
        assert!(d("-1s").is_err());
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert_eq!(parse_rate("realtime"), Ok(Rate::RealTime));
        assert_eq!(parse_rate("1000"), Ok(Rate::SamplesPerSec(1000.0)));
        assert!(parse_rate("0").is_err());
    }

    #[test]
    fn fixtures_are_found_from_the_workspace() {
        // The workspace sits next to `shared/` on the project's machines
        // (or $TESSERA_FIXTURES names the folder); without them the harness
        // uses the built-in list and this has nothing to check.
        if crate::test_input::fixtures(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).is_some() {
            let found = find_fixtures().expect("found");
            assert!(found.join("dcgm/default-counters.csv").is_file());
        }
    }
}
