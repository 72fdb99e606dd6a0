//! The HTTP server: routes ([`router`]), shared state ([`AppState`]),
//! per-request accounting and the configuration reload ([`reload`]).
//!
//! Handlers live one concern per file:
//! - `write.rs`: `POST /api/v1/write` (remote write);
//! - `remote_read.rs`: `POST /api/v1/read` (remote read: samples or
//!   streamed XOR chunks, under its own gate);
//! - `query.rs`: `/api/v1/query` and `/api/v1/query_range` (PromQL);
//! - `metadata.rs`: `/api/v1/series`, `/api/v1/labels`,
//!   `/api/v1/label/{name}/values` and `/api/v1/metadata`;
//! - `rules.rs`: `/api/v1/rules` (the rules' JSON and filters) and
//!   `/api/v1/alerts`;
//! - `status.rs`: `/-/healthy`, `/-/ready`, `/-/reload` (with
//!   `--web.enable-lifecycle`),
//!   `/api/v1/status/buildinfo`, `/api/v1/status/queries` and `/metrics`;
//! - `tsdb_status.rs`: `/api/v1/status/tsdb`, `/api/v1/status/runtimeinfo`
//!   and `/api/v1/status/flags`.
//!
//! `crate::web_ui` adds the operators' page at `/` and `/ui/...`.
//!
//! Every route passes `crate::web::auth::enforce` (basic authentication
//! per `--web.config.file` and `--web.auth-required`, response headers).
//!
//! What they share: `api.rs` (the Prometheus API conventions: envelope,
//! errors, parameters, times and durations), `admission.rs` (the read
//! admission gate), `read.rs` (running one admitted read: deadline,
//! cancellation, accounting), `selector.rs` (`match[]` selectors) and
//! `stream.rs` (streamed JSON bodies).

pub(crate) mod admission;
pub(crate) mod api;
mod metadata;
mod query;
mod read;
mod remote_read;
mod rules;
mod selector;
mod status;
mod stream;
mod tsdb_status;
mod write;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tessera_ingest::DecodeLimits;
use tessera_ingest::MetadataStore;
use tessera_tsdb::Db;
use tokio::sync::Semaphore;

use crate::metrics::METRICS;
use crate::rules::Rules;

/// Settings of the HTTP layer, from flags.
#[derive(Clone, Debug)]
pub(crate) struct HttpOptions {
    pub decode_limits: DecodeLimits,
    /// Remote-write requests decoded and appended at once; more wait in
    /// line for up to `ingest_queue_timeout`, then get 503 + Retry-After.
    pub ingest_max_inflight: usize,
    pub ingest_queue_timeout: std::time::Duration,
    /// Most series a series/labels/values call may touch before it fails
    /// with a limit error (`--api.max-series`).
    pub api_max_series: usize,
    /// Window searched by series/labels/values calls without `start`.
    pub api_default_window: std::time::Duration,
    /// Reads running at once, waiting at most, and how long they wait.
    pub query_max_concurrency: usize,
    pub query_max_queue: usize,
    pub query_queue_timeout: std::time::Duration,
    /// Remote read: samples per query of a SAMPLES answer (0: no limit),
    /// requests answered at once, and the target size of a streamed frame.
    pub remote_read_sample_limit: usize,
    pub remote_read_concurrent_limit: usize,
    pub remote_read_max_bytes_in_frame: usize,
    /// Which requests need credentials when the web config has users, and
    /// which users may write or read.
    pub permissions: crate::web::Permissions,
    /// `POST /-/reload` answers only with `--web.enable-lifecycle`.
    pub enable_lifecycle: bool,
    /// Longest a remote-write body may take to arrive (`--web.read-timeout`).
    pub body_read_timeout: std::time::Duration,
}

/// State shared by every handler.
pub(crate) struct AppState {
    /// Set once the database is open (after WAL replay); until then writes
    /// and reads answer 503 and `/-/ready` is not ready.
    pub db: OnceLock<Arc<Db>>,
    pub metadata: MetadataStore,
    pub opts: HttpOptions,
    pub ingest_gate: Semaphore,
    pub start_time: f64,
    pub cpus: usize,
    pub engine: tessera_query::Engine,
    pub relabel: tessera_ingest::IngestRelabel,
    /// The recording and alerting rules (none without `--rules.file`):
    /// listed by `/api/v1/rules` and `/api/v1/alerts`, reloaded with the relabel config, and their
    /// self-metrics in `/metrics`. `serve.rs` starts their evaluation once
    /// the database is open.
    pub rules: Rules,
    pub admission: admission::Admission,
    /// The gate of `POST /api/v1/read` and its in-flight count.
    pub remote_read: remote_read::RemoteReadGate,
    /// Every `serve` flag with its value, for `/api/v1/status/flags`.
    pub flags: Vec<(String, String)>,
    /// Set on a query tier (`tessera query`): reads go to these partitions
    /// and `db` stays unset.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    /// The WAL replay of the database being opened reports here (`/metrics`
    /// shows it while `db` is not set yet).
    pub replay_progress: tessera_tsdb::ReplayProgress,
    /// `--web.config.file` in force: TLS, users, response headers.
    pub web: Arc<crate::web::WebHandle>,
}

