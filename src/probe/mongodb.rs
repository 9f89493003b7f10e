//! The mongodb prober: the driver's own connection pool (one `Client` per module and target,
//! direct connection to the target, so a secondary is probed as itself), the version from
//! `buildInfo` (once per pool), the role from `hello` (`secondary: true` is a replica), then the
//! health command (default `ping`, or a whole command document), whose reply field
//! `result_field` (default `ok`) is compared with `expected_result` when that is set.
//!
//! The driver hides its pool, so this prober gates probes with a semaphore of `max_size`
//! permits (pool exhaustion = no permit within `acquire_timeout`) and counts connections from
//! the driver's CMAP events. `max_lifetime` has no equivalent in the driver and is not applied;
//! the driver connects inside its pool, so connect time is part of the `query` phase.
//!
//! Tested against FerretDB (a MongoDB wire-protocol server) in tests/mongodb.rs; no MongoDB
//! server itself runs on the development machine.

use super::db::{self, DbTarget};
use super::pools::{AcquireError, PoolHandle, PoolKind, PoolState, PoolStats};
use super::recorder::{FailureReason, ProbeRecorder};
use super::{ProbeEnv, ProbeRequest};
use crate::config::{MongoAuthMechanism, MongoProbe, PoolConfig, ProberKind, Secret};
use mongodb::bson::{doc, Document};
use mongodb::event::cmap::CmapEvent;
use mongodb::event::EventHandler;
use mongodb::options::{AuthMechanism, ClientOptions, Credential, ServerAddress, Tls, TlsOptions};
use mongodb::Client;
use std::any::Any;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OnceCell, Semaphore};

pub const APP_NAME: &str = "siembox-exporter";

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let default_cfg = MongoProbe::default();
    let cfg = req.module.mongodb.as_ref().unwrap_or(&default_cfg);
    let Some(target) =
        db::checked_target(ProberKind::Mongodb, req.target, !cfg.tls, env, rec).await
    else {
        return false;
    };
    let password = match db::password(&cfg.password, &cfg.password_file, &cfg.password_env) {
        Ok(p) => p,
        Err(e) => {
            rec.fail(FailureReason::Config, e);
            return false;
        }
    };
    // Shorter than the probe's timeout, so an unreachable server fails with the driver's reason
    // (refused, TLS, auth) rather than with the probe's deadline.
    let selection_timeout = req
        .module
        .timeout
        .map(|t| t.get())
        .unwrap_or(Duration::from_secs(5))
        .mul_f64(0.8)
        .max(Duration::from_millis(100));
    let hash = db::settings_hash(&[&target, cfg, &selection_timeout], password.as_ref());
    let pool = env.pools.get_or_build(
        PoolKind::Mongodb,
        req.module_name,
        req.module,
        req.target,
        hash,
        |stats| {
            // Parsed once per pool (the settings hash covers the command), not per probe.
            let command = cfg.command_document().map_err(|e| format!("mongodb.{e}"))?;
            let opts = client_options(&target, cfg, password.as_ref(), selection_timeout);
            MongoPool::new(opts, &cfg.pool, command, stats)
        },
    );
    let pool = match pool {
        Ok(p) => p,
        Err(e) => {
            rec.fail(FailureReason::Config, e);
            return false;
        }
    };
    rec.debug(format!("Connecting to MongoDB at {}", target.address()));
    let ok = run(req, cfg, &pool, rec).await;
    db::record_pool_state(rec, pool.state());
    ok
}

async fn run(
    req: &ProbeRequest<'_>,
    cfg: &MongoProbe,
    pool: &MongoPool,
    rec: &mut ProbeRecorder,
) -> bool {
    db::init_phases(rec);
    let start = Instant::now();
    let permit = pool.acquire(req.deadline).await;
    db::record_phase(rec, "acquire", start.elapsed());
    let _permit = match permit {
        Ok(p) => p,
        Err(e) => {
            db::fail_acquire(rec, e, &pool.describe(), classify);
            return false;
        }
    };
    let admin = pool.client.database("admin");
    let start = Instant::now();
    let version = pool
        .version
        .get_or_try_init(|| async {
            let info = admin.run_command(doc! {"buildInfo": 1}).await?;
            Ok::<_, mongodb::error::Error>(info.get_str("version").unwrap_or_default().to_string())
        })
        .await;
    match version {
        Ok(v) => db::record_server_version(rec, v),
        Err(e) => {
            rec.fail(classify(&e), format!("buildInfo failed: {e}"));
            return false;
        }
    }
    match admin.run_command(doc! {"hello": 1}).await {
        Ok(hello) => db::record_replica(rec, is_secondary(&hello)),
        Err(e) => {
            rec.fail(classify(&e), format!("hello failed: {e}"));
            return false;
        }
    }
    let command = pool.command.clone();
    let name = command.keys().next().cloned().unwrap_or_default();
    let database = pool
        .client
        .database(cfg.database.as_deref().unwrap_or("admin"));
    let result = database.run_command(command).await;
    db::record_phase(rec, "query", start.elapsed());
    match result {
        Ok(reply) => {
            let field = cfg.result_field.as_deref().unwrap_or("ok");
            let got = field_text(&reply, field);
            rec.debug(format!("Command {name:?} returned {field}={got:?}"));
            db::check_expected(rec, cfg.expected_result.as_deref(), got.as_deref())
        }
        Err(e) => {
            rec.fail(classify(&e), format!("command {name:?} failed: {e}"));
            false
        }
    }
}

