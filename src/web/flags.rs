//! The `--web.*` flags, shared by `tessera serve` and the query tier
//! (`tessera query`): one definition, so both listeners take the same web
//! config, permissions and connection bounds.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{AuthRequired, Permissions, server::ServerLimits};
use crate::flags;

#[derive(Args, Debug)]
pub(crate) struct WebFlags {
    /// Web configuration in Prometheus' exporter-toolkit format:
    /// tls_server_config (TLS, mTLS), basic_auth_users (bcrypt hashes),
    /// http_server_config.headers. Reloaded on SIGHUP and POST /-/reload (a
    /// bad file keeps the old one); certificate files are re-read when they
    /// change. Without it: plain HTTP, no authentication.
    #[arg(long = "web.config.file")]
    pub(crate) config_file: Option<PathBuf>,

    /// Which requests need basic-auth credentials when the web config has
    /// basic_auth_users: `write,read`, `write`, `read` or `none`. /-/healthy
    /// and /-/ready are always open; /-/reload always needs them.
    #[arg(long = "web.auth-required", default_value = "write,read", value_parser = AuthRequired::parse)]
    auth_required: AuthRequired,

    /// Users of basic_auth_users that may write (and POST /-/reload),
    /// comma-separated; others get 403. Default: every user.
    #[arg(long = "web.writers", value_delimiter = ',')]
    writers: Vec<String>,

    /// Users of basic_auth_users that may read (queries, metadata, status,
    /// /metrics), comma-separated; others get 403. Default: every user.
    #[arg(long = "web.readers", value_delimiter = ',')]
    readers: Vec<String>,

    /// Enable POST /-/reload (off by default, as in Prometheus: 403 without
    /// it). SIGHUP reloads either way.
    #[arg(long = "web.enable-lifecycle")]
    pub(crate) enable_lifecycle: bool,

    /// Longest a client may take to complete the TLS handshake or send a
    /// request's headers, and longest a keep-alive connection may idle;
    /// then the connection is closed (slowloris bound).
    #[arg(long = "web.read-header-timeout", default_value = "10s", value_parser = flags::duration)]
    read_header_timeout: Duration,

    /// Longest a remote-write body may take to arrive once its headers are
    /// in (it is read while holding an ingest slot); slower: 408.
    #[arg(long = "web.read-timeout", default_value = "1m", value_parser = flags::duration)]
    pub(crate) read_timeout: Duration,

    /// Largest request line plus headers, in bytes (431 above; at least
    /// 8192).
    #[arg(long = "web.max-header-bytes", default_value_t = 256 << 10)]
    max_header_bytes: usize,

    /// Connections served at once; more wait in the listen backlog until
    /// one closes (Prometheus' default).
    #[arg(long = "web.max-connections", default_value_t = 512)]
    max_connections: usize,
}

impl WebFlags {
    /// `--web.auth-required`, `--web.writers`, `--web.readers`.
    pub(crate) fn permissions(&self) -> Permissions {
        Permissions {
            required: self.auth_required,
            writers: self.writers.clone(),
            readers: self.readers.clone(),
        }
    }

    /// The listener's connection bounds.
    pub(crate) fn limits(&self) -> ServerLimits {
        ServerLimits {
            header_timeout: self.read_header_timeout,
            max_header_bytes: self.max_header_bytes,
            max_connections: self.max_connections,
        }
    }
}
