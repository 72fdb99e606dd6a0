//! The stores behind `tessera query`: partitions, each a list of replicas,
//! and the three ways the tier reads them.
//!
//! - Pushed-down aggregations ([`FleetStorage::query`]): the parts
//!   `tessera_query::split` finds asked of every partition's
//!   `/api/v1/query_range` (or `/api/v1/query`) and combined; not with
//!   `--query.replica-label`.
//! - Raw series ([`FleetStorage`], the engine's [`Storage`]): one remote-read
//!   request (`STREAMED_XOR_CHUNKS`) per selection to every partition at
//!   once; frames checked and decoded with `ingest::remote_read` and
//!   `tsdb::chunk::prom_xor`; series with identical labels from different
//!   partitions merged one sample per timestamp; copies differing only in
//!   replica labels deduplicated ([`dedup`], counter-aware for
//!   selectors the query reads only under `rate`/`increase`/...).
//! - Listings ([`Fleet::get_json`]): the same Prometheus HTTP API call
//!   forwarded to every partition, each answer's `data` handed back for the
//!   caller to union.
//!
//! Replicas: a partition is read from one replica, the one that last
//! answered first; an error or a timeout moves to the next. The partition's
//! whole budget is `--store.timeout`, shared by its remaining replicas (the
//! first of two gets half), so a partition that is entirely hung costs one
//! `--store.timeout`, not one per replica. A partition none of whose
//! replicas answered is reported as failed: a warning naming it, or a 503
//! when partial responses are off. A 4xx (but 408/429) is the request
//! itself refused, as every replica would: no failover, the request fails.
//! A 401/403, or a TLS store's answer to plain HTTP, refuses the tier's way
//! of asking (its credentials, its `--store` scheme): the request fails
//! with a 503 that names the store and what to change, partial responses
//! or not.
//!
//! The wire is `tessera_client`'s hyper client (http and https, with the
//! `--store.tls-*` and `--store.basic-auth-*` settings: [`client`]) on the
//! server's tokio runtime. The blocking
//! read that needs an answer waits on the requests while polling its stop
//! signal (deadline, client hang-up) every 10 ms; when it fires, the request
//! tasks are aborted, which drops their connections, so the stores see the
//! hang-up and stop their own work.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use parking_lot::Mutex;
use prost::Message;
use tessera_ingest::remote_read::frame::{DEFAULT_CHUNKED_READ_LIMIT, FrameReader};
use tessera_ingest::remote_read::proto;
use tessera_query::split::{self, PartitionSeries};
use tessera_query::{Engine, QueryContext, QueryError, QueryResult, SelectStop, Storage};
use tessera_tsdb::chunk::prom_xor;
use tessera_tsdb::{Labels, MatchOp, Matcher, Sample, SeriesSamples};

use crate::metrics::METRICS;

/// How often a waiting read checks its stop signal.
const STOP_POLL: Duration = Duration::from_millis(10);

/// Largest listing answer read from one store.
const MAX_LISTING_BYTES: usize = 256 << 20;

mod client;
mod dedup;
mod dns;
mod span;

use client::StoreClient;
pub(crate) use client::StoreClientFlags;

/// One partition: its replicas' base URLs.
struct Partition {
    /// The `--store` value, as warnings name it.
    name: String,
    /// Its entries, in the order given.
    targets: Vec<dns::Target>,
    /// The entries' base URLs as last resolved.
    replicas: parking_lot::RwLock<Vec<String>>,
    /// The replica tried first: the last one that answered.
    preferred: AtomicUsize,
    /// Its time span as last probed ([`span`]).
    span: Mutex<Option<span::Probe>>,
}

/// The partitions of a `tessera query` and the client that reads them.
pub(crate) struct Fleet {
    partitions: Vec<Arc<Partition>>,
    client: StoreClient,
    runtime: tokio::runtime::Handle,
    store_timeout: Duration,
    /// `--query.partial-response`: answer with warnings when a partition
    /// fails (a request's `partial_response=false` turns it off).
    pub(crate) partial_response: bool,
    /// `--query.replica-label`: labels telling apart the copies of one
    /// series written by an HA pair of senders; dropped from answers, the
    /// copies deduplicated.
    replica_labels: Vec<String>,
}

