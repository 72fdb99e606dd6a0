//! The `--web.config.file` format: Prometheus' exporter-toolkit web
//! configuration (`tls_server_config`, `http_server_config`,
//! `basic_auth_users`), parsed and checked. Everything a field names is
//! checked here, at load, so a bad file is refused with the reason before it
//! replaces the one in force.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

/// Why a web config file was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebConfigError {
    #[error("reading web config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("web config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The file as written (field names as in the exporter toolkit; unknown
/// fields are refused so a typo does not silently leave a server open).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    cert_file: String,
    #[serde(default)]
    key_file: String,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Vec<String>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// Tessera speaks HTTP/1.1 only; `http2: true` is accepted (it is the
    /// toolkit's default) and has no effect.
    #[serde(default)]
    #[allow(dead_code)]
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Who must present a client certificate (the toolkit's `client_auth_type`
/// values that can be honoured with verification).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// `NoClientCert` (default).
    None,
    /// `VerifyClientCertIfGiven`: a certificate, when sent, must chain to
    /// `client_ca_file`.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`: mTLS.
    Require,
}

/// TLS protocol versions rustls offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TlsVersion {
    Tls12,
    Tls13,
}

/// `tls_server_config`, checked; paths resolved against the web config's
/// directory (as the toolkit does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// TLS 1.2 suite names (Go's names, which are the IANA names); empty:
    /// rustls' defaults. TLS 1.3 suites are not configurable (as in Go).
    pub cipher_suites: Vec<String>,
    pub prefer_server_cipher_suites: bool,
}

/// A checked web configuration. `Default` is what runs without
/// `--web.config.file`: plain HTTP, no authentication.
#[derive(Clone, Debug, Default)]
pub(crate) struct WebConfig {
    pub tls: Option<TlsSettings>,
    /// User name to bcrypt hash; empty: no basic authentication.
    pub users: BTreeMap<String, String>,
    /// `http_server_config.headers`, added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Response headers the toolkit lets a web config set.
const ALLOWED_HEADERS: [&str; 5] = [
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

impl WebConfig {
    /// Reads and checks `path`.
    pub(crate) fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        WebConfig::parse(&text, dir).map_err(|message| WebConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses the text of a web config; relative paths are taken from
    /// `dir`.
    pub(crate) fn parse(text: &str, dir: &Path) -> Result<WebConfig, String> {
        let options = serde_saphyr::options! { with_snippet: false };
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_saphyr::from_str_with_options(text, options).map_err(|e| e.to_string())?
        };
        let tls = raw.tls_server_config.map(|t| tls(t, dir)).transpose()?;
        for (user, hash) in &raw.basic_auth_users {
            if user.contains(':') {
                return Err(format!(
                    "basic_auth_users: user name {user:?} contains ':', which basic authentication cannot carry"
                ));
            }
            hash.parse::<bcrypt::HashParts>().map_err(|e| {
                format!("basic_auth_users: the hash of user {user:?} is not a bcrypt hash ({e})")
            })?;
        }
        let mut headers = Vec::new();
        for (name, value) in raw
            .http_server_config
            .map(|h| h.headers)
            .unwrap_or_default()
        {
            let Some(allowed) = ALLOWED_HEADERS
                .iter()
                .find(|a| a.eq_ignore_ascii_case(&name))
            else {
                return Err(format!(
                    "http_server_config.headers: {name:?} cannot be set (allowed: {})",
                    ALLOWED_HEADERS.join(", ")
                ));
            };
            let value = HeaderValue::from_str(&value).map_err(|_| {
                format!(
                    "http_server_config.headers: the value of {name} is not a valid header value"
                )
            })?;
            headers.push((HeaderName::from_static(lower(allowed)), value));
        }
        Ok(WebConfig {
            tls,
            users: raw.basic_auth_users,
            headers,
        })
    }
}

/// The lower-case (static) spelling of an allowed header name.
fn lower(name: &str) -> &'static str {
    match name {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}

fn tls(t: RawTls, dir: &Path) -> Result<TlsSettings, String> {
    if t.cert_file.is_empty() || t.key_file.is_empty() {
        return Err("tls_server_config: cert_file and key_file are both required".into());
    }
    let client_auth = match t.client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "" | "NoClientCert" => ClientAuth::None,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::Require,
        other @ ("RequestClientCert" | "RequireAnyClientCert") => {
            return Err(format!(
                "tls_server_config.client_auth_type: {other} (accepting unverified client certificates) \
                 is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ));
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: unknown value {other:?} (NoClientCert, \
                 VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            ));
        }
    };
    let client_ca_file = t
        .client_ca_file
        .filter(|f| !f.is_empty())
        .map(|f| dir.join(f));
    if client_auth != ClientAuth::None && client_ca_file.is_none() {
        return Err("tls_server_config: client_auth_type verifies client certificates, so client_ca_file is required".into());
    }
    if client_auth == ClientAuth::None && client_ca_file.is_some() {
        return Err(
            "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert; \
             set client_auth_type to RequireAndVerifyClientCert (or VerifyClientCertIfGiven)"
                .into(),
        );
    }
    let min_version = version(t.min_version.as_deref(), "min_version", TlsVersion::Tls12)?;
    let max_version = version(t.max_version.as_deref(), "max_version", TlsVersion::Tls13)?;
    if min_version > max_version {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    Ok(TlsSettings {
        cert_file: dir.join(t.cert_file),
        key_file: dir.join(t.key_file),
        client_auth,
        client_ca_file,
        min_version,
        max_version,
        cipher_suites: t.cipher_suites,
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
    })
}

fn version(v: Option<&str>, field: &str, default: TlsVersion) -> Result<TlsVersion, String> {
    match v.unwrap_or("") {
        "" => Ok(default),
        "TLS12" => Ok(TlsVersion::Tls12),
        "TLS13" => Ok(TlsVersion::Tls13),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{field}: TLS 1.0 and 1.1 are not offered (TLS12 and TLS13 are)"
        )),
        other => Err(format!(
            "tls_server_config.{field}: unknown version {other:?} (TLS12 or TLS13)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_toolkit_format() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let text = format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: /abs/tls.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n\
             http_server_config:\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  alice: '{hash}'\n"
        );
        let c = WebConfig::parse(&text, Path::new("/etc/tessera")).unwrap();
        let t = c.tls.unwrap();
        assert_eq!(t.cert_file, Path::new("/etc/tessera/tls.crt"));
        assert_eq!(t.key_file, Path::new("/abs/tls.key"));
        assert_eq!(t.client_auth, ClientAuth::Require);
        assert_eq!(t.min_version, TlsVersion::Tls13);
        assert_eq!(c.users.len(), 1);
        assert_eq!(c.headers[0].0.as_str(), "x-frame-options");
        assert!(WebConfig::parse("", Path::new(".")).unwrap().tls.is_none());
    }

    #[test]
    fn refuses_what_it_cannot_honour_with_the_reason() {
        let cases = [
            ("tls_server_config: {cert_file: a}", "both required"),
            ("basic_auth_users: {bob: plain}", "not a bcrypt hash"),
            (
                "http_server_config: {headers: {Server: x}}",
                "cannot be set",
            ),
            (
                "tls_server_config: {cert_file: a, key_file: b, min_version: TLS10}",
                "not offered",
            ),
            (
                "tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAndVerifyClientCert}",
                "client_ca_file is required",
            ),
            (
                "tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAnyClientCert, client_ca_file: c}",
                "not supported",
            ),
            ("basic_auth: {}", "basic_auth"),
        ];
        for (text, want) in cases {
            let e = WebConfig::parse(text, Path::new(".")).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
