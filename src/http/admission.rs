//! Admission for reads: at most `--query.max-concurrency` queries and
//! metadata calls run at once; up to `--query.max-queue` more wait at most
//! `--query.queue-timeout`, and the rest get 503 + `Retry-After`.
//!
//! Writes never pass through here: remote write has its own gate, so a
//! query storm cannot stop ingestion. Running reads are listed for
//! `/api/v1/status/queries` with their text, so an operator can see what is
//! eating the CPU; remote reads, admitted by their own gate
//! (`remote_read.rs`), are listed there too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::api::{ApiError, ErrorType};

/// A read that is running, for the status page.
#[derive(Clone, Debug)]
pub(crate) struct Running {
    pub endpoint: &'static str,
    pub query: String,
    pub started: SystemTime,
}

pub(crate) struct Admission {
    sem: Arc<Semaphore>,
    max_queue: usize,
    queue_timeout: Duration,
    queued: AtomicUsize,
    shared: Arc<Shared>,
    next_id: AtomicU64,
}

/// What a ticket updates when it is dropped, possibly on another thread.
#[derive(Default)]
struct Shared {
    running: AtomicUsize,
    list: Mutex<BTreeMap<u64, Running>>,
}

/// Held by the read's work itself (it moves onto the blocking pool with
/// it), so a slot is freed when the work really ends, not when the client
/// leaves.
pub(crate) struct Ticket {
    shared: Arc<Shared>,
    _listed: Listed,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.shared.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A read's entry in the status list, removed when dropped. A [`Ticket`]
/// holds one; reads admitted by a gate of their own (remote read) hold one
/// from [`Admission::list_only`], so they are listed without taking a slot.
pub(crate) struct Listed {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.shared.list.lock().remove(&self.id);
    }
}

/// Decrements the queue length however the wait ends (admitted, timed out,
/// or the client left while waiting).
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    pub(crate) fn new(max_concurrency: usize, max_queue: usize, queue_timeout: Duration) -> Self {
        Admission {
            sem: Arc::new(Semaphore::new(max_concurrency.max(1))),
            max_queue,
            queue_timeout,
            queued: AtomicUsize::new(0),
            shared: Arc::default(),
            next_id: AtomicU64::new(0),
        }
    }

    /// Waits for a slot, or refuses with 503 when the queue is full or the
    /// wait exceeds the queue timeout.
    pub(crate) async fn enter(
        &self,
        endpoint: &'static str,
        query: &str,
    ) -> Result<Ticket, ApiError> {
        let permit = match self.sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.queued.fetch_add(1, Ordering::Relaxed) >= self.max_queue {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    crate::metrics::METRICS
                        .query_limit_hits
                        .inc(&["query.max-queue"]);
                    return Err(ApiError::new(
                        ErrorType::Unavailable,
                        format!(
                            "too many queries: {} running and {} queued; retry later or raise --query.max-concurrency / --query.max-queue",
                            self.running(),
                            self.max_queue
                        ),
                    ));
                }
                let _q = Queued(&self.queued);
                match tokio::time::timeout(self.queue_timeout, self.sem.clone().acquire_owned())
                    .await
                {
                    Ok(Ok(p)) => p,
                    _ => {
                        crate::metrics::METRICS
                            .query_limit_hits
                            .inc(&["query.queue-timeout"]);
                        return Err(ApiError::new(
                            ErrorType::Unavailable,
                            format!(
                                "query waited {:?} for a slot (--query.queue-timeout); the server is saturated, retry later",
                                self.queue_timeout
                            ),
                        ));
                    }
                }
            }
        };
        self.shared.running.fetch_add(1, Ordering::Relaxed);
        Ok(Ticket {
            shared: self.shared.clone(),
            _listed: self.list_only(endpoint, query),
            _permit: permit,
        })
    }

    /// Lists a read for `/api/v1/status/queries` without admitting it:
    /// for reads another gate admitted.
    pub(crate) fn list_only(&self, endpoint: &'static str, query: &str) -> Listed {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut q = query.to_string();
        truncate(&mut q, 500);
        self.shared.list.lock().insert(
            id,
            Running {
                endpoint,
                query: q,
                started: SystemTime::now(),
            },
        );
        Listed {
            shared: self.shared.clone(),
            id,
        }
    }

    pub(crate) fn running(&self) -> usize {
        self.shared.running.load(Ordering::Relaxed)
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub(crate) fn list(&self) -> Vec<Running> {
        self.shared.list.lock().values().cloned().collect()
    }
}

/// Cuts `s` to at most `max` bytes on a char boundary, marking the cut.
pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queues_then_refuses_when_full() {
        let a = Admission::new(1, 1, Duration::from_millis(50));
        let t1 = a.enter("query", "up").await.unwrap();
        assert_eq!((a.running(), a.list().len()), (1, 1));
        // One may wait; it times out while the slot stays taken.
        let e = a.enter("query", "x").await.err().unwrap();
        assert!(e.message.contains("--query.queue-timeout"), "{}", e.message);
        assert_eq!(a.queued(), 0);
        drop(t1);
        assert_eq!((a.running(), a.list().len()), (0, 0));
        let _t = a.enter("query", "y").await.unwrap();
        // Listed without a slot: shown, not counted as running.
        let l = a.list_only("remote_read", "{a=\"b\"}");
        assert_eq!((a.running(), a.list().len()), (1, 2));
        drop(l);
        assert_eq!(a.list().len(), 1);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let a = std::sync::Arc::new(Admission::new(1, 0, Duration::from_secs(5)));
        let _t = a.enter("query", "up").await.unwrap();
        let e = a.enter("query", "x").await.err().unwrap();
        assert!(e.message.contains("--query.max-queue"), "{}", e.message);
    }
}
