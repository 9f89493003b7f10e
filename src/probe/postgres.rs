//! The postgres prober: a pooled connection (tokio-postgres), the server's role from
//! `pg_is_in_recovery()`, then the health query (default `SELECT 1`) compared with
//! `expected_result`. Metrics: see `db.rs`.

use super::db::{self, DbTarget};
use super::pools::{self, ManagedPool, PoolKind, PoolStats, Tracked};
use super::recorder::{FailureReason, ProbeRecorder};
use super::tls::TlsClient;
use super::{ProbeEnv, ProbeRequest};
use crate::config::{PostgresProbe, ProberKind, Secret};
use deadpool::managed::{Manager, Metrics, RecycleError, RecycleResult};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, Socket};

/// `application_name` of every connection, so operators can tell probes apart in
/// `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "siembox-exporter";

pub type PgPool = ManagedPool<PgManager>;

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let default_cfg = PostgresProbe::default();
    let cfg = req.module.postgres.as_ref().unwrap_or(&default_cfg);
    let Some(target) = db::checked_target(ProberKind::Postgres, req.target, true, env, rec).await
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
    let tls = if cfg.tls.unwrap_or(false) {
        let tls_cfg = cfg.tls_config.clone().unwrap_or_default();
        match env.tls_client(req.module_name, "postgres", &tls_cfg, &[]) {
            Ok(c) => Some(c),
            Err(e) => {
                rec.fail(FailureReason::Config, e);
                return false;
            }
        }
    } else {
        None
    };
    let hash = db::settings_hash(&[&target, cfg], password.as_ref());
    let pool = env.pools.get_or_build(
        PoolKind::Postgres,
        req.module_name,
        req.module,
        req.target,
        hash,
        |stats| {
            let manager = PgManager::new(&target, cfg, password.as_ref(), tls, stats.clone());
            ManagedPool::new(manager, PoolKind::Postgres, &cfg.pool, stats)
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
        "Connecting to PostgreSQL at {} as {:?}",
        target.address(),
        cfg.user.as_deref().unwrap_or("postgres")
    ));
    let ok = run(req, cfg, &pool, rec).await;
    db::record_pool_state(rec, pools::PoolHandle::state(&*pool));
    ok
}

async fn run(
    req: &ProbeRequest<'_>,
    cfg: &PostgresProbe,
    pool: &PgPool,
    rec: &mut ProbeRecorder,
) -> bool {
    let Some(mut conn) = db::lease(pool, req.deadline, rec, classify).await else {
        return false;
    };

    match first_value(&conn.conn, "SELECT pg_is_in_recovery()").await {
        Ok(v) => db::record_replica(rec, v.as_deref() == Some("t")),
        Err(e) => {
            fail_query(rec, &e, "role check (pg_is_in_recovery)");
            if e.as_db_error().is_some() {
                conn.set_clean();
            }
            return false;
        }
    }
    let query = cfg.query.as_deref().unwrap_or("SELECT 1");
    let start = Instant::now();
    let result = first_value(&conn.conn, query).await;
    db::record_phase(rec, "query", start.elapsed());
    match result {
        Ok(v) => {
            conn.set_clean();
            rec.debug(format!("Health query returned {v:?}"));
            db::check_expected(rec, cfg.expected_result.as_deref(), v.as_deref())
        }
        Err(e) => {
            if e.as_db_error().is_some() {
                conn.set_clean();
            }
            fail_query(rec, &e, "health query");
            false
        }
    }
}

/// The first column of the first row, as the server's text.
async fn first_value(client: &Client, sql: &str) -> Result<Option<String>, tokio_postgres::Error> {
    let messages = client.simple_query(sql).await?;
    Ok(messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .flatten())
}

fn fail_query(rec: &mut ProbeRecorder, e: &tokio_postgres::Error, what: &str) {
    let reason = match e.as_db_error() {
        Some(_) => FailureReason::Status,
        None => classify(e),
    };
    rec.fail(reason, format!("{what} failed: {}", db::error_chain(e)));
}

