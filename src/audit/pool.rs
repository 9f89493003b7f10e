//! The SSH connection pool of one ssh_audit module: at most `max_connections` open connections
//! across all servers (one semaphore permit per open connection), idle ones reused per server,
//! closed after `max_idle_time` except the `min_connections` most recently used, checked every
//! `health_check_interval` (dead ones dropped and replaced), retries with `retry_delay`.

use super::connect::{client_config, connect, ConnectError, Session, SshTarget};
use crate::config::SshPoolConfig;
use crate::probe::recorder::FailureReason;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Counters shared by every pool of the auditor (they feed the metrics).
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Connections lent out to a running audit.
    pub active: AtomicUsize,
    /// Connections open (lent out or idle).
    pub open: AtomicUsize,
    /// Audits waiting for a connection slot.
    pub waiting: AtomicUsize,
    pub connect_success: AtomicU64,
    pub connect_failed: AtomicU64,
}

struct Conn {
    /// Always `Some` until dropped (then closed in the background, see `Drop`).
    session: Option<Session>,
    target: Arc<SshTarget>,
    last_used: Instant,
    /// Always `Some` until dropped: freed only once the socket is closed.
    permit: Option<OwnedSemaphorePermit>,
    _open: OpenGuard,
}

impl Conn {
    fn new(
        session: Session,
        target: Arc<SshTarget>,
        permit: OwnedSemaphorePermit,
        stats: &Arc<PoolStats>,
    ) -> Conn {
        Conn {
            session: Some(session),
            target,
            last_used: Instant::now(),
            permit: Some(permit),
            _open: OpenGuard::new(stats),
        }
    }

    fn session(&self) -> &Session {
        self.session
            .as_ref()
            .expect("a live connection has its session")
    }
}

/// The slot of a dropped connection (evicted for another server, or failed mid-audit) frees only
/// when its TCP socket has closed: dropping the handle ends russh's session task, which closes
/// the socket a moment later, and a new connection opened in that moment would make
/// `max_connections + 1` sockets on the servers' side.
impl Drop for Conn {
    fn drop(&mut self) {
        let (Some(session), Some(permit)) = (self.session.take(), self.permit.take()) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                let _ = session
                    .disconnect(russh::Disconnect::ByApplication, "", "")
                    .await;
                let _ = session.await;
            })
            .await;
            drop(permit);
        });
    }
}

/// Counts a connection as open for as long as it lives.
struct OpenGuard(Arc<PoolStats>);

