//! Connection pools of the database and cache probers: one pool per (module, target), built on
//! first use, replaced when its settings change, closed when unused for its `idle_timeout`, and
//! dropped on reload when its module's config changed. `managed` holds the deadpool-based pool
//! (postgres, mysql, redis), `metrics` the `siembox_pool_*` metrics, per service type only.

mod managed;
mod metrics;

pub use managed::{expired, Lease, ManagedPool, Tracked};
pub use metrics::{register, PoolStats, TypeLabel};

use crate::config::{Module, PoolConfig};
use parking_lot::RwLock;
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The service type of a pool: the only label of the pool metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PoolKind {
    Postgres,
    Mysql,
    Redis,
    Mongodb,
}

impl PoolKind {
    pub const ALL: [PoolKind; 4] = [
        PoolKind::Postgres,
        PoolKind::Mysql,
        PoolKind::Redis,
        PoolKind::Mongodb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Postgres => "postgres",
            PoolKind::Mysql => "mysql",
            PoolKind::Redis => "redis",
            PoolKind::Mongodb => "mongodb",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Connection counts of one pool at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolState {
    pub open: usize,
    pub idle: usize,
    pub in_use: usize,
    pub max: usize,
}

/// What the registry needs from any pool, whatever its driver.
pub trait PoolHandle: Send + Sync + 'static {
    fn kind(&self) -> PoolKind;
    fn state(&self) -> PoolState;
    fn config(&self) -> &PoolConfig;
    /// Closes connections idle past `idle_timeout` (keeping `min_idle`) or older than
    /// `max_lifetime`.
    fn prune(&self);
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// Why a connection could not be had from a pool.
#[derive(Debug)]
pub enum AcquireError<E> {
    /// Every connection was in use for the whole `acquire_timeout`.
    Exhausted(Duration),
    /// Making a new connection did not finish in time.
    ConnectTimeout,
    /// The driver failed to connect (refused, auth, TLS, …).
    Connect(E),
    Other(String),
}

/// The key of a pool: prober type, module name, target as given.
type Key = (PoolKind, String, String);

struct Entry {
    handle: Arc<dyn PoolHandle>,
    /// Hash of the module's config: a reload that changes it drops the pool.
    module_hash: u64,
    /// Hash of everything the pool was built from, secrets included (a rotated password file
    /// rebuilds the pool on the next probe).
    settings_hash: u64,
    /// Milliseconds since `epoch()` of the last probe that asked for this pool.
    last_used: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// How often idle pools and connections are looked for: cheap (one pass over a small map).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Inner {
    pools: RwLock<HashMap<Key, Entry>>,
    sweeper_started: AtomicBool,
}

/// Every pool of the process, and their shared counters.
#[derive(Clone)]
pub struct Pools {
    inner: Arc<Inner>,
    pub stats: Arc<PoolStats>,
}

impl Default for Pools {
    fn default() -> Self {
        Self::new()
    }
}

impl Pools {
    pub fn new() -> Self {
        Pools {
            inner: Arc::new(Inner::default()),
            stats: Arc::new(PoolStats::new()),
        }
    }

    /// The pool of (`kind`, `module`, `target`), built by `build` when there is none or when
    /// `settings_hash` differs from the one it was built with.
    pub fn get_or_build<P: PoolHandle>(
        &self,
        kind: PoolKind,
        module_name: &str,
        module: &Module,
        target: &str,
        settings_hash: u64,
        build: impl FnOnce(Arc<PoolStats>) -> Result<P, String>,
    ) -> Result<Arc<P>, String> {
        self.start_sweeper();
        let key: Key = (kind, module_name.to_string(), target.to_string());
        if let Some(p) = Self::reuse(self.inner.pools.read().get(&key), settings_hash) {
            return Ok(p);
        }
        let mut pools = self.inner.pools.write();
        if let Some(p) = Self::reuse(pools.get(&key), settings_hash) {
            return Ok(p);
        }
        let pool = Arc::new(build(self.stats.clone())?);
        pools.insert(
            key,
            Entry {
                handle: pool.clone(),
                module_hash: module_hash(module),
                settings_hash,
                last_used: AtomicU64::new(now_ms()),
            },
        );
        Ok(pool)
    }

    fn reuse<P: PoolHandle>(entry: Option<&Entry>, settings_hash: u64) -> Option<Arc<P>> {
        let e = entry?;
        if e.settings_hash != settings_hash {
            return None;
        }
        let p = e.handle.clone().into_any().downcast::<P>().ok()?;
        e.last_used.store(now_ms(), Ordering::Relaxed);
        Some(p)
    }

    /// Drops the pools of modules that are gone or whose config changed (called after a reload).
    pub fn retain_modules(&self, modules: &BTreeMap<String, Module>) {
        let hashes: HashMap<&str, u64> = modules
            .iter()
            .map(|(n, m)| (n.as_str(), module_hash(m)))
            .collect();
        self.inner
            .pools
            .write()
            .retain(|(_, module, _), e| hashes.get(module.as_str()) == Some(&e.module_hash));
    }

    /// Drops every pool.
    pub fn clear(&self) {
        self.inner.pools.write().clear();
    }

    pub fn len(&self) -> usize {
        self.inner.pools.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes pools unused for their `idle_timeout` with nothing in use, and prunes the others.
    pub fn sweep(&self) {
        self.inner.sweep();
    }

    /// Connection counts summed per service type, and the number of pools.
    pub fn state_by_kind(&self) -> [(PoolState, usize); 4] {
        let mut out = [(PoolState::default(), 0usize); 4];
        for e in self.inner.pools.read().values() {
            let s = e.handle.state();
            let slot = &mut out[e.handle.kind().index()];
            slot.0.open += s.open;
            slot.0.idle += s.idle;
            slot.0.in_use += s.in_use;
            slot.0.max += s.max;
            slot.1 += 1;
        }
        out
    }

    /// The periodic sweep runs on the runtime of the first probe that builds a pool, and stops
    /// when the last `Pools` handle is gone.
    fn start_sweeper(&self) {
        if self.inner.sweeper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.inner.sweeper_started.store(false, Ordering::Release);
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        rt.spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.sweep();
            }
        });
    }
}

impl Inner {
    fn sweep(&self) {
        let mut pools = self.pools.write();
        pools.retain(|_, e| {
            let idle_for =
                Duration::from_millis(now_ms().saturating_sub(e.last_used.load(Ordering::Relaxed)));
            !(idle_for >= e.handle.config().idle_timeout.get() && e.handle.state().in_use == 0)
        });
        let handles: Vec<Arc<dyn PoolHandle>> = pools.values().map(|e| e.handle.clone()).collect();
        drop(pools);
        for h in handles {
            h.prune();
        }
    }
}

fn module_hash(module: &Module) -> u64 {
    // Secrets serialize redacted; a changed secret is caught by the settings hash instead.
    let text = serde_json::to_string(module).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}
