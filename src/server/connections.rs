//! The open connections of our listener, bounded. At the cap, a new connection sheds the oldest
//! one with no request in flight (a client that stalls before or between requests, or in its
//! TLS handshake), so stalled clients can never lock out a scrape; when every connection is busy
//! with a request, the new one is refused instead.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

pub struct Connections {
    cap: usize,
    /// By accept order: the first idle entry is the oldest idle connection.
    open: Mutex<(u64, BTreeMap<u64, Slot>)>,
}

#[derive(Clone)]
struct Slot {
    in_flight: Arc<AtomicUsize>,
    /// Set by the first request: until then hyper's own header timer may not run yet (the
    /// protocol sniffing of the auto builder and the TLS handshake come first).
    served: Arc<AtomicBool>,
    shed: Arc<Notify>,
}

/// One admitted connection; leaves the set when dropped.
pub struct Admitted {
    id: u64,
    set: Arc<Connections>,
    slot: Slot,
}

/// Marks a request in flight on its connection until dropped.
pub struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connections {
    pub fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            cap: cap.max(1),
            open: Mutex::new((0, BTreeMap::new())),
        })
    }

    /// Admits a new connection, shedding the oldest idle one at the cap; `None` when every
    /// open connection is serving a request.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut guard = self.open.lock();
        let (next_id, open) = &mut *guard;
        if open.len() >= self.cap {
            let oldest_idle = open
                .iter()
                .find(|(_, s)| s.in_flight.load(Ordering::Relaxed) == 0)
                .map(|(id, _)| *id)?;
            if let Some(victim) = open.remove(&oldest_idle) {
                // A stored permit: the victim's task wakes even if it is not waiting yet.
                victim.shed.notify_one();
            }
        }
        let id = *next_id;
        *next_id += 1;
        let slot = Slot {
            in_flight: Arc::new(AtomicUsize::new(0)),
            served: Arc::new(AtomicBool::new(false)),
            shed: Arc::new(Notify::new()),
        };
        open.insert(id, slot.clone());
        Some(Admitted {
            id,
            set: self.clone(),
            slot,
        })
    }

    pub fn len(&self) -> usize {
        self.open.lock().1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Admitted {
    /// Resolves when this connection is shed to make room for a new one.
    pub async fn shed(&self) {
        self.slot.shed.notified().await
    }

    /// Resolves when `limit` has passed without a first request (a client silent after
    /// connecting, or stuck in its TLS handshake or first headers); never after one came.
    pub async fn no_request_within(&self, limit: std::time::Duration) {
        tokio::time::sleep(limit).await;
        if self.slot.served.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }

    /// A handle the connection's service uses to mark requests in flight.
    pub fn requests(&self) -> Requests {
        Requests {
            in_flight: self.slot.in_flight.clone(),
            served: self.slot.served.clone(),
        }
    }
}

/// Counts the requests in flight on one connection.
#[derive(Clone)]
pub struct Requests {
    in_flight: Arc<AtomicUsize>,
    served: Arc<AtomicBool>,
}

impl Requests {
    pub fn start(&self) -> Busy {
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.in_flight.clone())
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.set.open.lock().1.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_idle_connection_is_shed() {
        let set = Connections::new(2);
        let first = set.admit().unwrap();
        let second = set.admit().unwrap();
        let _busy = first.requests().start();
        // The first is busy: the second, idle, is the one shed.
        let third = set.admit().unwrap();
        assert_eq!(set.len(), 2);
        let shed = futures::FutureExt::now_or_never(second.shed());
        assert!(shed.is_some(), "the idle connection was not told to close");
        assert!(futures::FutureExt::now_or_never(first.shed()).is_none());
        // Both remaining are busy: a new connection is refused, nothing is shed.
        let _busy3 = third.requests().start();
        assert!(set.admit().is_none());
        drop(second);
        assert_eq!(set.len(), 2);
        drop(third);
        assert_eq!(set.len(), 1);
    }
}
