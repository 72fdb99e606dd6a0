//! When a group evaluates: Prometheus' aligned slots, and the clock that
//! drives them.
//!
//! A group with interval `I` evaluates at `k·I + offset`, where
//! `offset = hash(file, name) % I`: every replica and every restart picks
//! the same instants, and groups with the same interval spread out instead
//! of all firing at the top of the minute. (The hash is Tessera's stable
//! label hash, so the offsets differ numerically from Prometheus'.)
//!
//! Start and restart: the first evaluation is at the first slot strictly
//! after the start, and slots that passed while the process was down are
//! not backfilled — as Prometheus does. A restart between two slots
//! therefore neither skips the next slot nor repeats the previous one. An
//! evaluation that overruns skips the slots it overran (counted as missed)
//! and resumes at the latest slot, again as Prometheus does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tessera_tsdb::Labels;

/// The group's offset within its interval.
pub fn group_offset_ms(file: &str, name: &str, interval_ms: i64) -> i64 {
    let interval = interval_ms.max(1) as u64;
    let h = Labels::from_pairs([("name", name), ("file", file)]).stable_hash();
    (h % interval) as i64
}

/// The latest slot at or before `now` (Prometheus' `EvalTimestamp`).
pub fn slot_at_or_before(now_ms: i64, interval_ms: i64, offset_ms: i64) -> i64 {
    let adj = now_ms - offset_ms;
    adj - adj.rem_euclid(interval_ms) + offset_ms
}

/// The slots of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    interval_ms: i64,
    offset_ms: i64,
    next_ms: i64,
}

/// An evaluation that is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    /// The evaluation timestamp (a slot).
    pub slot_ms: i64,
    /// Slots skipped since the previous evaluation because it overran.
    pub missed: u64,
}

impl Schedule {
    /// A schedule started at `now`: its first slot is the first after `now`.
    pub fn new(interval_ms: i64, offset_ms: i64, now_ms: i64) -> Self {
        let interval_ms = interval_ms.max(1);
        Schedule {
            interval_ms,
            offset_ms,
            next_ms: slot_at_or_before(now_ms, interval_ms, offset_ms) + interval_ms,
        }
    }

    /// The next slot to evaluate.
    pub fn next_ms(&self) -> i64 {
        self.next_ms
    }

    /// The evaluation due at `now`, if any: the latest slot at or before
    /// `now`, with the slots between it and the expected one counted as
    /// missed.
    pub fn poll(&mut self, now_ms: i64) -> Option<Due> {
        if now_ms < self.next_ms {
            return None;
        }
        let slot = slot_at_or_before(now_ms, self.interval_ms, self.offset_ms);
        let missed = ((slot - self.next_ms) / self.interval_ms) as u64;
        self.next_ms = slot + self.interval_ms;
        Some(Due {
            slot_ms: slot,
            missed,
        })
    }
}

/// A stop flag a sleeping group thread wakes up for.
#[derive(Debug, Default)]
pub struct StopSignal {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl StopSignal {
    pub fn stop(&self) {
        *self.stopped.lock() = true;
        self.cv.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock()
    }

    /// Waits up to `d`; true when stopped.
    pub fn wait_for(&self, d: Duration) -> bool {
        let mut s = self.stopped.lock();
        if !*s {
            self.cv.wait_for(&mut s, d);
        }
        *s
    }
}

/// Wall-clock time as the scheduler sees it; tests inject a [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Sleeps until `until_ms`; false when `stop` fired first.
    fn sleep_until(&self, until_ms: i64, stop: &StopSignal) -> bool;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    fn sleep_until(&self, until_ms: i64, stop: &StopSignal) -> bool {
        loop {
            let now = self.now_ms();
            if now >= until_ms {
                return !stop.is_stopped();
            }
            if stop.wait_for(Duration::from_millis((until_ms - now) as u64)) {
                return false;
            }
        }
    }
}

