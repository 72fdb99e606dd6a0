//! The tier's connection to its stores: `--store.tls-*` and
//! `--store.basic-auth-*`, turned into the shared `tessera_client` client
//! and the credentials every request carries.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use tessera_client::{BasicAuth, ClientTls, HttpsClient, ServerNames};

use crate::metrics::METRICS;

/// How the tier reaches its stores (Prometheus' `tls_config` and
/// `basic_auth`, as flags).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct StoreClientFlags {
    /// PEM CA certificate(s) the stores' certificates must chain to;
    /// required for https:// stores (no system roots are used).
    #[arg(long = "store.tls-ca-file")]
    tls_ca_file: Option<PathBuf>,

    /// PEM client certificate presented to the stores (for a store whose
    /// web config verifies client certificates), with --store.tls-key-file.
    #[arg(long = "store.tls-cert-file", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,

    /// PEM private key of --store.tls-cert-file.
    #[arg(long = "store.tls-key-file", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,

    /// Name every store's certificate must be valid for, instead of the
    /// host name of its --store entry (which is what a replica a name
    /// resolved to is checked for) or, for an IP address, the address.
    #[arg(long = "store.tls-server-name")]
    tls_server_name: Option<String>,

    /// Basic-auth user sent to every store, with
    /// --store.basic-auth-password-file.
    #[arg(
        long = "store.basic-auth-username",
        requires = "basic_auth_password_file"
    )]
    basic_auth_username: Option<String>,

    /// File holding that user's password (a trailing newline ignored); read
    /// again when it changes (checked at most once a second), so a rotated
    /// Secret needs no restart.
    #[arg(
        long = "store.basic-auth-password-file",
        requires = "basic_auth_username"
    )]
    basic_auth_password_file: Option<PathBuf>,
}

impl StoreClientFlags {
    /// Is a CA given (so https:// stores can be verified)?
    pub(crate) fn has_ca(&self) -> bool {
        self.tls_ca_file.is_some()
    }
}

/// The client of every store request, with the credentials it carries.
#[derive(Clone)]
pub(crate) struct StoreClient {
    http: HttpsClient,
    auth: Option<Arc<BasicAuth>>,
    /// The host name each resolved replica address stands for, so its
    /// certificate is checked for the name, not the address.
    pub(crate) names: ServerNames,
}

impl StoreClient {
    /// Reads the flags' files now: a bad file refuses the start, naming
    /// the flag.
    pub(crate) fn new(flags: &StoreClientFlags, connect_timeout: Duration) -> anyhow::Result<Self> {
        let tls = ClientTls {
            ca_file: flags.tls_ca_file.clone(),
            cert_file: flags.tls_cert_file.clone(),
            key_file: flags.tls_key_file.clone(),
            server_name: flags.tls_server_name.clone(),
            names: ServerNames::default(),
        };
        let http = tessera_client::https_client(&tls, Some(connect_timeout)).context(
            "--store.tls-ca-file, --store.tls-cert-file, --store.tls-key-file, --store.tls-server-name",
        )?;
        let auth = match (&flags.basic_auth_username, &flags.basic_auth_password_file) {
            (Some(u), Some(f)) => Some(Arc::new(
                BasicAuth::new(u, f).context("--store.basic-auth-password-file")?,
            )),
            _ => None,
        };
        Ok(StoreClient {
            http,
            auth,
            names: tls.names,
        })
    }

    /// Sends `req` (with the credentials) and reads at most `max_bytes` of
    /// the answer. A transport error says why, TLS handshake errors
    /// included ("invalid peer certificate: UnknownIssuer").
    pub(crate) async fn send(
        &self,
        mut req: hyper::Request<Full<Bytes>>,
        max_bytes: usize,
    ) -> Result<(hyper::StatusCode, Bytes), String> {
        if let Some(a) = &self.auth {
            req.headers_mut()
                .insert(hyper::header::AUTHORIZATION, a.header());
        }
        let req_path = req.uri().path().to_string();
        let resp = self.http.request(req).await.map_err(|e| {
            // hyper-util's error says only "client error (Connect)"; the
            // cause chain says what failed.
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            text
        })?;
        let status = resp.status();
        let call = store_call(req_path.as_str());
        let body = Limited::new(resp.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        METRICS
            .store_response_bytes
            .inc_by(&[call], body.len() as f64);
        Ok((status, body))
    }
}

/// The `call` label of `tessera_query_store_response_bytes_total` for a
/// store request's path.
fn store_call(path: &str) -> &'static str {
    if path.ends_with("/metrics") {
        "probe"
    } else if path.ends_with("/api/v1/read") {
        "read"
    } else if path.ends_with("/api/v1/query") || path.ends_with("/api/v1/query_range") {
        "query"
    } else {
        "listing"
    }
}
