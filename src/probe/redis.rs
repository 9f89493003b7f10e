//! The redis prober: a pooled connection (redis-rs, one exclusive connection per probe), the role
//! from `INFO replication`, then the health command (default `PING`) compared with
//! `expected_result`. Connections are named `siembox-exporter` (`CLIENT SETNAME`).

use super::db::{self, DbTarget};
use super::pools::{self, ManagedPool, PoolKind, PoolStats, Tracked};
use super::recorder::{FailureReason, ProbeRecorder};
use super::{ProbeEnv, ProbeRequest};
use crate::config::{ProberKind, RedisProbe, Secret};
use deadpool::managed::{Manager, Metrics, RecycleError, RecycleResult};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const CLIENT_NAME: &str = "siembox-exporter";

pub type RedisPool = ManagedPool<RedisManager>;

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let default_cfg = RedisProbe::default();
    let cfg = req.module.redis.as_ref().unwrap_or(&default_cfg);
    let Some(target) = db::checked_target(ProberKind::Redis, req.target, !cfg.tls, env, rec).await
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
    let command = db::split_command(cfg.command.as_deref().unwrap_or("PING"));
    if command.is_empty() {
        rec.fail(FailureReason::Config, "redis.command is empty");
        return false;
    }
    let hash = db::settings_hash(&[&target, cfg], password.as_ref());
    let pool = env.pools.get_or_build(
        PoolKind::Redis,
        req.module_name,
        req.module,
        req.target,
        hash,
        |stats| {
            let manager = RedisManager::new(&target, cfg, password.as_ref(), stats.clone())?;
            ManagedPool::new(manager, PoolKind::Redis, &cfg.pool, stats)
        },
    );
    let pool = match pool {
        Ok(p) => p,
        Err(e) => {
            rec.fail(FailureReason::Config, e);
            return false;
        }
    };
    rec.debug(format!("Connecting to Redis at {}", target.address()));
    let ok = run(req, cfg, &command, &pool, rec).await;
    db::record_pool_state(rec, pools::PoolHandle::state(&*pool));
    ok
}

async fn run(
    req: &ProbeRequest<'_>,
    cfg: &RedisProbe,
    command: &[String],
    pool: &RedisPool,
    rec: &mut ProbeRecorder,
) -> bool {
    let Some(mut conn) = db::lease(pool, req.deadline, rec, classify).await else {
        return false;
    };

    match info_field(&mut conn.conn, "replication", "role").await {
        Ok(role) => db::record_replica(rec, matches!(role.as_deref(), Some("slave" | "replica"))),
        Err(e) => {
            rec.fail(
                classify(&e),
                format!("role check (INFO replication) failed: {e}"),
            );
            return false;
        }
    }
    let mut cmd = redis::cmd(&command[0]);
    for arg in &command[1..] {
        cmd.arg(arg);
    }
    let start = Instant::now();
    let result = cmd.query_async::<Value>(&mut conn.conn).await;
    db::record_phase(rec, "query", start.elapsed());
    match result {
        Ok(v) => {
            conn.set_clean();
            let text = value_text(&v);
            rec.debug(format!("Command {:?} returned {text:?}", command[0]));
            db::check_expected(rec, cfg.expected_result.as_deref(), text.as_deref())
        }
        Err(e) => {
            let reason = if matches!(e.kind(), redis::ErrorKind::Server(_)) {
                conn.set_clean();
                FailureReason::Status
            } else {
                classify(&e)
            };
            rec.fail(reason, format!("command {:?} failed: {e}", command[0]));
            false
        }
    }
}

/// One `field:value` line of an `INFO <section>` reply.
async fn info_field(
    conn: &mut MultiplexedConnection,
    section: &str,
    field: &str,
) -> redis::RedisResult<Option<String>> {
    let info: String = redis::cmd("INFO").arg(section).query_async(conn).await?;
    Ok(info.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    }))
}

/// A reply as text: strings and numbers as such, `OK` for status OK, the first element of an
/// array; `None` for nil.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Nil => None,
        Value::Int(i) => Some(i.to_string()),
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Okay => Some("OK".into()),
        Value::Double(d) => Some(d.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Array(items) | Value::Set(items) => items.first().and_then(value_text),
        _ => Some(format!("{v:?}")),
    }
}

