//! The `tessera` binary: CLI, configuration and the HTTP server.

mod cpu;
mod http;
mod metrics;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tessera", version, about = "Prometheus-compatible metrics engine for GPU fleets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: remote-write receiver and Prometheus HTTP API.
    Serve(serve::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
    }
}
