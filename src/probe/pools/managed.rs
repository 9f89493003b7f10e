//! A deadpool pool of driver connections with our settings: acquire with `acquire_timeout` and
//! the probe's deadline, exhaustion counted, `min_idle` warm-up, idle and lifetime pruning;
//! connections that count their own closing; leases that close an interrupted connection.

use super::{AcquireError, PoolConfig, PoolHandle, PoolKind, PoolState, PoolStats};
use deadpool::managed::{Manager, Metrics, Pool, PoolError, TimeoutType, Timeouts};
use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A pooled connection that counts itself closed when dropped, whatever drops it (idle sweep,
/// failed recycle, broken connection, pool dropped).
pub struct Tracked<C> {
    pub conn: C,
    /// The server's version, read once when the connection was made.
    pub version: String,
    /// How long making this connection took; taken by the first probe that uses it.
    pub connect_time: Option<Duration>,
    kind: PoolKind,
    stats: Arc<PoolStats>,
}

impl<C> Tracked<C> {
    pub fn new(
        conn: C,
        version: String,
        connect_time: Duration,
        kind: PoolKind,
        stats: Arc<PoolStats>,
    ) -> Self {
        stats.connection_created(kind);
        Tracked {
            conn,
            version,
            connect_time: Some(connect_time),
            kind,
            stats,
        }
    }
}

impl<C> Drop for Tracked<C> {
    fn drop(&mut self) {
        self.stats.connection_closed(self.kind);
    }
}

/// A deadpool pool with its settings and the time it was last used.
pub struct ManagedPool<M: Manager> {
    pub pool: Pool<M>,
    kind: PoolKind,
    cfg: PoolConfig,
    stats: Arc<PoolStats>,
}

impl<M: Manager + 'static> ManagedPool<M> {
    pub fn new(
        manager: M,
        kind: PoolKind,
        cfg: &PoolConfig,
        stats: Arc<PoolStats>,
    ) -> Result<Self, String> {
        let pool = Pool::builder(manager)
            .max_size(cfg.max_size.max(1))
            // The most recently used connection first: spare ones go idle and get pruned.
            .queue_mode(deadpool::managed::QueueMode::Lifo)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| format!("cannot build the connection pool: {e}"))?;
        Ok(ManagedPool {
            pool,
            kind,
            cfg: cfg.clone(),
            stats,
        })
    }

    /// Pool sizes, for error messages.
    pub fn describe(&self) -> String {
        format!(
            "max_size {}, acquire_timeout {:?}",
            self.cfg.max_size,
            self.cfg.acquire_timeout.get()
        )
    }

    /// Takes a connection, waiting at most `acquire_timeout` (and never past `deadline`) for one
    /// to come free. Records the acquire duration and whether the probe had to wait.
    pub async fn acquire(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<deadpool::managed::Object<M>, AcquireError<M::Error>> {
        let start = Instant::now();
        let before = self.pool.status();
        let waited = before.available == 0 && before.size >= before.max_size;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let timeouts = Timeouts {
            wait: Some(self.cfg.acquire_timeout.get().min(remaining)),
            create: Some(remaining),
            recycle: Some(remaining),
        };
        let result = self.pool.timeout_get(&timeouts).await;
        self.stats
            .observe_acquire(self.kind, waited, start.elapsed().as_secs_f64());
        let obj = match result {
            Ok(o) => o,
            Err(PoolError::Timeout(TimeoutType::Wait)) => {
                self.stats.pool_exhausted(self.kind);
                return Err(AcquireError::Exhausted(start.elapsed()));
            }
            Err(PoolError::Timeout(_)) => return Err(AcquireError::ConnectTimeout),
            Err(PoolError::Backend(e)) => return Err(AcquireError::Connect(e)),
            Err(PoolError::Closed) => return Err(AcquireError::Other("pool closed".into())),
            Err(_) => return Err(AcquireError::Other("pool setup failed".into())),
        };
        self.top_up();
        Ok(obj)
    }

    /// Opens connections in the background up to `min_idle`, after a successful acquire (so a
    /// target that is down is not hammered by the warm-up).
    fn top_up(&self) {
        let status = self.pool.status();
        let want = self.cfg.min_idle.min(status.max_size);
        if status.size >= want {
            return;
        }
        for _ in status.size..want {
            let pool = self.pool.clone();
            let timeouts = Timeouts {
                wait: Some(Duration::ZERO),
                create: Some(self.cfg.acquire_timeout.get()),
                recycle: Some(self.cfg.acquire_timeout.get()),
            };
            tokio::spawn(async move {
                let _ = pool.timeout_get(&timeouts).await;
            });
        }
    }
}

/// Whether a pooled connection is past `max_lifetime` (checked when it is handed out again).
pub fn expired(max_lifetime: Duration, metrics: &Metrics) -> bool {
    metrics.age() >= max_lifetime
}

/// A connection taken from a pool for one probe. Unless the probe marks it `clean`, it is
/// closed instead of returned: a probe cut off by its deadline may leave a query running on it.
pub struct Lease<M: Manager> {
    obj: Option<deadpool::managed::Object<M>>,
    clean: bool,
}

impl<M: Manager> Lease<M> {
    pub fn new(obj: deadpool::managed::Object<M>) -> Self {
        Lease {
            obj: Some(obj),
            clean: false,
        }
    }

    /// The connection is in a known state and may serve the next probe.
    pub fn set_clean(&mut self) {
        self.clean = true;
    }
}

impl<M: Manager> std::ops::Deref for Lease<M> {
    type Target = M::Type;
    fn deref(&self) -> &M::Type {
        self.obj
            .as_ref()
            .expect("lease holds its object until dropped")
    }
}

impl<M: Manager> std::ops::DerefMut for Lease<M> {
    fn deref_mut(&mut self) -> &mut M::Type {
        self.obj
            .as_mut()
            .expect("lease holds its object until dropped")
    }
}

impl<M: Manager> Drop for Lease<M> {
    fn drop(&mut self) {
        if let Some(obj) = self.obj.take() {
            if !self.clean {
                drop(deadpool::managed::Object::take(obj));
            }
        }
    }
}

impl<M: Manager + 'static> PoolHandle for ManagedPool<M>
where
    M::Type: Send,
{
    fn kind(&self) -> PoolKind {
        self.kind
    }

    fn state(&self) -> PoolState {
        let s = self.pool.status();
        PoolState {
            open: s.size,
            idle: s.available,
            in_use: s.size - s.available,
            max: s.max_size,
        }
    }

    fn config(&self) -> &PoolConfig {
        &self.cfg
    }

    fn prune(&self) {
        let idle_timeout = self.cfg.idle_timeout.get();
        let lifetime = self.cfg.max_lifetime.get();
        // Idle connections close only while the pool stays at or above min_idle in total.
        let mut closable = self.pool.status().size.saturating_sub(self.cfg.min_idle);
        let removed = self.pool.retain(|_, m| {
            if m.age() >= lifetime {
                closable = closable.saturating_sub(1);
                return false;
            }
            if m.last_used() >= idle_timeout && closable > 0 {
                closable -= 1;
                return false;
            }
            true
        });
        drop(removed);
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
