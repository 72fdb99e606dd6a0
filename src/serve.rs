//! `tessera serve`: flags, start-up and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tessera_ingest::DecodeLimits;
use tessera_tsdb::Maintainer;
use tessera_tsdb::wal::{FsyncPolicy, WalOptions};
use tessera_tsdb::{BlockPolicy, Db, DbOptions};
use tracing::{error, info};

use crate::cpu;
use crate::flags;
use crate::http::{self, AppState, HttpOptions};
use crate::metrics::METRICS;
use crate::rules::{Rules, RulesArgs};
use crate::web;

/// The port Tessera listens on by default (Prometheus uses 9090,
/// VictoriaMetrics 8428).
pub(crate) const DEFAULT_PORT: u16 = 9480;

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address to listen on. Kubernetes manifests pass 0.0.0.0:9480.
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    listen: SocketAddr,

    /// Directory for the WAL and blocks. Created when missing.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,

    /// Shards of the database (default: 4 per CPU of the budget, at least 4).
    /// Fixed for the life of a data dir: a data dir remembers its shard count
    /// and a start with another value is refused.
    #[arg(long)]
    shards: Option<usize>,

    /// CPU budget in cores that sizes every thread pool (default: the cgroup
    /// CPU quota when one is set, else the host's available parallelism).
    #[arg(long)]
    cpus: Option<usize>,

    /// Largest remote-write body accepted, in bytes (compressed), and the
    /// largest decoded size its snappy header may declare. Over it: 413.
    #[arg(long = "ingest.max-request-bytes", default_value_t = 32 << 20)]
    ingest_max_request_bytes: usize,

    /// Remote-write requests decoded and appended at once (default: 4 per
    /// CPU). More wait up to --ingest.queue-timeout, then get 503.
    #[arg(long = "ingest.max-inflight")]
    ingest_max_inflight: Option<usize>,

    /// How long a remote-write request may wait for a slot before 503 +
    /// Retry-After.
    #[arg(long = "ingest.queue-timeout", default_value = "5s", value_parser = flags::duration)]
    ingest_queue_timeout: Duration,

    /// Most labels one series may carry; more is refused with 400.
    #[arg(long = "ingest.max-labels-per-series", default_value_t = 128)]
    ingest_max_labels: usize,

    /// Longest label name accepted, in bytes; longer: the series gets 400.
    #[arg(long = "ingest.max-label-name-bytes", default_value_t = 1024)]
    ingest_max_label_name_bytes: usize,

    /// Longest label value accepted, in bytes; longer: the series gets 400.
    #[arg(long = "ingest.max-label-value-bytes", default_value_t = 4096)]
    ingest_max_label_value_bytes: usize,

    /// Samples stamped further than this past the server's clock get 400
    /// (the rest of the request is kept). Must stay under half of
    /// --block.duration: a sample from the future stretches the head, and
    /// block cuts would then refuse honest samples as out of bounds.
    #[arg(long = "ingest.max-future", default_value = "10m", value_parser = flags::duration)]
    ingest_max_future: Duration,

    /// Most series a /api/v1/series, labels or label values call may match
    /// before it fails with a 422 limit error (a smaller `limit` parameter
    /// truncates instead).
    #[arg(long = "api.max-series", default_value_t = 100_000)]
    api_max_series: usize,

    /// Prometheus relabel_config list (YAML, the same text as
    /// write_relabel_configs) applied to every series at ingest. Reloaded on
    /// SIGHUP and POST /-/reload; a bad file keeps the old rules.
    #[arg(long = "ingest.relabel-config")]
    ingest_relabel_config: Option<PathBuf>,

    /// When the WAL is fsynced: `always` (before every acknowledgement:
    /// survives power loss, slowest), `interval` (every --wal.fsync-interval:
    /// a power loss can lose that much), `never` (the kernel decides). Every
    /// policy survives a process crash (kill -9): acknowledged samples are
    /// in the kernel before the 2xx.
    #[arg(long = "wal.fsync", default_value = "interval", value_parser = ["always", "interval", "never"])]
    wal_fsync: String,

    /// Fsync period for --wal.fsync=interval.
    #[arg(long = "wal.fsync-interval", default_value = "1s", value_parser = flags::duration)]
    wal_fsync_interval: Duration,

    /// WAL segment size in bytes; a new segment file is cut beyond it.
    #[arg(long = "wal.segment-size", default_value_t = 128 << 20)]
    wal_segment_size: u64,

    /// Length of the head range cut into an immutable block once the head
    /// spans 1.5 of them; also the base of the compaction ranges (x3 each
    /// level).
    #[arg(long = "block.duration", default_value = "2h", value_parser = flags::duration)]
    block_duration: Duration,

    /// Blocks whose newest sample is older than this (measured from the
    /// newest data) are deleted, whole. 0 keeps everything.
    #[arg(long = "retention", visible_alias = "storage.tsdb.retention.time", default_value = "15d", value_parser = flags::duration)]
    retention: Duration,

    /// How often the background maintenance checks for head ranges to cut,
    /// blocks to compact and blocks past retention.
    #[arg(long = "tsdb.maintenance-interval", default_value = "1m", value_parser = flags::duration)]
    maintenance_interval: Duration,

    /// Window searched by /api/v1/series, labels and label values calls that
    /// give no `start` (Prometheus searches all of history; a bounded
    /// default keeps a bare call cheap).
    #[arg(long = "api.default-window", default_value = "1d", value_parser = flags::duration)]
    api_default_window: Duration,

    /// Samples one query of a remote-read SAMPLES answer may return (0: no
    /// limit); over it: 400 `exceeded sample limit`. Streamed answers are
    /// bounded by --query.max-samples instead.
    #[arg(
        long = "storage.remote.read-sample-limit",
        default_value_t = 50_000_000
    )]
    remote_read_sample_limit: usize,

    /// Remote-read requests answered at once; more wait for a slot (for as
    /// long as their client waits). A gate of its own, apart from
    /// --query.max-concurrency.
    #[arg(long = "storage.remote.read-concurrent-limit", default_value_t = 10)]
    remote_read_concurrent_limit: usize,

    /// Target size in bytes of one frame of a streamed remote-read answer
    /// (a frame may overshoot by one chunk).
    #[arg(
        long = "storage.remote.read-max-bytes-in-frame",
        default_value_t = 1_048_576
    )]
    remote_read_max_bytes_in_frame: usize,

    #[command(flatten)]
    pub(crate) query: QueryFlags,

    #[command(flatten)]
    rules: RulesArgs,

    #[command(flatten)]
    web: web::WebFlags,

    /// Log format: text or json.
    #[arg(long = "log.format", default_value = "text")]
    log_format: String,
}

