//! Bounds on one read: a stop signal (deadline or client gone) checked at
//! fine grain, and series and sample budgets.
//!
//! A `/api/v1/series?match[]={le!=""}` on a big store once ran for minutes
//! after its client hung up and grew the server until it was OOM-killed.
//! Every read of the head takes a [`ReadControl`]; loops check it every
//! [`CHECK_EVERY`] series, so a cancelled or over-budget read stops within
//! milliseconds and frees what it built.

use std::cell::Cell;

use crate::error::ReadError;

/// Series processed between two checks of the stop signal.
pub const CHECK_EVERY: usize = 1024;

/// How many of `matched` series a listing builds when asked for at most
/// `take` (0: all).
pub(crate) fn to_build(matched: u64, take: usize) -> usize {
    if take == 0 {
        matched as usize
    } else {
        take.min(matched as usize)
    }
}

/// Budgets and stop signal of one read (one thread; not shared).
pub struct ReadControl<'a> {
    max_series: usize,
    max_samples: usize,
    stop: &'a dyn Fn() -> bool,
    series: Cell<usize>,
    samples: Cell<usize>,
}

impl<'a> ReadControl<'a> {
    /// `max_*` of 0 means unlimited; `stop` returns true to abort.
    pub fn new(max_series: usize, max_samples: usize, stop: &'a dyn Fn() -> bool) -> Self {
        let unl = |n: usize| if n == 0 { usize::MAX } else { n };
        ReadControl {
            max_series: unl(max_series),
            max_samples: unl(max_samples),
            stop,
            series: Cell::new(0),
            samples: Cell::new(0),
        }
    }

    /// No budgets, never stops (tests, internal reads of bounded size).
    pub fn unlimited() -> ReadControl<'static> {
        ReadControl::new(0, 0, &|| false)
    }

    pub fn check(&self) -> Result<(), ReadError> {
        if (self.stop)() {
            Err(ReadError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Counts `n` more series against the budget.
    pub fn add_series(&self, n: usize) -> Result<(), ReadError> {
        let t = self.series.get().saturating_add(n);
        self.series.set(t);
        if t > self.max_series {
            return Err(ReadError::TooManySeries {
                limit: self.max_series,
            });
        }
        Ok(())
    }

    /// Counts `n` more samples against the budget.
    pub fn add_samples(&self, n: usize) -> Result<(), ReadError> {
        let t = self.samples.get().saturating_add(n);
        self.samples.set(t);
        if t > self.max_samples {
            return Err(ReadError::TooManySamples {
                limit: self.max_samples,
            });
        }
        Ok(())
    }

    /// The series and sample budgets, `usize::MAX` when unlimited: a read
    /// split across threads (`parallel.rs`) gives each part a control of
    /// its own with the same budgets, since this one is not `Sync`.
    pub fn limits(&self) -> (usize, usize) {
        (self.max_series, self.max_samples)
    }

    /// Series counted so far.
    pub fn series_seen(&self) -> usize {
        self.series.get()
    }

    /// Samples counted so far.
    pub fn samples_seen(&self) -> usize {
        self.samples.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_trip_just_over_the_limit() {
        let c = ReadControl::new(10, 100, &|| false);
        assert!(c.add_series(10).is_ok());
        assert_eq!(c.add_series(1), Err(ReadError::TooManySeries { limit: 10 }));
        assert!(c.add_samples(100).is_ok());
        assert_eq!(
            c.add_samples(1),
            Err(ReadError::TooManySamples { limit: 100 })
        );
        let stop = ReadControl::new(0, 0, &|| true);
        assert_eq!(stop.check(), Err(ReadError::Stopped));
        assert!(ReadControl::unlimited().add_series(usize::MAX / 2).is_ok());
    }
}
