//! Connection pools of the database and cache probers: one pool per (module, target), built on
//! first use, replaced when its settings change, closed when unused for its `idle_timeout`, and
//! dropped on reload when its module's config changed. Pool metrics per service type only (no
//! target labels), so their cardinality is fixed.

use crate::config::{Module, PoolConfig};
use deadpool::managed::{Manager, Metrics, Pool, PoolError, TimeoutType, Timeouts};
use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::any::Any;
use std::collections::BTreeMap;
use std::collections::HashMap;
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

/// The `type` label of the pool metrics.
pub type TypeLabel = [(&'static str, &'static str); 1];

fn type_label(kind: PoolKind) -> TypeLabel {
    [("type", kind.as_str())]
}

/// Counters shared by every pool of the process, per service type.
#[derive(Debug)]
pub struct PoolStats {
    created: [AtomicU64; 4],
    closed: [AtomicU64; 4],
    pub waits: Family<TypeLabel, Counter>,
    pub exhausted: Family<TypeLabel, Counter>,
    pub acquire_seconds: Family<TypeLabel, Histogram>,
}

impl PoolStats {
    fn new() -> Self {
        PoolStats {
            created: Default::default(),
            closed: Default::default(),
            waits: Family::default(),
            exhausted: Family::default(),
            acquire_seconds: Family::new_with_constructor(|| {
                Histogram::new([
                    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }),
        }
    }

    pub fn connection_created(&self, kind: PoolKind) {
        self.created[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self, kind: PoolKind) {
        self.closed[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn created(&self, kind: PoolKind) -> u64 {
        self.created[kind.index()].load(Ordering::Relaxed)
    }

    pub fn closed(&self, kind: PoolKind) -> u64 {
        self.closed[kind.index()].load(Ordering::Relaxed)
    }

    pub fn exhausted_total(&self, kind: PoolKind) -> u64 {
        self.exhausted.get_or_create(&type_label(kind)).get()
    }

    pub fn pool_exhausted(&self, kind: PoolKind) {
        self.exhausted.get_or_create(&type_label(kind)).inc();
    }

    pub fn observe_acquire(&self, kind: PoolKind, waited: bool, seconds: f64) {
        let label = type_label(kind);
        if waited {
            self.waits.get_or_create(&label).inc();
        }
        self.acquire_seconds.get_or_create(&label).observe(seconds);
    }
}

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
                self.stats
                    .exhausted
                    .get_or_create(&type_label(self.kind))
                    .inc();
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
        let mut kept = 0usize;
        let min_idle = self.cfg.min_idle;
        let removed = self.pool.retain(|_, m| {
            let keep = m.age() < lifetime && (m.last_used() < idle_timeout || kept < min_idle);
            if keep {
                kept += 1;
            }
            keep
        });
        drop(removed);
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
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

#[derive(Default)]
struct Inner {
    pools: RwLock<HashMap<Key, Entry>>,
}

/// Every pool of the process, and their shared counters.
#[derive(Clone)]
pub struct Pools {
    inner: Arc<Inner>,
    pub stats: Arc<PoolStats>,
    sweeper_started: Arc<AtomicBool>,
    sweep_every: Duration,
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
            sweeper_started: Arc::new(AtomicBool::new(false)),
            sweep_every: Duration::from_secs(1),
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
        let mut pools = self.inner.pools.write();
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
        if self.sweeper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.sweeper_started.store(false, Ordering::Release);
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let stats = self.stats.clone();
        let every = self.sweep_every;
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                Pools {
                    inner,
                    stats: stats.clone(),
                    sweeper_started: Arc::new(AtomicBool::new(true)),
                    sweep_every: every,
                }
                .sweep();
            }
        });
    }
}

fn module_hash(module: &Module) -> u64 {
    // Secrets serialize redacted; a changed secret is caught by the settings hash instead.
    let text = serde_json::to_string(module).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Registers the `siembox_pool_*` metrics in the self-metrics registry.
pub fn register(registry: &mut Registry, pools: &Pools) {
    registry.register(
        "siembox_pool_waits",
        "Pool acquisitions that found every connection in use and had to wait, by service type",
        pools.stats.waits.clone(),
    );
    registry.register(
        "siembox_pool_exhausted",
        "Probes failed because every pooled connection stayed in use for acquire_timeout, by service type",
        pools.stats.exhausted.clone(),
    );
    registry.register(
        "siembox_pool_acquire_duration_seconds",
        "Time taken to get a connection from a pool (including connecting), by service type",
        pools.stats.acquire_seconds.clone(),
    );
    registry.register_collector(Box::new(PoolCollector {
        pools: pools.clone(),
    }));
}

/// Reads one gauge out of a type's summed pool state and pool count.
type PickGauge = fn(&(PoolState, usize)) -> usize;
/// Reads one counter of a type.
type PickCounter = fn(&PoolStats, PoolKind) -> u64;

struct PoolCollector {
    pools: Pools,
}

impl std::fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolCollector")
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let states = self.pools.state_by_kind();
        let gauges: [(&str, &str, PickGauge); 5] = [
            (
                "siembox_pool_connections",
                "Open pooled connections (pool size), by service type",
                |s| s.0.open,
            ),
            (
                "siembox_pool_idle_connections",
                "Pooled connections open and idle, by service type",
                |s| s.0.idle,
            ),
            (
                "siembox_pool_in_use_connections",
                "Pooled connections in use by a probe, by service type",
                |s| s.0.in_use,
            ),
            (
                "siembox_pool_max_connections",
                "Sum of the max_size of the open pools, by service type",
                |s| s.0.max,
            ),
            (
                "siembox_pool_pools",
                "Open pools (one per module and target), by service type",
                |s| s.1,
            ),
        ];
        for (name, help, pick) in gauges {
            let mut fam = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for kind in PoolKind::ALL {
                let g = ConstGauge::new(pick(&states[kind.index()]) as i64);
                g.encode(fam.encode_family(&type_label(kind))?)?;
            }
        }
        let counters: [(&str, &str, PickCounter); 2] = [
            (
                "siembox_pool_connections_created",
                "Connections opened by the pools, by service type",
                PoolStats::created,
            ),
            (
                "siembox_pool_connections_closed",
                "Connections closed by the pools (idle, expired, broken, pool dropped), by service type",
                PoolStats::closed,
            ),
        ];
        for (name, help, pick) in counters {
            let mut fam = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for kind in PoolKind::ALL {
                let c = ConstCounter::new(pick(&self.pools.stats, kind));
                c.encode(fam.encode_family(&type_label(kind))?)?;
            }
        }
        Ok(())
    }
}
