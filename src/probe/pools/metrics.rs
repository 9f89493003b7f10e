//! The `siembox_pool_*` metrics: counters kept as pools work (waits, exhaustion, acquire time,
//! connections created and closed) and gauges read from every pool at scrape time. The only label
//! is the service `type`, so there are four series per family whatever the number of targets.

use super::{PoolKind, PoolState, Pools};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

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
    pub(super) fn new() -> Self {
        let stats = PoolStats {
            created: Default::default(),
            closed: Default::default(),
            waits: Family::default(),
            exhausted: Family::default(),
            acquire_seconds: Family::new_with_constructor(|| {
                Histogram::new([
                    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }),
        };
        // Every type shows from the start (at 0), so rate() and alerts need no absent() dance.
        for kind in PoolKind::ALL {
            let label = type_label(kind);
            drop(stats.waits.get_or_create(&label));
            drop(stats.exhausted.get_or_create(&label));
            drop(stats.acquire_seconds.get_or_create(&label));
        }
        stats
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
