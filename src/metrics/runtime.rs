//! `siembox_runtime_alive_tasks`: the tokio tasks alive at scrape time, read from the runtime
//! that serves the scrape. A count that only grows over a long run is a task leak; it costs one
//! atomic load (tokio's stable `RuntimeMetrics`).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug)]
pub struct RuntimeCollector;

impl Collector for RuntimeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Encoded outside a runtime (a unit test, a bench): nothing to report.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return Ok(());
        };
        let g = ConstGauge::new(handle.metrics().num_alive_tasks() as i64);
        g.encode(encoder.encode_descriptor(
            "siembox_runtime_alive_tasks",
            "Tokio tasks alive in the exporter's runtime (connections, probes, schedules, pools)",
            None,
            g.metric_type(),
        )?)
    }
}
