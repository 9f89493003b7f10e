//! SSH audits of configured servers (VPS audit): a pooled, host-key-verified russh client runs
//! one batched script per audit; its output is parsed into findings. `Auditor::audit` is the
//! one entry point, shared by `/probe` and the scheduler.

pub mod checks;
pub mod connect;
pub mod metrics;
pub mod pool;
pub mod sections;
pub mod sshd;

pub use checks::{CheckStatus, Finding};

use crate::config::{CheckConfig, Config, SshAuditProbe};
use crate::probe::recorder::{FailureReason, ProbeRecorder};
use checks::Rules;
use connect::SshTarget;
use parking_lot::Mutex;
use pool::{Pool, PoolStats};
use russh::ChannelMsg;
use sections::Sections;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The most output an audit reads; a server that prints more is cut off (and the audit fails).
const MAX_OUTPUT: usize = 4 * 1024 * 1024;

/// The result of one audit of one server.
#[derive(Clone, Debug)]
pub struct AuditOutcome {
    pub server: String,
    pub module: String,
    pub success: bool,
    pub failure: Option<FailureReason>,
    /// Why it failed; never holds a secret.
    pub message: String,
    pub findings: Vec<Finding>,
    pub os: String,
    pub kernel: String,
    pub disks: Vec<(String, f64)>,
    pub duration: Duration,
    pub finished_at: SystemTime,
    /// Whether the connection came from the pool.
    pub reused_connection: bool,
}

impl AuditOutcome {
    fn failed(server: &str, module: &str, reason: FailureReason, message: String) -> Self {
        AuditOutcome {
            server: server.to_string(),
            module: module.to_string(),
            success: false,
            failure: Some(reason),
            message,
            findings: Vec::new(),
            os: String::new(),
            kernel: String::new(),
            disks: Vec::new(),
            duration: Duration::ZERO,
            finished_at: SystemTime::now(),
            reused_connection: false,
        }
    }

    pub fn finding(&self, check: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.check == check)
    }

    /// Writes the audit's metrics into a `/probe` recorder (blackbox style: this server only).
    pub fn record(&self, rec: &mut ProbeRecorder) {
        let server = self.server.as_str();
        for f in &self.findings {
            rec.gauge_with(
                "siembox_vps_audit_check_status",
                "Audit check result: 0 pass, 1 warn, 2 fail, 3 unknown",
                &[("server", server), ("check", f.check)],
                f64::from(f.status as u8),
            );
            rec.info(format!(
                "check {} {}: {}",
                f.check,
                f.status.as_str(),
                f.detail
            ));
        }
        for f in &self.findings {
            if let Some(v) = f.value {
                rec.gauge_with(
                    "siembox_vps_audit_check_value",
                    "The value a check measured (percent, count, port, seconds)",
                    &[("server", server), ("check", f.check)],
                    v,
                );
            }
        }
        for (mount, pct) in &self.disks {
            rec.gauge_with(
                "siembox_vps_audit_disk_used_percent",
                "Used space per local mount in percent",
                &[("server", server), ("mount", mount)],
                *pct,
            );
        }
        if self.success {
            rec.gauge_with(
                "siembox_vps_audit_server_info",
                "Static facts of an audited server",
                &[
                    ("server", server),
                    ("os", &self.os),
                    ("kernel", &self.kernel),
                ],
                1.0,
            );
        }
        rec.gauge(
            "siembox_vps_audit_connection_reused",
            "Whether the audit used a pooled SSH connection",
            if self.reused_connection { 1.0 } else { 0.0 },
        );
    }
}

/// What the auditor remembers of a server between audits of one module (modules differ in
/// their check settings, so one module's heavy results are never another's).
#[derive(Default)]
struct ServerState {
    boot_id: Option<String>,
    facts: Option<(String, String)>,
    /// Heavy check → when it last ran and what it found.
    heavy: HashMap<&'static str, (Instant, Vec<Finding>)>,
    /// The module's check settings those findings were graded with (a reload may change them).
    settings: String,
}

