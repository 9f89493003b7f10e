//! Limits in front of every probe (SPEC §6): a global concurrency limit, one per prober type,
//! optional rate limits per target host and per type, and a bounded queue in which on-scrape
//! requests go before scheduled work. A probe that cannot start in time is refused at once
//! with a reason instead of piling up.
//!
//! Hot path (a free slot, no rate limits): an arc-swap load, two compare-and-swaps and two atomic
//! adds for the wait histogram; no lock is shared by all probes.

mod gate;
mod metrics;
mod rate;
pub mod single_flight;

pub use gate::{Gate, GatePermit, Priority};
pub use rate::target_host;

use crate::config::{Limits, ProberKind};
use arc_swap::ArcSwap;
use metrics::{AtomicHistogram, LimitsCollector};
use prometheus_client::registry::Registry;
use rate::RateLimiters;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const KINDS: usize = ProberKind::ALL.len();

/// Why a probe was refused before it started; bounded, used as the `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The queue already holds `queue_size` waiting probes.
    QueueFull,
    /// No slot came free before the probe would have had to start.
    WaitTimeout,
    /// A rate limit would only allow it after its deadline.
    RateLimited,
}

impl Rejection {
    pub const ALL: [Rejection; 3] = [
        Rejection::QueueFull,
        Rejection::WaitTimeout,
        Rejection::RateLimited,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::QueueFull => "queue_full",
            Rejection::WaitTimeout => "wait_timeout",
            Rejection::RateLimited => "rate_limited",
        }
    }
}

/// A refusal with the sentence for the debug output and the log.
#[derive(Clone, Debug)]
pub struct Rejected {
    pub reason: Rejection,
    pub message: String,
}

/// The right to run one probe: a slot of its type and a global slot, both given back on drop.
#[derive(Debug)]
pub struct Permit<'a> {
    _kind: GatePermit<'a>,
    _global: GatePermit<'a>,
}

#[derive(Debug)]
struct Shared {
    global: Gate,
    per_type: [Gate; KINDS],
    queue_size: AtomicUsize,
    queued: AtomicUsize,
    queued_by_type: [AtomicUsize; KINDS],
    rejected: [[AtomicU64; Rejection::ALL.len()]; KINDS],
    wait_seconds: [AtomicHistogram; KINDS],
    rates: ArcSwap<RateLimiters>,
    /// Unix second of the last rejection warning, to keep an overload from flooding the log.
    last_warning: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct Limiter {
    shared: Arc<Shared>,
}

impl Limiter {
    /// Builds the limits of `cfg` and registers their metrics in `registry`.
    pub fn new(cfg: &Limits, registry: &mut Registry) -> Limiter {
        let shared = Arc::new(Shared {
            global: Gate::new(cfg.max_concurrent),
            per_type: ProberKind::ALL.map(|k| Gate::new(cfg.for_type(k))),
            queue_size: AtomicUsize::new(cfg.queue_size),
            queued: AtomicUsize::new(0),
            queued_by_type: Default::default(),
            rejected: Default::default(),
            wait_seconds: Default::default(),
            rates: ArcSwap::from_pointee(RateLimiters::new(&cfg.rate_limits)),
            last_warning: AtomicU64::new(0),
        });
        registry.register_collector(Box::new(LimitsCollector(shared.clone())));
        Limiter { shared }
    }

    /// Applies reloaded limits. Running probes keep their slots; a lower limit only holds back
    /// new starts until enough of them finish. Rate-limit buckets start afresh.
    pub fn apply(&self, cfg: &Limits) {
        let s = &self.shared;
        s.global.resize(cfg.max_concurrent);
        for k in ProberKind::ALL {
            s.per_type[k as usize].resize(cfg.for_type(k));
        }
        s.queue_size.store(cfg.queue_size, SeqCst);
        s.rates.store(Arc::new(RateLimiters::new(&cfg.rate_limits)));
    }

    /// Drops rate-limit state of hosts not probed lately (call every few minutes).
    pub fn forget_idle_hosts(&self) {
        self.shared.rates.load().forget_idle_hosts();
    }

    pub fn in_use(&self, kind: Option<ProberKind>) -> usize {
        match kind {
            Some(k) => self.shared.per_type[k as usize].in_use(),
            None => self.shared.global.in_use(),
        }
    }

    pub fn queued(&self) -> usize {
        self.shared.queued.load(Relaxed)
    }

