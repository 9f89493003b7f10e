//! A resizable counting gate with two priorities: the concurrency limit behind every probe.
//!
//! Taking a free slot is one atomic compare-and-swap (no lock) while nobody waits. Only when the
//! gate is full does a caller queue behind the gate's own small mutex; a release hands its slot
//! straight to the oldest on-scrape waiter, else the oldest scheduled one. Resizing changes the
//! maximum in place, so permits held by in-flight probes stay valid across a config reload.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Who is asking: a Prometheus scrape waiting on `/probe` goes before scheduled work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    OnScrape,
    Scheduled,
}

#[derive(Debug)]
pub struct Gate {
    max: AtomicUsize,
    in_use: AtomicUsize,
    /// Callers queued in `waiters` (read without the lock to keep releases lock-free).
    waiting: AtomicUsize,
    waiters: Mutex<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    next_id: u64,
    on_scrape: VecDeque<Waiter>,
    scheduled: VecDeque<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    wake: oneshot::Sender<()>,
}

impl Waiters {
    fn pop(&mut self) -> Option<Waiter> {
        self.on_scrape
            .pop_front()
            .or_else(|| self.scheduled.pop_front())
    }
    fn is_empty(&self) -> bool {
        self.on_scrape.is_empty() && self.scheduled.is_empty()
    }
    fn remove(&mut self, id: u64) -> bool {
        for q in [&mut self.on_scrape, &mut self.scheduled] {
            if let Some(i) = q.iter().position(|w| w.id == id) {
                q.remove(i);
                return true;
            }
        }
        false
    }
}

/// The gate was still full when the caller's wait deadline came.
#[derive(Debug, PartialEq, Eq)]
pub struct WaitTimedOut;

impl Gate {
    pub fn new(max: usize) -> Self {
        Gate {
            max: AtomicUsize::new(max),
            in_use: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    pub fn max(&self) -> usize {
        self.max.load(Relaxed)
    }
    pub fn in_use(&self) -> usize {
        self.in_use.load(Relaxed)
    }
    pub fn waiting(&self) -> usize {
        self.waiting.load(Relaxed)
    }

    /// Changes the limit. Held permits stay valid: a smaller limit only stops new starts until
    /// enough of them are released; a larger one wakes waiters at once.
    pub fn resize(&self, max: usize) {
        self.max.store(max, SeqCst);
        self.dispatch();
    }

    fn try_take(&self) -> bool {
        let max = self.max.load(SeqCst);
        self.in_use
            .fetch_update(SeqCst, SeqCst, |n| (n < max).then_some(n + 1))
            .is_ok()
    }

    /// A slot now, without queueing, unless someone is already queued (no overtaking).
    pub fn try_acquire(&self) -> Option<GatePermit<'_>> {
        (self.waiting.load(SeqCst) == 0 && self.try_take()).then(|| GatePermit { gate: self })
    }

    /// A slot, waiting in priority order until `until` at the latest.
    pub async fn acquire(
        &self,
        priority: Priority,
        until: Instant,
    ) -> Result<GatePermit<'_>, WaitTimedOut> {
        if let Some(p) = self.try_acquire() {
            return Ok(p);
        }
        let (tx, mut rx) = oneshot::channel();
        let id = {
            let mut w = self.waiters.lock();
            // Counted before the re-check, so a concurrent release either frees a slot we see
            // here or sees us waiting and dispatches (it takes this lock after we queued).
            self.waiting.fetch_add(1, SeqCst);
            let ahead = w.on_scrape.len()
                + match priority {
                    Priority::OnScrape => 0,
                    Priority::Scheduled => w.scheduled.len(),
                };
            if ahead == 0 && self.try_take() {
                self.waiting.fetch_sub(1, SeqCst);
                return Ok(GatePermit { gate: self });
            }
            let id = w.next_id;
            w.next_id += 1;
            let waiter = Waiter { id, wake: tx };
            match priority {
                Priority::OnScrape => w.on_scrape.push_back(waiter),
                Priority::Scheduled => w.scheduled.push_back(waiter),
            }
            id
        };
        let mut queued = QueuedGuard {
            gate: self,
            id,
            granted: false,
        };
        match tokio::time::timeout_at(until, &mut rx).await {
            Ok(Ok(())) => {
                queued.granted = true;
                Ok(GatePermit { gate: self })
            }
            // Timed out (or, impossibly, the sender vanished): the guard undoes the queueing.
            _ => Err(WaitTimedOut),
        }
    }