/// The query flags `serve` and `query` share: limits, lookback and the
/// read admission gate.
#[derive(Args, Debug)]
pub(crate) struct QueryFlags {
    /// Longest a query may run; a request's `timeout` parameter can only
    /// lower it. Over it: 503 with errorType timeout.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = flags::duration)]
    pub(crate) query_timeout: Duration,

    /// Samples one query may hold in memory at once (Prometheus' default;
    /// on a query tier, raw series read from the partitions included).
    /// Over it: 422 naming this flag.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    pub(crate) query_max_samples: usize,

    /// How far back an instant selector looks for the latest sample.
    #[arg(long = "query.lookback-delta", default_value = "5m", value_parser = flags::duration)]
    pub(crate) query_lookback_delta: Duration,

    /// Queries and metadata calls run at once (default: the CPU budget).
    #[arg(long = "query.max-concurrency")]
    pub(crate) query_max_concurrency: Option<usize>,

    /// Reads that may wait for a slot; more get 503 + Retry-After at once.
    #[arg(long = "query.max-queue", default_value_t = 64)]
    pub(crate) query_max_queue: usize,

    /// Longest a read waits for a slot before 503 + Retry-After.
    #[arg(long = "query.queue-timeout", default_value = "30s", value_parser = flags::duration)]
    pub(crate) query_queue_timeout: Duration,
}

