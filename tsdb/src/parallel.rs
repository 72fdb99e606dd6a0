//! Per-shard reads fanned out over a bounded set of threads.
//!
//! Shards are independent (own lock, own head), so one read can select all
//! of them at once. [`for_each_shard`] runs a per-shard closure on at most
//! `threads` threads (the caller's plus scoped helpers; the Db's
//! `read_threads`, a share of the `--cpus` budget) and hands every result
//! to the caller's thread *in shard order*, so a caller that folds floats
//! gets the same result on every run whatever thread finished first.
//!
//! [`ReadControl`] is single-threaded (its counters are `Cell`s and its stop
//! signal need not be `Sync`), so each shard gets a control of its own with
//! the caller's budgets and a stop that is an [`AtomicBool`]; the caller's
//! thread polls the real stop signal while it waits and raises the flag, and
//! any error raises it too, so workers stop within
//! [`crate::read::CHECK_EVERY`] series. Results wait in order at most
//! `2 × threads` shards ahead of the one the caller is consuming, which
//! bounds what a slow shard can make the others buffer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::ReadError;
use crate::read::ReadControl;

/// How often the caller's thread looks at its stop signal while it waits.
const POLL: Duration = Duration::from_millis(2);

/// Work a read does on the caller's thread alone before it spawns helpers:
/// a spawn costs tens of microseconds, more than small reads take.
const SPAWN_AFTER: Duration = Duration::from_micros(200);

/// What one shard's read produced, with what it counted against its budget.
pub(crate) struct ShardRead<T> {
    pub value: T,
    pub series: usize,
    pub samples: usize,
}

