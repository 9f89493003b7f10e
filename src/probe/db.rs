//! What the database and cache probers share: the target format (`host[:port]` or a URL without
//! credentials), passwords from the module config, the `probe_db_*` metrics and text comparison
//! of the health query's answer.
//!
//! Targets: `host`, `host:port`, `[v6]:port` (default ports 5432, 3306, 6379, 27017) or
//! `postgres://host:port/db`, `mysql://host:port/db`, `redis://host:port/0`, `mongodb://host:port`.
//! A target with credentials fails the probe with reason `config`; it is never logged.
//!
//! Metrics every database prober reports (besides `probe_success` and `probe_duration_seconds`):
//! - `probe_db_duration_seconds{phase}`: `acquire` (getting a pooled connection, connecting
//!   included), `connect` (opening a new connection; 0 when a pooled one was reused; always 0 for
//!   mongodb, whose driver connects inside its pool), `query` (the health query or command).
//! - `probe_db_connection_reused`: 1 when the probe ran on a connection opened earlier (not
//!   mongodb).
//! - `probe_db_server_info{version}`: 1, labelled with the server's version.
//! - `probe_db_is_replica`: 1 on a replica/secondary, 0 on a primary (absent when unknown, e.g.
//!   a MySQL user without the privilege to run `SHOW REPLICA STATUS`).
//! - `probe_db_expected_result_match`: 1 or 0, only when `expected_result` is set.
//! - `probe_db_pool_connections{state="idle|in_use"}`, `probe_db_pool_max_connections`: the
//!   state of this (module, target)'s pool after the probe.

use super::pools::{AcquireError, Lease, ManagedPool, PoolState, Tracked};
use super::recorder::{FailureReason, ProbeRecorder};
use super::{allow, ProbeEnv};
use crate::config::{ExistingFile, ProberKind, Secret, SecretSource};
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// A database target without credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbTarget {
    pub host: String,
    pub port: u16,
    /// Path of a URL target: database name (postgres, mysql) or index (redis).
    pub database: Option<String>,
    /// The address the driver must connect to instead of resolving `host` itself: set when
    /// only the allow-list's ranges allow the target (see `checked_target`). Part of the pool's
    /// settings, so a name that moves gets a new pool at its new, checked, address.
    pub pinned: Option<std::net::IpAddr>,
}

impl DbTarget {
    /// `host:port`, with brackets around an IPv6 host: safe to log.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why a target was refused. Never contains the target text: it may hold a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetError {
    Credentials,
    Invalid(String),
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::Credentials => f.write_str(
                "the target contains credentials (user or password); they are refused and not logged: credentials belong in the module config (user, password_file or password_env)",
            ),
            TargetError::Invalid(why) => write!(f, "invalid target: {why}"),
        }
    }
}

fn default_port(kind: ProberKind) -> u16 {
    match kind {
        ProberKind::Postgres => 5432,
        ProberKind::Mysql => 3306,
        ProberKind::Redis => 6379,
        _ => 27017,
    }
}

fn schemes(kind: ProberKind) -> &'static [&'static str] {
    match kind {
        ProberKind::Postgres => &["postgres", "postgresql"],
        ProberKind::Mysql => &["mysql", "mariadb"],
        ProberKind::Redis => &["redis", "rediss"],
        _ => &["mongodb"],
    }
}