fn classify(e: &redis::RedisError) -> FailureReason {
    let text = e.to_string();
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
        || text.contains("NOPERM")
    {
        FailureReason::Auth
    } else if e.kind() == redis::ErrorKind::InvalidClientConfig {
        FailureReason::Config
    } else if e.is_connection_refusal() {
        FailureReason::ConnectionRefused
    } else if e.is_timeout() {
        FailureReason::Timeout
    } else if text.contains("TLS") || text.contains("certificate") {
        FailureReason::Tls
    } else if e.is_io_error() {
        FailureReason::Connection
    } else {
        FailureReason::Protocol
    }
}

/// Opens and recycles Redis connections for one (module, target).
pub struct RedisManager {
    client: Client,
    stats: Arc<PoolStats>,
    max_lifetime: Duration,
}

impl RedisManager {
    pub fn new(
        target: &DbTarget,
        cfg: &RedisProbe,
        password: Option<&Secret>,
        stats: Arc<PoolStats>,
    ) -> Result<Self, String> {
        let db: i64 = match (&target.database, cfg.db) {
            (Some(d), _) => d.parse().unwrap_or(0),
            (None, Some(d)) => d,
            (None, None) => 0,
        };
        let tls = cfg.tls_config.clone().unwrap_or_default();
        let scheme = if cfg.tls { "rediss" } else { "redis" };
        let insecure = if cfg.tls && tls.insecure_skip_verify {
            "#insecure"
        } else {
            ""
        };
        // Plain connections go to the checked address when pinned. redis-rs takes the TLS name
        // from the address, so a TLS connection keeps the name (README: the rebinding window).
        let address = match target.pinned {
            Some(ip) if !cfg.tls => std::net::SocketAddr::new(ip, target.port).to_string(),
            _ => target.address(),
        };
        let url = format!("{scheme}://{address}/{db}{insecure}");
        let info = url
            .into_connection_info()
            .map_err(|e| format!("redis connection settings: {e}"))?;
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &cfg.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = password {
            settings = settings.set_password(p.expose());
        }
        let info = info.set_redis_settings(settings);
        let custom_certs = tls.ca_file.is_some() || tls.ca.is_some() || tls.cert_file.is_some();
        let client = if cfg.tls && custom_certs {
            Client::build_with_tls(info, certificates(&tls)?)
        } else {
            Client::open(info)
        }
        .map_err(|e| format!("redis client: {e}"))?;
        Ok(RedisManager {
            client,
            stats,
            max_lifetime: cfg.pool.max_lifetime.get(),
        })
    }
}

fn certificates(tls: &crate::config::TlsConfig) -> Result<redis::TlsCertificates, String> {
    let root_cert = match (&tls.ca_file, &tls.ca) {
        (Some(f), _) => Some(
            f.read()
                .map_err(|e| format!("cannot read ca_file {}: {e}", f.0.display()))?,
        ),
        (None, Some(s)) => Some(s.clone().into_bytes()),
        _ => None,
    };
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
            client_cert: c
                .read()
                .map_err(|e| format!("cannot read cert_file {}: {e}", c.0.display()))?,
            client_key: k
                .read()
                .map_err(|e| format!("cannot read key_file {}: {e}", k.0.display()))?,
        }),
        (None, None) => None,
        _ => return Err("tls_config: cert_file and key_file must be given together".into()),
    };
    Ok(redis::TlsCertificates {
        client_tls,
        root_cert,
    })
}

impl Manager for RedisManager {
    type Type = Tracked<MultiplexedConnection>;
    type Error = redis::RedisError;

    async fn create(&self) -> Result<Tracked<MultiplexedConnection>, redis::RedisError> {
        let start = Instant::now();
        // No driver timeouts: the probe's deadline bounds every wait.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let connect_time = start.elapsed();
        // Named so operators see probe connections in CLIENT LIST; refused names are harmless.
        let _: redis::RedisResult<Value> = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(CLIENT_NAME)
            .query_async(&mut conn)
            .await;
        let version = info_field(&mut conn, "server", "redis_version")
            .await?
            .unwrap_or_default();
        Ok(Tracked::new(
            conn,
            version,
            connect_time,
            PoolKind::Redis,
            self.stats.clone(),
        ))
    }

    async fn recycle(
        &self,
        _conn: &mut Tracked<MultiplexedConnection>,
        metrics: &Metrics,
    ) -> RecycleResult<redis::RedisError> {
        if pools::expired(self.max_lifetime, metrics) {
            return Err(RecycleError::message("connection past max_lifetime"));
        }
        Ok(())
    }
}
