//! The HTTP side of the harness: remote-write POSTs with Prometheus'
//! retry rules, and GETs of the query API, each timed.
//!
//! Retry policy follows Prometheus' remote-write queue manager: 5xx and 429
//! are retried with backoff (honouring `Retry-After`), other 4xx are final —
//! a 400 means the receiver rejected samples and resending cannot help.
//!
//! `https://` URLs are spoken with rustls, trusting the CA of
//! `--tls.ca-file` (optionally with a client certificate), and every request
//! can carry basic-auth credentials: see [`ClientAuth`]. The connection
//! setup is `tessera_client`'s, shared with the query tier.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};

/// TLS and basic-auth settings of the client (`--tls.*`,
/// `--basic-auth.*`); the default is plain HTTP without credentials.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ClientAuth {
    /// PEM CA certificate(s) to trust for `https://` URLs (required for
    /// them).
    #[arg(long = "tls.ca-file")]
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate to present (mTLS), with --tls.key-file.
    #[arg(long = "tls.cert-file", requires = "key_file")]
    pub cert_file: Option<std::path::PathBuf>,
    /// PEM private key of --tls.cert-file.
    #[arg(long = "tls.key-file", requires = "cert_file")]
    pub key_file: Option<std::path::PathBuf>,
    /// Basic-auth user sent with every request.
    #[arg(long = "basic-auth.username", requires = "password_file")]
    pub username: Option<String>,
    /// File holding the basic-auth password (trailing newline ignored).
    #[arg(long = "basic-auth.password-file", requires = "username")]
    pub password_file: Option<std::path::PathBuf>,
}

impl ClientAuth {
    /// The TLS settings as the shared client takes them.
    fn tls(&self) -> tessera_client::ClientTls {
        tessera_client::ClientTls {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            ..Default::default()
        }
    }

    /// The `Authorization` header value, when a user is set (read once: a
    /// benchmark run does not outlive a password rotation).
    fn authorization(&self) -> anyhow::Result<Option<HeaderValue>> {
        let (Some(user), Some(file)) = (&self.username, &self.password_file) else {
            return Ok(None);
        };
        let auth =
            tessera_client::BasicAuth::new(user, file).context("--basic-auth.password-file")?;
        Ok(Some(auth.header()))
    }
}

/// The result of one remote-write request after retries.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    /// 2xx: acknowledged.
    Ok,
    /// A final 4xx: the receiver refused (some of) the samples.
    Rejected { status: u16, body: String },
    /// Transport error, timeout, or 5xx/429 after every retry.
    Failed { reason: String },
}

/// One finished write: outcome, latency of the last attempt, retries used.
#[derive(Debug, Clone)]
pub struct WriteResult {
    pub outcome: WriteOutcome,
    pub latency: Duration,
    pub retries: u32,
}

/// A GET's status, body and latency.
#[derive(Debug, Clone)]
pub struct GetResult {
    pub status: u16,
    pub body: Bytes,
    pub latency: Duration,
}

/// Shared HTTP/1 client with connection reuse.
#[derive(Clone)]
pub struct Client {
    inner: tessera_client::HttpsClient,
    /// `Authorization` sent with every request.
    authorization: Option<HeaderValue>,
    /// Per-request deadline.
    pub timeout: Duration,
    /// Retries of retryable failures per write.
    pub max_retries: u32,
}

impl Client {
    /// A plain-HTTP client without credentials.
    pub fn new(timeout: Duration, max_retries: u32) -> Self {
        Client::with_auth(timeout, max_retries, &ClientAuth::default())
            .expect("no files to read without TLS or auth settings")
    }

    /// A client with `auth`'s TLS settings and credentials; an error names
    /// the flag whose file could not be used.
    pub fn with_auth(
        timeout: Duration,
        max_retries: u32,
        auth: &ClientAuth,
    ) -> anyhow::Result<Self> {
        let inner = tessera_client::https_client(&auth.tls(), None)
            .context("--tls.ca-file, --tls.cert-file, --tls.key-file")?;
        Ok(Client {
            inner,
            authorization: auth.authorization()?,
            timeout,
            max_retries,
        })
    }