/// Parses `host`, `host:port`, `[v6]:port` or `scheme://host[:port][/db]` for one prober.
pub fn parse_target(kind: ProberKind, target: &str) -> Result<DbTarget, TargetError> {
    let port = default_port(kind);
    if let Some((scheme, _)) = target.split_once("://") {
        let url = url::Url::parse(target).map_err(|e| {
            // A URL that does not parse may still carry a password: check before echoing.
            if target.contains('@') {
                TargetError::Credentials
            } else {
                TargetError::Invalid(format!("not a URL: {e}"))
            }
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        if !schemes(kind).contains(&scheme.to_ascii_lowercase().as_str()) {
            return Err(TargetError::Invalid(format!(
                "scheme {scheme:?} is not one of {:?}",
                schemes(kind)
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(TargetError::Invalid(
                "URL options (?…, #…) are not accepted; set them in the module config".into(),
            ));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => return Err(TargetError::Invalid("URL has no host".into())),
        };
        let path = url.path().trim_start_matches('/');
        let database = if path.is_empty() {
            None
        } else {
            let decoded = percent_encoding::percent_decode_str(path)
                .decode_utf8()
                .map_err(|_| TargetError::Invalid("database name is not UTF-8".into()))?;
            Some(decoded.into_owned())
        };
        if kind == ProberKind::Mongodb && database.is_some() {
            return Err(TargetError::Invalid(
                "a mongodb target has no path; the prober runs its command on admin".into(),
            ));
        }
        if kind == ProberKind::Redis {
            if let Some(db) = &database {
                if db.parse::<i64>().is_err() {
                    return Err(TargetError::Invalid(format!(
                        "redis database {db:?} is not a number"
                    )));
                }
            }
        }
        return Ok(DbTarget {
            host,
            pinned: None,
            port: url.port().unwrap_or(port),
            database,
        });
    }
    if target.contains('@') {
        return Err(TargetError::Credentials);
    }
    if target.contains('/') || target.contains('?') {
        return Err(TargetError::Invalid(format!(
            "expected host, host:port or {}://host:port",
            schemes(kind)[0]
        )));
    }
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| TargetError::Invalid("unclosed [ in IPv6 address".into()))?;
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None if after.is_empty() => port,
            None => return Err(TargetError::Invalid("junk after ]".into())),
        };
        (h.to_string(), port)
    } else {
        match target.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(TargetError::Invalid(
                    "an IPv6 address needs brackets, as in [::1]:5432".into(),
                ))
            }
            Some((h, p)) => (h.to_string(), parse_port(p)?),
            None => (target.to_string(), port),
        }
    };
    if host.is_empty() {
        return Err(TargetError::Invalid("no host".into()));
    }
    Ok(DbTarget {
        pinned: None,
        host,
        port,
        database: None,
    })
}

fn parse_port(p: &str) -> Result<u16, TargetError> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(TargetError::Invalid(format!("invalid port {p:?}"))),
    }
}

/// Parses the target, failing the probe with reason `config` (and a message that never repeats
/// the target) when it is unusable.
pub fn target_or_fail(kind: ProberKind, target: &str, rec: &mut ProbeRecorder) -> Option<DbTarget> {
    match parse_target(kind, target) {
        Ok(t) => Some(t),
        Err(e) => {
            rec.fail(FailureReason::Config, e.to_string());
            None
        }
    }
}

/// The target of a database probe, checked against the allow-list: the drivers resolve names
/// themselves, so where only address ranges allow the target, every address the name has now
/// must be allowed, and the driver is pinned to the first of them (`pinned`), so it connects to
/// the address checked rather than to whatever the name answers next (DNS rebinding, TTL 0).
/// A name or URL pattern, or an allowed IP literal, needs no pin. A driver that cannot be
/// pinned (`pinnable: false`: it needs the name to connect, as redis-rs and the mongodb driver
/// over TLS do) is only given a name the allow-list approves by name: it would look the name
/// up again itself, and a range could not hold it there.
pub async fn checked_target(
    kind: ProberKind,
    target: &str,
    pinnable: bool,
    env: &ProbeEnv,
    rec: &mut ProbeRecorder,
) -> Option<DbTarget> {
    let mut t = target_or_fail(kind, target, rec)?;
    let access = allow::current();
    if access.allows_unresolved(&t.host) {
        return Some(t);
    }
    let ip_literal = t
        .host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok();
    if !pinnable && !ip_literal {
        rec.fail(
            FailureReason::Denied,
            format!(
                "{}: over TLS the {} driver looks this name up again itself, so an address range cannot hold it to the address checked; allow the name with a host pattern, or probe the IP address",
                t.host,
                kind.as_str()
            ),
        );
        return None;
    }
    let addrs = match env.resolver.lookup(&t.host).await {
        Ok(a) => a,
        Err(e) => {
            rec.fail(
                FailureReason::Dns,
                format!("cannot resolve {}: {e}", t.host),
            );
            return None;
        }
    };
    if let Some(ip) = addrs.iter().find(|ip| !access.allows(&t.host, **ip)) {
        rec.fail(
            FailureReason::Denied,
            format!(
                "{} resolves to {ip}, which the target allow-list does not allow",
                t.host
            ),
        );
        return None;
    }
    let Some(first) = addrs.first() else {
        rec.fail(
            FailureReason::Dns,
            format!("{} resolves to no address", t.host),
        );
        return None;
    };
    rec.debug(format!(
        "Connecting {} at the checked address {first}",
        t.host
    ));
    t.pinned = Some(*first);
    Some(t)
}

