//! The Prometheus HTTP API conventions: the JSON envelope, error types and
//! status codes, request parameters (GET query or form POST) and time
//! parsing, shared by every `/api/v1/*` handler.

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tessera_query::time;

/// Prometheus' `errorType`s with the status each maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Unavailable,
    Internal,
}

impl ErrorType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Unavailable => "unavailable",
            ErrorType::Internal => "internal",
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            // Prometheus answers a cancelled query with 499 (client closed).
            ErrorType::Canceled => StatusCode::from_u16(499).expect("499 is a valid status"),
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An API error rendered as `{"status":"error","errorType":..,"error":..}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    pub(crate) fn bad_data(message: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorType::BadData,
            message: message.into(),
        }
    }

    pub(crate) fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"status": "error", "errorType": self.kind.as_str(), "error": self.message});
        let mut resp = json_response(self.kind.status(), &body);
        if matches!(self.kind, ErrorType::Unavailable) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// `{"status":"success","data":..}` plus `warnings` when there are any.
pub(crate) fn success(data: Value, warnings: &[String]) -> Response {
    let mut body = json!({"status": "success", "data": data});
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    json_response(StatusCode::OK, &body)
}

/// Start of a success envelope; the `data` JSON follows, then
/// [`success_suffix`]. For large results, which would cost several times
/// their size as a `serde_json::Value` tree.
pub(crate) const SUCCESS_PREFIX: &str = "{\"status\":\"success\",\"data\":";

/// What closes an envelope begun with [`SUCCESS_PREFIX`] after its data.
pub(crate) fn success_suffix(warnings: &[String]) -> String {
    let mut out = String::new();
    if !warnings.is_empty() {
        out.push_str(",\"warnings\":");
        out.push_str(&serde_json::to_string(warnings).expect("strings serialize"));
    }
    out.push('}');
    out
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).expect("a serde_json::Value always serializes");
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Writes a label set as a JSON object (`{"name":"value",...}`).
pub(crate) fn write_labels(out: &mut String, ls: &tessera_tsdb::Labels) {
    out.push('{');
    for (i, l) in ls.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, &l.name);
        out.push(':');
        json_str(out, &l.value);
    }
    out.push('}');
}

/// Writes a JSON string, escaping only when needed.
pub(crate) fn json_str(out: &mut String, s: &str) {
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("strings serialize"));
    }
}

/// Request parameters as Prometheus reads them: the URL query merged with a
/// form-encoded POST body (`r.ParseForm()` in Go), repeated keys kept.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

/// Largest form body read for a query or metadata call.
const MAX_FORM_BYTES: usize = 8 << 20;

impl Params {
    pub(crate) async fn from_request(req: Request<Body>) -> Result<Params, ApiError> {
        let (parts, body) = req.into_parts();
        let mut v: Vec<(String, String)> = match parts.uri.query() {
            Some(q) => serde_urlencoded::from_str(q)
                .map_err(|e| ApiError::bad_data(format!("invalid query string: {e}")))?,
            None => Vec::new(),
        };
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if parts.method == axum::http::Method::POST && is_form {
            let bytes = http_body_util::Limited::new(body, MAX_FORM_BYTES)
                .collect()
                .await
                .map_err(|e| ApiError::bad_data(format!("reading form body: {e}")))?
                .to_bytes();
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
                .map_err(|e| ApiError::bad_data(format!("invalid form body: {e}")))?;
            // Go's ParseForm puts body values before URL values.
            let mut merged = form;
            merged.extend(v);
            v = merged;
        }
        Ok(Params(v))
    }

    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The parameters as a URL query string, as a store is asked them.
    pub(crate) fn query_string(&self) -> String {
        serde_urlencoded::to_string(&self.0).expect("string pairs encode")
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A time parameter, or `default` when absent.
    pub(crate) fn time_or(&self, key: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(s) => parse_time(s)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{key}\": {e}"))),
        }
    }

    /// The `limit` parameter: 0 or absent means no limit.
    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(0),
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    ApiError::bad_data(format!(
                        "invalid parameter \"limit\": cannot parse \"{s}\" to a valid limit"
                    ))
                }),
        }
    }
}

/// Prometheus' `minTime`/`maxTime` API defaults, in milliseconds (the
/// widest range Go's `time.Time` round-trips through RFC 3339).
pub(crate) const MIN_TIME_MS: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;
pub(crate) const MAX_TIME_MS: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;

/// Parses a time as Prometheus does: unix seconds with an optional fraction,
/// or RFC 3339. Returns milliseconds.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        let ms = (f * 1000.0).round();
        return Ok(ms.clamp(MIN_TIME_MS as f64, MAX_TIME_MS as f64) as i64);
    }
    // Prometheus' own encodings of its min/max times.
    match s {
        "0001-01-01T00:00:00Z" | "-292273086-05-16T16:47:06Z" => return Ok(MIN_TIME_MS),
        "292277026596-12-04T15:30:07Z" => return Ok(MAX_TIME_MS),
        _ => {}
    }
    time::parse_rfc3339(s).ok_or_else(|| format!("cannot parse {s:?} to a valid timestamp"))
}

/// Parses a duration as Prometheus' API does: float seconds or a PromQL
/// duration (`5m`, `1h30m`; Tessera also takes the units in any order).
/// Returns milliseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    time::parse_seconds(s).unwrap_or_else(|| time::parse_duration_any_order(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times_like_prometheus() {
        let f = |s: &str, want: Option<i64>| assert_eq!(parse_time(s).ok(), want, "{s:?}");
        f("0", Some(0));
        f("1700000000", Some(1_700_000_000_000));
        f("1700000000.123", Some(1_700_000_000_123));
        f("-1.5", Some(-1500));
        f("2015-07-01T20:10:51.781Z", Some(1_435_781_451_781));
        f("2015-07-01T20:10:51Z", Some(1_435_781_451_000));
        f("2015-07-01T22:10:51+02:00", Some(1_435_781_451_000));
        f("1970-01-01T00:00:00Z", Some(0));
        f("0001-01-01T00:00:00Z", Some(MIN_TIME_MS));
        f("292277026596-12-04T15:30:07Z", Some(MAX_TIME_MS));
        f("yesterday", None);
        f("2015-13-01T20:10:51Z", None);
        f("NaN", None);
    }

    #[test]
    fn parses_durations_like_prometheus() {
        let f = |s: &str, want: Option<i64>| assert_eq!(parse_duration(s).ok(), want, "{s:?}");
        f("15", Some(15_000));
        f("0.5", Some(500));
        f("5m", Some(300_000));
        f("1h30m", Some(5_400_000));
        f("10s53ms", Some(10_053));
        f("1y", Some(365 * 86_400_000));
        f("5x", None);
        f("m", None);
        f("", None);
    }

    #[test]
    fn params_repeat_and_limit() {
        let p = Params::from_pairs(&[("match[]", "up"), ("match[]", "x"), ("limit", "3")]);
        assert_eq!(p.all("match[]").collect::<Vec<_>>(), vec!["up", "x"]);
        assert_eq!(p.limit().unwrap(), 3);
        assert!(Params::from_pairs(&[("limit", "-1")]).limit().is_err());
        assert_eq!(Params::from_pairs(&[]).limit().unwrap(), 0);
    }
}