/// Why a fan-out ended without answers.
pub(crate) enum FanOutStop {
    /// The read's stop signal fired (deadline or client gone).
    Stopped,
}

impl Fleet {
    /// `stores`: one `--store` value per partition, replicas separated by
    /// commas. Must be called on the runtime the requests will run on.
    pub(crate) fn new(
        stores: &[String],
        client: &StoreClientFlags,
        store_timeout: Duration,
        partial_response: bool,
        replica_labels: Vec<String>,
    ) -> anyhow::Result<Fleet> {
        let mut partitions = Vec::new();
        for s in stores {
            let targets = s
                .split(',')
                .map(|r| r.trim().trim_end_matches('/'))
                .filter(|r| !r.is_empty())
                .map(dns::Target::parse)
                .collect::<anyhow::Result<Vec<_>>>()?;
            if targets.is_empty() {
                anyhow::bail!("--store {s:?} names no URL");
            }
            partitions.push(Arc::new(Partition {
                name: s.clone(),
                targets,
                replicas: Default::default(),
                preferred: AtomicUsize::new(0),
                span: Mutex::new(None),
            }));
        }
        if partitions.is_empty() {
            anyhow::bail!("tessera query needs at least one --store");
        }
        if !client.has_ca()
            && let Some(p) = partitions
                .iter()
                .find(|p| p.targets.iter().any(dns::Target::is_https))
        {
            anyhow::bail!(
                "--store {:?} is https:// but no --store.tls-ca-file says which CA to trust",
                p.name
            );
        }
        Ok(Fleet {
            partitions,
            client: StoreClient::new(client, store_timeout)?,
            runtime: tokio::runtime::Handle::current(),
            store_timeout,
            partial_response,
            replica_labels,
        })
    }

    /// Resolves every partition's entries (host names to all their
    /// addresses); a partition whose names fail to resolve keeps its last
    /// list.
    pub(crate) async fn refresh(&self) {
        for p in &self.partitions {
            let mut urls = Vec::new();
            for t in &p.targets {
                match t.resolve().await {
                    Ok(u) => {
                        if let Some(name) = t.tls_name() {
                            for url in &u {
                                let authority = url.split_once("://").map_or(&**url, |x| x.1);
                                self.client.names.set(authority, name);
                            }
                        }
                        urls.extend(u)
                    }
                    Err(e) => {
                        tracing::warn!(partition = %p.name, error = %e, "cannot resolve a --store; keeping its last addresses");
                        urls.clear();
                        break;
                    }
                }
            }
            if !urls.is_empty() {
                let mut r = p.replicas.write();
                if *r != urls {
                    tracing::info!(partition = %p.name, replicas = ?urls, "store replicas");
                    *r = urls;
                }
            }
        }
    }