    /// A request builder with the client's credentials.
    fn request(&self, method: Method, url: &str) -> hyper::http::request::Builder {
        let b = Request::builder()
            .method(method)
            .uri(url)
            .header("User-Agent", "tessera-bench");
        match &self.authorization {
            Some(v) => b.header(hyper::header::AUTHORIZATION, v.clone()),
            None => b,
        }
    }

    /// POSTs a snappy-compressed remote-write 1.0 body.
    pub async fn write(&self, url: &str, body: Bytes) -> WriteResult {
        let mut retries = 0;
        let mut backoff = Duration::from_millis(50);
        loop {
            let started = Instant::now();
            let req = self
                .request(Method::POST, url)
                .header("Content-Type", "application/x-protobuf")
                .header("Content-Encoding", "snappy")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .body(Full::new(body.clone()))
                .expect("static request parts are valid");
            let attempt = tokio::time::timeout(self.timeout, async {
                let resp = self.inner.request(req).await.map_err(|e| format!("{e}"))?;
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("{e}"))?
                    .to_bytes();
                Ok::<_, String>((status, retry_after, body))
            })
            .await;
            let latency = started.elapsed();
            let (retryable, outcome, wait) = match attempt {
                Err(_) => (
                    true,
                    WriteOutcome::Failed {
                        reason: format!("timeout after {:?}", self.timeout),
                    },
                    None,
                ),
                Ok(Err(e)) => (true, WriteOutcome::Failed { reason: e }, None),
                Ok(Ok((status, retry_after, body))) => {
                    if status.is_success() {
                        return WriteResult {
                            outcome: WriteOutcome::Ok,
                            latency,
                            retries,
                        };
                    }
                    let text = String::from_utf8_lossy(&body)
                        .chars()
                        .take(300)
                        .collect::<String>();
                    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                        let reason = format!("HTTP {}: {}", status.as_u16(), text.trim());
                        (
                            true,
                            WriteOutcome::Failed { reason },
                            retry_after.map(Duration::from_secs),
                        )
                    } else {
                        let outcome = WriteOutcome::Rejected {
                            status: status.as_u16(),
                            body: text,
                        };
                        return WriteResult {
                            outcome,
                            latency,
                            retries,
                        };
                    }
                }
            };
            if !retryable || retries >= self.max_retries {
                return WriteResult {
                    outcome,
                    latency,
                    retries,
                };
            }
            retries += 1;
            tokio::time::sleep(wait.unwrap_or(backoff).min(Duration::from_secs(5))).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// GETs `url` within `timeout`; `Err` on transport error or timeout.
    pub async fn get(&self, url: &str, timeout: Duration) -> Result<GetResult, String> {
        let started = Instant::now();
        let req = self
            .request(Method::GET, url)
            .header("Accept", "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("bad URL {url}: {e}"))?;
        let res = tokio::time::timeout(timeout, async {
            let resp = self.inner.request(req).await.map_err(|e| format!("{e}"))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        })
        .await
        .map_err(|_| format!("timeout after {timeout:?}"))??;
        Ok(GetResult {
            status: res.0,
            body: res.1,
            latency: started.elapsed(),
        })
    }
}

/// Percent-encodes a query-string value (RFC 3986 unreserved kept).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Splits `--url` into the server's base URL: accepts either the base
/// (`http://127.0.0.1:9090`) or the full write URL.
pub fn base_url(url: &str) -> String {
    url.trim_end_matches('/')
        .trim_end_matches("/api/v1/write")
        .trim_end_matches("/api/v1/push")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encode_escapes_promql_punctuation() {
        let f = |input: &str, want: &str| assert_eq!(url_encode(input), want, "{input}");
        f("up", "up");
        f("{le!=\"\"}", "%7Ble%21%3D%22%22%7D");
        f("a b", "a%20b");
    }

    #[test]
    fn base_url_strips_the_write_path() {
        assert_eq!(
            base_url("http://127.0.0.1:9090/api/v1/write"),
            "http://127.0.0.1:9090"
        );
        assert_eq!(base_url("http://127.0.0.1:9090/"), "http://127.0.0.1:9090");
    }
}