/// The check settings of a module as one comparable string.
fn settings_of(rules: &Rules<'_>) -> String {
    serde_json::to_string(rules.checks).unwrap_or_default()
}

pub struct Auditor {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    stats: Arc<PoolStats>,
    /// Per (module, server).
    state: Mutex<HashMap<(String, String), ServerState>>,
    /// Latest outcome per (module, server): `cache_for` and `/metrics`.
    latest: Mutex<HashMap<(String, String), Arc<AuditOutcome>>>,
    pub(crate) metrics: metrics::AuditMetrics,
    audits_success: AtomicU64,
    audits_error: AtomicU64,
    pool_max: AtomicU64,
}

impl Default for Auditor {
    fn default() -> Self {
        Self::new()
    }
}

impl Auditor {
    pub fn new() -> Self {
        Auditor {
            pools: Mutex::new(HashMap::new()),
            stats: Arc::new(PoolStats::default()),
            state: Mutex::new(HashMap::new()),
            latest: Mutex::new(HashMap::new()),
            metrics: metrics::AuditMetrics::default(),
            audits_success: AtomicU64::new(0),
            audits_error: AtomicU64::new(0),
            pool_max: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Follows a new config: pools of changed or removed modules are dropped (their connections
    /// close), results and series of removed servers disappear.
    pub fn apply_config(&self, config: &Config) {
        let modules: HashMap<&String, &SshAuditProbe> = config
            .modules
            .iter()
            .filter_map(|(n, m)| m.ssh_audit.as_ref().map(|a| (n, a)))
            .collect();
        {
            let mut pools = self.pools.lock();
            pools.retain(|name, pool| {
                modules.get(name).is_some_and(|m| {
                    serde_json::to_string(&m.pool).ok() == serde_json::to_string(&pool.config).ok()
                })
            });
            for pool in pools.values() {
                let targets: Vec<SshTarget> = config
                    .servers
                    .iter()
                    .filter_map(|s| modules.values().find_map(|m| SshTarget::build(s, m).ok()))
                    .collect();
                pool.retain(|t| targets.iter().any(|x| x.same_endpoint(t)));
            }
        }
        let max: usize = modules
            .values()
            .map(|m| m.pool.max_connections.max(1))
            .sum();
        self.pool_max.store(max as u64, Ordering::Relaxed);
        let names: std::collections::HashSet<&str> =
            config.servers.iter().map(|s| s.name.as_str()).collect();
        self.state
            .lock()
            .retain(|(m, s), _| names.contains(s.as_str()) && modules.contains_key(m));
        self.latest
            .lock()
            .retain(|(m, s), _| names.contains(s.as_str()) && modules.contains_key(m));
        self.metrics.retain_servers(&names);
    }

    fn pool(&self, module_name: &str, module: &SshAuditProbe) -> Arc<Pool> {
        self.pools
            .lock()
            .entry(module_name.to_string())
            .or_insert_with(|| Pool::new(module.pool.clone(), self.stats.clone()))
            .clone()
    }

    /// The latest outcome of every (module, server), for `/metrics` and the status page.
    pub fn latest(&self) -> Vec<Arc<AuditOutcome>> {
        self.latest.lock().values().cloned().collect()
    }

    /// Audits `server_name` with module `module_name` by `deadline`, or serves a result younger
    /// than the module's `cache_for`. Only servers named in the config are ever contacted.
    pub async fn audit(
        &self,
        config: &Config,
        module_name: &str,
        server_name: &str,
        deadline: Instant,
    ) -> Arc<AuditOutcome> {
        let Some(module) = config.modules.get(module_name) else {
            return Arc::new(AuditOutcome::failed(
                server_name,
                module_name,
                FailureReason::Config,
                format!("unknown module {module_name:?}"),
            ));
        };
        let Some(audit_cfg) = module.ssh_audit.as_ref() else {
            return Arc::new(AuditOutcome::failed(
                server_name,
                module_name,
                FailureReason::Config,
                format!("module {module_name:?} has no ssh_audit section"),
            ));
        };
        let Some(server) = config.servers.iter().find(|s| s.name == server_name) else {
            return Arc::new(AuditOutcome::failed(
                server_name,
                module_name,
                FailureReason::Config,
                format!("{server_name:?} is not a configured server"),
            ));
        };
        let key = (module_name.to_string(), server_name.to_string());
        if let Some(ttl) = module.cache_for.map(|d| d.get()) {
            if let Some(hit) = self.latest.lock().get(&key) {
                if hit.success && hit.finished_at.elapsed().is_ok_and(|age| age < ttl) {
                    return hit.clone();
                }
            }
        }
        let started = Instant::now();
        let mut outcome = match SshTarget::build(server, audit_cfg) {
            Err(e) => AuditOutcome::failed(server_name, module_name, FailureReason::Config, e),
            Ok(target) => {
                let target = Arc::new(target);
                match tokio::time::timeout_at(
                    deadline,
                    self.run(&target, module_name, audit_cfg, deadline),
                )
                .await
                {
                    Ok(o) => o,
                    Err(_) => AuditOutcome::failed(
                        server_name,
                        module_name,
                        FailureReason::Timeout,
                        "audit timed out: deadline reached".into(),
                    ),
                }
            }
        };
        outcome.duration = started.elapsed();
        outcome.finished_at = SystemTime::now();
        if outcome.success {
            self.audits_success.fetch_add(1, Ordering::Relaxed);
        } else {
            self.audits_error.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(server = server_name, module = module_name, reason = outcome.failure.map(|f| f.as_str()), error = %outcome.message, "audit failed");
        }
        self.metrics
            .observe_duration(server_name, outcome.duration.as_secs_f64());
        let outcome = Arc::new(outcome);
        self.latest.lock().insert(key, outcome.clone());
        outcome
    }

    async fn run(
        &self,
        target: &Arc<SshTarget>,
        module_name: &str,
        cfg: &SshAuditProbe,
        deadline: Instant,
    ) -> AuditOutcome {
        let pool = self.pool(module_name, cfg);
        let rules = Rules {
            checks: &cfg.checks,
        };
        let key = (module_name.to_string(), target.name.clone());
        let (cached_boot, due) = self.plan(&key, &rules);
        let sections_due: Vec<&str> = due.iter().map(|(_, section)| *section).collect();
        let command = sections::command(cached_boot.as_deref(), &sections_due, cfg.sudo);
        // A pooled connection may have died since its last use; that shows only when used, so
        // one failure on a reused connection is retried on a fresh one.
        let mut tries = 0;
        let (output, reused) = loop {
            tries += 1;
            let lease = match pool.checkout(target, deadline).await {
                Ok(l) => l,
                Err(e) => {
                    return AuditOutcome::failed(&target.name, module_name, e.reason, e.message)
                }
            };
            let reused = lease.reused;
            match exec(lease.session(), &command).await {
                Ok(out) => {
                    lease.release();
                    break (out, reused);
                }
                Err(e) if reused && tries < 2 => {
                    tracing::debug!(server = %target.name, error = %e, "pooled SSH connection failed; reconnecting");
                    drop(lease);
                }
                Err(e) => {
                    return AuditOutcome::failed(
                        &target.name,
                        module_name,
                        FailureReason::Connection,
                        e,
                    )
                }
            }
        };
        let s = Sections::parse(&output);
        if !s.complete() {
            return AuditOutcome::failed(
                &target.name,
                module_name,
                FailureReason::Protocol,
                "the audit script output is incomplete (no end marker)".into(),
            );
        }
        let mut findings = checks::evaluate(&s, &rules);
        let ran: Vec<&str> = due.iter().map(|(owner, _)| *owner).collect();
        let (os, kernel) = self.remember(key, &s, &rules, &mut findings, &ran);
        findings.sort_by_key(|f| checks::CHECKS.iter().position(|c| c.name == f.check));
        AuditOutcome {
            server: target.name.clone(),
            module: module_name.to_string(),
            success: true,
            failure: None,
            message: String::new(),
            disks: mount_labels(checks::disk_mounts(&s)),
            findings,
            os,
            kernel,
            duration: Duration::ZERO,
            finished_at: SystemTime::now(),
            reused_connection: reused,
        }
    }

    /// Which boot id the static facts are cached for, and which heavy checks are due (each
    /// with its script section), from the check table.
    fn plan(
        &self,
        key: &(String, String),
        rules: &Rules<'_>,
    ) -> (Option<String>, Vec<(&'static str, &'static str)>) {
        let state = self.state.lock();
        let st = state.get(key);
        let settings = settings_of(rules);
        let regrade = st.is_some_and(|s| s.settings != settings);
        let due = checks::heavy_sections()
            .filter(|(c, _)| rules.enabled(c.name))
            .filter(|(c, _)| {
                regrade
                    || st
                        .and_then(|s| s.heavy.get(c.name))
                        .is_none_or(|(at, _)| at.elapsed() >= rules.interval(c.name))
            })
            .map(|(c, section)| (c.name, section))
            .collect();
        let boot = st
            .filter(|s| s.facts.is_some())
            .and_then(|s| s.boot_id.clone());
        (boot, due)
    }

    /// Updates the per-server caches from this output and fills in cached heavy findings.
    /// `ran`: the heavy checks (section owners) whose sections ran this time.
    fn remember(
        &self,
        key: (String, String),
        s: &Sections<'_>,
        rules: &Rules<'_>,
        findings: &mut Vec<Finding>,
        ran: &[&'static str],
    ) -> (String, String) {
        let mut state = self.state.lock();
        let st = state.entry(key).or_default();
        st.settings = settings_of(rules);
        let boot = s.value("meta", "boot_id").map(str::to_string);
        if let Some(facts) = checks::static_facts(s) {
            st.facts = Some((cap(&facts.0), cap(&facts.1)));
        }
        if boot != st.boot_id {
            // A reboot may have installed updates: re-run the heavy checks next time.
            if st.boot_id.is_some() {
                st.heavy.clear();
            }
            st.boot_id = boot;
        }
        let now = Instant::now();
        for (owner, _) in checks::heavy_sections() {
            let owner = owner.name;
            if ran.contains(&owner) {
                let graded = checks::graded_with(owner);
                let mine = findings
                    .iter()
                    .filter(|f| graded.contains(&f.check))
                    .cloned()
                    .collect();
                st.heavy.insert(owner, (now, mine));
            } else if let Some((_, cached)) = st.heavy.get(owner).filter(|_| rules.enabled(owner)) {
                extend_missing(findings, cached);
            }
        }
        st.facts
            .clone()
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()))
    }
}

/// Label values from a server are bounded in length.
fn cap(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Adds cached heavy findings the output did not give (a server may print a section it was not
/// asked for; one finding per check keeps the series unique).
fn extend_missing(findings: &mut Vec<Finding>, cached: &[Finding]) {
    for f in cached {
        if !findings.iter().any(|x| x.check == f.check) {
            findings.push(f.clone());
        }
    }
}

/// Mounts as label values: capped like the other server-given labels, each once (the first
/// line wins, as two series with one label set would be invalid), at most 32.
fn mount_labels(mounts: Vec<(String, f64)>) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for (mount, pct) in mounts {
        let mount = cap(&mount);
        if !out.iter().any(|(m, _)| *m == mount) {
            out.push((mount, pct));
            if out.len() == 32 {
                break;
            }
        }
    }
    out
}

/// Runs the script on one exec channel: `sh -s` reads it from stdin; stdout is collected until
/// the channel closes.
async fn exec(session: &connect::Session, command: &str) -> Result<String, String> {
    let mut channel = session
        .channel_open_session()
        .await
        .map_err(|e| format!("cannot open an SSH session channel: {e}"))?;
    channel
        .exec(true, command)
        .await
        .map_err(|e| format!("exec request failed: {e}"))?;
    channel
        .data(sections::SCRIPT.as_bytes())
        .await
        .map_err(|e| format!("cannot send the audit script: {e}"))?;
    channel
        .eof()
        .await
        .map_err(|e| format!("cannot send EOF: {e}"))?;
    let mut out: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut exit: Option<u32> = None;
    while let Some(msg) = channel.wait().await {
        match msg {
            ChannelMsg::Data { data } => {
                if out.len() + data.len() > MAX_OUTPUT {
                    return Err(format!("the audit output exceeds {MAX_OUTPUT} bytes"));
                }
                out.extend_from_slice(&data);
            }
            ChannelMsg::ExitStatus { exit_status } => exit = Some(exit_status),
            ChannelMsg::Failure => return Err("the server refused the exec request".into()),
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(match exit {
            Some(code) => format!("the audit script printed nothing (exit status {code})"),
            None => "the SSH channel closed without output".into(),
        });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// What one audit script output grades to with a module's check settings, as an audit grades
/// it (no connection, no cache): the findings in report order and the mounts' usage. The
/// entry point for tests of captured outputs.
pub fn grade_output(
    output: &str,
    checks: &std::collections::BTreeMap<String, CheckConfig>,
) -> Result<Graded, String> {
    let s = Sections::parse(output);
    if !s.complete() {
        return Err("the audit script output is incomplete (no end marker)".into());
    }
    let mut findings = checks::evaluate(&s, &Rules { checks });
    findings.sort_by_key(|f| checks::CHECKS.iter().position(|c| c.name == f.check));
    Ok(Graded {
        findings,
        disks: mount_labels(checks::disk_mounts(&s)),
    })
}

/// See [`grade_output`].
#[derive(Debug)]
pub struct Graded {
    pub findings: Vec<Finding>,
    pub disks: Vec<(String, f64)>,
}

impl Graded {
    pub fn finding(&self, check: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.check == check)
    }
}

/// Counts a check status for summaries (status page, tests).
pub fn worst(findings: &[Finding]) -> CheckStatus {
    findings
        .iter()
        .map(|f| f.status)
        .filter(|s| *s != CheckStatus::Unknown)
        .max()
        .unwrap_or(CheckStatus::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_labels_are_capped_unique_and_few() {
        let long = "/".to_string() + &"x".repeat(500);
        let mut mounts = vec![
            ("/".to_string(), 40.0),
            ("/".to_string(), 99.0),
            (long.clone(), 1.0),
            (long + "y", 2.0),
        ];
        mounts.extend((0..100).map(|i| (format!("/m{i}"), 5.0)));
        let labels = mount_labels(mounts);
        assert_eq!(labels.len(), 32);
        assert_eq!(labels[0], ("/".to_string(), 40.0), "the first line wins");
        assert_eq!(labels[1].0.chars().count(), 64);
        assert_eq!(labels[2].0, "/m0", "two long mounts capped alike stay one");
    }

    #[test]
    fn cached_heavy_findings_never_duplicate_fresh_ones() {
        let f = |v: f64| Finding {
            check: "pending_updates",
            status: CheckStatus::Pass,
            value: Some(v),
            detail: String::new(),
        };
        let mut findings = vec![f(1.0)];
        extend_missing(&mut findings, &[f(7.0)]);
        assert_eq!(findings, vec![f(1.0)]);
        let mut none = Vec::new();
        extend_missing(&mut none, &[f(7.0)]);
        assert_eq!(none, vec![f(7.0)]);
    }
}