impl QueryFlags {
    /// The PromQL engine these flags configure.
    pub(crate) fn engine(&self) -> tessera_query::Engine {
        tessera_query::Engine::new(tessera_query::EngineOptions {
            lookback_delta_ms: self.query_lookback_delta.as_millis() as i64,
            max_samples: self.query_max_samples,
            default_timeout: self.query_timeout,
            ..Default::default()
        })
    }
}

/// Every flag of `serve` with its value (given or default), as
/// `/api/v1/status/flags` lists them.
pub(crate) fn flag_values(m: &clap::ArgMatches) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for id in m.ids() {
        let id = id.as_str();
        if let Ok(Some(vals)) = m.try_get_raw(id) {
            let v: Vec<String> = vals.map(|v| v.to_string_lossy().into_owned()).collect();
            out.push((id.to_string(), v.join(",")));
        }
    }
    out.sort();
    out
}

pub(crate) fn run(args: ServeArgs, flags: Vec<(String, String)>) -> anyhow::Result<()> {
    init_logging(&args.log_format);
    let (cpus, source) = cpu::detect(args.cpus);
    let shards = match args.shards {
        Some(n) => n,
        // A data dir keeps its shard count even when the CPU budget changes.
        None => {
            tessera_tsdb::layout::stored_shard_count(&args.data_dir)?.unwrap_or((cpus * 4).max(4))
        }
    };
    info!(
        cpus,
        cpu_source = ?source,
        shards,
        listen = %args.listen,
        data_dir = %args.data_dir.display(),
        "starting tessera {}",
        env!("CARGO_PKG_VERSION")
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus)
        .max_blocking_threads(cpus.max(2))
        .thread_name("tessera-worker")
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(serve(args, cpus, shards, flags))
}