/// A shard's worker body: the shard index and the shard's own control.
pub(crate) type ShardWork<'a, T> =
    dyn Fn(usize, &ReadControl<'_>) -> Result<T, ReadError> + Sync + 'a;

/// Runs `work` for shards `0..shards` on up to `threads` threads (on the
/// caller's thread alone when `threads <= 1`), each under a control with the
/// budgets `limits` (`(series, samples)`, `usize::MAX`: none), and calls
/// `each` on the caller's thread with the results in shard order. The first
/// error (a shard's, `each`'s, or the caller's stop signal) ends the read.
pub(crate) fn for_each_shard<T: Send>(
    shards: usize,
    threads: usize,
    ctl: &ReadControl<'_>,
    limits: (usize, usize),
    work: &ShardWork<'_, T>,
    each: &mut dyn FnMut(ShardRead<T>) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    if threads <= 1 || shards <= 1 {
        let stop = || ctl.check().is_err();
        for i in 0..shards {
            ctl.check()?;
            let c = ReadControl::new(limits.0, limits.1, &stop);
            let value = work(i, &c)?;
            each(ShardRead {
                value,
                series: c.series_seen(),
                samples: c.samples_seen(),
            })?;
        }
        return Ok(());
    }
    let abort = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    // Shards handed to `each` so far; workers wait while they would run
    // more than `window` shards ahead of it.
    let delivered = Mutex::new(0usize);
    let advanced = Condvar::new();
    let window = threads * 2;
    std::thread::scope(|sc| {
        let (tx, rx) = mpsc::channel::<(usize, Result<ShardRead<T>, ReadError>)>();
        // The caller's thread is one of the `threads`: it takes shards too,
        // so a read never waits for a helper to be scheduled (on a busy box
        // that can take milliseconds). Helpers are only spawned once the
        // caller's first shard has taken longer than `SPAWN_AFTER`: a small
        // read stays on one thread and pays no spawns.
        let mut tx = Some(tx);
        let started = Instant::now();
        let spawn_helpers = |tx: mpsc::Sender<_>| {
            for _ in 1..threads.min(shards) {
                let tx = tx.clone();
                let (abort, next, delivered, advanced) = (&abort, &next, &delivered, &advanced);
                sc.spawn(move || {
                    let stop = || abort.load(Ordering::Relaxed);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= shards || stop() {
                            return;
                        }
                        {
                            let mut d = delivered.lock();
                            while i >= *d + window && !stop() {
                                advanced.wait_for(&mut d, POLL);
                            }
                        }
                        let c = ReadControl::new(limits.0, limits.1, &stop);
                        let r = work(i, &c).map(|value| ShardRead {
                            value,
                            series: c.series_seen(),
                            samples: c.samples_seen(),
                        });
                        if tx.send((i, r)).is_err() {
                            return;
                        }
                    }
                });
            }
            // The caller keeps no sender: once every helper is gone,
            // `recv` reports it instead of waiting forever.
            drop(tx);
        };
        let mut slots: Vec<Option<ShardRead<T>>> = (0..shards).map(|_| None).collect();
        let mut done = 0usize;
        // The caller's own shards stop on its real signal or on `abort`.
        let own_stop = || abort.load(Ordering::Relaxed) || ctl.check().is_err();
        let mut deliver = |slots: &mut Vec<Option<ShardRead<T>>>, done: &mut usize| {
            while let Some(r) = slots.get_mut(*done).and_then(Option::take) {
                each(r)?;
                *done += 1;
                *delivered.lock() = *done;
                advanced.notify_all();
            }
            Ok(())
        };
        let result = loop {
            if done == shards {
                break Ok(());
            }
            if let Err(e) = ctl.check() {
                break Err(e);
            }
            // What the helpers finished, without waiting.
            let mut failed = None;
            while let Ok((i, r)) = rx.try_recv() {
                match r {
                    Ok(r) => slots[i] = Some(r),
                    Err(e) => failed = Some(e),
                }
            }
            if let Some(e) = failed {
                break Err(e);
            }
            if let Err(e) = deliver(&mut slots, &mut done) {
                break Err(e);
            }
            if done == shards {
                continue;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i < shards {
                let c = ReadControl::new(limits.0, limits.1, &own_stop);
                match work(i, &c) {
                    Ok(value) => {
                        slots[i] = Some(ShardRead {
                            value,
                            series: c.series_seen(),
                            samples: c.samples_seen(),
                        })
                    }
                    Err(e) => break Err(e),
                }
                if started.elapsed() >= SPAWN_AFTER
                    && let Some(tx) = tx.take()
                {
                    spawn_helpers(tx);
                }
                continue;
            }
            // Every shard is taken: wait for the helpers.
            match rx.recv_timeout(POLL) {
                Ok((i, Ok(r))) => slots[i] = Some(r),
                Ok((_, Err(e))) => break Err(e),
                Err(RecvTimeoutError::Timeout) => {}
                // Every helper left with shards undelivered: only after
                // `abort`, which is raised only on the error paths below.
                Err(RecvTimeoutError::Disconnected) => break Err(ReadError::Stopped),
            }
        };
        if result.is_err() {
            abort.store(true, Ordering::Relaxed);
            advanced.notify_all();
        }
        // Leaving the scope joins the helpers; after `abort` they stop
        // within CHECK_EVERY series, and dropping `rx` fails their sends.
        drop(rx);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(threads: usize, fail_at: Option<usize>) -> (Result<(), ReadError>, Vec<usize>) {
        let mut seen = Vec::new();
        let ctl = ReadControl::unlimited();
        let work = |i: usize, c: &ReadControl<'_>| {
            // Later shards finish first, so order must come from the merge.
            std::thread::sleep(Duration::from_millis((8 - i as u64) * 2));
            c.add_series(1)?;
            c.add_samples(i)?;
            if Some(i) == fail_at {
                return Err(ReadError::TooManySamples { limit: 7 });
            }
            Ok(i)
        };
        let r = for_each_shard(
            8,
            threads,
            &ctl,
            (usize::MAX, usize::MAX),
            &work,
            &mut |r| {
                assert_eq!((r.series, r.samples), (1, r.value));
                seen.push(r.value);
                Ok(())
            },
        );
        (r, seen)
    }

    #[test]
    fn delivers_every_shard_in_order_whatever_finishes_first() {
        for threads in [1, 2, 3, 8, 16] {
            let (r, seen) = run(threads, None);
            assert_eq!(r, Ok(()));
            assert_eq!(seen, (0..8).collect::<Vec<_>>(), "threads {threads}");
        }
    }

    #[test]
    fn small_reads_stay_on_the_callers_thread_and_big_ones_fan_out() {
        let threads_used = |pause: Duration| {
            let ids = Mutex::new(std::collections::HashSet::new());
            let work = |_: usize, _: &ReadControl<'_>| {
                ids.lock().insert(std::thread::current().id());
                std::thread::sleep(pause);
                Ok(())
            };
            let ctl = ReadControl::unlimited();
            for_each_shard(8, 2, &ctl, (usize::MAX, usize::MAX), &work, &mut |_| Ok(())).unwrap();
            ids.into_inner()
        };
        // A preempted caller may pass SPAWN_AFTER on a busy box; one clean
        // run of a few shows that small reads do not spawn.
        let me = std::thread::current().id();
        assert!((0..5).any(|_| threads_used(Duration::ZERO) == [me].into()));
        assert_eq!(threads_used(Duration::from_millis(5)).len(), 2);
    }

    #[test]
    fn a_failing_shard_ends_the_read_with_its_error() {
        for threads in [1, 4] {
            let (r, seen) = run(threads, Some(5));
            assert_eq!(r, Err(ReadError::TooManySamples { limit: 7 }));
            assert!(seen.len() <= 5 && seen.iter().enumerate().all(|(i, &s)| i == s));
        }
    }

    #[test]
    fn the_callers_stop_signal_stops_the_workers() {
        let stop = || true;
        let ctl = ReadControl::new(0, 0, &stop);
        let work = |_: usize, c: &ReadControl<'_>| {
            // A long shard that checks its stop like the head does.
            for _ in 0..10_000 {
                c.check()?;
                std::thread::sleep(Duration::from_micros(100));
            }
            Ok(())
        };
        let t = std::time::Instant::now();
        let r = for_each_shard(8, 4, &ctl, (usize::MAX, usize::MAX), &work, &mut |_| Ok(()));
        assert_eq!(r, Err(ReadError::Stopped));
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
}
