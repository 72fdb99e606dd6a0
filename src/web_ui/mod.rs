//! The operators' web page: a small single-page app (HTML, plain JS, CSS
//! and the vendored uPlot chart library) compiled into the binary with
//! `include_bytes!`, served at `/` and `/ui/...`, so it works offline and
//! needs no second server.
//!
//! The page only calls the Prometheus API the binary already serves
//! (`/api/v1/status/tsdb`, `/api/v1/query_range`, `/api/v1/rules`, ...),
//! so every figure it shows is bounded and admitted like any other read.
//! It is routed inside `http::router`, behind `web::auth::enforce`: a page
//! is a read (`web::Access::Read`).
//!
//! Responses carry their content type, an `ETag` (304 on a match) and a
//! gzip body when the client accepts it (compressed once per asset, on
//! first use). Our own files are revalidated on every load (`no-cache`);
//! the vendored library has its version in its name and is cached for a
//! year.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write as _;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file.
struct Asset {
    /// Its path under `/ui/`.
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// Versioned name: cached for a year instead of revalidated.
    immutable: bool,
}

macro_rules! asset {
    ($path:literal, $type:literal, $immutable:literal) => {
        Asset {
            path: $path,
            content_type: $type,
            bytes: include_bytes!(concat!("assets/", $path)),
            immutable: $immutable,
        }
    };
}

/// Everything the page loads. `index.html` names these paths.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8", false),
    asset!("app.css", "text/css; charset=utf-8", false),
    asset!("common.js", "text/javascript; charset=utf-8", false),
    asset!("explorer.js", "text/javascript; charset=utf-8", false),
    asset!("query.js", "text/javascript; charset=utf-8", false),
    asset!("rules.js", "text/javascript; charset=utf-8", false),
    asset!("status.js", "text/javascript; charset=utf-8", false),
    asset!("app.js", "text/javascript; charset=utf-8", false),
    asset!(
        "vendor/uPlot-1.6.32.iife.min.js",
        "text/javascript; charset=utf-8",
        true
    ),
    asset!(
        "vendor/uPlot-1.6.32.min.css",
        "text/css; charset=utf-8",
        true
    ),
    asset!("vendor/uPlot.LICENSE", "text/plain; charset=utf-8", true),
];

/// What is computed once per asset: its ETag and its gzip body.
struct Prepared {
    etag: HeaderValue,
    gzip: Vec<u8>,
}

fn prepared(i: usize) -> &'static Prepared {
    static CELLS: OnceLock<Vec<OnceLock<Prepared>>> = OnceLock::new();
    let cells = CELLS.get_or_init(|| ASSETS.iter().map(|_| OnceLock::new()).collect());
    cells[i].get_or_init(|| {
        let a = &ASSETS[i];
        let mut h = DefaultHasher::new();
        a.bytes.hash(&mut h);
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", h.finish()))
            .expect("hex is a valid header value");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(a.bytes)
            .expect("writing to a Vec cannot fail");
        let gzip = enc.finish().expect("writing to a Vec cannot fail");
        Prepared { etag, gzip }
    })
}

/// The page's routes: `/` and `/ui/` (the page) and `/ui/<asset>`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/{*path}", get(file))
}

async fn index(req: Request<Body>) -> Response {
    serve("index.html", &req)
}

async fn file(Path(path): Path<String>, req: Request<Body>) -> Response {
    serve(&path, &req)
}

fn serve(path: &str, req: &Request<Body>) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no such page: /ui/{path}\n"),
        )
            .into_response();
    };
    let a = &ASSETS[i];
    let p = prepared(i);
    let cache = if a.immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let h = req.headers();
    let mut resp = if h.get(header::IF_NONE_MATCH) == Some(&p.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else if accepts_gzip(h.get(header::ACCEPT_ENCODING)) {
        let mut r = Response::new(Body::from(p.gzip.as_slice()));
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        Response::new(Body::from(a.bytes))
    };
    let hs = resp.headers_mut();
    hs.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    hs.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    hs.insert(header::ETAG, p.etag.clone());
    hs.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    hs.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Whether `Accept-Encoding` lists gzip with a non-zero quality.
fn accepts_gzip(v: Option<&HeaderValue>) -> bool {
    let Some(s) = v.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    s.split(',').any(|part| {
        let mut it = part.split(';').map(str::trim);
        let coding = it.next().unwrap_or_default();
        let q_zero = it.any(|p| p.replace(' ', "") == "q=0" || p == "q=0.0");
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_accept_encoding() {
        let f = |s: &str, want: bool| {
            assert_eq!(
                accepts_gzip(Some(&HeaderValue::from_str(s).unwrap())),
                want,
                "{s}"
            );
        };
        f("gzip, deflate, br", true);
        f("br;q=1.0, gzip;q=0.8", true);
        f("deflate", false);
        f("gzip;q=0", false);
        f("*", true);
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn every_asset_the_page_names_is_embedded() {
        let index = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        for a in &ASSETS[1..] {
            if a.path.ends_with(".js") || a.path.ends_with(".css") {
                assert!(index.contains(&format!("/ui/{}", a.path)), "{}", a.path);
            }
        }
    }

    #[test]
    fn one_page_load_is_under_200_kib_compressed() {
        let total: usize = (0..ASSETS.len())
            .filter(|&i| !ASSETS[i].path.ends_with("LICENSE"))
            .map(|i| prepared(i).gzip.len())
            .sum();
        assert!(total < 200 * 1024, "{total} bytes gzipped");
    }
}