    /// Re-resolves the host names of `--store` every `every`, when any is
    /// a name.
    pub(crate) fn spawn_refresh(self: &Arc<Self>, every: Duration) {
        if !self
            .partitions
            .iter()
            .any(|p| p.targets.iter().any(dns::Target::is_name))
        {
            return;
        }
        let fleet = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                fleet.refresh().await;
            }
        });
    }

    /// Is `name` a `--query.replica-label`?
    pub(crate) fn is_replica_label(&self, name: &str) -> bool {
        self.replica_labels.iter().any(|r| r == name)
    }

    /// `ls` without the replica labels.
    pub(crate) fn without_replica_labels(&self, mut ls: Labels) -> Labels {
        if !self.replica_labels.is_empty() {
            ls.retain(|l| !self.is_replica_label(&l.name));
        }
        ls
    }

    /// Runs `call(client, replica URL)` for every partition at once, trying
    /// each partition's replicas in turn (see the module comment), and
    /// returns per partition its answer or why none came. Called from a
    /// blocking thread; returns early when `stop` fires, aborting the
    /// requests in flight.
    /// With `skip = Some((window, empty))`, a partition whose time span
    /// ([`span`]) cannot hold samples in `window` is not asked: its answer
    /// is `empty`.
    fn fan_out<T, F, Fut>(
        &self,
        stop: &dyn Fn() -> bool,
        skip: Option<((i64, i64), T)>,
        call: F,
    ) -> Result<Vec<Result<T, String>>, FanOutStop>
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(StoreClient, String) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T, String>> + Send + 'static,
    {
        let _guard = self.runtime.enter();
        let handles: Vec<_> = self
            .partitions
            .iter()
            .map(|p| {
                let (p, client, call) = (p.clone(), self.client.clone(), call.clone());
                let budget = self.store_timeout;
                let skip = skip.clone();
                self.runtime.spawn(async move {
                    if let Some((window, empty)) = skip
                        && !span::may_hold(&p, &client, window).await
                    {
                        METRICS.partitions_skipped.inc(&[]);
                        return Ok(empty);
                    }
                    let deadline = Instant::now() + budget;
                    let replicas = p.replicas.read().clone();
                    let n = replicas.len();
                    if n == 0 {
                        return Err("no replica address resolved".to_string());
                    }
                    let first = p.preferred.load(Ordering::Relaxed) % n;
                    let mut errors = Vec::new();
                    for k in 0..n {
                        let i = (first + k) % n;
                        let left = deadline.saturating_duration_since(Instant::now());
                        let slice = left / (n - k) as u32;
                        let url = &replicas[i];
                        match tokio::time::timeout(slice, call(client.clone(), url.clone())).await {
                            Ok(Ok(v)) => {
                                p.preferred.store(i, Ordering::Relaxed);
                                return Ok(v);
                            }
                            Ok(Err(e)) => errors.push(format!("{url}: {e}")),
                            Err(_) => errors.push(format!("{url}: no answer within {slice:?}")),
                        }
                    }
                    Err(errors.join("; "))
                })
            })
            .collect();
        let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
        self.runtime.block_on(async {
            let mut out = Vec::with_capacity(handles.len());
            for mut h in handles {
                loop {
                    tokio::select! {
                        r = &mut h => {
                            out.push(r.unwrap_or_else(|e| Err(format!("request task failed: {e}"))));
                            break;
                        }
                        _ = tokio::time::sleep(STOP_POLL) => {
                            if stop() {
                                aborts.iter().for_each(|a| a.abort());
                                return Err(FanOutStop::Stopped);
                            }
                        }
                    }
                }
            }
            Ok(out)
        })
    }

    /// `GET <replica><path>?<query>` on every partition: each answer's
    /// `data` and `warnings`, or why the partition gave none.
    /// With `window`, a partition that cannot hold samples in it answers
    /// an empty result without being asked (for query API calls).
    pub(crate) fn get_json(
        &self,
        path_and_query: &str,
        window: Option<(i64, i64)>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<PartitionAnswer<serde_json::Value>>, FanOutStop> {
        let pq = path_and_query.to_string();
        let empty = serde_json::json!({"resultType": "matrix", "result": []});
        let skip = window.map(|w| (w, (Ok(empty), Vec::new())));
        let answers = self.fan_out(stop, skip, move |client, base| {
            let uri = format!("{base}{pq}");
            async move {
                let req = hyper::Request::get(uri)
                    .body(Full::new(Bytes::new()))
                    .map_err(|e| e.to_string())?;
                let (status, body) = client.send(req, MAX_LISTING_BYTES).await?;
                if let Err(refused) = check_status(&base, status, &body)? {
                    return Ok((Err(refused), Vec::new()));
                }
                let mut v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| format!("invalid JSON answer: {e}"))?;
                let warnings = match v.get("warnings") {
                    Some(serde_json::Value::Array(w)) => w
                        .iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                Ok((Ok(v["data"].take()), warnings))
            }
        })?;
        Ok(self.label_answers(answers))
    }

    fn label_answers<T>(&self, answers: Vec<Result<Reply<T>, String>>) -> Vec<PartitionAnswer<T>> {
        answers
            .into_iter()
            .zip(&self.partitions)
            .map(|(r, p)| match r {
                Ok((Ok(data), warnings)) => PartitionAnswer::Data { data, warnings },
                Ok((Err(Refusal::Tier(why)), _)) => {
                    PartitionAnswer::Denied(format!("partition {}: {why}", p.name))
                }
                Ok((Err(Refusal::Request(status, why)), _)) => PartitionAnswer::Refused {
                    status,
                    message: format!("partition {}: {why}", p.name),
                },
                Err(e) => PartitionAnswer::Failed(failure_text(&p.name, &e)),
            })
            .collect()
    }

    /// Raw series of one selection from every partition, as remote read
    /// streams them, holding at most `max_samples` decoded samples (0: no
    /// limit).
    fn remote_read(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        max_samples: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<PartitionAnswer<Bytes>>, FanOutStop> {
        let req = proto::ReadRequest {
            queries: vec![proto::Query {
                start_timestamp_ms: mint,
                end_timestamp_ms: maxt,
                matchers: matchers.iter().map(matcher_to_proto).collect(),
                hints: None,
            }],
            accepted_response_types: vec![proto::STREAMED_XOR_CHUNKS],
        };
        let body = Bytes::from(
            snap::raw::Encoder::new()
                .compress_vec(&req.encode_to_vec())
                .expect("snappy compresses any input"),
        );
        // XOR chunks take 1-2 bytes a sample; 16 leaves room for labels.
        let max_bytes = if max_samples == 0 {
            usize::MAX
        } else {
            max_samples.saturating_mul(16).max(64 << 20)
        };
        let skip = Some(((mint, maxt), (Ok(Bytes::new()), Vec::new())));
        let answers = self.fan_out(stop, skip, move |client, base| {
            let body = body.clone();
            async move {
                let req = hyper::Request::post(format!("{base}/api/v1/read"))
                    .header("Content-Type", "application/x-protobuf")
                    .header("Content-Encoding", "snappy")
                    .header("X-Prometheus-Remote-Read-Version", "0.1.0")
                    .body(Full::new(body))
                    .map_err(|e| e.to_string())?;
                let (status, bytes) = client.send(req, max_bytes).await?;
                if let Err(refused) = check_status(&base, status, &bytes)? {
                    return Ok((Err(refused), Vec::new()));
                }
                Ok((Ok(bytes), Vec::new()))
            }
        })?;
        Ok(self.label_answers(answers))
    }
}

/// A replica's answer: the data or the client error it refused the request
/// with, and its warnings.
type Reply<T> = (Result<T, Refusal>, Vec<String>);

/// Why a store refused, when every replica would refuse the same.
#[derive(Clone)]
enum Refusal {
    /// The request itself (a 4xx but 401, 403, 408, 429): its status and
    /// reason.
    Request(u16, String),
    /// The tier's way of asking: its credentials (401, 403), or plain HTTP
    /// to a TLS port. A configuration error of the tier, said as such.
    Tier(String),
}

/// A store's status: `Ok(Ok)` for a 2xx, `Ok(Err)` for a refusal of the
/// request itself (4xx but 408 and 429: every replica would say the same, so
/// no failover; the request fails) or of the tier's way of asking
/// ([`Refusal::Tier`]), `Err` for anything that another replica may not
/// share (5xx).
fn check_status(
    base: &str,
    status: hyper::StatusCode,
    body: &[u8],
) -> Result<Result<(), Refusal>, String> {
    if status.is_success() {
        return Ok(Ok(()));
    }
    // The Prometheus API's `error`, else the text.
    let why = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| snippet(body));
    match status.as_u16() {
        408 | 429 => Err(format!("HTTP {status}: {why}")),
        401 | 403 => Ok(Err(Refusal::Tier(format!(
            "store {base} refused the tier's credentials (HTTP {status}: {why}); \
             check --store.basic-auth-username and --store.basic-auth-password-file"
        )))),
        // What a TLS listener answers to plain HTTP (Tessera's and Go's).
        400 if why.contains("HTTP request to an HTTPS server") => Ok(Err(Refusal::Tier(format!(
            "store {base} speaks TLS: give it as https:// in --store (HTTP {status}: {why})"
        )))),
        s @ 400..=499 => Ok(Err(Refusal::Request(s, why))),
        _ => Err(format!("HTTP {status}: {why}")),
    }
}