impl OpenGuard {
    fn new(stats: &Arc<PoolStats>) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(stats.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct Pool {
    pub config: SshPoolConfig,
    client: Arc<russh::client::Config>,
    slots: Arc<Semaphore>,
    idle: Mutex<HashMap<String, Vec<Conn>>>,
    stats: Arc<PoolStats>,
    maintenance: std::sync::Once,
    /// Signalled whenever a connection goes back to the idle list.
    returned: tokio::sync::Notify,
}

/// A connection lent to one audit. Dropped without `release` (error, timeout, cancellation) it
/// is closed, never returned half-used.
pub struct Lease {
    conn: Option<Conn>,
    pool: Arc<Pool>,
    /// Whether it came from the idle list (a dead one shows only when used).
    pub reused: bool,
}

impl Lease {
    pub fn session(&self) -> &Session {
        self.conn
            .as_ref()
            .expect("lease holds a connection")
            .session()
    }

    /// Hands the connection back for reuse and wakes audits waiting for a connection.
    pub fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            if conn.session().is_closed() {
                return;
            }
            conn.last_used = Instant::now();
            self.pool
                .idle
                .lock()
                .entry(conn.target.endpoint())
                .or_default()
                .push(conn);
            self.pool.returned.notify_waiters();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.stats.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decrements the waiting count however the wait ends.
struct Waiting<'a>(&'a PoolStats);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    pub fn new(config: SshPoolConfig, stats: Arc<PoolStats>) -> Arc<Pool> {
        let max = config.max_connections.max(1);
        Arc::new(Pool {
            client: client_config(&config),
            slots: Arc::new(Semaphore::new(max)),
            config,
            idle: Mutex::new(HashMap::new()),
            stats,
            maintenance: std::sync::Once::new(),
            returned: tokio::sync::Notify::new(),
        })
    }

    pub fn max(&self) -> usize {
        self.config.max_connections.max(1)
    }

    /// A connection to `target` by `deadline`: an idle one to the same endpoint if there is
    /// one, else a new one in a free slot (closing the longest-idle connection of another
    /// endpoint if that frees one), else the first of those to come along before the deadline.
    pub async fn checkout(
        self: &Arc<Self>,
        target: &Arc<SshTarget>,
        deadline: Instant,
    ) -> Result<Lease, ConnectError> {
        self.start_maintenance();
        let mut waiting: Option<Waiting<'_>> = None;
        let mut evicted = false;
        let permit = loop {
            // Registered before looking, so a connection returned meanwhile is not missed.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(conn) = self.take_idle(target) {
                return Ok(self.lend(conn, true));
            }
            if let Ok(p) = self.slots.clone().try_acquire_owned() {
                break p;
            }
            // One eviction per checkout: its slot frees once its socket has closed (below, the
            // wait for a slot), and evicting more meanwhile would empty the idle list.
            if !evicted && self.evict_oldest_idle() {
                evicted = true;
                continue;
            }
            if waiting.is_none() {
                self.stats.waiting.fetch_add(1, Ordering::Relaxed);
                waiting = Some(Waiting(&self.stats));
            }
            tokio::select! {
                p = self.slots.clone().acquire_owned() => match p {
                    Ok(p) => break p,
                    Err(_) => return Err(ConnectError {
                        reason: FailureReason::PoolExhausted,
                        message: "the connection pool is closed".into(),
                    }),
                },
                _ = &mut returned => continue,
                _ = tokio::time::sleep_until(deadline) => return Err(ConnectError {
                    reason: FailureReason::PoolExhausted,
                    message: format!(
                        "no free SSH connection (max_connections {}) before the deadline",
                        self.max()
                    ),
                }),
            }
        };
        drop(waiting);
        let session = self.connect_with_retries(target, deadline).await?;
        let conn = Conn::new(session, target.clone(), permit, &self.stats);
        Ok(self.lend(conn, false))
    }

    fn lend(self: &Arc<Self>, conn: Conn, reused: bool) -> Lease {
        self.stats.active.fetch_add(1, Ordering::Relaxed);
        Lease {
            conn: Some(conn),
            pool: self.clone(),
            reused,
        }
    }

    /// The most recently used live idle connection to the same endpoint (address, user,
    /// credential, host-key policy): server names that are the same endpoint share connections.
    fn take_idle(&self, target: &SshTarget) -> Option<Conn> {
        let mut idle = self.idle.lock();
        let list = idle.get_mut(&target.endpoint())?;
        while let Some(conn) = list.pop() {
            if !conn.session().is_closed() && conn.target.same_endpoint(target) {
                return Some(conn);
            }
        }
        None
    }

    fn evict_oldest_idle(&self) -> bool {
        let mut idle = self.idle.lock();
        let oldest = idle
            .iter()
            .flat_map(|(name, list)| {
                list.iter()
                    .enumerate()
                    .map(move |(i, c)| (name.clone(), i, c.last_used))
            })
            .min_by_key(|(_, _, t)| *t);
        match oldest {
            Some((name, i, _)) => {
                if let Some(list) = idle.get_mut(&name) {
                    list.remove(i);
                }
                true
            }
            None => false,
        }
    }

    async fn connect_with_retries(
        &self,
        target: &SshTarget,
        deadline: Instant,
    ) -> Result<Session, ConnectError> {
        let mut attempt = 0;
        loop {
            let per_try = Instant::now() + self.config.connection_timeout.get();
            let until = per_try.min(deadline);
            let result =
                match tokio::time::timeout_at(until, connect(target, self.client.clone())).await {
                    Ok(r) => r,
                    Err(_) => Err(ConnectError {
                        reason: FailureReason::Timeout,
                        message: format!(
                            "connecting to {}:{} timed out (SSH handshake and authentication)",
                            target.host, target.port
                        ),
                    }),
                };
            match result {
                Ok(s) => {
                    self.stats.connect_success.fetch_add(1, Ordering::Relaxed);
                    return Ok(s);
                }
                Err(e) => {
                    self.stats.connect_failed.fetch_add(1, Ordering::Relaxed);
                    let next = Instant::now() + self.config.retry_delay.get();
                    if !e.retryable() || attempt >= self.config.retry_limit || next >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(server = %target.name, attempt, error = %e.message, "SSH connect failed; retrying");
                    attempt += 1;
                    tokio::time::sleep_until(next).await;
                }
            }
        }
    }

