//! Who may connect and what they may do: `--web.config.file` (TLS, mTLS,
//! basic authentication, response headers, in Prometheus' exporter-toolkit
//! format), and the listener that enforces the connection bounds.
//!
//! - [`config`]: the file format, parsed and checked;
//! - [`tls`]: the rustls configuration and its re-reading when the
//!   certificate files change;
//! - [`auth`]: bcrypt verification with its cache, and the middleware
//!   (installed by `http::router`) that answers 401;
//! - [`flags`]: the `--web.*` flags `serve` and `query` share;
//! - [`server`]: the accept loop (TLS handshake, plaintext-on-TLS refusal,
//!   header read timeout and size);
//! - [`slots`]: the connection limit, and which idle connection gives way
//!   when it is reached;
//! - here: [`WebHandle`], the configuration in force and its reload, and
//!   [`Access`]/[`AuthRequired`], which requests need credentials.

pub(crate) mod auth;
pub(crate) mod config;
pub(crate) mod flags;
pub(crate) mod server;
pub(crate) mod slots;
pub(crate) mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::metrics::METRICS;
use config::WebConfig;
pub(crate) use flags::WebFlags;
use tls::TlsFiles;

/// What a request path is, for authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// `/-/healthy`, `/-/ready`: always open, for probes.
    Probe,
    /// `POST /api/v1/write`.
    Write,
    /// `/-/reload` (lifecycle): always needs credentials when users are
    /// configured.
    Admin,
    /// Everything else: queries, metadata, status, `/metrics`.
    Read,
}

impl Access {
    pub(crate) fn of(path: &str) -> Access {
        match path {
            "/-/healthy" | "/-/ready" => Access::Probe,
            "/api/v1/write" => Access::Write,
            "/-/reload" => Access::Admin,
            _ => Access::Read,
        }
    }
}

/// `--web.auth-required`: which kinds of request need basic-auth
/// credentials when `basic_auth_users` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AuthRequired {
    pub writes: bool,
    pub reads: bool,
}

impl AuthRequired {
    pub(crate) fn covers(self, a: Access) -> bool {
        match a {
            Access::Probe => false,
            Access::Admin => true,
            Access::Write => self.writes,
            Access::Read => self.reads,
        }
    }

    /// Parses `write,read`, `write`, `read` or `none`.
    pub(crate) fn parse(s: &str) -> Result<AuthRequired, String> {
        let mut out = AuthRequired {
            writes: false,
            reads: false,
        };
        for part in s.split(',').map(str::trim) {
            match part {
                "write" => out.writes = true,
                "read" => out.reads = true,
                "none" | "" => {}
                other => {
                    return Err(format!(
                        "unknown kind {other:?}: a comma-separated list of write and read, or none"
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// `--web.auth-required`, `--web.writers` and `--web.readers`: which
/// requests need credentials, and which users may write or read.
#[derive(Clone, Debug)]
pub(crate) struct Permissions {
    pub required: AuthRequired,
    /// Users that may write and reload; empty: every configured user.
    pub writers: Vec<String>,
    /// Users that may read; empty: every configured user.
    pub readers: Vec<String>,
}

impl Permissions {
    /// May the authenticated `user` make a request of kind `a`?
    pub(crate) fn allows(&self, user: &str, a: Access) -> bool {
        let list = match a {
            Access::Probe => return true,
            Access::Write | Access::Admin => &self.writers,
            Access::Read => &self.readers,
        };
        list.is_empty() || list.iter().any(|u| u == user)
    }
}

/// A web configuration in force.
pub(crate) struct Active {
    pub config: WebConfig,
    pub tls: Option<TlsFiles>,
    /// A bcrypt hash of the configured users' cost that unknown users are
    /// checked against (see [`auth`]).
    pub dummy_hash: String,
}

impl Active {
    fn load(path: Option<&Path>) -> Result<Active, String> {
        let config = match path {
            Some(p) => WebConfig::load(p).map_err(|e| e.to_string())?,
            None => WebConfig::default(),
        };
        let tls = config.tls.clone().map(TlsFiles::load).transpose()?;
        let cost = config
            .users
            .values()
            .find_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map_or(bcrypt::DEFAULT_COST, |p| p.get_cost());
        let dummy_hash = if config.users.is_empty() {
            String::new()
        } else {
            bcrypt::hash("tessera: no such user", cost).map_err(|e| e.to_string())?
        };
        Ok(Active {
            config,
            tls,
            dummy_hash,
        })
    }
}

/// The web configuration in force, shared by the listener and the
/// middleware, replaced whole by [`WebHandle::reload`].
pub(crate) struct WebHandle {
    path: Option<PathBuf>,
    active: RwLock<Arc<Active>>,
    pub(crate) cache: auth::AuthCache,
}

impl WebHandle {
    /// Loads `--web.config.file` (none: plain HTTP, no authentication). An
    /// error names the file and the reason.
    pub(crate) fn load(path: Option<&Path>) -> Result<WebHandle, String> {
        let active = Active::load(path)?;
        if let Some(p) = path {
            tracing::info!(
                file = %p.display(),
                tls = active.tls.is_some(),
                users = active.config.users.len(),
                "web config loaded"
            );
        }
        Ok(WebHandle {
            path: path.map(Path::to_path_buf),
            active: RwLock::new(Arc::new(active)),
            cache: auth::AuthCache::new(),
        })
    }

    pub(crate) fn current(&self) -> Arc<Active> {
        self.active.read().clone()
    }

    /// Re-reads the file and its certificates; when either fails the
    /// configuration in force stays and the error says why.
    pub(crate) fn reload(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        match Active::load(Some(path)) {
            Ok(a) => {
                METRICS.web_config_reloads.inc(&["success"]);
                tracing::info!(
                    file = %path.display(),
                    tls = a.tls.is_some(),
                    users = a.config.users.len(),
                    "reloaded the web config"
                );
                *self.active.write() = Arc::new(a);
                self.cache.clear();
                Ok(())
            }
            Err(e) => {
                METRICS.web_config_reloads.inc(&["failure"]);
                tracing::error!(error = %e, "reload failed; the previous web config stays in force");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_stay_open_and_reload_always_needs_credentials() {
        let none = AuthRequired::parse("none").unwrap();
        let writes = AuthRequired::parse("write").unwrap();
        assert!(!none.covers(Access::of("/-/healthy")));
        assert!(!writes.covers(Access::of("/-/ready")));
        assert!(none.covers(Access::of("/-/reload")));
        assert!(writes.covers(Access::of("/api/v1/write")));
        assert!(!writes.covers(Access::of("/api/v1/query")));
        assert!(
            AuthRequired::parse("write,read")
                .unwrap()
                .covers(Access::of("/metrics"))
        );
        assert!(AuthRequired::parse("writes").is_err());
    }

    #[test]
    fn writers_and_readers_lists_restrict_users() {
        let p = Permissions {
            required: AuthRequired::parse("write,read").unwrap(),
            writers: vec!["prometheus".into()],
            readers: vec![],
        };
        assert!(p.allows("prometheus", Access::Write));
        assert!(!p.allows("grafana", Access::Write));
        assert!(!p.allows("grafana", Access::Admin));
        assert!(p.allows("grafana", Access::Read));
        assert!(p.allows("anyone", Access::Probe));
    }
}
