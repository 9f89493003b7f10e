//! The exporter's own metrics (prometheus-client registry) and the exposition of `/metrics`.

pub mod cardinality;
mod exposition;
mod process;
pub mod results;
mod runtime;

pub use exposition::openmetrics_to_text;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeResultLabels {
    pub module: String,
    pub prober: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModuleLabels {
    pub module: String,
    pub prober: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub module: String,
    pub prober: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    revision: &'static str,
    rustversion: &'static str,
}

/// Self-metrics. Label values here come from config (module names) or fixed sets, so they are
/// bounded by construction.
pub struct SelfMetrics {
    registry: Registry,
    pub probes: Family<ProbeResultLabels, Counter>,
    pub probe_duration: Family<ModuleLabels, Histogram>,
    pub probe_failures: Family<FailureLabels, Counter>,
    pub module_unknown: Counter,
    pub reload_successful: Gauge,
    pub reload_success_timestamp: Gauge<f64, AtomicU64>,
    pub reloads_failed: Counter,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SelfMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let probes = Family::<ProbeResultLabels, Counter>::default();
        registry.register(
            "siembox_probes",
            "Probes run, by module, prober and result",
            probes.clone(),
        );
        let probe_duration = Family::<ModuleLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
            ])
        });
        registry.register(
            "siembox_probe_duration_seconds",
            "Duration of probes by module",
            probe_duration.clone(),
        );
        let probe_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "siembox_probe_failures",
            "Failed probes by module, prober and reason",
            probe_failures.clone(),
        );
        let module_unknown = Counter::default();
        registry.register(
            "siembox_module_unknown",
            "Probe requests naming a module that is not configured",
            module_unknown.clone(),
        );
        let reload_successful = Gauge::default();
        registry.register(
            "siembox_exporter_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful",
            reload_successful.clone(),
        );
        let reload_success_timestamp = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "siembox_exporter_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
            reload_success_timestamp.clone(),
        );
        let reloads_failed = Counter::default();
        registry.register(
            "siembox_exporter_config_reload_failures",
            "Configuration reloads rejected",
            reloads_failed.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                revision: option_env!("SIEMBOX_GIT_REVISION").unwrap_or("unknown"),
                rustversion: option_env!("SIEMBOX_RUSTC_VERSION").unwrap_or("unknown"),
            })
            .set(1);
        registry.register(
            "siembox_exporter_build_info",
            "A metric with a constant '1' value labeled by version and revision from which siembox-exporter was built",
            build.clone(),
        );
        // blackbox_exporter's names for the same series, so its dashboards and alerts (e.g. on
        // a failed reload) work unchanged; each shares the value of ours above.
        registry.register(
            "blackbox_module_unknown",
            "Count of unknown modules requested by probes",
            module_unknown.clone(),
        );
        registry.register(
            "blackbox_exporter_config_last_reload_successful",
            "Blackbox exporter config loaded successfully",
            reload_successful.clone(),
        );
        registry.register(
            "blackbox_exporter_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
            reload_success_timestamp.clone(),
        );
        registry.register(
            "blackbox_exporter_build_info",
            "A metric with a constant '1' value labeled by version and revision from which siembox-exporter was built",
            build,
        );
        registry.register_collector(Box::new(process::ProcessCollector::new()));
        registry.register_collector(Box::new(runtime::RuntimeCollector));
        SelfMetrics {
            registry,
            probes,
            probe_duration,
            probe_failures,
            module_unknown,
            reload_successful,
            reload_success_timestamp,
            reloads_failed,
        }
    }

    /// Gives mutable access for other parts (limits, audits) to register their metrics at start.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Appends the registry in OpenMetrics text, without the closing `# EOF`.
    pub fn encode_openmetrics(&self, out: &mut String) {
        let _ = prometheus_client::encoding::text::encode_registry(out, &self.registry);
    }

    pub fn record_probe(
        &self,
        module: &str,
        prober: &'static str,
        success: bool,
        seconds: f64,
        reason: Option<&'static str>,
    ) {
        let labels = ModuleLabels {
            module: module.to_string(),
            prober,
        };
        self.probe_duration.get_or_create(&labels).observe(seconds);
        self.probes
            .get_or_create(&ProbeResultLabels {
                module: labels.module.clone(),
                prober,
                result: if success { "success" } else { "failure" },
            })
            .inc();
        if let Some(reason) = reason {
            self.probe_failures
                .get_or_create(&FailureLabels {
                    module: labels.module,
                    prober,
                    reason,
                })
                .inc();
        }
    }
}