    fn release(&self) {
        self.in_use.fetch_sub(1, SeqCst);
        if self.waiting.load(SeqCst) > 0 {
            self.dispatch();
        }
    }

    /// Hands free slots to queued callers, on-scrape first.
    fn dispatch(&self) {
        let mut w = self.waiters.lock();
        while !w.is_empty() && self.try_take() {
            let Some(waiter) = w.pop() else { break };
            self.waiting.fetch_sub(1, SeqCst);
            if waiter.wake.send(()).is_err() {
                // Its caller is gone (cancelled between our pop and its guard): free the slot.
                self.in_use.fetch_sub(1, SeqCst);
            }
        }
    }
}

/// One slot of a gate, given back on drop.
#[derive(Debug)]
pub struct GatePermit<'a> {
    gate: &'a Gate,
}

impl Drop for GatePermit<'_> {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// Removes a waiter that stops waiting (deadline or cancelled request); if a slot was handed to
/// it in the meantime, passes that slot on.
struct QueuedGuard<'a> {
    gate: &'a Gate,
    id: u64,
    granted: bool,
}

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        let removed = {
            let mut w = self.gate.waiters.lock();
            let removed = w.remove(self.id);
            if removed {
                self.gate.waiting.fetch_sub(1, SeqCst);
            }
            removed
        };
        if !removed {
            // dispatch() picked us after the deadline fired: the slot is ours to give back.
            self.gate.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn never_more_than_max_and_waiters_time_out() {
        let g = Gate::new(2);
        let a = g.try_acquire().unwrap();
        let _b = g.try_acquire().unwrap();
        assert!(g.try_acquire().is_none());
        assert_eq!(
            g.acquire(Priority::OnScrape, soon(20)).await.unwrap_err(),
            WaitTimedOut
        );
        assert_eq!((g.in_use(), g.waiting()), (2, 0));
        drop(a);
        assert_eq!(g.in_use(), 1);
        let _c = g.acquire(Priority::Scheduled, soon(20)).await.unwrap();
        assert_eq!(g.in_use(), 2);
    }

    #[tokio::test]
    async fn on_scrape_waiters_overtake_scheduled_ones() {
        let g = Arc::new(Gate::new(1));
        let held = g.try_acquire().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, p) in [Priority::Scheduled, Priority::Scheduled, Priority::OnScrape]
            .into_iter()
            .enumerate()
        {
            let (g2, order) = (g.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _p = g2.acquire(p, soon(5_000)).await.unwrap();
                order.lock().push(i);
            }));
            // Queue them in this order.
            while g.waiting() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock(), vec![2, 0, 1]);
    }

    #[tokio::test]
    async fn resize_keeps_held_permits_and_wakes_waiters() {
        let g = Arc::new(Gate::new(1));
        let held = g.try_acquire().unwrap();
        let g2 = g.clone();
        let waiter =
            tokio::spawn(async move { g2.acquire(Priority::Scheduled, soon(5_000)).await.is_ok() });
        while g.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        g.resize(2);
        assert!(waiter.await.unwrap());
        g.resize(0);
        assert!(g.try_acquire().is_none());
        drop(held);
        assert_eq!(g.in_use(), 0);
    }

    #[tokio::test]
    async fn cancelled_waiters_leave_no_trace() {
        let g = Arc::new(Gate::new(1));
        let held = g.try_acquire().unwrap();
        let g2 = g.clone();
        let t = tokio::spawn(async move {
            let _ = g2.acquire(Priority::OnScrape, soon(60_000)).await;
        });
        while g.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        t.abort();
        let _ = t.await;
        assert_eq!(g.waiting(), 0);
        drop(held);
        assert_eq!(g.in_use(), 0);
        assert!(g.try_acquire().is_some());
    }
}