    /// Closes idle connections to servers no longer configured (or configured differently).
    pub fn retain(&self, keep: impl Fn(&SshTarget) -> bool) {
        let mut idle = self.idle.lock();
        for list in idle.values_mut() {
            list.retain(|c| keep(&c.target));
        }
        idle.retain(|_, l| !l.is_empty());
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().values().map(Vec::len).sum()
    }

    fn start_maintenance(self: &Arc<Self>) {
        self.maintenance.call_once(|| {
            let weak = Arc::downgrade(self);
            tokio::spawn(maintain(weak));
        });
    }

    /// Closes connections idle longer than `max_idle_time`, keeping the `min_connections` most
    /// recently used warm.
    fn reap_idle(&self, now: Instant) {
        let max_idle = self.config.max_idle_time.get();
        let mut idle = self.idle.lock();
        let mut all: Vec<(String, Instant)> = idle
            .iter()
            .flat_map(|(n, l)| l.iter().map(move |c| (n.clone(), c.last_used)))
            .collect();
        all.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
        let keep_warm = self.config.min_connections;
        let cutoff: Option<Instant> = all.get(keep_warm.saturating_sub(1)).map(|(_, t)| *t);
        for list in idle.values_mut() {
            list.retain(|c| {
                let young = now.saturating_duration_since(c.last_used) < max_idle;
                let warm = keep_warm > 0 && cutoff.is_some_and(|t| c.last_used >= t);
                // Dead ones are left to the health check, which replaces them.
                young || warm
            });
        }
        idle.retain(|_, l| !l.is_empty());
    }

    /// Pings every idle connection; dead ones are dropped and replaced by a fresh connection to
    /// the same server while the pool is below `min_connections`.
    async fn health_check(self: &Arc<Self>) {
        let conns: Vec<Conn> = {
            let mut idle = self.idle.lock();
            idle.drain().flat_map(|(_, l)| l).collect()
        };
        let mut dead: Vec<Arc<SshTarget>> = Vec::new();
        let mut alive = Vec::with_capacity(conns.len());
        for conn in conns {
            let ok = !conn.session().is_closed()
                && tokio::time::timeout(Duration::from_secs(5), conn.session().send_ping())
                    .await
                    .is_ok_and(|r| r.is_ok())
                && !conn.session().is_closed();
            if ok {
                alive.push(conn);
            } else {
                dead.push(conn.target.clone());
            }
        }
        {
            let mut idle = self.idle.lock();
            for conn in alive {
                idle.entry(conn.target.endpoint()).or_default().push(conn);
            }
        }
        for target in dead {
            if self.stats.open.load(Ordering::Relaxed) >= self.config.min_connections {
                break;
            }
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                break;
            };
            let deadline = Instant::now() + self.config.connection_timeout.get();
            if let Ok(Ok(session)) =
                tokio::time::timeout_at(deadline, connect(&target, self.client.clone())).await
            {
                self.stats.connect_success.fetch_add(1, Ordering::Relaxed);
                let conn = Conn::new(session, target.clone(), permit, &self.stats);
                self.idle
                    .lock()
                    .entry(target.endpoint())
                    .or_default()
                    .push(conn);
            } else {
                self.stats.connect_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The pool's background upkeep; ends when the pool is dropped (config reload).
async fn maintain(pool: Weak<Pool>) {
    let (health_every, reap_every) = match pool.upgrade() {
        Some(p) => {
            let h = p
                .config
                .health_check_interval
                .get()
                .max(Duration::from_secs(1));
            let r = (p.config.max_idle_time.get() / 4)
                .clamp(Duration::from_secs(1), Duration::from_secs(30));
            (h, r)
        }
        None => return,
    };
    let mut next_health = Instant::now() + health_every;
    loop {
        tokio::time::sleep(reap_every.min(health_every)).await;
        let Some(p) = pool.upgrade() else { return };
        p.reap_idle(Instant::now());
        if Instant::now() >= next_health {
            p.health_check().await;
            next_health = Instant::now() + health_every;
        }
    }
}
