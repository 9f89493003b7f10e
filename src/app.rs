//! The application: the running config (swapped atomically on reload), self-metrics and the
//! shared prober state, behind one `Arc` that every request handler holds.

use crate::config::{Config, ConfigError};
use crate::history::ProbeHistory;
use crate::metrics::SelfMetrics;
use crate::probe::{run_probe, ProbeEnv, ProbeOutcome, ProbeRequest};
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Settings from the command line that are not part of the config file.
#[derive(Clone, Debug)]
pub struct AppOptions {
    /// Subtracted from Prometheus' scrape timeout to leave time to answer.
    pub timeout_offset: Duration,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            timeout_offset: Duration::from_millis(500),
        }
    }
}

pub struct App {
    config: ArcSwap<Config>,
    config_path: Option<PathBuf>,
    pub options: AppOptions,
    pub metrics: SelfMetrics,
    pub env: ProbeEnv,
    /// Recent outcomes per (module, target) for the status page and `/logs`.
    pub history: ProbeHistory,
}

impl App {
    /// Builds the app around an already validated config; `config_path` is what reloads re-read
    /// (`None`: the built-in config, which reloads to itself).
    pub fn new(config: Config, config_path: Option<PathBuf>, options: AppOptions) -> Arc<App> {
        let metrics = SelfMetrics::new();
        metrics.reload_successful.set(1);
        metrics.reload_success_timestamp.set(unix_now());
        Arc::new(App {
            config: ArcSwap::from_pointee(config),
            config_path,
            options,
            metrics,
            env: ProbeEnv::new(),
            history: ProbeHistory::default(),
        })
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub fn config_path(&self) -> Option<&PathBuf> {
        self.config_path.as_ref()
    }

    /// Re-reads the config file. A bad file is rejected whole: the old config keeps serving,
    /// the error is logged and `..._last_reload_successful` drops to 0.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let loaded = match &self.config_path {
            Some(p) => Config::load_file(p),
            None => Ok(Config::builtin()),
        };
        match loaded {
            Ok(config) => {
                self.history
                    .retain_modules(|m| config.modules.contains_key(m));
                self.config.store(Arc::new(config));
                self.env.config_changed();
                self.metrics.reload_successful.set(1);
                self.metrics.reload_success_timestamp.set(unix_now());
                tracing::info!(file = ?self.config_path, "configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.reload_successful.set(0);
                self.metrics.reloads_failed.inc();
                tracing::error!(error = %e, "configuration reload failed; the previous configuration keeps serving");
                Err(e)
            }
        }
    }

    /// Runs `module_name` against `target` within `timeout` and counts the result.
    pub async fn probe(
        &self,
        config: &Config,
        module_name: &str,
        target: &str,
        hostname: Option<&str>,
        timeout: Duration,
    ) -> Arc<ProbeOutcome> {
        let Some(module) = config.modules.get(module_name) else {
            return Arc::new(crate::probe::refused(
                crate::probe::recorder::FailureReason::Config,
                format!("unknown module {module_name:?}"),
            ));
        };
        let req = ProbeRequest {
            target,
            module_name,
            module,
            deadline: Instant::now() + timeout,
            config,
            hostname,
        };
        let outcome = run_probe(&req, &self.env).await;
        self.metrics.record_probe(
            module_name,
            module.prober.as_str(),
            outcome.success,
            outcome.duration.as_secs_f64(),
            outcome.failure.map(|f| f.as_str()),
        );
        if let Some(reason) = outcome.failure {
            tracing::debug!(
                module = module_name,
                target,
                reason = reason.as_str(),
                "probe failed"
            );
        }
        let outcome = Arc::new(outcome);
        self.history.record(module_name, target, &outcome);
        outcome
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