/// The reply's field at dotted `path` as text: numbers without a needless `.0` (`ok: 1.0` is
/// `1`), strings as they are, anything else as relaxed extended JSON.
pub fn field_text(reply: &Document, path: &str) -> Option<String> {
    use mongodb::bson::Bson;
    let mut value = None;
    let mut doc = Some(reply);
    for key in path.split('.') {
        let v = doc?.get(key)?;
        doc = v.as_document();
        value = Some(v);
    }
    Some(match value? {
        Bson::Double(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Bson::Double(f) => f.to_string(),
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) => i.to_string(),
        Bson::String(s) => s.clone(),
        Bson::Boolean(b) => b.to_string(),
        other => other.clone().into_relaxed_extjson().to_string(),
    })
}

/// `hello` says `secondary: true` on a replica-set secondary.
pub fn is_secondary(hello: &Document) -> bool {
    hello.get_bool("secondary").unwrap_or(false)
}

fn classify(e: &mongodb::error::Error) -> FailureReason {
    use mongodb::error::ErrorKind;
    match &*e.kind {
        ErrorKind::Authentication { .. } => FailureReason::Auth,
        ErrorKind::Io(io) => FailureReason::from_io(io),
        ErrorKind::DnsResolve { .. } => FailureReason::Dns,
        ErrorKind::InvalidTlsConfig { .. } => FailureReason::Config,
        ErrorKind::Command(c) if c.code == 18 || c.code == 13 => FailureReason::Auth,
        ErrorKind::Command(_) => FailureReason::Status,
        ErrorKind::ServerSelection { message, .. } => {
            if message.contains("Connection refused") {
                FailureReason::ConnectionRefused
            } else if message.contains("Authentication") || message.contains("auth") {
                FailureReason::Auth
            } else if message.contains("tls")
                || message.contains("TLS")
                || message.contains("certificate")
            {
                FailureReason::Tls
            } else {
                FailureReason::Connection
            }
        }
        _ => FailureReason::Connection,
    }
}

/// The driver's options for one target: direct connection, pool sizes, credentials, TLS.
pub fn client_options(
    target: &DbTarget,
    cfg: &MongoProbe,
    password: Option<&Secret>,
    selection_timeout: Duration,
) -> ClientOptions {
    let mut opts = ClientOptions::default();
    // The checked address when pinned (plain connections only: over TLS the driver needs the
    // name, and `checked_target` only lets a name through that the allow-list names).
    let host = match target.pinned {
        Some(ip) if !cfg.tls => ip.to_string(),
        _ => target.host.clone(),
    };
    opts.hosts = vec![ServerAddress::Tcp {
        host,
        port: Some(target.port),
    }];
    opts.direct_connection = Some(true);
    opts.app_name = Some(APP_NAME.into());
    opts.max_pool_size = Some(cfg.pool.max_size.max(1) as u32);
    opts.min_pool_size = Some(cfg.pool.min_idle as u32);
    opts.max_idle_time = Some(cfg.pool.idle_timeout.get());
    opts.server_selection_timeout = Some(selection_timeout);
    opts.connect_timeout = Some(selection_timeout);
    if let Some(user) = &cfg.username {
        let mechanism = cfg.auth_mechanism.map(|m| match m {
            MongoAuthMechanism::ScramSha256 => AuthMechanism::ScramSha256,
            MongoAuthMechanism::ScramSha1 => AuthMechanism::ScramSha1,
            MongoAuthMechanism::Plain => AuthMechanism::Plain,
        });
        opts.credential = Some(
            Credential::builder()
                .username(user.clone())
                .password(password.map(|p| p.expose().to_string()))
                .source(cfg.auth_source.clone())
                .mechanism(mechanism)
                .build(),
        );
    }
    if cfg.tls {
        let t = cfg.tls_config.clone().unwrap_or_default();
        let tls = TlsOptions::builder()
            .allow_invalid_certificates(t.insecure_skip_verify.then_some(true))
            .ca_file_path(t.ca_file.map(|f| f.0))
            // The driver reads certificate and key from one PEM file.
            .cert_key_file_path(t.cert_file.map(|f| f.0))
            .build();
        opts.tls = Some(Tls::Enabled(tls));
    }
    opts
}