/// A clock that only moves when told to: drives the scheduler through
/// exact instants in tests, without sleeping.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Mutex<i64>,
    cv: Condvar,
    /// Threads inside `sleep_until`: a test waits for a group thread to
    /// have computed its schedule before moving the clock.
    sleepers: AtomicUsize,
}

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        ManualClock {
            now: Mutex::new(now_ms),
            cv: Condvar::new(),
            sleepers: AtomicUsize::new(0),
        }
    }

    pub fn set(&self, now_ms: i64) {
        *self.now.lock() = now_ms;
        self.cv.notify_all();
    }

    /// Waits (real time, up to `timeout`) until at least `n` threads sleep
    /// on this clock; false on timeout.
    pub fn wait_for_sleepers(&self, n: usize, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.sleepers.load(Ordering::SeqCst) < n {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        *self.now.lock()
    }

    fn sleep_until(&self, until_ms: i64, stop: &StopSignal) -> bool {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut now = self.now.lock();
        let woke = loop {
            if stop.is_stopped() {
                break false;
            }
            if *now >= until_ms {
                break true;
            }
            // Short waits so a stop is seen without a shared condvar.
            self.cv.wait_for(&mut now, Duration::from_millis(5));
        };
        drop(now);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        woke
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_to_interval_plus_offset() {
        let f = |now: i64, interval: i64, offset: i64, want: i64| {
            assert_eq!(
                slot_at_or_before(now, interval, offset),
                want,
                "now={now} i={interval} o={offset}"
            );
        };
        f(0, 60_000, 0, 0);
        f(59_999, 60_000, 0, 0);
        f(60_000, 60_000, 0, 60_000);
        f(125_000, 60_000, 7_000, 67_000);
        f(67_000, 60_000, 7_000, 67_000);
        f(66_999, 60_000, 7_000, 7_000);
        f(6_999, 60_000, 7_000, -53_000);
    }

    #[test]
    fn offset_is_stable_and_below_the_interval() {
        for interval in [1, 1000, 30_000, 60_000, 3_600_000] {
            let o = group_offset_ms("rules/a.yml", "g", interval);
            assert!((0..interval).contains(&o));
            assert_eq!(o, group_offset_ms("rules/a.yml", "g", interval));
        }
        // File and name both feed the hash: groups spread out.
        let offsets: std::collections::HashSet<i64> = (0..20)
            .map(|i| group_offset_ms("f.yml", &format!("g{i}"), 60_000))
            .collect();
        assert!(offsets.len() > 15, "{offsets:?}");
    }

    #[test]
    fn first_slot_is_strictly_after_start() {
        let f = |now: i64, want: i64| {
            assert_eq!(Schedule::new(60_000, 5_000, now).next_ms(), want, "{now}")
        };
        f(0, 5_000);
        f(5_000, 65_000); // exactly on a slot: that slot is not evaluated
        f(5_001, 65_000);
        f(64_999, 65_000);
    }

    #[test]
    fn poll_evaluates_each_slot_once_and_counts_missed_slots() {
        let mut s = Schedule::new(10_000, 0, 1_000);
        assert_eq!(s.poll(9_999), None);
        assert_eq!(
            s.poll(10_000),
            Some(Due {
                slot_ms: 10_000,
                missed: 0
            })
        );
        assert_eq!(s.poll(10_500), None, "the same slot twice");
        // Woken late but within the next interval: still that slot.
        assert_eq!(
            s.poll(25_000),
            Some(Due {
                slot_ms: 20_000,
                missed: 0
            })
        );
        // An evaluation overran two slots (30s, 40s): resume at 50s.
        assert_eq!(
            s.poll(51_000),
            Some(Due {
                slot_ms: 50_000,
                missed: 2
            })
        );
        assert_eq!(s.next_ms(), 60_000);
    }

    #[test]
    fn manual_clock_sleep_returns_false_once_stopped() {
        let c = ManualClock::new(0);
        let stop = StopSignal::default();
        assert!(c.sleep_until(0, &stop));
        stop.stop();
        assert!(!c.sleep_until(10, &stop));
    }
}
