//! The application: the running config (swapped atomically on reload), self-metrics and the
//! shared prober state, behind one `Arc` that every request handler holds.

use crate::config::{Config, ConfigError};
use crate::history::ProbeHistory;
use crate::limits::single_flight::SingleFlight;
use crate::limits::{Limiter, Priority};
use crate::metrics::SelfMetrics;
use crate::probe::{run_probe, ProbeEnv, ProbeOutcome, ProbeRequest};
use crate::schedule::{Scheduler, Shard};
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
    /// `--schedule.shard`: which share of the scheduled targets this replica runs.
    pub schedule_shard: Shard,
    /// `--web.shutdown-timeout`: how long requests in flight get to finish once shutdown is
    /// asked for; what still runs then is cancelled.
    pub shutdown_timeout: Duration,
    /// `--web.max-connections`: open connections on the listener; past it the oldest idle
    /// one is shed (see `server::connections`).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, counted from when the
    /// connection is ready for one: it bounds stalled clients and idle keep-alive alike.
    pub header_read_timeout: Duration,
    /// `--config.enable-auto-reload` with `--config.auto-reload-interval`: how often the config
    /// file is checked for changed content and reloaded (`None`: only on request).
    pub auto_reload_interval: Option<Duration>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            timeout_offset: Duration::from_millis(500),
            schedule_shard: Shard::default(),
            shutdown_timeout: Duration::from_secs(10),
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(30),
            auto_reload_interval: None,
        }
    }
}

pub struct App {
    config: ArcSwap<Config>,
    config_path: Option<PathBuf>,
    pub options: AppOptions,
    pub metrics: SelfMetrics,
    pub env: ProbeEnv,
    /// Concurrency, queue and rate limits in front of every probe.
    pub limiter: Limiter,
    /// Shares identical in-flight probes; holds `cache_for` results.
    pub flights: SingleFlight,
    /// Scheduled jobs and their latest results.
    pub scheduler: Scheduler,
    /// Recent outcomes per (module, target) for the status page and `/logs`.
    pub history: ProbeHistory,
    /// Held for the whole of a reload: `/-/reload`, SIGHUP and the auto-reload timer may ask at
    /// once, and blackbox too runs them one at a time.
    reload_lock: parking_lot::Mutex<()>,
    /// Reloads begun so far, and the last one finished with its number: what lets requests that
    /// wait for a reload share one that began after they arrived (see [`App::reload_shared`]).
    reloads_begun: std::sync::atomic::AtomicU64,
    last_reload: tokio::sync::Mutex<Option<(u64, Result<Reloaded, ConfigError>)>>,
}

/// What a successful reload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The file's content changed; the new config now serves.
    Applied,
    /// The same bytes as the running config: nothing was touched, no pool dropped, no cache
    /// cleared, no schedule reconciled (blackbox 0.28 CHANGELOG #1464).
    Unchanged,
}