/// The password of a module section, read now (files and env are read per probe, so a rotated
/// secret is picked up; the pool is rebuilt when it changes).
pub fn password(
    password: &Option<Secret>,
    file: &Option<ExistingFile>,
    env: &Option<String>,
) -> Result<Option<Secret>, String> {
    SecretSource {
        password: password.clone(),
        password_file: file.clone(),
        password_env: env.clone(),
    }
    .resolve()
}

/// A hash of everything a pool is built from, secrets included. It stays in memory only.
pub fn settings_hash(parts: &[&dyn std::fmt::Debug], secret: Option<&Secret>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in parts {
        format!("{p:?}").hash(&mut h);
    }
    secret.map(Secret::expose).hash(&mut h);
    h.finish()
}

pub fn record_phase(rec: &mut ProbeRecorder, phase: &str, d: Duration) {
    rec.add_with(
        "probe_db_duration_seconds",
        "Duration of the database probe by phase",
        &[("phase", phase)],
        d.as_secs_f64(),
    );
}

/// Sets every phase to 0 first, so a failed probe still exposes the same series.
pub fn init_phases(rec: &mut ProbeRecorder) {
    for phase in ["acquire", "connect", "query"] {
        record_phase(rec, phase, Duration::ZERO);
    }
}

pub fn record_connection(rec: &mut ProbeRecorder, connect_time: Option<Duration>) {
    if let Some(d) = connect_time {
        record_phase(rec, "connect", d);
    }
    rec.gauge(
        "probe_db_connection_reused",
        "Whether the probe reused a pooled connection (1) or opened a new one (0)",
        if connect_time.is_some() { 0.0 } else { 1.0 },
    );
}

pub fn record_server_version(rec: &mut ProbeRecorder, version: &str) {
    if version.is_empty() {
        return;
    }
    let v: String = version.chars().take(128).collect();
    rec.gauge_with(
        "probe_db_server_info",
        "Server version of the database, as a label",
        &[("version", &v)],
        1.0,
    );
}

pub fn record_replica(rec: &mut ProbeRecorder, is_replica: bool) {
    rec.gauge(
        "probe_db_is_replica",
        "Whether the server is a replica or secondary (1) or a primary (0)",
        if is_replica { 1.0 } else { 0.0 },
    );
}

pub fn record_pool_state(rec: &mut ProbeRecorder, s: PoolState) {
    let help = "Connections of this module and target's pool after the probe, by state";
    rec.gauge_with(
        "probe_db_pool_connections",
        help,
        &[("state", "idle")],
        s.idle as f64,
    );
    rec.gauge_with(
        "probe_db_pool_connections",
        help,
        &[("state", "in_use")],
        s.in_use as f64,
    );
    rec.gauge(
        "probe_db_pool_max_connections",
        "max_size of this module and target's pool",
        s.max as f64,
    );
}

/// Compares the health query's answer with `expected_result` (as text, surrounding blanks
/// ignored); fails the probe with reason `status` when they differ.
pub fn check_expected(rec: &mut ProbeRecorder, expected: Option<&str>, got: Option<&str>) -> bool {
    let Some(want) = expected else { return true };
    let ok = got.is_some_and(|g| g.trim() == want.trim());
    rec.gauge(
        "probe_db_expected_result_match",
        "Whether the health query returned expected_result",
        if ok { 1.0 } else { 0.0 },
    );
    if !ok {
        let shown: String = got.unwrap_or("<no rows>").chars().take(200).collect();
        rec.fail(
            FailureReason::Status,
            format!("health query returned {shown:?}, expected {want:?}"),
        );
    }
    ok
}

/// Leases a pooled connection for one probe: starts the phase metrics and records the acquire
/// phase, the connect time of a new connection and the server version. Without a connection the
/// probe is failed with the pool's reason and `None` returned.
pub async fn lease<M, C>(
    pool: &ManagedPool<M>,
    deadline: tokio::time::Instant,
    rec: &mut ProbeRecorder,
    classify: impl Fn(&M::Error) -> FailureReason,
) -> Option<Lease<M>>
where
    M: deadpool::managed::Manager<Type = Tracked<C>> + 'static,
    M::Error: std::error::Error + 'static,
{
    init_phases(rec);
    let start = std::time::Instant::now();
    let acquired = pool.acquire(deadline).await;
    record_phase(rec, "acquire", start.elapsed());
    let mut conn = match acquired {
        Ok(obj) => Lease::new(obj),
        Err(e) => {
            fail_acquire(rec, e, &pool.describe(), classify);
            return None;
        }
    };
    record_connection(rec, conn.connect_time.take());
    record_server_version(rec, &conn.version);
    Some(conn)
}