    /// Waits for the right to probe `target` with a `kind` prober, at most until the point where
    /// the probe could no longer do useful work before `deadline`.
    pub async fn acquire(
        &self,
        kind: ProberKind,
        target: &str,
        priority: Priority,
        deadline: Instant,
    ) -> Result<Permit<'_>, Rejected> {
        let s = &*self.shared;
        let k = kind as usize;
        let start = Instant::now();
        let rates = s.rates.load();
        let mut rate_wait = if rates.is_empty() {
            None
        } else {
            rates.check(kind, target).err()
        };
        // Fast path: nothing to wait for.
        let mut kind_permit = None;
        if rate_wait.is_none() {
            kind_permit = s.per_type[k].try_acquire();
            if kind_permit.is_some() {
                if let Some(global) = s.global.try_acquire() {
                    s.wait_seconds[k].observe_zero();
                    return Ok(Permit {
                        _kind: kind_permit.take().expect("taken above"),
                        _global: global,
                    });
                }
            }
        }

        // Slow path: a place in the bounded queue, then wait in priority order.
        let _queued = match QueueSlot::take(s, k) {
            Some(q) => q,
            None => {
                return Err(self.reject(
                    kind,
                    target,
                    Rejection::QueueFull,
                    format!(
                        "rejected by limit: the probe queue is full ({} probes waiting)",
                        s.queue_size.load(Relaxed)
                    ),
                ))
            }
        };
        // Leave the probe at least a quarter of its time: starting later is useless.
        let wait_until = start + deadline.saturating_duration_since(start) * 3 / 4;
        while let Some(wait) = rate_wait {
            if Instant::now() + wait > wait_until {
                return Err(self.reject(
                    kind,
                    target,
                    Rejection::RateLimited,
                    format!(
                        "rejected by limit: the {} rate limit allows the next probe of this host or type in {:.3}s, after its deadline",
                        kind.as_str(),
                        wait.as_secs_f64()
                    ),
                ));
            }
            tokio::time::sleep(wait).await;
            rate_wait = rates.check(kind, target).err();
        }
        let kind_permit = match kind_permit {
            Some(p) => p,
            None => s.per_type[k]
                .acquire(priority, wait_until)
                .await
                .map_err(|_| {
                    self.wait_timeout(kind, target, "the", kind.as_str(), &s.per_type[k], start)
                })?,
        };
        let global = s
            .global
            .acquire(priority, wait_until)
            .await
            .map_err(|_| self.wait_timeout(kind, target, "the", "global", &s.global, start))?;
        s.wait_seconds[k].observe(start.elapsed().as_secs_f64());
        Ok(Permit {
            _kind: kind_permit,
            _global: global,
        })
    }

    fn wait_timeout(
        &self,
        kind: ProberKind,
        target: &str,
        article: &str,
        limit: &str,
        gate: &Gate,
        start: Instant,
    ) -> Rejected {
        self.reject(
            kind,
            target,
            Rejection::WaitTimeout,
            format!(
                "rejected by limit: {article} {limit} concurrency limit ({}) had no free slot within {:.3}s, too late to start before the deadline",
                gate.max(),
                start.elapsed().as_secs_f64()
            ),
        )
    }

    fn reject(
        &self,
        kind: ProberKind,
        target: &str,
        reason: Rejection,
        message: String,
    ) -> Rejected {
        let s = &self.shared;
        s.rejected[kind as usize][reason as usize].fetch_add(1, Relaxed);
        s.wait_seconds[kind as usize].observe(0.0);
        let now = unix_seconds();
        let last = s.last_warning.load(Relaxed);
        if now > last
            && s.last_warning
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            tracing::warn!(
                prober = kind.as_str(),
                target,
                reason = reason.as_str(),
                "{message} (further rejections this second are only counted in siembox_queue_rejected_total)"
            );
        } else {
            tracing::debug!(
                prober = kind.as_str(),
                target,
                reason = reason.as_str(),
                "{message}"
            );
        }
        Rejected { reason, message }
    }
}

/// A place in the bounded queue, counted for `siembox_queue_depth` until dropped.
struct QueueSlot<'a> {
    shared: &'a Shared,
    kind: usize,
}

