//! Which remote-write version a request is, from its `Content-Type` and
//! `Content-Encoding` headers, as the remote write 2.0 spec and Prometheus'
//! own receiver decide it:
//!
//! | `Content-Type` | version |
//! | --- | --- |
//! | absent, `application/x-protobuf`, or `;proto=prometheus.WriteRequest` | 1.0 |
//! | `application/x-protobuf;proto=io.prometheus.write.v2.Request` | 2.0 |
//! | any other media type or `proto` | refused: 415 |
//!
//! `Content-Encoding` must be `snappy` (block format) or absent (Prometheus
//! treats that as snappy); anything else is a 415 too. A 415 makes a 2.0
//! sender that was pointed at a 1.0-only receiver fall back, so the answer
//! names what is accepted.

/// A remote-write protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `prometheus.WriteRequest`.
    V1,
    /// `io.prometheus.write.v2.Request`.
    V2,
}

impl Protocol {
    /// The `proto` parameter naming this version's message.
    pub fn message(self) -> &'static str {
        match self {
            Protocol::V1 => "prometheus.WriteRequest",
            Protocol::V2 => "io.prometheus.write.v2.Request",
        }
    }
}

/// Why a request's headers were refused (415 Unsupported Media Type).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error(
        "unsupported Content-Type {0:?}; accepted: application/x-protobuf, optionally with \
         ;proto=prometheus.WriteRequest (remote write 1.0) or \
         ;proto=io.prometheus.write.v2.Request (remote write 2.0)"
    )]
    ContentType(String),
    #[error("unsupported Content-Encoding {0:?}; accepted: snappy (block format)")]
    ContentEncoding(String),
}

const MEDIA_TYPE: &str = "application/x-protobuf";

/// The version a request's headers select, or why they are refused.
pub fn negotiate(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> Result<Protocol, NegotiationError> {
    if let Some(enc) = content_encoding.map(str::trim)
        && !enc.is_empty()
        && !enc.eq_ignore_ascii_case("snappy")
    {
        return Err(NegotiationError::ContentEncoding(short(enc)));
    }
    let Some(ct) = content_type.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(Protocol::V1);
    };
    let refuse = || NegotiationError::ContentType(short(ct));
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case(MEDIA_TYPE) {
        return Err(refuse());
    }
    let mut protocol = Protocol::V1;
    for param in parts {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        if !k.trim().eq_ignore_ascii_case("proto") {
            continue;
        }
        let v = v.trim().trim_matches('"');
        protocol = [Protocol::V1, Protocol::V2]
            .into_iter()
            .find(|p| p.message() == v)
            .ok_or_else(refuse)?;
    }
    Ok(protocol)
}

/// A header value as quoted in a message: cut, so a long one cannot make
/// the answer and the log line long.
fn short(s: &str) -> String {
    s.chars().take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_version_or_refuses_naming_what_is_accepted() {
        let f = |ct: Option<&str>, enc: Option<&str>, want: Result<Protocol, &str>| {
            let got = negotiate(ct, enc);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{ct:?} {enc:?}"),
                (Err(e), Err(word)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(word), "{ct:?} {enc:?}: {msg}");
                    assert!(msg.contains("accepted"), "{msg}");
                }
                (g, w) => panic!("{ct:?} {enc:?}: got {g:?}, want {w:?}"),
            }
        };
        use Protocol::*;
        f(None, None, Ok(V1));
        f(Some(""), Some(""), Ok(V1));
        f(Some("application/x-protobuf"), Some("snappy"), Ok(V1));
        f(Some("Application/X-Protobuf"), Some("SNAPPY"), Ok(V1));
        f(
            Some("application/x-protobuf;proto=prometheus.WriteRequest"),
            Some("snappy"),
            Ok(V1),
        );
        f(
            Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
            Some("snappy"),
            Ok(V2),
        );
        f(
            Some("application/x-protobuf; charset=utf-8; proto=\"io.prometheus.write.v2.Request\""),
            None,
            Ok(V2),
        );
        f(
            Some("application/x-protobuf;proto=io.prometheus.write.v3.Request"),
            None,
            Err("v3"),
        );
        f(Some("application/json"), None, Err("application/json"));
        f(Some("application/x-protobuf"), Some("gzip"), Err("gzip"));
        f(Some("application/x-protobuf"), Some("zstd"), Err("snappy"));
    }
}
