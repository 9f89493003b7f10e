//! Metrics of the limits, read from their atomics at scrape time (nothing to update per probe
//! beyond the counters the limits keep anyway).

use super::{Rejection, Shared, KINDS};
use crate::config::ProberKind;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

const WAIT_BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A lock-free histogram: one atomic per bucket, the sum as f64 bits.
#[derive(Debug, Default)]
pub(super) struct AtomicHistogram {
    buckets: [AtomicU64; WAIT_BUCKETS.len() + 1],
    sum_bits: AtomicU64,
}

impl AtomicHistogram {
    pub fn observe_zero(&self) {
        self.buckets[0].fetch_add(1, Relaxed);
    }

    pub fn observe(&self, v: f64) {
        let i = WAIT_BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(WAIT_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        if v > 0.0 {
            let _ = self.sum_bits.fetch_update(Relaxed, Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
        }
    }

    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut count = 0;
        let buckets = WAIT_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(le, n)| {
                let n = n.load(Relaxed);
                count += n;
                (le, n)
            })
            .collect();
        (f64::from_bits(self.sum_bits.load(Relaxed)), count, buckets)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    r#type: &'static str,
    reason: &'static str,
}

#[derive(Debug)]
pub(super) struct LimitsCollector(pub Arc<Shared>);

impl Collector for LimitsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &*self.0;
        let gates = || {
            std::iter::once(("global", &s.global)).chain(
                ProberKind::ALL
                    .iter()
                    .map(|k| (k.as_str(), &s.per_type[*k as usize])),
            )
        };
        {
            let mut m = encoder.encode_descriptor(
                "siembox_limit_in_use",
                "Probes holding a slot of the limit now",
                None,
                MetricType::Gauge,
            )?;
            for (limit, g) in gates() {
                ConstGauge::new(g.in_use() as i64)
                    .encode(m.encode_family(&LimitLabel { limit })?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "siembox_limit_max",
                "Configured concurrency limit",
                None,
                MetricType::Gauge,
            )?;
            for (limit, g) in gates() {
                ConstGauge::new(g.max() as i64).encode(m.encode_family(&LimitLabel { limit })?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "siembox_queue_depth",
                "Probes waiting for a slot or a rate limit, by prober type",
                None,
                MetricType::Gauge,
            )?;
            for k in ProberKind::ALL {
                let n = s.queued_by_type[k as usize].load(Relaxed) as i64;
                ConstGauge::new(n).encode(m.encode_family(&TypeLabel { r#type: k.as_str() })?)?;
            }
        }
        let cap = ConstGauge::new(s.queue_size.load(Relaxed) as i64);
        cap.encode(encoder.encode_descriptor(
            "siembox_queue_size",
            "Capacity of the probe queue (limits.queue_size)",
            None,
            MetricType::Gauge,
        )?)?;
        {
            let mut m = encoder.encode_descriptor(
                "siembox_queue_rejected",
                "Probes refused before starting, by prober type and reason",
                None,
                MetricType::Counter,
            )?;
            for k in ProberKind::ALL {
                for r in Rejection::ALL {
                    let n = s.rejected[k as usize][r as usize].load(Relaxed);
                    ConstCounter::new(n).encode(m.encode_family(&RejectLabels {
                        r#type: k.as_str(),
                        reason: r.as_str(),
                    })?)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "siembox_limit_wait",
                "Time probes waited for their limits before starting (or being refused)",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for k in 0..KINDS {
                let (sum, count, buckets) = s.wait_seconds[k].snapshot();
                m.encode_family(&TypeLabel {
                    r#type: ProberKind::ALL[k].as_str(),
                })?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        let hosts = ConstGauge::new(s.rates.load().hosts_tracked() as i64);
        hosts.encode(encoder.encode_descriptor(
            "siembox_rate_limit_hosts",
            "Target hosts with rate-limit state held in memory",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}
