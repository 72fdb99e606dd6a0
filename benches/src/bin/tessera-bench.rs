//! `tessera-bench`: the capacity load harness. See `benches/README.md`.
//!
//! ```text
//! tessera-bench ingest       --url http://127.0.0.1:9090 --nodes 20 --rounds 10 --pid $PID --data-dir DIR
//! tessera-bench query        --url http://127.0.0.1:9090
//! tessera-bench series-flood --url http://127.0.0.1:9090 --pid $PID
//! tessera-bench restart      --url … --data-dir DIR --server-cmd "tessera serve …"
//! tessera-bench shape        --nodes 250
//! tessera-bench table        --baseline tessera results/*.json
//! tessera-bench block-size   --nodes 20 --span 24h
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tessera_bench::client::Client;
use tessera_bench::generator::{Fleet, node};
use tessera_bench::modes::block_size::{self, BlockSizeArgs};
use tessera_bench::modes::cut_stall::{self, CutStallArgs};
use tessera_bench::modes::query::QueryArgs;
use tessera_bench::modes::restart::RestartArgs;
use tessera_bench::modes::series_flood::FloodArgs;
use tessera_bench::modes::{FleetArgs, LoadArgs, TargetArgs, ingest, query, restart, series_flood};
use tessera_bench::report::{Report, markdown_table};

#[derive(Parser)]
#[command(
    name = "tessera-bench",
    about = "Remote-write capacity harness: GPU-fleet-shaped load against any Prometheus-compatible receiver"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send the fleet's rounds; samples/s, latency, rejections, server RSS/CPU/disk.
    Ingest {
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Run a Grafana-style dashboard query set; p50/p99 latency and result sizes.
    Query {
        #[command(flatten)]
        query: QueryArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Send Grafana's `{le!=""}` and `{__name__=~".+"}` series calls with a timeout, then watch the server.
    SeriesFlood {
        #[command(flatten)]
        flood: FloodArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Start the server, ingest, kill -9, restart; time to ready and to all acked samples queryable.
    Restart {
        #[command(flatten)]
        restart: RestartArgs,
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Print the series count of the configured fleet and exit.
    Shape {
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// In-process, no server: write the fleet's data as 2 h blocks, compact them, report bytes/sample.
    BlockSize {
        #[command(flatten)]
        args: BlockSizeArgs,
    },
    /// In-process, no server: append latency while a head range is cut into a block, vs steady state.
    CutStall {
        #[command(flatten)]
        args: CutStallArgs,
    },
    /// Merge `--json` reports into a Markdown table with ratios baseline ÷ peer.
    Table {
        /// The system the ratios are computed for.
        #[arg(long, default_value = "tessera")]
        baseline: String,
        /// Report files written by `--json` runs.
        files: Vec<PathBuf>,
    },
}

fn emit(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        eprint!("{}", report.human());
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.human());
    }
    Ok(())
}

fn report(target: &TargetArgs, mode: &str) -> Report {
    Report {
        name: target.name.clone(),
        mode: mode.into(),
        url: target.url.clone(),
        ..Report::default()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Ingest {
            fleet,
            load,
            target,
        } => {
            let fleet = Fleet::new(fleet.config(target.json));
            let client = Client::with_auth(target.timeout, 3, &target.auth)?;
            let (ing, _) = ingest::run(fleet, &load, &target, &client, true).await;
            let failed = ing.requests_failed;
            let r = Report {
                ingest: Some(ing),
                ..report(&target, "ingest")
            };
            emit(&r, target.json)?;
            if failed > 0 {
                // An expected outcome, reported above: a plain exit status
                // for scripts, not an error with a backtrace.
                eprintln!("tessera-bench: {failed} write requests failed");
                std::process::exit(1);
            }
        }
        Cmd::Query { query: q, target } => {
            let client = Client::with_auth(target.timeout, 0, &target.auth)?;
            let rep = query::run(&q, &target, &client).await;
            emit(
                &Report {
                    query: Some(rep),
                    ..report(&target, "query")
                },
                target.json,
            )?;
        }
        Cmd::SeriesFlood { flood, target } => {
            let client = Client::with_auth(target.timeout, 0, &target.auth)?;
            let rep = series_flood::run(&flood, &target, &client).await;
            emit(
                &Report {
                    flood: Some(rep),
                    ..report(&target, "series-flood")
                },
                target.json,
            )?;
        }
        Cmd::Restart {
            restart: args,
            fleet,
            load,
            target,
        } => {
            let fleet = Fleet::new(fleet.config(target.json));
            let client = Client::with_auth(target.timeout, 3, &target.auth)?;
            let rep = restart::run(&args, fleet, &load, &target, &client).await?;
            emit(
                &Report {
                    restart: Some(rep),
                    ..report(&target, "restart")
                },
                target.json,
            )?;
        }
        Cmd::Shape { fleet } => {
            let cfg = fleet.config(false);
            let per_node = node::series_per_node(&cfg);
            println!(
                "{} series per node × {} nodes = {} active series",
                per_node,
                cfg.nodes,
                per_node * cfg.nodes
            );
        }
        Cmd::BlockSize { args } => {
            // Minutes of CPU-bound work: keep it off the async workers.
            let (rep, json, top) = tokio::task::spawn_blocking(move || {
                block_size::run(&args).map(|r| (r, args.json, args.by_metric))
            })
            .await??;
            if json {
                eprint!("{}", rep.human(top));
                println!("{}", serde_json::to_string_pretty(&rep)?);
            } else {
                print!("{}", rep.human(top));
            }
        }
        Cmd::CutStall { args } => {
            let json = args.json;
            let rep = tokio::task::spawn_blocking(move || cut_stall::run(&args)).await??;
            if json {
                eprint!("{}", rep.human());
                println!("{}", serde_json::to_string_pretty(&rep)?);
            } else {
                print!("{}", rep.human());
            }
        }
        Cmd::Table { baseline, files } => {
            let mut reports = Vec::new();
            for f in &files {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?;
                let r: Report = serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", f.display()))?;
                reports.push(r);
            }
            print!("{}", markdown_table(&reports, &baseline));
        }
    }
    Ok(())
}