/// Fails the probe for a connection that could not be had from the pool.
pub fn fail_acquire<E: std::error::Error + 'static>(
    rec: &mut ProbeRecorder,
    e: AcquireError<E>,
    pool: &str,
    classify: impl Fn(&E) -> FailureReason,
) {
    match e {
        AcquireError::Exhausted(waited) => rec.fail(
            FailureReason::PoolExhausted,
            format!(
                "connection pool exhausted: every connection stayed in use for {:.3}s ({pool})",
                waited.as_secs_f64()
            ),
        ),
        AcquireError::ConnectTimeout => rec.fail(
            FailureReason::Timeout,
            "connecting timed out: deadline reached",
        ),
        AcquireError::Connect(e) => rec.fail(
            classify(&e),
            format!("connecting failed: {}", error_chain(&e)),
        ),
        AcquireError::Other(m) => rec.fail(FailureReason::Other, m),
    }
}

/// The error chain as one line, for a log message.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// The I/O error somewhere in an error's source chain, if any.
pub fn io_error_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// Splits a command line like `BLPOP key 5` or `GET "a b"` into words (double quotes group).
pub fn split_command(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in cmd.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(kind: ProberKind, t: &str) -> DbTarget {
        parse_target(kind, t).unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    #[test]
    fn host_port_and_default_ports() {
        assert_eq!(ok(ProberKind::Postgres, "db1").address(), "db1:5432");
        assert_eq!(ok(ProberKind::Mysql, "db1").port, 3306);
        assert_eq!(ok(ProberKind::Redis, "db1").port, 6379);
        assert_eq!(ok(ProberKind::Mongodb, "db1").port, 27017);
        assert_eq!(ok(ProberKind::Postgres, "10.0.0.1:6543").port, 6543);
        let v6 = ok(ProberKind::Redis, "[::1]:7000");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 7000));
        assert_eq!(v6.address(), "[::1]:7000");
        assert_eq!(ok(ProberKind::Redis, "[::1]").port, 6379);
    }

    #[test]
    fn urls_with_database() {
        let t = ok(ProberKind::Postgres, "postgres://db.example:5433/app");
        assert_eq!(
            t,
            DbTarget {
                host: "db.example".into(),
                port: 5433,
                database: Some("app".into()),
                pinned: None,
            }
        );
        assert_eq!(ok(ProberKind::Postgres, "postgresql://h/").database, None);
        assert_eq!(ok(ProberKind::Mysql, "mysql://h/test").port, 3306);
        assert_eq!(
            ok(ProberKind::Redis, "redis://h:6380/2")
                .database
                .as_deref(),
            Some("2")
        );
        assert_eq!(ok(ProberKind::Mongodb, "mongodb://m1:27018").port, 27018);
        assert_eq!(
            ok(ProberKind::Postgres, "postgres://[::1]:5432/x").host,
            "::1"
        );
    }

    #[test]
    fn credentials_are_refused_without_echo() {
        for (kind, t) in [
            (ProberKind::Postgres, "postgres://u:hunter2@h/db"),
            (ProberKind::Postgres, "postgres://u@h/db"),
            (ProberKind::Mysql, "mysql://root:hunter2@h:3306/x"),
            (ProberKind::Redis, "redis://:hunter2@h:6379/0"),
            (ProberKind::Mongodb, "mongodb://u:hunter2@h"),
            (ProberKind::Redis, "u:hunter2@h:6379"),
            (ProberKind::Postgres, "postgres://u:hun ter2@h:99999999/"),
        ] {
            let e = parse_target(kind, t).unwrap_err();
            assert_eq!(e, TargetError::Credentials, "{t}");
            let msg = e.to_string();
            assert!(
                !msg.contains("hunter2") && !msg.contains("hun ter2"),
                "{msg}"
            );
            assert!(msg.contains("module config"), "{msg}");
        }
    }

    #[test]
    fn bad_targets_say_why() {
        for (kind, t, want) in [
            (ProberKind::Postgres, "mysql://h/db", "scheme"),
            (ProberKind::Postgres, "h:0", "invalid port"),
            (ProberKind::Postgres, "h:x", "invalid port"),
            (ProberKind::Postgres, "::1:5432", "brackets"),
            (ProberKind::Redis, "redis://h/abc", "not a number"),
            (ProberKind::Mongodb, "mongodb://h/db", "no path"),
            (
                ProberKind::Postgres,
                "postgres://h/db?sslmode=disable",
                "options",
            ),
            (ProberKind::Postgres, "h/db", "expected host"),
            (ProberKind::Postgres, ":5432", "no host"),
        ] {
            let e = parse_target(kind, t).unwrap_err().to_string();
            assert!(e.contains(want), "{t}: {e}");
        }
    }

    #[test]
    fn commands_split_on_blanks_and_quotes() {
        assert_eq!(split_command("PING"), vec!["PING"]);
        assert_eq!(split_command(" BLPOP  k 5 "), vec!["BLPOP", "k", "5"]);
        assert_eq!(split_command("SET k \"a b\""), vec!["SET", "k", "a b"]);
        assert_eq!(split_command("ECHO \"\""), vec!["ECHO", ""]);
        assert!(split_command("   ").is_empty());
    }

    #[test]
    fn expected_result_compares_text() {
        let mut rec = ProbeRecorder::new();
        assert!(check_expected(&mut rec, Some("1"), Some(" 1\n")));
        assert!(check_expected(&mut rec, None, None));
        assert!(!check_expected(&mut rec, Some("PONG"), Some("pong")));
        assert_eq!(rec.failure(), Some(FailureReason::Status));
        let mut rec = ProbeRecorder::new();
        assert!(!check_expected(&mut rec, Some("1"), None));
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::Config;

    #[test]
    fn spec_appendix_database_modules_load_with_pool_settings() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pg.pass");
        std::fs::write(&pass, "x\n").unwrap();
        let yaml = format!(
            "modules:\n  pg_ok:\n    prober: postgres\n    timeout: 5s\n    postgres:\n      user: monitor\n      password_file: {}\n      database: postgres\n      query: \"SELECT 1\"\n      pool: {{max_size: 10, min_idle: 1, idle_timeout: 5m, max_lifetime: 30m, acquire_timeout: 2s}}\n  redis_ok: {{prober: redis, redis: {{command: PING}}}}\n  mongo_ok: {{prober: mongodb, mongodb: {{}}}}\n",
            pass.display()
        );
        let cfg = Config::from_yaml_str(&yaml, "t.yml").unwrap_or_else(|e| panic!("{e}"));
        let pg = cfg.modules["pg_ok"].postgres.as_ref().unwrap();
        assert_eq!(pg.pool.max_size, 10);
        assert_eq!(pg.pool.min_idle, 1);
        assert_eq!(pg.pool.idle_timeout.get().as_secs(), 300);
        assert_eq!(pg.pool.max_lifetime.get().as_secs(), 1800);
        assert_eq!(pg.pool.acquire_timeout.get().as_secs(), 2);
        assert_eq!(
            cfg.modules["redis_ok"]
                .redis
                .as_ref()
                .unwrap()
                .pool
                .max_size,
            4
        );
    }

    #[test]
    fn scheduled_database_targets_with_credentials_are_refused_unshown() {
        let e = Config::from_yaml_str(
            "modules:\n  pg: {prober: postgres}\nschedule:\n  - {module: pg, interval: 30s, targets: [\"db1:5432\", \"postgres://u:Hunter2@db2/x\"]}\n",
            "t.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("schedule[0].targets[1]"), "{e}");
        assert!(!e.contains("Hunter2"), "{e}");
    }

    #[test]
    fn bad_pool_sizes_are_errors_naming_the_field() {
        let e = Config::from_yaml_str(
            "modules:\n  r:\n    prober: redis\n    redis:\n      pool: {max_size: 0}\n  m:\n    prober: mysql\n    mysql:\n      pool: {max_size: 2, min_idle: 3}\n",
            "t.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("modules.r.redis.pool.max_size"), "{e}");
        assert!(e.contains("modules.m.mysql.pool.min_idle"), "{e}");
    }
}
