//! `tessera query`: a stateless query tier over partitions of Tessera (or
//! Prometheus-compatible) stores, serving the read API Grafana uses.
//!
//! Each `--store` is one partition (a disjoint set of series); a
//! comma-separated value lists its replicas. PromQL is evaluated here by the
//! same engine as `serve`: aggregations that split exactly on every
//! partition's query API (`tessera_query::split`), the rest over raw series
//! read from every partition by remote read (`fleet/`); series/label/
//! metadata listings are forwarded to every partition and unioned.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tessera_ingest::DecodeLimits;
use tracing::info;

use crate::cpu;
use crate::flags;
use crate::fleet::{Fleet, StoreClientFlags};
use crate::http::{self, AppState, HttpOptions};
use crate::metrics::METRICS;
use crate::rules::Rules;
use crate::serve::{
    DEFAULT_PORT, QueryFlags, init_logging, shutdown_signal, spawn_sighup_reloader,
};
use crate::web::{self, WebFlags};

#[derive(Args, Debug)]
pub(crate) struct QueryArgs {
    /// Address to listen on.
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    listen: SocketAddr,

    /// One partition: its base URL (http://host:port), or its replicas'
    /// URLs separated by commas. Repeat for every partition. A host name
    /// (http://name:port or dns+name:port, e.g. a headless Service) stands
    /// for all its addresses, each a replica, re-resolved every
    /// --store.dns-interval.
    #[arg(long = "store", required = true)]
    stores: Vec<String>,

    /// How often host names in --store are resolved again.
    #[arg(long = "store.dns-interval", default_value = "30s", value_parser = flags::duration)]
    store_dns_interval: Duration,

    /// Longest the tier waits for one partition (all its replicas tried in
    /// turn, sharing this budget); past it the partition counts as failed.
    #[arg(long = "store.timeout", default_value = "30s", value_parser = flags::duration)]
    store_timeout: Duration,

    /// Whether an answer may leave out a failed partition, with a warning
    /// naming it (a request's `partial_response=false` turns it off); false:
    /// 503.
    #[arg(long = "query.partial-response", default_value_t = true, action = clap::ArgAction::Set)]
    partial_response: bool,

    /// A label telling apart the copies of one series written by an HA
    /// pair of senders (e.g. prometheus_replica); repeatable. Dropped from
    /// answers; copies that differ only in these are deduplicated (one copy
    /// followed, another switched to across its gaps). Turns aggregation
    /// pushdown off: every query reads raw series.
    #[arg(long = "query.replica-label")]
    replica_labels: Vec<String>,

    /// Most series a /api/v1/series call may return on the tier, counted
    /// over the union of the partitions' answers, before it fails with a
    /// 422 naming this flag (a smaller `limit` parameter truncates instead).
    /// Every store also applies its own --api.max-series to the series it
    /// touches, which bounds the labels and label values calls.
    #[arg(long = "api.max-series", default_value_t = 100_000)]
    api_max_series: usize,

    /// CPU budget in cores (default: the cgroup CPU quota, else the host).
    #[arg(long)]
    cpus: Option<usize>,

    #[command(flatten)]
    store_client: StoreClientFlags,

    #[command(flatten)]
    query: QueryFlags,

    /// The listener's web config (TLS, basic auth, headers), permissions
    /// and bounds, as `serve`'s; on the tier only reads exist, so
    /// --web.readers is the list that matters (and --web.writers for
    /// POST /-/reload).
    #[command(flatten)]
    web: WebFlags,

    /// Log format: text or json.
    #[arg(long = "log.format", default_value = "text")]
    log_format: String,
}

pub(crate) fn run(args: QueryArgs, flags: Vec<(String, String)>) -> anyhow::Result<()> {
    init_logging(&args.log_format);
    let (cpus, _) = cpu::detect(args.cpus);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus)
        .max_blocking_threads(cpus.max(2))
        .thread_name("tessera-query")
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(serve(args, cpus, flags))
}

async fn serve(args: QueryArgs, cpus: usize, flags: Vec<(String, String)>) -> anyhow::Result<()> {
    let fleet = Fleet::new(
        &args.stores,
        &args.store_client,
        args.store_timeout,
        args.partial_response,
        args.replica_labels.clone(),
    )?;
    fleet.refresh().await;
    let fleet = Arc::new(fleet);
    fleet.spawn_refresh(args.store_dns_interval.max(Duration::from_secs(1)));
    info!(
        partitions = args.stores.len(),
        listen = %args.listen,
        "starting tessera query {}",
        env!("CARGO_PKG_VERSION")
    );
    // The write and remote-read settings are unused: the tier has neither.
    let opts = HttpOptions {
        decode_limits: DecodeLimits::default(),
        ingest_max_inflight: 1,
        ingest_queue_timeout: Duration::ZERO,
        api_max_series: args.api_max_series,
        api_default_window: Duration::ZERO,
        query_max_concurrency: args.query.query_max_concurrency.unwrap_or(cpus),
        query_max_queue: args.query.query_max_queue,
        query_queue_timeout: args.query.query_queue_timeout,
        remote_read_sample_limit: 0,
        remote_read_concurrent_limit: 1,
        remote_read_max_bytes_in_frame: 0,
        permissions: args.web.permissions(),
        enable_lifecycle: args.web.enable_lifecycle,
        body_read_timeout: Duration::ZERO,
    };
    METRICS.touch_defaults();
    for call in ["read", "query", "listing"] {
        METRICS.store_response_bytes.touch(&[call]);
    }
    METRICS.partitions_skipped.touch(&[]);
    let engine = args.query.engine();
    // A bad web config or certificate refuses the start, before listening.
    let web = Arc::new(
        web::WebHandle::load(args.web.config_file.as_deref()).map_err(anyhow::Error::msg)?,
    );
    let mut state = AppState::new(
        opts,
        cpus,
        engine,
        tessera_ingest::IngestRelabel::none(),
        Rules::none(),
        flags,
        web.clone(),
    );
    state.fleet = Some(fleet);
    let state = Arc::new(state);
    spawn_sighup_reloader(state.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    info!(addr = %listener.local_addr()?, "listening");
    web::server::serve(
        listener,
        http::tier_router(state),
        web,
        args.web.limits(),
        shutdown_signal(),
    )
    .await
    .context("http server")?;
    info!("shut down cleanly");
    Ok(())
}
