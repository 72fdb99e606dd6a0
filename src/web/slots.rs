//! Connection slots (`--web.max-connections`). When every slot is taken, a
//! new connection closes the one that has been idle longest, i.e. that has
//! no request in flight (a keep-alive connection between requests, or one
//! still sending its request head) for at least [`GRACE`], and takes its
//! slot; when none qualifies it waits (and the connections after it in the
//! listen backlog) for a slot to free or a connection to pass its grace.
//! So slow clients holding every slot cannot lock honest ones out for the
//! length of the header timeout: they are the idle ones. The grace keeps a
//! flood of reconnections from closing an honest connection before its
//! request head has been read.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How long a connection must have been idle before a new one may take its
/// slot.
pub(crate) const GRACE: Duration = Duration::from_millis(250);

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
    /// the connection idle longest (past its grace), else the next one
    /// freed.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Slot {
        let permit = loop {
            if let Ok(p) = self.sem.clone().try_acquire_owned() {
                break p;
            }
            let retry = match self.evict_idlest(Instant::now()) {
                Eviction::Told => None,
                Eviction::NotBefore(t) => Some(t),
                Eviction::AllBusy => Some(Instant::now() + GRACE),
            };
            let acquire = self.sem.clone().acquire_owned();
            match retry {
                None => break acquire.await.expect("the slot semaphore is never closed"),
                Some(t) => tokio::select! {
                    p = acquire => break p.expect("the slot semaphore is never closed"),
                    () = tokio::time::sleep_until(t.into()) => {}
                },
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
    /// close, if it has been idle for [`GRACE`] at `now`.
    fn evict_idlest(&self, now: Instant) -> Eviction {
        let conns = self.conns.lock();
        let victim = conns
            .values()
            .filter(|c| {
                c.in_flight.load(Ordering::Acquire) == 0 && !c.evicted.load(Ordering::Acquire)
            })
            .min_by_key(|c| *c.idle_since.lock());
        let Some(c) = victim else {
            return Eviction::AllBusy;
        };
        let eligible = *c.idle_since.lock() + GRACE;
        if eligible > now {
            return Eviction::NotBefore(eligible);
        }
        c.evicted.store(true, Ordering::Release);
        // Stored if the connection is not waiting yet.
        c.evict.notify_one();
        Eviction::Told
    }
}

/// What [`Slots::evict_idlest`] did.
#[derive(Debug, PartialEq, Eq)]
enum Eviction {
    /// A connection was told to close.
    Told,
    /// The idlest connection is still in its grace until then.
    NotBefore(Instant),
    /// Every connection has a request in flight (or was told already).
    AllBusy,
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
        // Within its grace `b` is kept.
        assert!(matches!(
            slots.evict_idlest(Instant::now()),
            Eviction::NotBefore(_)
        ));
        // Past it, `a` being busy, a third connection evicts `b`, and gets
        // its slot once `b` closes.
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await }
        });
        b.state.evicted().await;
        assert!(!a.state.evicted.load(Ordering::Acquire));
        drop(b);
        let c = waiter.await.unwrap();
        // With `a` busy and `c` idle, the next eviction picks `c`.
        let later = Instant::now() + GRACE;
        assert_eq!(slots.evict_idlest(later), Eviction::Told);
        c.state.evicted().await;
        // Nobody is idle and untold any more.
        assert_eq!(slots.evict_idlest(later), Eviction::AllBusy);
    }
}