/// One partition's part of a fan-out.
pub(crate) enum PartitionAnswer<T> {
    Data {
        data: T,
        warnings: Vec<String>,
    },
    /// A store refused the request itself (a 4xx): the whole request fails
    /// with its status and message (naming the partition).
    Refused {
        status: u16,
        message: String,
    },
    /// A store refused the tier's credentials (401, 403) or its plain HTTP:
    /// a configuration error every request would hit, so the answer is an
    /// error (503) naming the store, never a partial answer that looks
    /// empty.
    Denied(String),
    /// The warning text naming the partition and why it failed.
    Failed(String),
}

fn failure_text(partition: &str, why: &str) -> String {
    format!("partition {partition} unavailable: {why}")
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(300)]);
    s.trim().to_string()
}

fn matcher_to_proto(m: &Matcher) -> proto::LabelMatcher {
    proto::LabelMatcher {
        r#type: match m.op {
            MatchOp::Equal => proto::MATCH_EQ,
            MatchOp::NotEqual => proto::MATCH_NEQ,
            MatchOp::RegexMatch => proto::MATCH_RE,
            MatchOp::RegexNoMatch => proto::MATCH_NRE,
        },
        name: m.name.clone(),
        value: m.value.clone(),
    }
}

/// Decodes one partition's streamed answer into `series`, keeping samples
/// in `mint..=maxt`; returns the samples added.
fn decode_stream(
    body: &[u8],
    mint: i64,
    maxt: i64,
    series: &mut BTreeMap<Labels, Vec<Sample>>,
) -> Result<usize, String> {
    let mut added = 0;
    for frame in FrameReader::new(body, DEFAULT_CHUNKED_READ_LIMIT) {
        let frame = frame.map_err(|e| e.to_string())?;
        for cs in frame.chunked_series {
            let labels = Labels::from_pairs(cs.labels.iter().map(|l| {
                (
                    String::from_utf8_lossy(&l.name).into_owned(),
                    String::from_utf8_lossy(&l.value).into_owned(),
                )
            }));
            let out = series.entry(labels).or_default();
            for c in cs.chunks {
                if c.r#type != proto::CHUNK_XOR {
                    return Err(format!("chunk encoding {} is not XOR", c.r#type));
                }
                let samples = prom_xor::decode(&c.data).map_err(|e| e.to_string())?;
                let before = out.len();
                out.extend(samples.into_iter().filter(|s| s.t >= mint && s.t <= maxt));
                added += out.len() - before;
            }
        }
    }
    Ok(added)
}

/// The engine's storage for one query of the tier: raw series from every
/// partition. Partition failures become warnings ([`FleetStorage::warnings`])
/// or, without partial responses, end the read ([`FleetStorage::failure`]).
pub(crate) struct FleetStorage {
    fleet: Arc<Fleet>,
    partial_response: bool,
    warnings: Mutex<Vec<String>>,
    failure: Mutex<Option<String>>,
    /// Selections the query reads only as counters
    /// (`tessera_query::counters`): their copies are stitched as counters.
    counters: Mutex<Vec<Vec<Matcher>>>,
}

impl FleetStorage {
    pub(crate) fn new(fleet: Arc<Fleet>, partial_response: bool) -> FleetStorage {
        FleetStorage {
            fleet,
            partial_response,
            warnings: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            counters: Mutex::new(Vec::new()),
        }
    }

    /// Partitions that failed, once each, as warnings.
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.warnings.lock().clone()
    }

    /// The partition failure that ended the read, without partial responses.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().clone()
    }

    /// Records a store that refused the tier's credentials as the failure
    /// that stops the read, partial responses or not.
    fn denied(&self, text: String) -> SelectStop {
        *self.failure.lock() = Some(text);
        SelectStop::Stopped
    }

    /// Records a failed partition: a warning (once), or the failure that
    /// stops the read.
    fn partition_failed(&self, text: String) -> Result<(), SelectStop> {
        if self.partial_response {
            let mut w = self.warnings.lock();
            if !w.contains(&text) {
                w.push(text);
            }
            Ok(())
        } else {
            *self.failure.lock() = Some(text);
            Err(SelectStop::Stopped)
        }
    }
}

