//! The accept loop: at most `--web.max-connections` connections at once
//! (see [`super::slots`] for who gives way when they are all taken), the
//! TLS handshake when the web config has `tls_server_config`, a clean
//! refusal of plain HTTP sent to the TLS port, and HTTP/1.1 with a header
//! read timeout and size bound, so clients that trickle headers or idle on
//! keep-alive connections are cut off instead of holding a slot forever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::WebHandle;
use super::slots::{ConnState, Slots};
use crate::metrics::METRICS;

/// Connection bounds, from the `--web.*` flags.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ServerLimits {
    /// Longest a client may take for the TLS handshake and for each
    /// request's headers; also how long a keep-alive connection may idle.
    pub header_timeout: Duration,
    /// Largest request head (request line and headers) in bytes.
    pub max_header_bytes: usize,
    /// Connections served at once.
    pub max_connections: usize,
}

/// How long connections may finish their requests after shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

/// What a plain-HTTP client on the TLS port is told before the close (as
/// Go's servers answer).
const PLAINTEXT_REFUSAL: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Most bytes of a plain-HTTP request read (and dropped) after the 400.
const PLAINTEXT_DRAIN_BYTES: usize = 64 << 10;

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// connections finish for up to [`DRAIN`].
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    web: Arc<WebHandle>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Slots::new(limits.max_connections);
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Accepted first, so an idle connection gives way only when someone
        // is actually waiting for its slot.
        let slot = tokio::select! {
            s = slots.acquire() => s,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = web.current().tls.as_ref().map(|t| t.acceptor());
        let svc = busy_tracking(TowerToHyperService::new(app.clone()), slot.state.clone());
        let http = http.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let evicted = slot.state.clone();
            tokio::select! {
                () = connection(stream, peer, acceptor, http, svc, watcher, limits) => {}
                () = evicted.evicted() => {
                    METRICS.web_refused.inc(&["evicted"]);
                    tracing::debug!(%peer, "closed an idle connection: every slot was taken");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open {DRAIN:?} after shutdown began; closing them");
    }
    Ok(())
}

/// `svc`, marking the connection busy from each request until its response
/// body is dropped (sent or abandoned).
fn busy_tracking(
    svc: TowerToHyperService<Router>,
    conn: Arc<ConnState>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl Future<Output = Result<Response, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    let svc = Arc::new(svc);
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let busy = conn.busy();
        let fut = hyper::service::Service::call(&*svc, req);
        async move {
            let resp = fut.await?;
            Ok(resp.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _held = &busy;
                    frame
                }))
            }))
        }
    })
}

/// Serves one connection: the TLS handshake when `acceptor` is set, then
/// HTTP/1.1 until the client or the shutdown closes it.
async fn connection<S>(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    http: Arc<hyper::server::conn::http1::Builder>,
    svc: S,
    watcher: hyper_util::server::graceful::Watcher,
    limits: ServerLimits,
) where
    S: hyper::service::HttpService<Incoming, ResBody = Body> + Send + 'static,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(acceptor) = acceptor else {
        let conn = http.serve_connection(TokioIo::new(stream), svc);
        let _ = watcher.watch(conn).await;
        return;
    };
    let tls = match tokio::time::timeout(limits.header_timeout, handshake(stream, acceptor)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(reason)) => {
            tracing::info!(%peer, reason, "TLS connection refused");
            return;
        }
        Err(_) => {
            METRICS.web_refused.inc(&["timeout"]);
            tracing::info!(%peer, "TLS handshake not complete within --web.read-header-timeout; closed");
            return;
        }
    };
    let conn = http.serve_connection(TokioIo::new(tls), svc);
    let _ = watcher.watch(conn).await;
}

/// Completes the TLS handshake, or says why not: a first byte that is not
/// a TLS handshake record is plain HTTP (answered with a 400 and closed),
/// anything else is rustls' reason (e.g. a client certificate from another
/// CA).
async fn handshake(
    mut stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
) -> Result<impl AsyncRead + AsyncWrite + Unpin + Send + 'static, String> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(0) => return Err("closed before the handshake".into()),
        Ok(_) if first[0] != 0x16 => {
            METRICS.web_refused.inc(&["plaintext"]);
            let _ = stream.write_all(PLAINTEXT_REFUSAL).await;
            let _ = stream.shutdown().await;
            // Read what the client is still sending (bounded; the caller's
            // timeout bounds the time) before closing, so it is not reset
            // before it reads the answer.
            let mut sink = [0u8; 4096];
            let mut left = PLAINTEXT_DRAIN_BYTES;
            while left > 0 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
            return Err("plain HTTP sent to the TLS port; answered 400".into());
        }
        Ok(_) => {}
        Err(e) => return Err(e.to_string()),
    }
    acceptor.accept(stream).await.map_err(|e| {
        METRICS.web_refused.inc(&["tls_handshake"]);
        format!("TLS handshake failed: {e}")
    })
}