impl AppState {
    pub(crate) fn new(
        opts: HttpOptions,
        cpus: usize,
        engine: tessera_query::Engine,
        relabel: tessera_ingest::IngestRelabel,
        rules: Rules,
        flags: Vec<(String, String)>,
        web: Arc<crate::web::WebHandle>,
    ) -> Self {
        let start_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        AppState {
            db: OnceLock::new(),
            metadata: MetadataStore::default(),
            ingest_gate: Semaphore::new(opts.ingest_max_inflight.max(1)),
            admission: admission::Admission::new(
                opts.query_max_concurrency,
                opts.query_max_queue,
                opts.query_queue_timeout,
            ),
            remote_read: remote_read::RemoteReadGate::new(opts.remote_read_concurrent_limit),
            opts,
            start_time,
            cpus,
            engine,
            relabel,
            rules,
            flags,
            fleet: None,
            replay_progress: Default::default(),
            web,
        }
    }

    /// The database, or the 503 a client should retry.
    pub(crate) fn db(&self) -> Result<&Arc<Db>, api::ApiError> {
        self.db.get().ok_or_else(|| {
            api::ApiError::new(
                api::ErrorType::Unavailable,
                "Tessera is starting (replaying its WAL); retry shortly",
            )
        })
    }
}

/// All routes of the server.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route("/api/v1/write", post(write::remote_write))
        .route("/api/v1/read", post(remote_read::remote_read))
        .merge(read_routes())
        .route(
            "/api/v1/rules",
            get(rules::api_rules).post(rules::api_rules),
        )
        .route(
            "/api/v1/alerts",
            get(rules::api_alerts).post(rules::api_alerts),
        )
        .route("/api/v1/status/tsdb", get(tsdb_status::tsdb))
        .route("/api/v1/status/runtimeinfo", get(tsdb_status::runtimeinfo))
        .route("/api/v1/status/flags", get(tsdb_status::flags))
        .route("/-/reload", post(status::reload).put(status::reload))
        // The operators' page: a read like the API it calls.
        .merge(crate::web_ui::routes());
    // Authentication runs inside the accounting, so 401s are counted.
    guarded(routes, &state)
        .layer(middleware::from_fn(account))
        .with_state(state)
}

/// `routes` behind the `--web.config.file` authentication and permissions
/// (`web::auth`), checked before any handler.
fn guarded(routes: Router<Arc<AppState>>, state: &AppState) -> Router<Arc<AppState>> {
    routes.layer(middleware::from_fn_with_state(
        crate::web::auth::Guard {
            web: state.web.clone(),
            perms: state.opts.permissions.clone(),
        },
        crate::web::auth::enforce,
    ))
}

/// The routes of a query tier (`tessera query`): the read API Grafana
/// uses, served by the same handlers as `serve`'s, their reads going to the
/// partitions (`AppState::fleet`).
pub(crate) fn tier_router(state: Arc<AppState>) -> Router {
    let routes = read_routes().route("/-/reload", post(status::reload).put(status::reload));
    // Authentication runs inside the accounting, so 401s are counted.
    guarded(routes, &state)
        .layer(middleware::from_fn(account))
        .with_state(state)
}

/// The routes `serve` and `query` share: PromQL, listings, status, probes
/// and self-metrics.
fn read_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route(
            "/api/v1/series",
            get(metadata::series).post(metadata::series),
        )
        .route(
            "/api/v1/labels",
            get(metadata::labels).post(metadata::labels),
        )
        .route("/api/v1/label/{name}/values", get(metadata::label_values))
        .route("/api/v1/metadata", get(metadata::metadata))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/queries", get(status::running_queries))
        .route("/-/healthy", get(status::healthy))
        .route("/-/ready", get(status::ready))
        .route("/metrics", get(status::metrics))
}

/// Counts every request by handler and status code and times it.
async fn account(req: Request, next: Next) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    METRICS
        .http_requests
        .inc(&[&handler, resp.status().as_str()]);
    METRICS.http_duration.observe(&[&handler], start.elapsed());
    resp
}

/// Re-reads the reloadable configuration (the web config, the ingest
/// relabel file and the rule files), as on SIGHUP and `POST /-/reload`. A
/// bad file keeps what was in force.
pub(crate) fn reload(state: &AppState) -> Result<(), String> {
    let web = state.web.reload();
    let relabel = match state.relabel.reload() {
        Ok(n) => {
            METRICS.relabel_reloads.inc(&["success"]);
            tracing::info!(rules = n, "reloaded the ingest relabel config");
            Ok(())
        }
        Err(e) => {
            METRICS.relabel_reloads.inc(&["failure"]);
            tracing::error!(error = %e, "reload failed; the previous relabel rules stay in force");
            Err(e.to_string())
        }
    };
    let rules = state.rules.reload();
    let errors: Vec<String> = [web, relabel, rules]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The extractor every handler uses for the shared state.
pub(crate) type AppStateRef = State<Arc<AppState>>;
