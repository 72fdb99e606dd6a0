//! Connection slots (`--web.max-connections`). When every slot is taken, a
//! new connection closes the one that has been idle longest, i.e. that has
//! no request in flight (a keep-alive connection between requests, or one
//! still sending its request head), and takes its slot; only when every
//! connection has a request in flight does it wait (and the connections
//! after it in the listen backlog).
//! So slow clients holding every slot cannot lock honest ones out for the
//! length of the header timeout: they are the idle ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// What the slots know of one connection.
pub(crate) struct ConnState {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
    evicted: AtomicBool,
    evict: Notify,
}

impl ConnState {
    /// Marks a request in flight until the guard (held by the response
    /// body) is dropped.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Completes when the slots close this connection to make room.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }
}

/// A request in flight on a connection (see [`ConnState::busy`]).
pub(crate) struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock() = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The slots of a listener.
pub(crate) struct Slots {
    sem: Arc<Semaphore>,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
}

/// One connection's slot, freed when dropped.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    id: u64,
    pub(crate) state: Arc<ConnState>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.conns.lock().remove(&self.id);
    }
}

impl Slots {
    pub(crate) fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            sem: Arc::new(Semaphore::new(max.max(1))),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// A slot for the next connection: a free one, else one taken from
    /// the connection idle longest, else (all busy) the next one freed.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Slot {
        let permit = match self.sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.evict_idlest();
                self.sem
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the slot semaphore is never closed")
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        self.conns.lock().insert(id, state.clone());
        Slot {
            slots: self.clone(),
            id,
            state,
            _permit: permit,
        }
    }

    /// Tells the connection idle longest (none in flight, not told yet) to
    /// close; false when every connection is busy.
    fn evict_idlest(&self) -> bool {
        let conns = self.conns.lock();
        let victim = conns
            .values()
            .filter(|c| {
                c.in_flight.load(Ordering::Acquire) == 0 && !c.evicted.load(Ordering::Acquire)
            })
            .min_by_key(|c| *c.idle_since.lock());
        match victim {
            Some(c) => {
                c.evicted.store(true, Ordering::Release);
                // Stored if the connection is not waiting yet.
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_house_evicts_the_idlest_connection_never_a_busy_one() {
        let slots = Slots::new(2);
        let a = slots.acquire().await;
        let b = slots.acquire().await;
        let _busy = a.state.busy();
        // `a` is busy, so a third connection evicts `b`, and gets its slot
        // once `b` closes.
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await }
        });
        b.state.evicted().await;
        assert!(!a.state.evicted.load(Ordering::Acquire));
        drop(b);
        let c = waiter.await.unwrap();
        // With `a` busy and `c` idle, the next eviction picks `c`.
        assert!(slots.evict_idlest());
        c.state.evicted().await;
        // Nobody is idle and untold any more.
        assert!(!slots.evict_idlest());
    }
}