impl Storage for FleetStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        max_samples: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<SeriesSamples>, SelectStop> {
        let answers = self
            .fleet
            .remote_read(matchers, mint, maxt, max_samples, stop)
            .map_err(|FanOutStop::Stopped| SelectStop::Stopped)?;
        let mut series = BTreeMap::new();
        let mut held = 0usize;
        for (a, p) in answers.into_iter().zip(&self.fleet.partitions) {
            match a {
                PartitionAnswer::Data { data, .. } => {
                    match decode_stream(&data, mint, maxt, &mut series) {
                        Ok(n) => held += n,
                        Err(e) => self.partition_failed(failure_text(
                            &p.name,
                            &format!("bad remote-read answer: {e}"),
                        ))?,
                    }
                    if max_samples > 0 && held > max_samples {
                        return Err(SelectStop::TooManySamples);
                    }
                }
                // A store over its own sample budget: the query's too.
                PartitionAnswer::Refused { status: 422, .. } => {
                    return Err(SelectStop::TooManySamples);
                }
                PartitionAnswer::Denied(message) => return Err(self.denied(message)),
                PartitionAnswer::Refused { message, .. } | PartitionAnswer::Failed(message) => {
                    self.partition_failed(message)?
                }
            }
        }
        // Chain merge: one sample per timestamp, the first partition's; then
        // the copies of an HA pair (equal but for replica labels) deduplicated,
        // as counters where the query reads this selection only as one.
        let counter = self
            .counters
            .lock()
            .iter()
            .any(|c| tessera_query::counters::same(c, matchers));
        let mut copies: BTreeMap<Labels, Vec<Vec<Sample>>> = BTreeMap::new();
        for (labels, mut samples) in series {
            samples.sort_by_key(|s| s.t);
            samples.dedup_by_key(|s| s.t);
            if !samples.is_empty() {
                let key = self.fleet.without_replica_labels(labels);
                copies.entry(key).or_default().push(samples);
            }
        }
        Ok(copies
            .into_iter()
            .map(|(labels, c)| SeriesSamples {
                labels,
                samples: dedup::dedup_copies(c, counter),
            })
            .collect())
    }
}

