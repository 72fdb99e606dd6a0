//! The `Interval` fsync policy's background thread: one thread fsyncs every
//! shard's current segment each interval, outside the shard locks.
//!
//! One thread for all shards keeps the thread count independent of the shard
//! count (the CPU budget is explicit, see ARCHITECTURE.md); an fsync of a
//! clean segment is skipped, so idle shards cost nothing.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::WalSyncer;

/// Runs [`WalSyncer::sync_if_dirty`] on every syncer each `every`; stops and
/// joins on drop.
pub struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the thread (named `wal-flusher`). A failed fsync is logged
    /// here; it also poisons that shard's writer, so the next append reports
    /// it to the client instead of acknowledging.
    pub fn spawn(syncers: Vec<WalSyncer>, every: Duration) -> std::io::Result<Flusher> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wal-flusher".into())
            .spawn(move || {
                let (lock, cv) = &*s;
                let mut stopped = lock.lock();
                while !*stopped {
                    cv.wait_for(&mut stopped, every);
                    if *stopped {
                        break;
                    }
                    // fsync without holding the stop lock, so drop never waits
                    // for more than the fsync in flight.
                    parking_lot::MutexGuard::unlocked(&mut stopped, || {
                        for syncer in &syncers {
                            if let Err(e) = syncer.sync_if_dirty() {
                                tracing::error!(error = %e, "WAL background fsync failed");
                            }
                        }
                    });
                }
            })?;
        Ok(Flusher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{FsyncPolicy, Wal, WalOptions};
    use std::time::Instant;

    #[test]
    fn flusher_syncs_dirty_segments_within_the_interval_and_stops_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            segment_bytes: 1 << 20,
            fsync: FsyncPolicy::Interval(Duration::from_millis(20)),
        };
        let mut wal = Wal::open(dir.path(), opts).unwrap();
        let probe = wal.syncer();
        let flusher = Flusher::spawn(vec![wal.syncer()], Duration::from_millis(20)).unwrap();
        wal.log_samples(&[(1, 1, 1.0)]).unwrap();
        // The flusher clears the dirty flag; poll until it has.
        let deadline = Instant::now() + Duration::from_secs(5);
        while probe.is_dirty() {
            assert!(Instant::now() < deadline, "flusher never synced");
            std::thread::sleep(Duration::from_millis(5));
        }
        let start = Instant::now();
        drop(flusher);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