#[derive(Default)]
struct Counts {
    open: AtomicI64,
    in_use: AtomicI64,
}

/// A driver `Client` (which pools its connections) and the gate that bounds concurrent probes.
pub struct MongoPool {
    client: Client,
    gate: Arc<Semaphore>,
    cfg: PoolConfig,
    counts: Arc<Counts>,
    stats: Arc<PoolStats>,
    version: OnceCell<String>,
    /// The health command, from `MongoProbe::command_document`.
    command: Document,
}

impl MongoPool {
    pub fn new(
        mut opts: ClientOptions,
        cfg: &PoolConfig,
        command: Document,
        stats: Arc<PoolStats>,
    ) -> Result<Self, String> {
        let counts = Arc::new(Counts::default());
        let (c, s) = (counts.clone(), stats.clone());
        opts.cmap_event_handler = Some(EventHandler::callback(move |ev: CmapEvent| match ev {
            CmapEvent::ConnectionCreated(_) => {
                c.open.fetch_add(1, Ordering::Relaxed);
                s.connection_created(PoolKind::Mongodb);
            }
            CmapEvent::ConnectionClosed(_) => {
                c.open.fetch_sub(1, Ordering::Relaxed);
                s.connection_closed(PoolKind::Mongodb);
            }
            CmapEvent::ConnectionCheckedOut(_) => {
                c.in_use.fetch_add(1, Ordering::Relaxed);
            }
            CmapEvent::ConnectionCheckedIn(_) => {
                c.in_use.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }));
        let client =
            Client::with_options(opts).map_err(|e| format!("mongodb client options: {e}"))?;
        Ok(MongoPool {
            client,
            gate: Arc::new(Semaphore::new(cfg.max_size.max(1))),
            cfg: cfg.clone(),
            counts,
            stats,
            version: OnceCell::new(),
            command,
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "max_size {}, acquire_timeout {:?}",
            self.cfg.max_size,
            self.cfg.acquire_timeout.get()
        )
    }

    async fn acquire(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, AcquireError<mongodb::error::Error>> {
        let start = Instant::now();
        let waited = self.gate.available_permits() == 0;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let wait = self.cfg.acquire_timeout.get().min(remaining);
        let result = tokio::time::timeout(wait, self.gate.clone().acquire_owned()).await;
        self.stats
            .observe_acquire(PoolKind::Mongodb, waited, start.elapsed().as_secs_f64());
        match result {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(AcquireError::Other("pool closed".into())),
            Err(_) => {
                self.stats.pool_exhausted(PoolKind::Mongodb);
                Err(AcquireError::Exhausted(start.elapsed()))
            }
        }
    }
}

impl PoolHandle for MongoPool {
    fn kind(&self) -> PoolKind {
        PoolKind::Mongodb
    }

    fn state(&self) -> PoolState {
        let open = self.counts.open.load(Ordering::Relaxed).max(0) as usize;
        // The driver reports a check-in after the command's reply has reached the probe, so
        // its count lags; a connection is in use only while a probe holds a gate permit.
        let holders = self
            .cfg
            .max_size
            .max(1)
            .saturating_sub(self.gate.available_permits());
        let in_use = (self.counts.in_use.load(Ordering::Relaxed).max(0) as usize).min(holders);
        PoolState {
            open,
            idle: open.saturating_sub(in_use),
            in_use: in_use.min(open),
            max: self.cfg.max_size.max(1),
        }
    }

    fn config(&self) -> &PoolConfig {
        &self.cfg
    }

    /// The driver closes idle connections itself (`max_idle_time`).
    fn prune(&self) {}

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn mongo_section(yaml: &str) -> MongoProbe {
        let cfg = Config::from_yaml_str(yaml, "test.yml").unwrap_or_else(|e| panic!("{e}"));
        cfg.modules["m"].mongodb.clone().unwrap()
    }

    #[test]
    fn options_connect_directly_with_pool_sizes_credentials_and_tls() {
        let cfg = mongo_section(
            "modules:\n  m:\n    prober: mongodb\n    mongodb:\n      username: mon\n      password: s3cret\n      auth_source: admin\n      tls: true\n      tls_config: {insecure_skip_verify: true}\n      pool: {max_size: 7, min_idle: 2, idle_timeout: 90s}\n",
        );
        let target = db::parse_target(ProberKind::Mongodb, "mongodb://db1:27018").unwrap();
        let secret = Secret::new("s3cret");
        let opts = client_options(&target, &cfg, Some(&secret), Duration::from_secs(4));
        assert_eq!(
            opts.hosts,
            vec![ServerAddress::Tcp {
                host: "db1".into(),
                port: Some(27018)
            }]
        );
        assert_eq!(opts.direct_connection, Some(true));
        assert_eq!(opts.max_pool_size, Some(7));
        assert_eq!(opts.min_pool_size, Some(2));
        assert_eq!(opts.max_idle_time, Some(Duration::from_secs(90)));
        assert_eq!(opts.server_selection_timeout, Some(Duration::from_secs(4)));
        assert_eq!(opts.app_name.as_deref(), Some(APP_NAME));
        let cred = opts.credential.as_ref().unwrap();
        assert_eq!(cred.username.as_deref(), Some("mon"));
        assert_eq!(cred.password.as_deref(), Some("s3cret"));
        assert_eq!(cred.source.as_deref(), Some("admin"));
        match &opts.tls {
            Some(Tls::Enabled(t)) => assert_eq!(t.allow_invalid_certificates, Some(true)),
            other => panic!("TLS not enabled: {other:?}"),
        }
        // The module as /config shows it never holds the password.
        let shown = serde_json::to_string(&cfg).unwrap();
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn no_username_means_no_credential_and_no_tls_by_default() {
        let cfg = mongo_section("modules:\n  m:\n    prober: mongodb\n    mongodb: {}\n");
        let target = db::parse_target(ProberKind::Mongodb, "db1").unwrap();
        let opts = client_options(&target, &cfg, None, Duration::from_secs(1));
        assert!(opts.credential.is_none());
        assert!(opts.tls.is_none());
        assert_eq!(opts.max_pool_size, Some(4));
    }

    #[test]
    fn reply_fields_read_as_text_by_dotted_path() {
        let reply = doc! {"ok": 1.0, "n": 3_i64, "version": "7.0.77",
        "connections": {"current": 4_i32, "ratio": 0.5}, "flag": true};
        assert_eq!(field_text(&reply, "ok").as_deref(), Some("1"));
        assert_eq!(field_text(&reply, "n").as_deref(), Some("3"));
        assert_eq!(field_text(&reply, "version").as_deref(), Some("7.0.77"));
        assert_eq!(
            field_text(&reply, "connections.current").as_deref(),
            Some("4")
        );
        assert_eq!(
            field_text(&reply, "connections.ratio").as_deref(),
            Some("0.5")
        );
        assert_eq!(field_text(&reply, "flag").as_deref(), Some("true"));
        assert_eq!(field_text(&reply, "missing"), None);
        assert_eq!(field_text(&reply, "version.deeper"), None);
    }

    #[test]
    fn command_is_a_name_or_an_extended_json_document() {
        let with = |c: &str| MongoProbe {
            command: Some(c.into()),
            ..MongoProbe::default()
        };
        assert_eq!(
            MongoProbe::default().command_document().unwrap(),
            doc! {"ping": 1}
        );
        assert_eq!(
            with(" hello ").command_document().unwrap(),
            doc! {"hello": 1}
        );
        assert_eq!(
            with(r#"{"dbStats": 1, "scale": {"$numberLong": "1024"}}"#)
                .command_document()
                .unwrap(),
            doc! {"dbStats": 1, "scale": 1024_i64}
        );
        for bad in ["", "{", "{}", r#"{"a": {"$numberLong": "x"}}"#] {
            assert!(with(bad).command_document().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hello_secondary_flag_is_the_replica_role() {
        assert!(is_secondary(
            &doc! {"isWritablePrimary": false, "secondary": true}
        ));
        assert!(!is_secondary(
            &doc! {"isWritablePrimary": true, "secondary": false}
        ));
        assert!(!is_secondary(&doc! {"isWritablePrimary": true}));
    }
}
