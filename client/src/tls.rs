//! The rustls side of the client: trust (a CA file), identity (a client
//! certificate for mTLS) and the name a server's certificate must carry.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::RwLock;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::ClientError;

/// A client that speaks `http://` and `https://` URLs, keeping connections
/// alive between requests.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How `https://` servers are trusted and how the client identifies itself.
/// The default trusts no one (an `https://` URL fails its handshake with
/// "unknown issuer") and presents no certificate.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// PEM CA certificate(s) a server's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) presented for mTLS, with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The name every server's certificate must be valid for, instead of
    /// the URL's host (a store reached by IP address, or through a name its
    /// certificate does not list). Wins over `names`.
    pub server_name: Option<String>,
    /// Per address dialled, the host name its certificate must be valid
    /// for: a caller that resolved a name itself and dials the addresses
    /// keeps the name's certificate check. Addresses not in it: the URL's
    /// host.
    pub names: ServerNames,
}

/// Which host name an address (`ip:port`, as in the URL) stands for; shared
/// between the caller that resolves names and the connector, and updated
/// while the client is in use.
#[derive(Clone, Debug, Default)]
pub struct ServerNames(Arc<RwLock<HashMap<String, String>>>);

impl ServerNames {
    /// Certificates at `authority` (`ip:port`) are checked for `name`.
    pub fn set(&self, authority: &str, name: &str) {
        let mut m = self.0.write();
        if m.get(authority).map(String::as_str) != Some(name) {
            m.insert(authority.to_string(), name.to_string());
        }
    }

    fn get(&self, authority: &str) -> Option<String> {
        self.0.read().get(authority).cloned()
    }
}

impl ClientTls {
    /// The rustls configuration, reading the files now.
    pub fn rustls_config(&self) -> Result<rustls::ClientConfig, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(ca) = &self.ca_file {
            let certs = read_certs("CA certificate file", ca)?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| file_error("CA certificate file", ca, e))?;
            }
        }
        // The ring provider, as the server side (`src/web/tls.rs`): no cmake
        // in the build; deprecated only for lacking post-quantum key exchange.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.into())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .with_root_certificates(roots);
        match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => {
                let certs = read_certs("client certificate file", c)?;
                let key = PrivateKeyDer::from_pem_file(k)
                    .map_err(|e| file_error("client key file", k, e))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| file_error("client certificate file", c, e))
            }
            (None, None) => Ok(builder.with_no_client_auth()),
            _ => Err(ClientError::Invalid(
                "a client certificate needs both its certificate and its key file".into(),
            )),
        }
    }
}

/// Builds the client: TCP with `TCP_NODELAY` and `connect_timeout`, rustls
/// for `https://` URLs (plain `http://` still allowed), HTTP/1.1,
/// connections idle over 30 s closed.
pub fn https_client(
    tls: &ClientTls,
    connect_timeout: Option<Duration>,
) -> Result<HttpsClient, ClientError> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(connect_timeout);
    // The rustls layer decides the scheme; the TCP one must accept https.
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.rustls_config()?)
        .https_or_http();
    let fixed = match &tls.server_name {
        Some(name) => Some(
            ServerName::try_from(name.trim_matches(['[', ']']).to_string())
                .map_err(|e| ClientError::Invalid(format!("server name {name:?}: {e}")))?,
        ),
        None => None,
    };
    let names = tls.names.clone();
    let builder = builder.with_server_name_resolver(move |uri: &hyper::Uri| {
        if let Some(n) = &fixed {
            return Ok(n.clone());
        }
        let mapped = uri.authority().and_then(|a| names.get(a.as_str()));
        let host = mapped.unwrap_or_else(|| {
            let h = uri.host().unwrap_or_default();
            h.trim_start_matches('[').trim_end_matches(']').to_string()
        });
        ServerName::try_from(host)
    });
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(builder.enable_http1().wrap_connector(http)))
}

fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn file_error(what: &'static str, path: &Path, reason: impl std::fmt::Display) -> ClientError {
    ClientError::File {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}
