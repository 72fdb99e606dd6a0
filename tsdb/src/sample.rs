//! Samples and the staleness marker.

/// Prometheus' staleness marker: a NaN with this exact bit pattern marks a
/// series as gone at a timestamp. Other NaNs are ordinary values.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as an `f64`.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True only for the staleness marker, not for other NaNs.
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample: milliseconds since the Unix epoch and a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

impl Sample {
    pub fn new(t: i64, v: f64) -> Self {
        Sample { t, v }
    }
}

/// A series and its samples in time order, as reads return them.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSamples {
    pub labels: crate::Labels,
    pub samples: Vec<Sample>,
}
