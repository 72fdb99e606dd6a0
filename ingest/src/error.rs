//! Errors that refuse a whole remote-write request.
//!
//! Per-series problems (bad labels, exemplars, native histograms) do not fail
//! a request: they are counted in [`crate::validate::Rejections`] and the rest
//! is kept. Only a body that cannot be decoded at all is an [`IngestError`].
//! The HTTP layer picks the status code from [`IngestError::status_class`].

/// How the HTTP layer should answer an [`IngestError`].
///
/// Prometheus' remote-write client retries only 5xx and 429; every class here
/// is a 4xx so a client never retries a body that will fail again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    /// The body is malformed: 400 Bad Request.
    BadRequest,
    /// The body or what it declares is over a configured limit: 413 Content
    /// Too Large.
    TooLarge,
}

impl StatusClass {
    /// The HTTP status code for this class.
    pub fn http_status(self) -> u16 {
        match self {
            StatusClass::BadRequest => 400,
            StatusClass::TooLarge => 413,
        }
    }
}

/// Why a remote-write body was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(
        "remote-write body is {size} bytes compressed, over the limit of {limit} bytes; \
         lower queue_config.max_samples_per_send on the client or raise --ingest.max-request-bytes"
    )]
    BodyTooLarge { size: usize, limit: usize },

    #[error(
        "snappy header declares {declared} decoded bytes, over the limit of {limit} bytes; \
         lower queue_config.max_samples_per_send on the client or raise --ingest.max-request-bytes"
    )]
    DecodedTooLarge { declared: u64, limit: usize },

    #[error(
        "request would take more than {limit} bytes of memory once decoded (budget ran out at \
         byte {offset} of {decoded}): it holds implausibly many tiny series, labels or samples; \
         raise --ingest.max-request-bytes if this is real data"
    )]
    ExpandsTooMuch {
        limit: usize,
        offset: usize,
        decoded: usize,
    },

    #[error(
        "remote write 2.0 request's labels would take more than {limit} bytes of memory once \
         resolved from its symbols table (budget ran out at series {series}): it references long \
         symbols implausibly often; raise --ingest.max-request-bytes if this is real data"
    )]
    LabelsExpandTooMuch { limit: usize, series: usize },

    /// Malformed, or declaring more than its bytes can hold (never
    /// [`crate::snappy::SnappyError::TooLarge`]: that is `DecodedTooLarge`).
    #[error("{0}")]
    InvalidSnappy(#[source] crate::snappy::SnappyError),

    #[error("invalid protobuf WriteRequest: {0}")]
    InvalidProtobuf(#[source] ProtobufError),

    /// Remote write 2.0: `symbols[0]` must be the empty string (the spec's
    /// MUST; senders point unset help and unit refs at it).
    #[error(
        "invalid remote write 2.0 request: the symbols table must start with the empty string, \
         its entry 0 is {first:?}"
    )]
    SymbolsStart { first: String },
}

/// Where and how the decompressed protobuf is malformed. Offsets are byte
/// positions in the decompressed `WriteRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("truncated varint at byte {offset}")]
    TruncatedVarint { offset: usize },
    #[error("varint longer than 10 bytes at byte {offset}")]
    OverlongVarint { offset: usize },
    #[error("invalid field key {key:#x} at byte {offset}")]
    InvalidKey { key: u64, offset: usize },
    #[error("{message} field {field} has wire type {got}, expected {want}, at byte {offset}")]
    WrongWireType {
        message: &'static str,
        field: u32,
        got: u8,
        want: u8,
        offset: usize,
    },
    #[error(
        "{what} at byte {offset} needs {needed} bytes, only {available} left in the enclosing message"
    )]
    Truncated {
        what: &'static str,
        needed: u64,
        available: usize,
        offset: usize,
    },
    #[error("unexpected end-group tag for field {field} at byte {offset}")]
    UnexpectedEndGroup { field: u32, offset: usize },
    #[error("groups nested too deeply at byte {offset}")]
    TooDeep { offset: usize },
    #[error("{message} at byte {offset}: {source}")]
    Nested {
        message: &'static str,
        offset: usize,
        source: prost::DecodeError,
    },
}

impl IngestError {
    /// A short stable name for metrics labels and logs: `body_too_large`,
    /// `decoded_too_large`, `bad_snappy`, `bad_protobuf` or `bad_symbols`.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::BodyTooLarge { .. } => "body_too_large",
            IngestError::DecodedTooLarge { .. }
            | IngestError::ExpandsTooMuch { .. }
            | IngestError::LabelsExpandTooMuch { .. } => "decoded_too_large",
            IngestError::InvalidSnappy(_) => "bad_snappy",
            IngestError::InvalidProtobuf(_) => "bad_protobuf",
            IngestError::SymbolsStart { .. } => "bad_symbols",
        }
    }

    /// Which HTTP answer this error calls for.
    pub fn status_class(&self) -> StatusClass {
        match self {
            IngestError::BodyTooLarge { .. }
            | IngestError::DecodedTooLarge { .. }
            | IngestError::ExpandsTooMuch { .. }
            | IngestError::LabelsExpandTooMuch { .. } => StatusClass::TooLarge,
            IngestError::InvalidSnappy(_)
            | IngestError::InvalidProtobuf(_)
            | IngestError::SymbolsStart { .. } => StatusClass::BadRequest,
        }
    }
}
