//! TLS for the listener: the rustls server configuration built from
//! `tls_server_config`, and [`TlsFiles`], which rebuilds it when the
//! certificate, key or client CA files change on disk (cert-manager
//! rotation) and keeps the previous one when the new files do not load.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::config::{ClientAuth, TlsSettings, TlsVersion};
use crate::metrics::METRICS;

/// How often a connection may trigger a look at the files' modification
/// times (one `stat` per file).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Builds the rustls configuration for `s`, reading its files now.
pub(crate) fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, String> {
    // The ring provider: it builds quickly and without cmake. rustls 0.23.48
    // deprecates it because it has no post-quantum key exchange
    // (X25519MLKEM768, which the aws-lc-rs provider has); moving to that
    // provider is a build-cost decision left for later.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    if !s.cipher_suites.is_empty() {
        let tls12_names: Vec<&str> = provider
            .cipher_suites
            .iter()
            .filter(|c| c.tls13().is_none())
            .filter_map(|c| c.suite().as_str())
            .collect();
        if let Some(bad) = s
            .cipher_suites
            .iter()
            .find(|n| !tls12_names.contains(&n.as_str()))
        {
            return Err(format!(
                "tls_server_config.cipher_suites: {bad} is not offered (TLS 1.2 suites offered: {})",
                tls12_names.join(", ")
            ));
        }
        provider.cipher_suites.retain(|c| {
            c.tls13().is_some()
                || c.suite()
                    .as_str()
                    .is_some_and(|n| s.cipher_suites.iter().any(|w| w == n))
        });
    }
    let provider = Arc::new(provider);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (s.min_version..=s.max_version).contains(v))
    .map(|(_, p)| p)
    .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match (&s.client_auth, &s.client_ca_file) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs(ca, "client_ca_file")? {
                roots.add(cert).map_err(|e| {
                    format!("tls_server_config.client_ca_file {}: {e}", ca.display())
                })?;
            }
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if *auth == ClientAuth::VerifyIfGiven {
                v = v.allow_unauthenticated();
            }
            let v = v
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let key = PrivateKeyDer::from_pem_file(&s.key_file).map_err(|e| {
        format!(
            "tls_server_config.key_file {}: no PEM private key ({e})",
            s.key_file.display()
        )
    })?;
    let mut cfg = builder
        .with_single_cert(certs(&s.cert_file, "cert_file")?, key)
        .map_err(|e| {
            format!(
                "tls_server_config: {} and {} do not make a usable certificate and key ({e})",
                s.cert_file.display(),
                s.key_file.display()
            )
        })?;
    cfg.ignore_client_order = s.prefer_server_cipher_suites;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The certificates of a PEM file (at least one).
fn certs(path: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let what =
        |e: &dyn std::fmt::Display| format!("tls_server_config.{field} {}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(&e))?;
    if certs.is_empty() {
        return Err(what(&"no PEM certificate in the file"));
    }
    Ok(certs)
}

/// Modification time and size of each file, `None` for one that cannot be
/// read.
fn stamps(s: &TlsSettings) -> Vec<Option<(SystemTime, u64)>> {
    [
        Some(&s.cert_file),
        Some(&s.key_file),
        s.client_ca_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p: &PathBuf| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
    .collect()
}

/// A TLS configuration and the files it came from.
pub(crate) struct TlsFiles {
    settings: TlsSettings,
    state: Mutex<FilesState>,
}

struct FilesState {
    acceptor: TlsAcceptor,
    /// The files as last looked at (loaded or refused).
    seen: Vec<Option<(SystemTime, u64)>>,
    checked: Instant,
}

impl TlsFiles {
    /// Loads the files now; an error says which file and why.
    pub(crate) fn load(settings: TlsSettings) -> Result<TlsFiles, String> {
        let seen = stamps(&settings);
        let cfg = server_config(&settings)?;
        Ok(TlsFiles {
            settings,
            state: Mutex::new(FilesState {
                acceptor: TlsAcceptor::from(cfg),
                seen,
                checked: Instant::now(),
            }),
        })
    }

    /// The acceptor for a new connection: rebuilt first when a file changed
    /// since the last look (at most once per [`CHECK_EVERY`]); when the new
    /// files do not load, the error is logged once and the previous
    /// certificates stay in use.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let mut st = self.state.lock();
        if st.checked.elapsed() >= CHECK_EVERY {
            st.checked = Instant::now();
            let now = stamps(&self.settings);
            if now != st.seen {
                st.seen = now;
                match server_config(&self.settings) {
                    Ok(cfg) => {
                        METRICS.web_config_reloads.inc(&["success"]);
                        tracing::info!(
                            cert_file = %self.settings.cert_file.display(),
                            "TLS files changed on disk; new connections use them"
                        );
                        st.acceptor = TlsAcceptor::from(cfg);
                    }
                    Err(e) => {
                        METRICS.web_config_reloads.inc(&["failure"]);
                        tracing::error!(
                            error = %e,
                            "TLS files changed on disk but do not load; the previous certificates stay in use"
                        );
                    }
                }
            }
        }
        st.acceptor.clone()
    }
}