impl<'a> QueueSlot<'a> {
    fn take(shared: &'a Shared, kind: usize) -> Option<Self> {
        let cap = shared.queue_size.load(Relaxed);
        shared
            .queued
            .fetch_update(SeqCst, SeqCst, |n| (n < cap).then_some(n + 1))
            .ok()?;
        shared.queued_by_type[kind].fetch_add(1, Relaxed);
        Some(QueueSlot { shared, kind })
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.shared.queued.fetch_sub(1, SeqCst);
        self.shared.queued_by_type[self.kind].fetch_sub(1, Relaxed);
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How long a probe may wait in total, for callers that want to know before queueing.
pub fn max_wait(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()) * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(yaml: &str) -> Limits {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[tokio::test]
    async fn full_queue_is_refused_at_once() {
        let mut reg = Registry::default();
        let l = Limiter::new(
            &limits("{max_concurrent: 10, per_type: {tcp: 1}, queue_size: 1}"),
            &mut reg,
        );
        let far = Instant::now() + Duration::from_secs(60);
        let held = l
            .acquire(ProberKind::Tcp, "a:1", Priority::OnScrape, far)
            .await
            .unwrap();
        let l2 = l.clone();
        let queued = tokio::spawn(async move {
            l2.acquire(ProberKind::Tcp, "a:1", Priority::OnScrape, far)
                .await
                .is_ok()
        });
        while l.queued() == 0 {
            tokio::task::yield_now().await;
        }
        let t = Instant::now();
        let e = l
            .acquire(ProberKind::Tcp, "a:1", Priority::OnScrape, far)
            .await
            .unwrap_err();
        assert_eq!(e.reason, Rejection::QueueFull);
        assert!(t.elapsed() < Duration::from_secs(1));
        // Another type is not held back by the tcp limit.
        assert!(l
            .acquire(ProberKind::Dns, "a", Priority::OnScrape, far)
            .await
            .is_ok());
        drop(held);
        assert!(queued.await.unwrap());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(
            out.contains("siembox_queue_rejected_total{type=\"tcp\",reason=\"queue_full\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("siembox_limit_max{limit=\"tcp\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("siembox_limit_max{limit=\"global\"} 10\n"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn waiting_ends_before_the_deadline() {
        let mut reg = Registry::default();
        let l = Limiter::new(&limits("{per_type: {tcp: 1}}"), &mut reg);
        let _held = l
            .acquire(
                ProberKind::Tcp,
                "a:1",
                Priority::OnScrape,
                Instant::now() + Duration::from_secs(60),
            )
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_millis(200);
        let e = l
            .acquire(ProberKind::Tcp, "a:1", Priority::Scheduled, deadline)
            .await
            .unwrap_err();
        assert_eq!(e.reason, Rejection::WaitTimeout);
        assert!(Instant::now() < deadline, "gave up before the deadline");
        assert!(
            e.message.contains("tcp concurrency limit (1)"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn reload_resizes_without_dropping_held_permits() {
        let mut reg = Registry::default();
        let l = Limiter::new(&limits("{max_concurrent: 2}"), &mut reg);
        let far = Instant::now() + Duration::from_secs(60);
        let a = l
            .acquire(ProberKind::Tcp, "a:1", Priority::OnScrape, far)
            .await
            .unwrap();
        let _b = l
            .acquire(ProberKind::Tcp, "a:1", Priority::OnScrape, far)
            .await
            .unwrap();
        l.apply(&limits("{max_concurrent: 1}"));
        assert_eq!(l.in_use(None), 2);
        drop(a);
        let soon = Instant::now() + Duration::from_millis(100);
        assert!(l
            .acquire(ProberKind::Tcp, "a:1", Priority::OnScrape, soon)
            .await
            .is_err());
        l.apply(&limits("{max_concurrent: 3}"));
        assert!(l
            .acquire(ProberKind::Tcp, "a:1", Priority::OnScrape, far)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn rate_limited_beyond_the_deadline_is_refused() {
        let mut reg = Registry::default();
        let l = Limiter::new(&limits("{rate_limits: {per_target_host: 1/m}}"), &mut reg);
        let soon = Instant::now() + Duration::from_secs(2);
        assert!(l
            .acquire(ProberKind::Tcp, "h:1", Priority::OnScrape, soon)
            .await
            .is_ok());
        let e = l
            .acquire(ProberKind::Tcp, "h:2", Priority::OnScrape, soon)
            .await
            .unwrap_err();
        assert_eq!(e.reason, Rejection::RateLimited);
        assert!(l
            .acquire(ProberKind::Tcp, "other:2", Priority::OnScrape, soon)
            .await
            .is_ok());
    }
}
