//! Tessera's own metrics, rendered in the Prometheus text format at `/metrics`.
//!
//! A deliberately small registry: counters and histograms keyed by label
//! values, updated once per request (never per sample), so a mutex per
//! family costs nothing measurable. Gauges that describe state (head series,
//! memory) are read from their owners at scrape time instead of being kept
//! in sync here.
//!
//! - [`registry`]: [`CounterVec`] and [`HistogramVec`], the families;
//! - [`exposition`]: the text format writers ([`header`], [`sample`],
//!   [`single`]) that the families and the scrape-time gauges share;
//! - [`process`]: `process_*` metrics from `/proc/self`;
//! - here: [`Metrics`], every family the server updates, in [`METRICS`].

mod exposition;
mod process;
mod registry;

pub(crate) use exposition::{header, sample, single};
pub(crate) use process::render_process;
pub(crate) use registry::{CounterVec, HistogramVec, SAMPLE_BUCKETS};

/// Every metric family the server updates. One static instance, [`METRICS`].
pub(crate) struct Metrics {
    pub http_requests: CounterVec,
    pub http_duration: HistogramVec,
    pub ingest_samples: CounterVec,
    pub ingest_series_created: CounterVec,
    pub ingest_samples_rejected: CounterVec,
    pub ingest_series_rejected: CounterVec,
    pub ingest_requests_refused: CounterVec,
    pub ingest_metadata: CounterVec,
    pub relabel_series_dropped: CounterVec,
    pub relabel_reloads: CounterVec,
    pub query_cancellations: CounterVec,
    pub query_limit_hits: CounterVec,
    pub query_peak_samples: HistogramVec,
    pub read_duration: HistogramVec,
    pub remote_read_refused: CounterVec,
    pub web_refused: CounterVec,
    pub web_config_reloads: CounterVec,
    pub store_response_bytes: CounterVec,
    pub partitions_skipped: CounterVec,
}

pub(crate) static METRICS: Metrics = Metrics {
    http_requests: CounterVec::new(
        "tessera_http_requests_total",
        "HTTP requests served, by handler and status code.",
        &["handler", "code"],
    ),
    http_duration: HistogramVec::new(
        "tessera_http_request_duration_seconds",
        "HTTP request latency in seconds, by handler.",
        &["handler"],
    ),
    ingest_samples: CounterVec::new(
        "tessera_ingest_samples_appended_total",
        "Float samples appended to the head (remote write and recording rules).",
        &[],
    ),
    ingest_series_created: CounterVec::new(
        "tessera_ingest_series_created_total",
        "Series created in the head (remote write and recording rules).",
        &[],
    ),
    ingest_samples_rejected: CounterVec::new(
        "tessera_ingest_samples_rejected_total",
        "Samples refused at ingest, by reason (out_of_order, out_of_bounds, too_far_in_future, duplicate_timestamp, invalid_series, \
         native_histogram, exemplar, request_refused).",
        &["reason"],
    ),
    ingest_series_rejected: CounterVec::new(
        "tessera_ingest_series_rejected_total",
        "Series refused at ingest because their labels are invalid, by reason.",
        &["reason"],
    ),
    ingest_requests_refused: CounterVec::new(
        "tessera_ingest_requests_refused_total",
        "Remote-write requests refused as a whole, by reason (body_too_large, \
         decoded_too_large, bad_snappy, bad_protobuf, overloaded, not_ready, storage_error, body_timeout).",
        &["reason"],
    ),
    ingest_metadata: CounterVec::new(
        "tessera_ingest_metadata_received_total",
        "Metric metadata entries received through remote write.",
        &[],
    ),
    relabel_series_dropped: CounterVec::new(
        "tessera_relabel_series_dropped_total",
        "Series dropped by the ingest relabel config, by 0-based rule index.",
        &["rule"],
    ),
    relabel_reloads: CounterVec::new(
        "tessera_relabel_config_reloads_total",
        "Reloads of the ingest relabel config (SIGHUP, POST /-/reload), by result.",
        &["result"],
    ),
    query_cancellations: CounterVec::new(
        "tessera_query_cancellations_total",
        "Queries and metadata calls stopped before finishing, by reason (client: the client \
         went away; timeout: --query.timeout or the request's timeout; budget: a sample or \
         series limit).",
        &["endpoint", "reason"],
    ),
    query_limit_hits: CounterVec::new(
        "tessera_query_limit_hits_total",
        "Reads refused or stopped by a limit, by the flag that sets it.",
        &["flag"],
    ),
    query_peak_samples: HistogramVec::with_buckets(
        "tessera_query_peak_samples",
        "Peak samples held in memory by one PromQL query.",
        &["endpoint"],
        SAMPLE_BUCKETS,
    ),
    read_duration: HistogramVec::new(
        "tessera_read_duration_seconds",
        "Time spent running admitted reads (queries, metadata calls and remote reads), by endpoint.",
        &["endpoint"],
    ),
    remote_read_refused: CounterVec::new(
        "tessera_remote_read_requests_refused_total",
        "Remote-read requests answered 400, by reason (bad_request: malformed or unsupported; \
         sample_limit: over --storage.remote.read-sample-limit).",
        &["reason"],
    ),
    web_refused: CounterVec::new(
        "tessera_http_refused_total",
        "Connections and requests refused before a handler ran, by reason (no_credentials, \
         bad_credentials: 401; forbidden: 403, a user not in --web.writers or \
         --web.readers; tls_handshake: failed handshake, e.g. a client certificate \
         from another CA; plaintext: plain HTTP sent to the TLS port; timeout: headers or \
         handshake not complete within --web.read-header-timeout; evicted: an idle \
         connection closed because every --web.max-connections slot was taken).",
        &["reason"],
    ),
    web_config_reloads: CounterVec::new(
        "tessera_web_config_reloads_total",
        "Reloads of --web.config.file (SIGHUP, POST /-/reload) and of the certificates it \
         names when they change on disk, by result.",
        &["result"],
    ),
    store_response_bytes: CounterVec::new(
        "tessera_query_store_response_bytes_total",
        "`tessera query` only: body bytes received from stores, by call (read: remote read of \
         raw series; query: pushed-down PromQL; listing: series, labels, metadata; probe: a store's \
         /metrics for its time span), what \
         pushdown saves on the wire.",
        &["call"],
    ),
    partitions_skipped: CounterVec::new(
        "tessera_query_partitions_skipped_total",
        "`tessera query` only: reads of a partition skipped because its stores' time span \
         (probed from their /metrics, kept 10 s) cannot hold samples in the window read.",
        &[],
    ),
};

