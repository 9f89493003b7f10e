//! The mysql prober (MySQL and MariaDB): a pooled connection (mysql_async connections in our
//! deadpool pool, for the same exhaustion and close accounting as the other probers), the role
//! from `SHOW REPLICA STATUS` (`SHOW SLAVE STATUS` on older servers; a replica when it returns a
//! row), then the health query (default `SELECT 1`) compared with `expected_result`.

use super::db::{self, DbTarget};
use super::pools::{self, ManagedPool, PoolKind, PoolStats, Tracked};
use super::recorder::{FailureReason, ProbeRecorder};
use super::{ProbeEnv, ProbeRequest};
use crate::config::{MysqlProbe, ProberKind, Secret};
use deadpool::managed::{Manager, Metrics, RecycleError, RecycleResult};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, SslOpts, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type MysqlPool = ManagedPool<MysqlManager>;

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let default_cfg = MysqlProbe::default();
    let cfg = req.module.mysql.as_ref().unwrap_or(&default_cfg);
    let Some(target) = db::checked_target(ProberKind::Mysql, req.target, true, env, rec).await
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
    let hash = db::settings_hash(&[&target, cfg], password.as_ref());
    let pool = env.pools.get_or_build(
        PoolKind::Mysql,
        req.module_name,
        req.module,
        req.target,
        hash,
        |stats| {
            let manager = MysqlManager::new(&target, cfg, password.as_ref(), stats.clone());
            ManagedPool::new(manager, PoolKind::Mysql, &cfg.pool, stats)
        },
    );
    let pool = match pool {
        Ok(p) => p,
        Err(e) => {
            rec.fail(FailureReason::Config, e);
            return false;
        }
    };
    rec.debug(format!(
        "Connecting to MySQL at {} as {:?}",
        target.address(),
        cfg.user.as_deref().unwrap_or("root")
    ));
    let ok = run(req, cfg, &pool, rec).await;
    db::record_pool_state(rec, pools::PoolHandle::state(&*pool));
    ok
}

async fn run(
    req: &ProbeRequest<'_>,
    cfg: &MysqlProbe,
    pool: &MysqlPool,
    rec: &mut ProbeRecorder,
) -> bool {
    let Some(mut conn) = db::lease(pool, req.deadline, rec, classify).await else {
        return false;
    };

    match replica_status(&mut conn.conn).await {
        Ok(Some(is_replica)) => db::record_replica(rec, is_replica),
        Ok(None) => rec.debug(
            "Role unknown: SHOW REPLICA STATUS and SHOW SLAVE STATUS were refused (needs REPLICATION CLIENT or SLAVE MONITOR)",
        ),
        Err(e) => {
            rec.fail(classify(&e), format!("role check failed: {}", db::error_chain(&e)));
            return false;
        }
    }
    let query = cfg.query.as_deref().unwrap_or("SELECT 1");
    let start = Instant::now();
    let result = conn.conn.query_first::<Row, _>(query).await;
    db::record_phase(rec, "query", start.elapsed());
    match result {
        Ok(row) => {
            conn.set_clean();
            let v = row.and_then(|r| r.as_ref(0).and_then(value_text));
            rec.debug(format!("Health query returned {v:?}"));
            db::check_expected(rec, cfg.expected_result.as_deref(), v.as_deref())
        }
        Err(e) => {
            let reason = match &e {
                mysql_async::Error::Server(_) => {
                    conn.set_clean();
                    FailureReason::Status
                }
                other => classify(other),
            };
            rec.fail(
                reason,
                format!("health query failed: {}", db::error_chain(&e)),
            );
            false
        }
    }
}