/// When a query is evaluated: at one time, or at every step of a range.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Shape {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

impl Shape {
    /// Evaluates `query` on `storage` at these times.
    pub(crate) fn run(
        self,
        engine: &Engine,
        storage: &dyn Storage,
        query: &str,
        ctx: &QueryContext,
    ) -> Result<QueryResult, QueryError> {
        match self {
            Shape::Instant(t) => engine.instant_query(storage, query, t, ctx),
            Shape::Range { start, end, step } => {
                engine.range_query(storage, query, start, end, step, ctx)
            }
        }
    }

    fn run_expr(
        self,
        engine: &Engine,
        storage: &dyn Storage,
        expr: &promql_parser::parser::Expr,
        ctx: &QueryContext,
    ) -> Result<QueryResult, QueryError> {
        match self {
            Shape::Instant(t) => engine.instant_query_expr(storage, expr, t, ctx),
            Shape::Range { start, end, step } => {
                engine.range_query_expr(storage, expr, start, end, step, ctx)
            }
        }
    }

    /// The evaluation times.
    fn steps(self) -> Vec<i64> {
        match self {
            Shape::Instant(t) => vec![t],
            Shape::Range { start, end, step } => (0..)
                .map(|k| start + k * step)
                .take_while(|t| *t <= end)
                .collect(),
        }
    }