impl App {
    /// Builds the app around an already validated config; `config_path` is what reloads re-read
    /// (`None`: the built-in config, which reloads to itself).
    pub fn new(config: Config, config_path: Option<PathBuf>, options: AppOptions) -> Arc<App> {
        let mut metrics = SelfMetrics::new();
        metrics.reload_successful.set(1);
        metrics.reload_success_timestamp.set(unix_now());
        let env = ProbeEnv::new();
        crate::probe::pools::register(metrics.registry_mut(), &env.pools);
        env.auditor.apply_config(&config);
        crate::audit::metrics::register(metrics.registry_mut(), env.auditor.clone());
        let limiter = Limiter::new(&config.limits, metrics.registry_mut());
        let scheduler = Scheduler::new(options.schedule_shard, &config, metrics.registry_mut());
        let app = Arc::new(App {
            config: ArcSwap::from_pointee(config),
            config_path,
            options,
            metrics,
            env,
            limiter,
            flights: SingleFlight::new(),
            scheduler,
            history: ProbeHistory::default(),
            reload_lock: parking_lot::Mutex::new(()),
            reloads_begun: std::sync::atomic::AtomicU64::new(0),
            last_reload: tokio::sync::Mutex::new(None),
        });
        app.scheduler.start(&app);
        spawn_housekeeping(&app);
        spawn_auto_reload(&app);
        app
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub fn config_path(&self) -> Option<&PathBuf> {
        self.config_path.as_ref()
    }

    /// A reload for `/-/reload`, SIGHUP and the auto-reload timer: the file is read and parsed
    /// on a blocking thread (a 15 MB file takes seconds; the runtime's threads keep answering),
    /// one reload at a time. Requests that arrive while one runs share the next one, begun once
    /// it ends: each answer comes from a read of the file begun after its request arrived, and
    /// N concurrent requests cost at most two parses. A caller that goes away does not cancel it.
    pub async fn reload_shared(self: &Arc<Self>) -> Result<Reloaded, ConfigError> {
        use std::sync::atomic::Ordering::SeqCst;
        let app = self.clone();
        let arrived = app.reloads_begun.load(SeqCst);
        let origin = app.config_origin();
        let flight = tokio::spawn(async move {
            let mut last = app.last_reload.lock().await;
            if let Some((number, result)) = last.as_ref() {
                if *number > arrived {
                    return result.clone();
                }
            }
            let number = app.reloads_begun.fetch_add(1, SeqCst) + 1;
            let worker = app.clone();
            let result = tokio::task::spawn_blocking(move || worker.reload())
                .await
                .unwrap_or_else(|e| {
                    Err(ConfigError::single(
                        &app.config_origin(),
                        "",
                        format!("the reload stopped: {e}"),
                    ))
                });
            *last = Some((number, result.clone()));
            result
        });
        flight.await.unwrap_or_else(|e| {
            Err(ConfigError::single(
                &origin,
                "",
                format!("the reload stopped: {e}"),
            ))
        })
    }

    fn config_origin(&self) -> String {
        self.config_path
            .as_ref()
            .map_or("<built-in>".into(), |p| p.display().to_string())
    }

    /// Re-reads the config file (blocking: see [`App::reload_shared`]). The same bytes as the running config change nothing
    /// ([`Reloaded::Unchanged`]). A bad file is rejected whole: the old config keeps serving, the
    /// error is logged and `..._last_reload_successful` drops to 0.
    pub fn reload(&self) -> Result<Reloaded, ConfigError> {
        let _one_at_a_time = self.reload_lock.lock();
        let origin = self.config_origin();
        let text = match &self.config_path {
            Some(p) => Config::read_source(p),
            None => Ok(crate::config::BUILTIN_YAML.to_string()),
        };
        let changed = text.and_then(|text| {
            if Some(crate::config::source_checksum(&text)) == self.config().source_checksum {
                return Ok(None);
            }
            Config::from_yaml_str(&text, &origin).map(Some)
        });
        match changed {
            Ok(None) => {
                // blackbox 0.28 config/config.go ReloadConfig: an unchanged file still counts as a
                // successful reload (its deferred SetToCurrentTime runs); nothing else happens.
                self.mark_reload_successful();
                tracing::debug!(file = ?self.config_path, "configuration unchanged; nothing reloaded");
                Ok(Reloaded::Unchanged)
            }
            Ok(Some(config)) => {
                for w in crate::config::format_warnings(&origin, &config.warnings).lines() {
                    tracing::warn!(problem = w, "configuration warning");
                }
                self.apply(config);
                self.mark_reload_successful();
                tracing::info!(file = ?self.config_path, "configuration reloaded");
                Ok(Reloaded::Applied)
            }
            Err(e) => {
                self.metrics.reload_successful.set(0);
                self.metrics.reloads_failed.inc();
                tracing::error!(error = %e, "configuration reload failed; the previous configuration keeps serving");
                Err(e)
            }
        }
    }

    /// Swaps in a new config and brings every part that depends on it in line.
    fn apply(&self, config: Config) {
        self.env.auditor.apply_config(&config);
        self.history
            .retain_modules(|m| config.modules.contains_key(m));
        let config = Arc::new(config);
        self.config.store(config.clone());
        self.env.config_changed();
        self.env.pools.retain_modules(&config.modules);
        self.limiter.apply(&config.limits);
        self.flights.clear_cache();
        self.scheduler.restart(&config);
    }

    fn mark_reload_successful(&self) {
        self.metrics.reload_successful.set(1);
        self.metrics.reload_success_timestamp.set(unix_now());
    }

    /// Runs `module_name` against `target` within `timeout` as an on-scrape request.
    pub async fn probe(
        &self,
        config: &Config,
        module_name: &str,
        target: &str,
        hostname: Option<&str>,
        timeout: Duration,
    ) -> Arc<ProbeOutcome> {
        self.probe_with(
            config,
            module_name,
            target,
            hostname,
            timeout,
            Priority::OnScrape,
        )
        .await
    }

    /// The probe path: an identical probe in flight or a fresh `cache_for` result is shared;
    /// otherwise the limits admit (or refuse) the probe, which then runs and is counted.
    pub async fn probe_with(
        &self,
        config: &Config,
        module_name: &str,
        target: &str,
        hostname: Option<&str>,
        timeout: Duration,
        priority: Priority,
    ) -> Arc<ProbeOutcome> {
        let Some(module) = config.modules.get(module_name) else {
            return Arc::new(crate::probe::refused(
                crate::probe::recorder::FailureReason::Config,
                format!("unknown module {module_name:?}"),
            ));
        };
        let deadline = Instant::now() + timeout;
        let key = SingleFlight::key(module_name, target, hostname);
        let cache_for = module.cache_for.map(|d| d.get());
        let (outcome, _served) = self
            .flights
            .run(key, cache_for, deadline, || async {
                let req = ProbeRequest {
                    target,
                    module_name,
                    module,
                    deadline,
                    timeout,
                    config,
                    hostname,
                };
                self.limited_probe(&req, priority).await
            })
            .await;
        outcome
    }

    async fn limited_probe(&self, req: &ProbeRequest<'_>, priority: Priority) -> Arc<ProbeOutcome> {
        let (module_name, module, target) = (req.module_name, req.module, req.target);
        let outcome = match self
            .limiter
            .acquire(module.prober, target, priority, req.deadline)
            .await
        {
            Ok(_permit) => run_probe(req, &self.env).await,
            Err(rejected) => crate::probe::refused(
                crate::probe::recorder::FailureReason::RejectedByLimit,
                rejected.message,
            ),
        };
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
                target = %crate::probe::target::redacted(target),
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

/// Periodic upkeep: forget rate-limit state of idle hosts so distinct hosts cannot grow memory.
fn spawn_housekeeping(app: &Arc<App>) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        every.tick().await;
        loop {
            every.tick().await;
            let Some(app) = weak.upgrade() else { return };
            app.limiter.forget_idle_hosts();
        }
    });
}

/// `--config.enable-auto-reload`: reloads on a timer; [`App::reload`] itself skips a file whose
/// content did not change, so an unchanged file costs one read and one hash per tick.
fn spawn_auto_reload(app: &Arc<App>) {
    // A zero period would make tokio's interval panic; the flag already refuses it.
    let Some(every) = app.options.auto_reload_interval.filter(|d| !d.is_zero()) else {
        return;
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    if app.config_path.is_none() {
        tracing::warn!("--config.enable-auto-reload has no file to watch without --config.file");
        return;
    }
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(app) = weak.upgrade() else { return };
            let _ = app.reload_shared().await;
        }
    });
}