impl Metrics {
    /// Renders every family (the caller appends state gauges).
    pub(crate) fn render(&self, out: &mut String) {
        self.http_requests.render(out);
        self.http_duration.render(out);
        self.ingest_samples.render(out);
        self.ingest_series_created.render(out);
        self.ingest_samples_rejected.render(out);
        self.ingest_series_rejected.render(out);
        self.ingest_requests_refused.render(out);
        self.ingest_metadata.render(out);
        self.relabel_series_dropped.render(out);
        self.relabel_reloads.render(out);
        self.query_cancellations.render(out);
        self.query_limit_hits.render(out);
        self.query_peak_samples.render(out);
        self.read_duration.render(out);
        self.remote_read_refused.render(out);
        self.web_refused.render(out);
        self.web_config_reloads.render(out);
        self.store_response_bytes.render(out);
        self.partitions_skipped.render(out);
    }

    /// Creates the series dashboards expect at 0 before the first event.
    pub(crate) fn touch_defaults(&self) {
        self.ingest_samples.touch(&[]);
        self.ingest_series_created.touch(&[]);
        self.ingest_metadata.touch(&[]);
        for r in [
            "out_of_order",
            "out_of_bounds",
            "duplicate_timestamp",
            "invalid_series",
            "native_histogram",
            "exemplar",
            "too_far_in_future",
        ] {
            self.ingest_samples_rejected.touch(&[r]);
        }
        for r in ["success", "failure"] {
            self.relabel_reloads.touch(&[r]);
            self.web_config_reloads.touch(&[r]);
        }
        for r in [
            "no_credentials",
            "bad_credentials",
            "tls_handshake",
            "plaintext",
            "timeout",
            "evicted",
            "forbidden",
        ] {
            self.web_refused.touch(&[r]);
        }
        self.ingest_series_rejected.touch(&["invalid_labels"]);
        for f in [
            "query.max-samples",
            "query.timeout",
            "query.max-queue",
            "query.queue-timeout",
            "api.max-series",
            "storage.remote.read-sample-limit",
        ] {
            self.query_limit_hits.touch(&[f]);
        }
        for e in [
            "query",
            "query_range",
            "series",
            "labels",
            "label_values",
            "remote_read",
        ] {
            for r in ["client", "timeout", "budget"] {
                self.query_cancellations.touch(&[e, r]);
            }
        }
        for r in ["bad_request", "sample_limit"] {
            self.remote_read_refused.touch(&[r]);
        }
        for r in [
            "body_too_large",
            "decoded_too_large",
            "bad_snappy",
            "bad_protobuf",
            "bad_symbols",
            "unsupported_media_type",
            "overloaded",
            "not_ready",
            "storage_error",
            "body_timeout",
        ] {
            self.ingest_requests_refused.touch(&[r]);
        }
    }
}