    /// The window of sample times `query` reads evaluated at these times.
    fn read_window(self, query: &str, lookback: i64) -> Option<(i64, i64)> {
        let expr = tessera_query::parse(query).ok()?;
        let (start, end) = match self {
            Shape::Instant(t) => (t, t),
            Shape::Range { start, end, .. } => (start, end),
        };
        tessera_query::window::read_window(&expr, start, end, lookback)
    }

    /// The API call that evaluates `query` at these times on a store.
    fn api_call(self, query: &str) -> String {
        let mut p = vec![("query", query.to_string())];
        let path = match self {
            Shape::Instant(t) => {
                p.push(("time", secs(t)));
                "/api/v1/query"
            }
            Shape::Range { start, end, step } => {
                p.extend([
                    ("start", secs(start)),
                    ("end", secs(end)),
                    ("step", secs(step)),
                ]);
                "/api/v1/query_range"
            }
        };
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(p).expect("strings encode")
        )
    }
}

/// Milliseconds as the API's seconds.
fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

impl FleetStorage {
    /// Evaluates `query` over the partitions: the aggregations that split
    /// exactly ([`split`]) on every partition through its query API, the
    /// rest on the tier over raw series.
    pub(crate) fn query(
        &self,
        engine: &Engine,
        query: &str,
        shape: Shape,
        ctx: &QueryContext,
    ) -> Result<QueryResult, QueryError> {
        // A query that does not parse gets the engine's own error.
        // Not with replica labels: a partition would aggregate both copies
        // of an HA pair, and the copies' deduplication (which follows one
        // copy per series) cannot be undone from aggregates.
        let plan = match tessera_query::parse(query) {
            Ok(expr) if self.fleet.replica_labels.is_empty() => split::plan(&expr),
            Ok(expr) => {
                *self.counters.lock() = tessera_query::counters::counter_selectors(&expr);
                None
            }
            _ => None,
        };
        let Some(plan) = plan else {
            return shape.run(engine, self, query, ctx);
        };
        let steps = shape.steps();
        let max = ctx.max_samples().unwrap_or(engine.options().max_samples);
        let mut held = 0usize;
        let mut parts = Vec::with_capacity(plan.parts.len());
        for part in &plan.parts {
            let mut answers = Vec::with_capacity(part.queries.len());
            for q in &part.queries {
                // The window this part reads: partitions that cannot hold
                // data in it are skipped.
                let window = shape.read_window(q, engine.options().lookback_delta_ms);
                answers.push(self.ask(&shape.api_call(q), window, ctx)?);
            }
            let series = part.combine(answers, &steps);
            held += series.len() * steps.len();
            if max > 0 && held > max {
                return Err(QueryError::TooManySamples { limit: max });
            }
            parts.push(series);
        }
        shape.run_expr(engine, &Pushed { raw: self, parts }, &plan.expr, ctx)
    }

    /// One API call on every partition: each answering partition's series.
    fn ask(
        &self,
        call: &str,
        window: Option<(i64, i64)>,
        ctx: &QueryContext,
    ) -> Result<Vec<PartitionSeries>, QueryError> {
        let stop = || ctx.check("pushdown").is_err();
        let answers = self
            .fleet
            .get_json(call, window, &stop)
            .map_err(|FanOutStop::Stopped| {
                ctx.check("pushdown")
                    .err()
                    .unwrap_or(QueryError::Canceled("pushdown"))
            })?;
        let mut out = Vec::with_capacity(answers.len());
        for (a, p) in answers.into_iter().zip(&self.fleet.partitions) {
            let failed = match a {
                PartitionAnswer::Data { data, .. } => match parse_result(&data) {
                    Ok(s) => {
                        out.push(s);
                        continue;
                    }
                    Err(e) => failure_text(&p.name, &format!("bad query answer: {e}")),
                },
                PartitionAnswer::Refused { status, message } => {
                    return Err(match status {
                        400 => QueryError::BadData(message),
                        _ => QueryError::Execution(message),
                    });
                }
                PartitionAnswer::Denied(text) => {
                    self.denied(text);
                    return Err(QueryError::Canceled("pushdown"));
                }
                PartitionAnswer::Failed(text) => text,
            };
            self.partition_failed(failed)
                .map_err(|_| QueryError::Canceled("pushdown"))?;
        }
        Ok(out)
    }
}