async fn serve(
    args: ServeArgs,
    cpus: usize,
    shards: usize,
    flags: Vec<(String, String)>,
) -> anyhow::Result<()> {
    if args.ingest_max_future * 2 >= args.block_duration {
        anyhow::bail!(
            "--ingest.max-future ({:?}) must be less than half of --block.duration ({:?}): \
             a sample that far ahead would let block cuts pass the present and refuse honest samples",
            args.ingest_max_future,
            args.block_duration
        );
    }
    let opts = HttpOptions {
        decode_limits: DecodeLimits {
            max_compressed_bytes: args.ingest_max_request_bytes,
            max_decoded_bytes: args.ingest_max_request_bytes,
            max_labels_per_series: args.ingest_max_labels,
            max_label_name_bytes: args.ingest_max_label_name_bytes,
            max_label_value_bytes: args.ingest_max_label_value_bytes,
            max_future_ms: Some(args.ingest_max_future.as_millis() as i64),
        },
        ingest_max_inflight: args.ingest_max_inflight.unwrap_or(cpus * 4),
        ingest_queue_timeout: args.ingest_queue_timeout,
        api_max_series: args.api_max_series,
        api_default_window: args.api_default_window,
        query_max_concurrency: args.query.query_max_concurrency.unwrap_or(cpus),
        query_max_queue: args.query.query_max_queue,
        query_queue_timeout: args.query.query_queue_timeout,
        remote_read_sample_limit: args.remote_read_sample_limit,
        remote_read_concurrent_limit: args.remote_read_concurrent_limit,
        remote_read_max_bytes_in_frame: args.remote_read_max_bytes_in_frame,
        permissions: args.web.permissions(),
        enable_lifecycle: args.web.enable_lifecycle,
        body_read_timeout: args.web.read_timeout,
    };
    METRICS.touch_defaults();
    let engine = args.query.engine();
    let relabel = match &args.ingest_relabel_config {
        Some(p) => tessera_ingest::IngestRelabel::load(p)?,
        None => tessera_ingest::IngestRelabel::none(),
    };
    if let Some(p) = relabel.path() {
        info!(file = %p.display(), rules = relabel.rule_count(), "ingest relabel config loaded");
    }
    // A bad rule file refuses the start, before the server listens.
    let rules = Rules::load(&args.rules, engine.clone())?;
    // A bad web config or certificate refuses the start, before the server
    // listens.
    let web = Arc::new(
        web::WebHandle::load(args.web.config_file.as_deref()).map_err(anyhow::Error::msg)?,
    );
    let state = Arc::new(AppState::new(
        opts,
        cpus,
        engine,
        relabel,
        rules,
        flags,
        web.clone(),
    ));
    spawn_sighup_reloader(state.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    info!(addr = %listener.local_addr()?, "listening");

    // Open the database off the async threads: with a WAL this is replay,
    // and /-/healthy must answer (and /-/ready say 503) meanwhile.
    let db_state = state.clone();
    let data_dir = args.data_dir.clone();
    let wal = WalOptions {
        segment_bytes: args.wal_segment_size,
        fsync: match args.wal_fsync.as_str() {
            "always" => FsyncPolicy::Always,
            "never" => FsyncPolicy::Never,
            _ => FsyncPolicy::Interval(args.wal_fsync_interval),
        },
    };
    let blocks = BlockPolicy {
        block_duration_ms: (args.block_duration.as_millis() as i64).max(1),
        retention_ms: (!args.retention.is_zero()).then_some(args.retention.as_millis() as i64),
    };
    let maintenance_every = args.maintenance_interval.max(Duration::from_millis(100));
    let replay_progress = state.replay_progress.clone();
    let open = tokio::task::spawn_blocking(move || {
        Db::open(DbOptions {
            data_dir: Some(data_dir),
            shards,
            wal,
            replay_threads: cpus,
            read_only: false,
            blocks,
            replay_progress,
        })
        .and_then(|db| {
            // Reads may fan out over shards on up to the CPU budget.
            db.set_read_threads(cpus);
            let db = Arc::new(db);
            let maintainer = Maintainer::spawn(&db, maintenance_every).map_err(|source| {
                tessera_tsdb::DbError::Io {
                    path: "tsdb-maintain thread".into(),
                    source,
                }
            })?;
            let _ = db_state.db.set(db.clone());
            Ok((db, maintainer))
        })
    });

    let app = http::router(state.clone());
    let limits = args.web.limits();
    let server = tokio::spawn(web::server::serve(
        listener,
        app,
        web,
        limits,
        shutdown_signal(),
    ));
    // `_maintainer` stops the background maintenance when the server
    // returns.
    let (db, _maintainer) = match open.await.context("database open task")? {
        Ok(opened) => {
            info!(
                block_duration = ?args.block_duration,
                retention = ?args.retention,
                "database open; ready"
            );
            opened
        }
        // Refuse to run half-started: the error names the flag or file.
        Err(e) => return Err(anyhow::Error::new(e).context("opening the database")),
    };
    // Rules evaluate against the database, so they start once it is open.
    state.rules.start(db);
    server
        .await
        .context("http server task")?
        .context("http server")?;
    state.rules.stop();
    if let Some(db) = state.db.get() {
        db.sync().context("syncing the WAL at shutdown")?;
    }
    info!("shut down cleanly");
    Ok(())
}

/// Reloads the configuration on every SIGHUP, as Prometheus does.
pub(crate) fn spawn_sighup_reloader(state: Arc<AppState>) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    info!("SIGHUP received, reloading configuration");
                    let _ = http::reload(&state);
                }
            });
        }
        Err(e) => error!(error = %e, "cannot listen for SIGHUP; use POST /-/reload"),
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => info!("SIGINT received, shutting down"),
        _ = term => info!("SIGTERM received, shutting down"),
    }
}

pub(crate) fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}
