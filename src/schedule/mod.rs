//! Scheduled probes (SPEC §5): each target of each `schedule:` job runs every `interval` at a
//! stable offset (spread over `jitter`), at the lower priority of the limits; its latest outcome
//! is exposed on `/metrics`. A run that would overlap its previous one is skipped and counted.
//! file_sd files are watched (their directories, since ConfigMaps swap symlinks) and re-read
//! every 5 minutes in case an event was missed; the whole schedule restarts on config reload.

mod shard;
pub mod targets;

pub use shard::Shard;

use crate::app::App;
use crate::config::Config;
use crate::limits::Priority;
use crate::metrics::results::ScheduledResults;
use notify::Watcher;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use targets::{FileSdCache, ScheduledTarget};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often file_sd files are re-read even without a change event (Prometheus' default).
const FILE_SD_REFRESH: Duration = Duration::from_secs(300);
/// Events of one file save come in bursts; wait this long for the burst to end.
const FILE_SD_DEBOUNCE: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModuleLabel {
    module: String,
}

pub struct Scheduler {
    shard: Shard,
    app: OnceLock<Weak<App>>,
    state: Mutex<State>,
    pub results: ScheduledResults,
    skipped: Family<ModuleLabel, Counter>,
    runs: Family<ModuleLabel, Counter>,
    targets: Family<ModuleLabel, Gauge>,
}

#[derive(Default)]
struct State {
    running: HashMap<String, Running>,
    files: FileSdCache,
    watcher: Option<notify::RecommendedWatcher>,
    watch_task: Option<JoinHandle<()>>,
}

struct Running {
    target: Arc<ScheduledTarget>,
    task: JoinHandle<()>,
}

impl Drop for State {
    fn drop(&mut self) {
        for r in self.running.values() {
            r.task.abort();
        }
        if let Some(t) = &self.watch_task {
            t.abort();
        }
    }
}

impl Scheduler {
    pub fn new(shard: Shard, config: &Config, registry: &mut Registry) -> Self {
        let skipped = Family::<ModuleLabel, Counter>::default();
        registry.register(
            "siembox_schedule_skipped_runs",
            "Scheduled runs skipped because the previous run of the same target was still going",
            skipped.clone(),
        );
        let runs = Family::<ModuleLabel, Counter>::default();
        registry.register(
            "siembox_schedule_runs",
            "Scheduled probe runs completed",
            runs.clone(),
        );
        let targets = Family::<ModuleLabel, Gauge>::default();
        registry.register(
            "siembox_schedule_targets",
            "Scheduled targets this replica runs (after sharding)",
            targets.clone(),
        );
        Scheduler {
            shard,
            app: OnceLock::new(),
            state: Mutex::new(State::default()),
            results: ScheduledResults::new(
                config.cardinality.max_series_per_family,
                config.cardinality.max_label_value_length,
                registry,
            ),
            skipped,
            runs,
            targets,
        }
    }

    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Starts the jobs of the app's config. Needs a tokio runtime; without one (e.g. a
    /// benchmark building the app) nothing is scheduled.
    pub fn start(&self, app: &Arc<App>) {
        let _ = self.app.set(Arc::downgrade(app));
        self.restart(&app.config());
    }

    /// Applies a new config: new caps, file_sd watches, and the target set (targets that stay
    /// keep their task and timing; the others stop and their series disappear).
    pub fn restart(&self, config: &Config) {
        if tokio::runtime::Handle::try_current().is_err() || self.app.get().is_none() {
            return;
        }
        self.results.set_caps(
            config.cardinality.max_series_per_family,
            config.cardinality.max_label_value_length,
        );
        let mut state = self.state.lock();
        self.watch_files(&mut state, config);
        self.reconcile(&mut state, config);
    }

    /// Re-reads file_sd files and applies the resulting target set.
    pub fn refresh_files(&self) {
        let Some(app) = self.app.get().and_then(Weak::upgrade) else {
            return;
        };
        let config = app.config();
        let mut state = self.state.lock();
        self.reconcile(&mut state, &config);
    }

    /// Targets currently scheduled on this replica.
    pub fn target_count(&self) -> usize {
        self.state.lock().running.len()
    }

    fn reconcile(&self, state: &mut State, config: &Config) {
        let Some(app) = self.app.get().cloned() else {
            return;
        };
        let max_len = config.cardinality.max_label_value_length;
        let desired = targets::expand(config, self.shard, &mut state.files, max_len);
        state.running.retain(|key, r| {
            let keep = desired
                .get(key)
                .is_some_and(|d| d.same_timing(&r.target) && d.prober == r.target.prober);
            if !keep {
                r.target.labels.alive.store(false, Relaxed);
                r.task.abort();
            }
            keep
        });
        let mut per_module: HashMap<&str, i64> = HashMap::new();
        for (key, t) in desired {
            *per_module
                .entry(config_module(config, &t.module))
                .or_default() += 1;
            if state.running.contains_key(&key) {
                continue;
            }
            let target = Arc::new(t);
            let task = tokio::spawn(run_target(app.clone(), target.clone()));
            state.running.insert(key, Running { target, task });
        }
        self.results.retain(|k| state.running.contains_key(k));
        self.targets.clear();
        for (module, n) in per_module {
            self.targets
                .get_or_create(&ModuleLabel {
                    module: module.to_string(),
                })
                .set(n);
        }
    }

    fn watch_files(&self, state: &mut State, config: &Config) {
        state.watcher = None;
        if let Some(t) = state.watch_task.take() {
            t.abort();
        }
        let dirs: HashSet<PathBuf> = config
            .schedule
            .iter()
            .flat_map(|j| &j.file_sd)
            .map(|p| {
                let parent = std::path::Path::new(p)
                    .parent()
                    .map(|d| d.to_path_buf())
                    .unwrap_or_default();
                if parent.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    parent
                }
            })
            .collect();
        if dirs.is_empty() {
            return;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Our own reads of the files are events too (open, close): reacting to them would
            // re-read the files in a loop.
            if event.is_ok_and(|e| e.kind.is_access()) {
                return;
            }
            let _ = tx.send(());
        }) {
            Ok(mut w) => {
                for d in &dirs {
                    if let Err(e) = w.watch(d, notify::RecursiveMode::NonRecursive) {
                        tracing::warn!(dir = %d.display(), error = %e, "cannot watch file_sd directory; its files are re-read every 5 minutes");
                    }
                }
                state.watcher = Some(w);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch file_sd files; they are re-read every 5 minutes")
            }
        }
        let weak = self.app.get().cloned().unwrap_or_default();
        state.watch_task = Some(tokio::spawn(async move {
            let mut refresh = tokio::time::interval(FILE_SD_REFRESH);
            refresh.tick().await;
            loop {
                tokio::select! {
                    ev = rx.recv() => {
                        if ev.is_none() {
                            return;
                        }
                        tokio::time::sleep(FILE_SD_DEBOUNCE).await;
                        while rx.try_recv().is_ok() {}
                    }
                    _ = refresh.tick() => {}
                }
                let Some(app) = weak.upgrade() else { return };
                app.scheduler.refresh_files();
            }
        }));
    }
}

