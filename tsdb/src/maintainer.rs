//! The storage maintenance loop: cuts due head ranges into blocks,
//! compacts blocks and applies retention, shard by shard, on one background
//! thread (so maintenance never takes more than one core of the budget).

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Db;

/// Runs [`Db::maintain`] every `every` until dropped.
pub struct Maintainer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Maintainer {
    /// Holds only a weak reference: the database is dropped (and the loop
    /// ends) when its last user lets go.
    pub fn spawn(db: &Arc<Db>, every: Duration) -> std::io::Result<Maintainer> {
        let weak = Arc::downgrade(db);
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tsdb-maintain".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    let Some(db) = weak.upgrade() else { return };
                    if let Err(e) = db.maintain() {
                        // Retried at the next tick; the WAL keeps the data.
                        tracing::error!(error = %e, "storage maintenance failed; retrying at the next tick");
                    }
                }
            })?;
        Ok(Maintainer {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Maintainer {
    /// Stops the loop and waits for a pass in progress to finish.
    pub fn stop(mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Dropping signals the loop to stop without waiting: a pass in progress
/// (a cut or compaction can take a while) is safe to abandon at exit, as
/// every step of it survives a crash.
impl Drop for Maintainer {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}
