//! The `tessera` binary: CLI, configuration and the HTTP server.

mod append;
mod cpu;
mod flags;
mod fleet;
mod http;
mod metrics;
mod notifier;
mod query_cmd;
mod rules;
mod serve;
mod tsdb_cmd;
mod web;
mod web_ui;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// mimalloc instead of glibc malloc: remote write decodes and validates
/// millions of small label strings a second, and glibc's malloc/free were a
/// third of the ingest profile at 1.1M series; mimalloc also hands freed
/// memory back to the OS sooner after a large read.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Prometheus-compatible metrics engine for GPU fleets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: remote-write receiver and Prometheus HTTP API.
    Serve(Box<serve::ServeArgs>),
    /// Run a stateless query tier over partitions of stores (--store).
    Query(Box<query_cmd::QueryArgs>),
    /// Offline tools for a data dir: repair, inspect, analyze.
    #[command(subcommand)]
    Tsdb(tsdb_cmd::TsdbCommand),
}

fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Serve(args) => {
            let flags = matches
                .subcommand_matches("serve")
                .map(serve::flag_values)
                .unwrap_or_default();
            serve::run(*args, flags)
        }
        Command::Query(args) => {
            let flags = matches
                .subcommand_matches("query")
                .map(serve::flag_values)
                .unwrap_or_default();
            query_cmd::run(*args, flags)
        }
        Command::Tsdb(cmd) => tsdb_cmd::run(cmd),
    }
}