/// A query API answer's `data` (a matrix or a vector) as series.
fn parse_result(data: &serde_json::Value) -> Result<PartitionSeries, String> {
    let point = |p: &serde_json::Value| -> Result<Sample, String> {
        let t = p[0].as_f64().ok_or("bad timestamp")?;
        let v = match p[1].as_str().ok_or("bad value")? {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            s => s.parse().map_err(|_| format!("bad value {s:?}"))?,
        };
        Ok(Sample {
            t: (t * 1000.0).round() as i64,
            v,
        })
    };
    let result = data["result"].as_array().ok_or("no result list")?;
    result
        .iter()
        .map(|s| {
            let labels = Labels::from_pairs(
                s["metric"]
                    .as_object()
                    .ok_or("no metric")?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
            );
            let samples = match (s.get("values"), s.get("value")) {
                (Some(vs), _) => vs
                    .as_array()
                    .ok_or("bad values")?
                    .iter()
                    .map(point)
                    .collect::<Result<_, _>>()?,
                (None, Some(v)) => vec![point(v)?],
                _ => Vec::new(),
            };
            Ok((labels, samples))
        })
        .collect()
}

/// The storage a split query is evaluated over: the pushed-down parts'
/// combined series for their selectors, raw series for the rest.
struct Pushed<'a> {
    raw: &'a FleetStorage,
    parts: Vec<Vec<SeriesSamples>>,
}

impl Storage for Pushed<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        max_samples: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<SeriesSamples>, SelectStop> {
        let part = matchers
            .iter()
            .find(|m| m.name == split::PUSHDOWN_LABEL)
            .and_then(|m| self.parts.get(m.value.parse::<usize>().ok()?));
        let Some(part) = part else {
            return self.raw.select(matchers, mint, maxt, max_samples, stop);
        };
        Ok(part
            .iter()
            .map(|s| SeriesSamples {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .filter(|p| p.t >= mint && p.t <= maxt)
                    .copied()
                    .collect(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tessera_ingest::remote_read::chunked_series;

    #[test]
    fn streams_of_two_partitions_merge_one_sample_per_timestamp() {
        let labels = Labels::from_pairs([("__name__", "up"), ("instance", "a")]);
        let stream = |samples: &[(i64, f64)]| {
            let samples = samples.iter().map(|&(t, v)| Sample { t, v }).collect();
            let mut out = Vec::new();
            let s = SeriesSamples {
                labels: labels.clone(),
                samples,
            };
            chunked_series(&mut out, 0, &s, 1 << 20);
            out
        };
        let mut series = BTreeMap::new();
        let a = stream(&[(1000, 1.0), (2000, 2.0), (3000, 3.0)]);
        let b = stream(&[(2000, 2.0), (4000, 4.0)]);
        assert_eq!(decode_stream(&a, 0, 3500, &mut series).unwrap(), 3);
        assert_eq!(decode_stream(&b, 0, 3500, &mut series).unwrap(), 1);
        let mut got = series.remove(&labels).unwrap();
        got.sort_by_key(|s| s.t);
        got.dedup_by_key(|s| s.t);
        let ts: Vec<i64> = got.iter().map(|s| s.t).collect();
        assert_eq!(ts, [1000, 2000, 3000]);
        let mut bad = a.clone();
        bad[6] ^= 0xff;
        assert!(decode_stream(&bad, 0, 3500, &mut BTreeMap::new()).is_err());
    }
}
