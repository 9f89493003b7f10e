//! Probers: one file per protocol, each one async function
//! `(request, env, recorder) -> success`, run here inside the probe's deadline.

pub mod allow;
mod cert_names;
pub mod connect;
pub mod credentials;
pub mod db;
pub mod debug;
pub mod dns;
pub mod grpc;
pub mod http;
pub mod icmp;
mod icmp_echo;
mod icmp_train;
pub mod mongodb;
pub mod mysql;
pub mod pools;
pub mod postgres;
pub mod query_response;
pub mod recorder;
pub mod redis;
pub mod resolve;
pub mod ssh;
pub mod ssh_audit;
pub mod target;
pub mod tcp;
pub mod tls;
mod tls_chains;
mod tls_verify;
pub mod unix;
pub mod websocket;

use crate::config::{Config, Module, ProberKind, TlsConfig};
use parking_lot::RwLock;
use recorder::{FailureReason, Family, LogLine, ProbeRecorder};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// What a prober is asked to do.
pub struct ProbeRequest<'a> {
    pub target: &'a str,
    pub module_name: &'a str,
    pub module: &'a Module,
    /// Every network wait of the probe ends by this instant.
    pub deadline: Instant,
    /// The timeout the probe was given (`deadline` is when it was asked for plus this); time
    /// spent waiting for a limit comes out of it.
    pub timeout: std::time::Duration,
    /// The config the module came from (servers for audits).
    pub config: &'a Config,
    /// `hostname` query parameter: Host header and TLS server name for http probes.
    pub hostname: Option<&'a str>,
}

impl ProbeRequest<'_> {
    /// The target allow-list in force: the module's own, else the global one.
    pub fn allow_patterns(&self) -> &[crate::config::AllowPattern] {
        self.module
            .allowed_targets
            .as_deref()
            .unwrap_or(&self.config.web.allowed_targets)
    }
}

/// The finished probe, shareable between concurrent requests and caches.
#[derive(Debug)]
pub struct ProbeOutcome {
    pub success: bool,
    pub duration: Duration,
    pub families: Vec<Family>,
    pub log: Vec<LogLine>,
    pub failure: Option<FailureReason>,
    pub finished_at: SystemTime,
}

/// Long-lived state probers share: the caching resolver, TLS clients built once per module.
pub struct ProbeEnv {
    pub resolver: resolve::Resolver,
    /// OAuth2 access tokens of http modules.
    pub http_tokens: http::oauth2::TokenCache,
    /// Connection pools of the database and cache probers.
    pub pools: pools::Pools,
    tls_clients: RwLock<HashMap<(String, &'static str), Arc<tls::TlsClient>>>,
    /// SSH audits: connection pools and per-server caches, shared with the scheduler.
    pub auditor: Arc<crate::audit::Auditor>,
}

impl Default for ProbeEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl ProbeEnv {
    pub fn new() -> Self {
        ProbeEnv {
            resolver: resolve::Resolver::from_system(),
            http_tokens: http::oauth2::TokenCache::default(),
            pools: pools::Pools::new(),
            tls_clients: RwLock::new(HashMap::new()),
            auditor: Arc::new(crate::audit::Auditor::new()),
        }
    }

    /// The TLS client of `module` for one use (`purpose` tells e.g. `h2` ALPN from plain); built on
    /// first use and kept until the next config reload.
    pub fn tls_client(
        &self,
        module: &str,
        purpose: &'static str,
        cfg: &TlsConfig,
        alpn: &[&[u8]],
    ) -> Result<Arc<tls::TlsClient>, String> {
        self.cached_tls_client(module, purpose, || tls::TlsClient::build(cfg, alpn))
    }

    /// The QUIC (HTTP/3) TLS client of `module`, cached like `tls_client`.
    pub fn quic_tls_client(
        &self,
        module: &str,
        cfg: &TlsConfig,
    ) -> Result<Arc<tls::TlsClient>, String> {
        self.cached_tls_client(module, "h3", || tls::TlsClient::build_quic(cfg))
    }

    fn cached_tls_client(
        &self,
        module: &str,
        purpose: &'static str,
        build: impl FnOnce() -> Result<tls::TlsClient, String>,
    ) -> Result<Arc<tls::TlsClient>, String> {
        let key = (module.to_string(), purpose);
        if let Some(c) = self.tls_clients.read().get(&key) {
            return Ok(c.clone());
        }
        let client = Arc::new(build()?);
        self.tls_clients.write().insert(key, client.clone());
        Ok(client)
    }