/// Maps a connection error to a failure reason: authentication (SQLSTATE class 28), unknown
/// database, refused, TLS, timeout.
fn classify(e: &tokio_postgres::Error) -> FailureReason {
    if let Some(dbe) = e.as_db_error() {
        let code = dbe.code().code();
        return if code.starts_with("28") {
            FailureReason::Auth
        } else if code == "3D000" {
            FailureReason::Config
        } else {
            FailureReason::Protocol
        };
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<TlsFail>() {
            return FailureReason::Tls;
        }
        cur = err.source();
    }
    if let Some(io) = db::io_error_in(e) {
        return FailureReason::from_io(io);
    }
    let text = e.to_string();
    if text.contains("timeout") {
        FailureReason::Timeout
    } else if text.contains("TLS") || text.contains("SSL") {
        FailureReason::Tls
    } else {
        FailureReason::Connection
    }
}

/// Opens and recycles PostgreSQL connections for one (module, target).
pub struct PgManager {
    config: tokio_postgres::Config,
    tls: Option<PgTls>,
    stats: Arc<PoolStats>,
    max_lifetime: Duration,
}

impl PgManager {
    pub fn new(
        target: &DbTarget,
        cfg: &PostgresProbe,
        password: Option<&Secret>,
        tls: Option<Arc<TlsClient>>,
        stats: Arc<PoolStats>,
    ) -> Self {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&target.host)
            .port(target.port)
            .user(cfg.user.as_deref().unwrap_or("postgres"))
            .application_name(APPLICATION_NAME)
            .ssl_mode(if tls.is_some() {
                tokio_postgres::config::SslMode::Require
            } else {
                tokio_postgres::config::SslMode::Disable
            });
        // Connect to the checked address; TLS still verifies the name.
        if let Some(ip) = target.pinned {
            config.hostaddr(ip);
        }
        if let Some(dbname) = target.database.as_deref().or(cfg.database.as_deref()) {
            config.dbname(dbname);
        }
        if let Some(p) = password {
            config.password(p.expose());
        }
        PgManager {
            config,
            tls: tls.map(|client| PgTls { client }),
            stats,
            max_lifetime: cfg.pool.max_lifetime.get(),
        }
    }
}

impl Manager for PgManager {
    type Type = Tracked<Client>;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<Tracked<Client>, tokio_postgres::Error> {
        let start = Instant::now();
        let client = match &self.tls {
            None => {
                let (client, connection) = self.config.connect(NoTls).await?;
                tokio::spawn(connection);
                client
            }
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                tokio::spawn(connection);
                client
            }
        };
        let connect_time = start.elapsed();
        let version = first_value(&client, "SHOW server_version")
            .await?
            .unwrap_or_default();
        Ok(Tracked::new(
            client,
            version,
            connect_time,
            PoolKind::Postgres,
            self.stats.clone(),
        ))
    }

    async fn recycle(
        &self,
        conn: &mut Tracked<Client>,
        metrics: &Metrics,
    ) -> RecycleResult<tokio_postgres::Error> {
        if conn.conn.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        if pools::expired(self.max_lifetime, metrics) {
            return Err(RecycleError::message("connection past max_lifetime"));
        }
        Ok(())
    }
}

/// TLS for tokio-postgres through the module's `TlsClient` (rustls, same verification as every
/// other prober).
#[derive(Clone)]
struct PgTls {
    client: Arc<TlsClient>,
}

/// A TLS failure while connecting, told apart from other connection errors.
#[derive(Debug)]
struct TlsFail(String);

impl std::fmt::Display for TlsFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsFail {}

impl MakeTlsConnect<Socket> for PgTls {
    type Stream = PgTlsStream;
    type TlsConnect = PgTlsConnect;
    type Error = TlsFail;

    fn make_tls_connect(&mut self, domain: &str) -> Result<PgTlsConnect, TlsFail> {
        Ok(PgTlsConnect {
            client: self.client.clone(),
            host: domain.to_string(),
        })
    }
}

struct PgTlsConnect {
    client: Arc<TlsClient>,
    host: String,
}

impl TlsConnect<Socket> for PgTlsConnect {
    type Stream = PgTlsStream;
    type Error = TlsFail;
    type Future = Pin<Box<dyn Future<Output = Result<PgTlsStream, TlsFail>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            self.client
                .connect_verified(stream, &self.host)
                .await
                .map(PgTlsStream)
                .map_err(TlsFail)
        })
    }
}

struct PgTlsStream(tokio_rustls::client::TlsStream<Socket>);

impl AsyncRead for PgTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PgTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tokio_postgres::tls::TlsStream for PgTlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
