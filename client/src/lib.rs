//! Tessera's outgoing HTTP to other servers: the query tier's requests to
//! its stores (`tessera query --store`) and `tessera-bench`'s load, one
//! setup for both.
//!
//! Owns: the hyper-util legacy client over a rustls connector
//! ([`https_client`]) speaking `http://` and `https://` with the trust and
//! identity of a [`ClientTls`] (a CA file, an optional client certificate
//! for mTLS, the name a server's certificate is checked for: the URL's
//! host, one fixed name, or per address the name it was resolved from),
//! and the basic-auth header of a [`BasicAuth`] (user and a password file,
//! re-read when the file changes, so a rotated Secret needs no restart).
//!
//! Does not own: what is sent (remote write, remote read, the query API),
//! retries or failover (the callers'), nor the server side of TLS (the
//! binary's `web/`). Flags are the callers' too: each names its own
//! (`--store.tls-ca-file`, `--tls.ca-file`) and converts to [`ClientTls`].

mod auth;
mod tls;

pub use auth::BasicAuth;
pub use tls::{ClientTls, HttpsClient, ServerNames, https_client};

/// Why a client setting cannot be used; names the file and what it was
/// meant to be.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A file could not be read or holds no usable PEM.
    #[error("{what} {path}: {reason}")]
    File {
        what: &'static str,
        path: std::path::PathBuf,
        reason: String,
    },
    /// The settings do not fit together (a key without its certificate, a
    /// server name that is not a DNS name or IP address, ...).
    #[error("{0}")]
    Invalid(String),
}