/// `Some(true)` on a replica, `None` when the server refuses both statements (privileges).
async fn replica_status(conn: &mut Conn) -> Result<Option<bool>, mysql_async::Error> {
    for sql in ["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"] {
        match conn.query::<Row, _>(sql).await {
            Ok(rows) => return Ok(Some(!rows.is_empty())),
            Err(mysql_async::Error::Server(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// A column value as the text a client would print; `None` for NULL.
fn value_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::NULL => return None,
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        other => other.as_sql(true).trim_matches('\'').to_string(),
    })
}

/// Access denied (1045, and 1044/1698 for databases and plugins) is `auth`; unknown database
/// is `config`; I/O errors by their kind; TLS errors `tls`.
fn classify(e: &mysql_async::Error) -> FailureReason {
    match e {
        mysql_async::Error::Server(s) => match s.code {
            1044 | 1045 | 1698 | 1251 => FailureReason::Auth,
            1049 => FailureReason::Config,
            _ => FailureReason::Protocol,
        },
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => FailureReason::from_io(io),
        mysql_async::Error::Io(_) => FailureReason::Tls,
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => {
            FailureReason::Tls
        }
        mysql_async::Error::Driver(_) => FailureReason::Protocol,
        _ => FailureReason::Connection,
    }
}

/// Opens and recycles MySQL/MariaDB connections for one (module, target).
pub struct MysqlManager {
    opts: Opts,
    stats: Arc<PoolStats>,
    max_lifetime: Duration,
}

impl MysqlManager {
    pub fn new(
        target: &DbTarget,
        cfg: &MysqlProbe,
        password: Option<&Secret>,
        stats: Arc<PoolStats>,
    ) -> Self {
        let mut b = OptsBuilder::default()
            // The checked address when pinned; TLS then still verifies the name (below).
            .ip_or_hostname(
                target
                    .pinned
                    .map_or_else(|| target.host.clone(), |ip| ip.to_string()),
            )
            .tcp_port(target.port)
            .user(Some(cfg.user.clone().unwrap_or_else(|| "root".into())))
            .pass(password.map(|p| p.expose().to_string()))
            .db_name(target.database.clone().or_else(|| cfg.database.clone()))
            // Probe the TCP endpoint asked for, never a local socket found through it.
            .prefer_socket(false)
            .stmt_cache_size(0);
        if cfg.tls.unwrap_or(false) {
            b = b.ssl_opts(ssl_opts(cfg, target.pinned.map(|_| target.host.clone())));
        }
        MysqlManager {
            opts: b.into(),
            stats,
            max_lifetime: cfg.pool.max_lifetime.get(),
        }
    }
}

/// `pinned_name`: the name to verify when the connection goes to a pinned address.
fn ssl_opts(cfg: &MysqlProbe, pinned_name: Option<String>) -> SslOpts {
    use mysql_async::ClientIdentity;
    let tls = cfg.tls_config.clone().unwrap_or_default();
    let mut ssl = SslOpts::default()
        .with_danger_accept_invalid_certs(tls.insecure_skip_verify)
        .with_danger_skip_domain_validation(tls.insecure_skip_verify);
    if let Some(ca) = &tls.ca_file {
        ssl = ssl.with_root_certs(vec![ca.0.clone().into()]);
    } else if let Some(ca) = &tls.ca {
        ssl = ssl.with_root_certs(vec![ca.clone().into_bytes().into()]);
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        ssl = ssl.with_client_identity(Some(ClientIdentity::new(
            cert.0.clone().into(),
            key.0.clone().into(),
        )));
    }
    if let Some(name) = tls.server_name.clone().or(pinned_name) {
        ssl = ssl.with_danger_tls_hostname_override(Some(name));
    }
    ssl
}

impl Manager for MysqlManager {
    type Type = Tracked<Conn>;
    type Error = mysql_async::Error;

    async fn create(&self) -> Result<Tracked<Conn>, mysql_async::Error> {
        let start = Instant::now();
        let mut conn = Conn::new(self.opts.clone()).await?;
        let connect_time = start.elapsed();
        let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
        Ok(Tracked::new(
            conn,
            version.unwrap_or_default(),
            connect_time,
            PoolKind::Mysql,
            self.stats.clone(),
        ))
    }

    async fn recycle(
        &self,
        _conn: &mut Tracked<Conn>,
        metrics: &Metrics,
    ) -> RecycleResult<mysql_async::Error> {
        if pools::expired(self.max_lifetime, metrics) {
            return Err(RecycleError::message("connection past max_lifetime"));
        }
        Ok(())
    }
}