    /// Drops everything derived from the previous config.
    pub fn config_changed(&self) {
        self.tls_clients.write().clear();
        self.http_tokens.clear();
    }
}

/// Runs one probe to completion or to its deadline and returns what it recorded, including
/// `probe_success` and `probe_duration_seconds`.
pub async fn run_probe(req: &ProbeRequest<'_>, env: &ProbeEnv) -> ProbeOutcome {
    let start = Instant::now();
    let mut rec = ProbeRecorder::new();
    rec.info(format!(
        "Beginning probe: prober={} timeout_seconds={:.3}",
        req.module.prober.as_str(),
        req.deadline.saturating_duration_since(start).as_secs_f64()
    ));
    // blackbox after 0.28 (its master) reports the timeout a probe was given; alerts on slow
    // probes can compare against it.
    rec.gauge(
        "probe_timeout_seconds",
        "Returns how long the probe timeout is in seconds",
        req.timeout.as_secs_f64(),
    );
    let access = if req.module.prober == ProberKind::Unix {
        allow::decide_unix(req.allow_patterns(), req.target)
    } else {
        let (host, url) = target::endpoint(req.module.prober, req.target).unwrap_or_default();
        allow::decide(req.allow_patterns(), &host, url.as_ref())
    };
    if matches!(access, allow::Access::Denied) {
        let msg = format!(
            "target {:?} is not in the allow-list of module {}",
            target::redacted(req.target),
            req.module_name
        );
        return refused(FailureReason::Denied, msg);
    }
    let probing = allow::ACCESS.scope(access, dispatch(req, env, &mut rec));
    let success = match tokio::time::timeout_at(req.deadline, probing).await {
        Ok(ok) => ok,
        Err(_) => {
            rec.fail(FailureReason::Timeout, "probe timed out: deadline reached");
            false
        }
    };
    let duration = start.elapsed();
    if success {
        rec.info(format!(
            "Probe succeeded: duration_seconds={:.6}",
            duration.as_secs_f64()
        ));
    } else {
        rec.info(format!(
            "Probe failed: duration_seconds={:.6}",
            duration.as_secs_f64()
        ));
    }
    let mut outcome = finish(rec, success, duration);
    scrub_target(&mut outcome.log, req.target);
    outcome
}

/// A prober's message may quote the target; one holding credentials is shown without them.
fn scrub_target(log: &mut [LogLine], target: &str) {
    let shown = target::redacted(target);
    if shown == target {
        return;
    }
    for line in log {
        if line.message.contains(target) {
            line.message = line.message.replace(target, &shown);
        }
    }
}

/// An outcome for a probe that never ran (rejected by a limit, bad target).
pub fn refused(reason: FailureReason, message: String) -> ProbeOutcome {
    let mut rec = ProbeRecorder::new();
    rec.fail(reason, message);
    finish(rec, false, Duration::ZERO)
}

fn finish(mut rec: ProbeRecorder, success: bool, duration: Duration) -> ProbeOutcome {
    rec.gauge(
        "probe_duration_seconds",
        "Returns how long the probe took to complete in seconds",
        duration.as_secs_f64(),
    );
    rec.gauge(
        "probe_success",
        "Displays whether or not the probe was a success",
        if success { 1.0 } else { 0.0 },
    );
    let failure = if success {
        None
    } else {
        Some(rec.failure().unwrap_or(FailureReason::Other))
    };
    let log = rec.take_log();
    ProbeOutcome {
        success,
        duration,
        families: rec.into_families(),
        log,
        failure,
        finished_at: SystemTime::now(),
    }
}

async fn dispatch(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    match req.module.prober {
        ProberKind::Http => http::probe(req, env, rec).await,
        ProberKind::Tcp => tcp::probe(req, env, rec).await,
        ProberKind::Dns => dns::probe(req, env, rec).await,
        ProberKind::Icmp => icmp::probe(req, env, rec).await,
        ProberKind::Grpc => grpc::probe(req, env, rec).await,
        ProberKind::Postgres => postgres::probe(req, env, rec).await,
        ProberKind::Mysql => mysql::probe(req, env, rec).await,
        ProberKind::Redis => redis::probe(req, env, rec).await,
        ProberKind::Mongodb => mongodb::probe(req, env, rec).await,
        ProberKind::Ssh => ssh::probe(req, env, rec).await,
        ProberKind::SshAudit => ssh_audit::probe(req, env, rec).await,
        ProberKind::Unix => unix::probe(req, env, rec).await,
        ProberKind::Websocket => websocket::probe(req, env, rec).await,
    }
}
