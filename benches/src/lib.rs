//! Tessera's benchmarks and capacity load harness.
//!
//! The harness (`tessera-bench`, see `benches/README.md`) sends remote-write
//! 1.0 load shaped like a GPU fleet to any receiver — Tessera, Prometheus
//! with `--web.enable-remote-write-receiver`, VictoriaMetrics — and measures
//! it. Start from [`generator::Fleet`] (the deterministic series and
//! samples), [`client::Client`] (HTTP with latency accounting) and the
//! `modes` (ingest, query, series-flood, restart), whose results are a
//! [`report::Report`].
//!
//! The criterion micro-benchmarks live in `benches/benches/`.

pub mod client;
pub mod generator;
pub mod modes;
pub mod proc_stats;
pub mod report;

/// Where the tests find `../shared/fixtures` (`$TESSERA_FIXTURES`), and what
/// they do when it is missing: the workspace's one rule for outside inputs.
#[cfg(test)]
#[path = "../../tests/common/input.rs"]
mod test_input;
