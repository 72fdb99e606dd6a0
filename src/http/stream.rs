//! Streaming response bodies: large JSON results (and streamed remote-read
//! frames) are rendered a chunk at a time as the client reads them, so a
//! 100k-series answer never exists as one string, and a client that hangs
//! up stops the rendering (the body is dropped with the connection).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;

/// Bytes rendered per chunk before yielding to the connection.
pub(super) const CHUNK_BYTES: usize = 64 << 10;

/// A body whose frames come from an iterator of rendered chunks (boxed:
/// a box is `Unpin` whatever it holds).
struct IterBody(Box<dyn Iterator<Item = Bytes> + Send>);

impl http_body::Body for IterBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.next().map(|b| Ok(Frame::data(b))))
    }
}

/// Chunks a streamed read may render ahead of the client: the producer
/// blocks when they are queued, so a slow client bounds its memory and a
/// gone one fails its next send.
pub(super) const CHANNEL_CHUNKS: usize = 4;

/// A chunk from a producer thread: an error aborts the connection, so a
/// failure after the first byte never reads as a complete 200.
pub(super) type Chunk = Result<Bytes, std::io::Error>;

/// A body fed by a producer thread through a bounded channel; `on_drop`
/// runs when the body goes, told whether the stream reached its end.
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Chunk>,
    ended: bool,
    on_drop: Option<Box<dyn FnOnce(bool) + Send>>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        this.rx.poll_recv(cx).map(|c| match c {
            Some(c) => Some(c.map(Frame::data)),
            None => {
                this.ended = true;
                None
            }
        })
    }
}

impl Drop for ChannelBody {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f(self.ended);
        }
    }
}

/// A 200 JSON response whose body comes from `rx` (see [`ChannelBody`]).
pub(super) fn channel_json(
    rx: tokio::sync::mpsc::Receiver<Chunk>,
    on_drop: impl FnOnce(bool) + Send + 'static,
) -> Response {
    let body = ChannelBody {
        rx,
        ended: false,
        on_drop: Some(Box::new(on_drop)),
    };
    let mut resp = Response::new(Body::new(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A 200 JSON response streamed from `chunks`.
pub(super) fn json_stream<I>(chunks: I) -> Response
where
    I: Iterator<Item = String> + Send + 'static,
{
    bytes_stream("application/json", chunks.map(Bytes::from))
}

/// A 200 response of `content_type` streamed from `chunks`.
pub(super) fn bytes_stream<I>(content_type: &'static str, chunks: I) -> Response
where
    I: Iterator<Item = Bytes> + Send + 'static,
{
    let mut resp = Response::new(Body::new(IterBody(Box::new(chunks))));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Renders `items` as JSON chunks: `head`, each item through `write` with
/// commas between, then `tail`; each chunk at least [`CHUNK_BYTES`] long
/// (except the last).
pub(super) fn chunks<T, F>(
    head: String,
    items: Vec<T>,
    tail: String,
    mut write: F,
) -> impl Iterator<Item = String> + Send + 'static
where
    T: Send + 'static,
    F: FnMut(&mut String, &T) + Send + 'static,
{
    let mut items = items.into_iter().enumerate();
    let mut head = Some(head);
    let mut tail = Some(tail);
    std::iter::from_fn(move || {
        let mut out = head.take().unwrap_or_default();
        for (i, item) in items.by_ref() {
            if i > 0 {
                out.push(',');
            }
            write(&mut out, &item);
            if out.len() >= CHUNK_BYTES {
                return Some(out);
            }
        }
        if let Some(t) = tail.take() {
            out.push_str(&t);
        }
        (!out.is_empty()).then_some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_join_to_the_whole_document() {
        let items: Vec<u32> = (0..50_000).collect();
        let parts: Vec<String> = chunks("[".into(), items, "]".into(), |o, n| {
            o.push_str(&n.to_string())
        })
        .collect();
        assert!(parts.len() > 2, "expected several chunks");
        let whole: String = parts.concat();
        let v: Vec<u32> = serde_json::from_str(&whole).unwrap();
        assert_eq!(v.len(), 50_000);
        assert_eq!(v[49_999], 49_999);
        let empty: String = chunks("[".into(), Vec::<u32>::new(), "]".into(), |_, _| {}).collect();
        assert_eq!(empty, "[]");
    }
}