fn config_module<'a>(config: &'a Config, module: &str) -> &'a str {
    config
        .modules
        .get_key_value(module)
        .map_or("", |(k, _)| k.as_str())
}

/// The first run time of a target: the next instant that is `phase` past a multiple of
/// `interval` on the wall clock, so runs keep their rhythm across reloads and replicas.
fn first_run(interval: Duration, phase: Duration) -> Instant {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let iv = interval.as_nanos().max(1);
    let into_cycle = (now_ns + iv - phase.as_nanos() % iv) % iv;
    let wait = if into_cycle == 0 { 0 } else { iv - into_cycle };
    Instant::now() + Duration::from_nanos(wait as u64)
}

async fn run_target(app: Weak<App>, t: Arc<ScheduledTarget>) {
    let (runs, skipped) = {
        let Some(a) = app.upgrade() else { return };
        let label = ModuleLabel {
            module: t.module.clone(),
        };
        let runs = a.scheduler.runs.get_or_create(&label).clone();
        let skipped = a.scheduler.skipped.get_or_create(&label).clone();
        (runs, skipped)
    };
    let interval = t.interval;
    let mut next = first_run(interval, t.phase);
    loop {
        tokio::time::sleep_until(next).await;
        {
            let Some(app) = app.upgrade() else { return };
            let config = app.config();
            let timeout = config
                .modules
                .get(&t.module)
                .and_then(|m| m.timeout)
                .map_or(interval, |d| d.get());
            // Boxed: the probe's state lives on the heap only while it runs, keeping thousands
            // of idle target tasks small.
            let outcome = Box::pin(app.probe_with(
                &config,
                &t.module,
                &t.target,
                None,
                timeout,
                Priority::Scheduled,
            ))
            .await;
            app.scheduler.results.record(&t.labels, outcome);
            runs.inc();
        }
        next += interval;
        let now = Instant::now();
        if now >= next {
            let missed = ((now - next).as_nanos() / interval.as_nanos().max(1)) as u32 + 1;
            skipped.inc_by(u64::from(missed));
            next += interval * missed;
        }
    }
}
