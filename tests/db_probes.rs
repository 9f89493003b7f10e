//! The postgres, mysql, redis and mongodb probers against the real servers of this machine
//! (see tests/support/db.rs): success, wrong password, closed port, a query slower than the
//! timeout, pool exhaustion, pool reuse, credentials in the target, pools dropped on reload and
//! when idle. MongoDB's are in tests/mongodb.rs (against FerretDB).

mod support;

use std::time::{Duration, Instant};
use support::db::{self, Server, TempUser};
use support::{failure_reason, metric_value, metric_value_with, request, Exporter};

/// Module YAML for `server` with `extra` lines (indented 4) inside its prober section.
fn module(name: &str, server: Server, timeout: &str, extra: &str) -> String {
    let prober = match server {
        Server::Postgres => "postgres",
        Server::Mysql => "mysql",
        Server::Redis => "redis",
    };
    format!("  {name}:\n    prober: {prober}\n    timeout: {timeout}\n    {prober}:\n{extra}")
}

fn config(modules: &[String]) -> String {
    format!("modules:\n{}", modules.concat())
}

fn address(server: Server) -> &'static str {
    match server {
        Server::Postgres => db::PG,
        Server::Mysql => db::MYSQL,
        Server::Redis => db::REDIS,
    }
}

/// Settings that log in as the server's admin user (trust/empty password/default user).
fn admin_login(server: Server) -> &'static str {
    match server {
        Server::Postgres => "      user: postgres\n      database: test\n",
        Server::Mysql => "      user: root\n      database: test\n",
        Server::Redis => "",
    }
}

fn login_as(user: &TempUser, password: &str) -> String {
    match user.server {
        Server::Postgres => format!(
            "      user: {}\n      password: {password}\n      database: test\n",
            user.name
        ),
        Server::Mysql => format!(
            "      user: {}\n      password: {password}\n      database: test\n",
            user.name
        ),
        Server::Redis => format!(
            "      username: {}\n      password: {password}\n",
            user.name
        ),
    }
}

async fn success_case(server: Server, query: &str, expected: &str, version_hint: &str) {
    let extra = format!(
        "{}      {query}\n      expected_result: \"{expected}\"\n",
        admin_login(server)
    );
    let ex = Exporter::start(&config(&[module("ok", server, "5s", &extra)])).await;
    let (status, body) = ex.probe("ok", address(server)).await;
    assert_eq!(status, 200);
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert_eq!(
        metric_value(&body, "probe_db_is_replica"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        metric_value(&body, "probe_db_expected_result_match"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(metric_value(&body, "probe_db_connection_reused"), Some(0.0));
    let version_line = body
        .lines()
        .find(|l| l.starts_with("probe_db_server_info{"))
        .unwrap_or_else(|| panic!("no server info in {body}"));
    assert!(version_line.contains(version_hint), "{version_line}");
    for phase in ["acquire", "connect", "query"] {
        let v = metric_value_with(&body, "probe_db_duration_seconds", &[("phase", phase)]);
        assert!(v.is_some_and(|v| v >= 0.0), "{phase}: {body}");
    }
    assert!(
        metric_value_with(&body, "probe_db_duration_seconds", &[("phase", "connect")]).unwrap()
            > 0.0
    );
    // The second probe runs on the pooled connection.
    let (_, body) = ex.probe("ok", address(server)).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert_eq!(metric_value(&body, "probe_db_connection_reused"), Some(1.0));
    assert_eq!(
        metric_value_with(&body, "probe_db_duration_seconds", &[("phase", "connect")]),
        Some(0.0)
    );
    assert_eq!(
        metric_value_with(&body, "probe_db_pool_connections", &[("state", "idle")]),
        Some(1.0),
        "{body}"
    );
    let metrics = ex.get("/metrics").await.body;
    let t = server_type(server);
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_pool_connections_created_total",
            &[("type", t)]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value_with(&metrics, "siembox_pool_connections", &[("type", t)]),
        Some(1.0)
    );
    assert_eq!(
        metric_value_with(&metrics, "siembox_pool_idle_connections", &[("type", t)]),
        Some(1.0)
    );
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_pool_acquire_duration_seconds_count",
            &[("type", t)]
        ),
        Some(2.0)
    );
    // A wrong expected_result fails with reason status.
    let extra = format!(
        "{}      {query}\n      expected_result: \"not-{expected}\"\n",
        admin_login(server)
    );
    let ex = Exporter::start(&config(&[module("bad", server, "5s", &extra)])).await;
    let debug = ex.debug_probe("bad", address(server)).await;
    assert_eq!(failure_reason(&debug), Some("status"), "{debug}");
    assert!(
        debug.contains("probe_db_expected_result_match 0"),
        "{debug}"
    );
}

fn server_type(server: Server) -> &'static str {
    match server {
        Server::Postgres => "postgres",
        Server::Mysql => "mysql",
        Server::Redis => "redis",
    }
}

#[tokio::test]
async fn postgres_success_reports_version_role_and_phases() {
    success_case(Server::Postgres, "query: SELECT 1", "1", "version=\"15.").await;
}

#[tokio::test]
async fn mysql_success_reports_version_role_and_phases() {
    success_case(Server::Mysql, "query: SELECT 1", "1", "MariaDB").await;
}

#[tokio::test]
async fn redis_success_reports_version_role_and_phases() {
    success_case(Server::Redis, "command: PING", "PONG", "version=\"7.").await;
}

/// A wrong password fails with reason `auth`, and the password appears nowhere in the debug
/// output (log lines, metrics, module config).
async fn wrong_password_case(server: Server) {
    let user = TempUser::create(server);
    let wrong = format!("{}-wrong", user.password);
    let login = match server {
        // Trust auth on 127.0.0.1 accepts any password for an existing role: a role that does
        // not exist is PostgreSQL's authentication failure here.
        Server::Postgres => format!(
            "      user: {}_missing\n      password: {wrong}\n      database: test\n",
            user.name
        ),
        _ => login_as(&user, &wrong),
    };
    let ex = Exporter::start(&config(&[module("auth", server, "5s", &login)])).await;
    let debug = ex.debug_probe("auth", address(server)).await;
    assert!(debug.contains("probe_success 0"), "{debug}");
    assert_eq!(failure_reason(&debug), Some("auth"), "{debug}");
    assert!(!debug.contains(&wrong), "password leaked:\n{debug}");
    assert!(!debug.contains(&user.password), "password leaked:\n{debug}");
    let metrics = ex.get("/metrics").await.body;
    assert!(!metrics.contains(&wrong));
    let cfg = ex.get("/config").await.body;
    assert!(!cfg.contains(&wrong), "{cfg}");
    // The right password works (except on PostgreSQL, where the role above does not exist).
    if server != Server::Postgres {
        let ok = login_as(&user, &user.password);
        let ex = Exporter::start(&config(&[module("ok", server, "5s", &ok)])).await;
        let (_, body) = ex.probe("ok", address(server)).await;
        assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    }
}

#[tokio::test]
async fn postgres_wrong_login_is_an_auth_failure_without_the_password() {
    wrong_password_case(Server::Postgres).await;
}

#[tokio::test]
async fn mysql_wrong_password_is_an_auth_failure_without_the_password() {
    wrong_password_case(Server::Mysql).await;
}

#[tokio::test]
async fn redis_wrong_password_is_an_auth_failure_without_the_password() {
    wrong_password_case(Server::Redis).await;
}

#[tokio::test]
async fn nothing_listening_is_connection_refused_for_every_database() {
    let port = support::free_port();
    let mut modules: Vec<String> = [Server::Postgres, Server::Mysql, Server::Redis]
        .iter()
        .map(|s| module(server_type(*s), *s, "3s", admin_login(*s)))
        .collect();
    modules.push("  mongodb:\n    prober: mongodb\n    timeout: 3s\n".into());
    let ex = Exporter::start(&config(&modules)).await;
    for m in ["postgres", "mysql", "redis", "mongodb"] {
        let start = Instant::now();
        let debug = ex.debug_probe(m, &format!("127.0.0.1:{port}")).await;
        assert!(debug.contains("probe_success 0"), "{m}: {debug}");
        assert_eq!(
            failure_reason(&debug),
            Some("connection_refused"),
            "{m}: {debug}"
        );
        assert!(start.elapsed() < Duration::from_secs(4), "{m}");
    }
}

/// A query slower than the module timeout fails at the deadline with reason `timeout`, and the
/// connection it ran on is not handed to the next probe.
async fn slow_query_case(server: Server, slow: &str) {
    let extra = format!("{}      {slow}\n", admin_login(server));
    let ex = Exporter::start(&config(&[module("slow", server, "1s", &extra)])).await;
    let start = Instant::now();
    let debug = ex.debug_probe("slow", address(server)).await;
    let took = start.elapsed();
    assert!(debug.contains("probe_success 0"), "{debug}");
    assert_eq!(failure_reason(&debug), Some("timeout"), "{debug}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    // The interrupted connection was closed, not returned to the pool.
    let metrics = ex.get("/metrics").await.body;
    let t = server_type(server);
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_pool_connections_closed_total",
            &[("type", t)]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value_with(&metrics, "siembox_pool_connections", &[("type", t)]),
        Some(0.0)
    );
}

#[tokio::test]
async fn postgres_query_slower_than_timeout_fails_at_the_deadline() {
    slow_query_case(Server::Postgres, "query: SELECT pg_sleep(5)").await;
}

#[tokio::test]
async fn mysql_query_slower_than_timeout_fails_at_the_deadline() {
    slow_query_case(Server::Mysql, "query: SELECT SLEEP(5)").await;
}

#[tokio::test]
async fn redis_command_slower_than_timeout_fails_at_the_deadline() {
    // DEBUG SLEEP is disabled on this server (enable-debug-command no); BLPOP on a key that
    // never fills blocks just as well.
    let key = db::unique("siembox_never");
    slow_query_case(Server::Redis, &format!("command: BLPOP {key} 5")).await;
}

/// With `max_size: 1`, a probe holding the only connection makes a concurrent one fail fast with
/// reason `pool_exhausted`, counted in `siembox_pool_exhausted_total`.
async fn exhaustion_case(server: Server, slow: &str) {
    let extra = format!(
        "{}      {slow}\n      pool: {{max_size: 1, acquire_timeout: 200ms}}\n",
        admin_login(server)
    );
    let ex = Exporter::start(&config(&[module("one", server, "10s", &extra)])).await;
    // A distinct `hostname` keeps single-flight from merging the two probes into one.
    let url = ex.url(&format!(
        "/probe?module=one&target={}&hostname=holder",
        address(server)
    ));
    let holder = tokio::spawn(async move { support::get(&url, &[]).await.body });
    // Let the first probe take the connection (connecting included).
    let t = server_type(server);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = ex.get("/metrics").await.body;
        if metric_value_with(&m, "siembox_pool_in_use_connections", &[("type", t)]) == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "first probe never took the connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    let debug = ex.debug_probe("one", address(server)).await;
    let took = start.elapsed();
    assert_eq!(failure_reason(&debug), Some("pool_exhausted"), "{debug}");
    assert!(debug.contains("max_size 1"), "{debug}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let held = holder.await.unwrap();
    assert_eq!(metric_value(&held, "probe_success"), Some(1.0), "{held}");
    let metrics = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(&metrics, "siembox_pool_exhausted_total", &[("type", t)]),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metric_value_with(&metrics, "siembox_pool_waits_total", &[("type", t)])
            .is_some_and(|w| w >= 1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_probe_failures_total",
            &[("module", "one"), ("reason", "pool_exhausted")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn postgres_pool_exhaustion_fails_fast() {
    exhaustion_case(Server::Postgres, "query: SELECT pg_sleep(1.5)").await;
}

#[tokio::test]
async fn mysql_pool_exhaustion_fails_fast() {
    exhaustion_case(Server::Mysql, "query: SELECT SLEEP(1.5)").await;
}

#[tokio::test]
async fn redis_pool_exhaustion_fails_fast() {
    let key = db::unique("siembox_never");
    exhaustion_case(Server::Redis, &format!("command: BLPOP {key} 1.5")).await;
}

/// Hundreds of probes, 8 at a time, through a pool of 2: the server never sees more than two
/// connections of the probe's user, and the pool opened at most two.
async fn reuse_case(server: Server) {
    let user = TempUser::create(server);
    let mut login = login_as(&user, &user.password);
    login.push_str("      pool: {max_size: 2}\n");
    let ex = Exporter::start(&config(&[module("reuse", server, "5s", &login)])).await;
    let target = address(server);
    let mut max_sessions = 0;
    let mut ok = 0;
    for _round in 0..40 {
        let mut batch = Vec::new();
        for _ in 0..8 {
            let url = ex.url(&format!("/probe?module=reuse&target={target}"));
            batch.push(tokio::spawn(
                async move { support::get(&url, &[]).await.body },
            ));
        }
        // Count while the batch is running.
        max_sessions = max_sessions.max(user.sessions());
        for b in batch {
            let body = b.await.unwrap();
            if metric_value(&body, "probe_success") == Some(1.0) {
                ok += 1;
            } else {
                panic!("probe failed: {body}");
            }
        }
    }
    max_sessions = max_sessions.max(user.sessions());
    assert_eq!(ok, 320);
    assert!(
        (1..=2).contains(&max_sessions),
        "server saw {max_sessions} sessions"
    );
    let metrics = ex.get("/metrics").await.body;
    let created = metric_value_with(
        &metrics,
        "siembox_pool_connections_created_total",
        &[("type", server_type(server))],
    )
    .unwrap();
    assert!((1.0..=2.0).contains(&created), "created {created}");
}

#[tokio::test]
async fn postgres_pool_reuses_connections() {
    reuse_case(Server::Postgres).await;
}

#[tokio::test]
async fn mysql_pool_reuses_connections() {
    reuse_case(Server::Mysql).await;
}

#[tokio::test]
async fn redis_pool_reuses_connections() {
    reuse_case(Server::Redis).await;
}

#[tokio::test]
async fn credentials_in_the_target_are_refused_and_never_shown() {
    let mut modules: Vec<String> = [Server::Postgres, Server::Mysql, Server::Redis]
        .iter()
        .map(|s| module(server_type(*s), *s, "3s", admin_login(*s)))
        .collect();
    modules.push("  mongodb:\n    prober: mongodb\n    timeout: 3s\n".into());
    let ex = Exporter::start(&config(&modules)).await;
    for (m, target) in [
        (
            "postgres",
            "postgres://postgres:Hunter2Secret@127.0.0.1:5432/test",
        ),
        ("mysql", "mysql://root:Hunter2Secret@127.0.0.1:3306/test"),
        ("redis", "redis://:Hunter2Secret@127.0.0.1:6379/0"),
        ("mongodb", "mongodb://u:Hunter2Secret@127.0.0.1:27017"),
    ] {
        let debug = ex.debug_probe(m, target).await;
        assert_eq!(failure_reason(&debug), Some("config"), "{m}: {debug}");
        assert!(debug.contains("module config"), "{m}: {debug}");
        assert!(!debug.contains("Hunter2Secret"), "{m} leaked: {debug}");
    }
    // The same targets without credentials work, as URLs with a database.
    for (m, target) in [
        ("postgres", "postgres://127.0.0.1:5432/test"),
        ("mysql", "mysql://127.0.0.1/test"),
        ("redis", "redis://127.0.0.1/0"),
    ] {
        let (_, body) = ex.probe(m, target).await;
        assert_eq!(
            metric_value(&body, "probe_success"),
            Some(1.0),
            "{m}: {body}"
        );
    }
}

#[tokio::test]
async fn password_from_file_and_env() {
    let user = TempUser::create(Server::Mysql);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("my.pass");
    std::fs::write(&file, format!("{}\n", user.password)).unwrap();
    let var = db::unique("SIEMBOX_TEST_PW").to_uppercase();
    std::env::set_var(&var, &user.password);
    let from_file = format!(
        "      user: {}\n      password_file: {}\n      database: test\n",
        user.name,
        file.display()
    );
    let from_env = format!(
        "      user: {}\n      password_env: {var}\n      database: test\n",
        user.name
    );
    let ex = Exporter::start(&config(&[
        module("file", Server::Mysql, "5s", &from_file),
        module("env", Server::Mysql, "5s", &from_env),
    ]))
    .await;
    for m in ["file", "env"] {
        let (_, body) = ex.probe(m, db::MYSQL).await;
        assert_eq!(
            metric_value(&body, "probe_success"),
            Some(1.0),
            "{m}: {body}"
        );
    }
    // A rotated password file is read on the next probe and rebuilds the pool.
    std::fs::write(&file, "rotated-wrong").unwrap();
    let debug = ex.debug_probe("file", db::MYSQL).await;
    assert_eq!(failure_reason(&debug), Some("auth"), "{debug}");
    assert!(!debug.contains(&user.password) && !debug.contains("rotated-wrong"));
}

#[tokio::test]
async fn reload_drops_pools_of_changed_modules_and_idle_pools_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siembox.yml");
    let write = |query: &str, idle: &str| {
        let extra = format!(
            "      user: postgres\n      database: test\n      query: {query}\n      pool: {{idle_timeout: {idle}}}\n"
        );
        let other = "      pool: {idle_timeout: 1h}\n";
        std::fs::write(
            &path,
            config(&[
                module("pg", Server::Postgres, "5s", &extra),
                module("redis", Server::Redis, "5s", other),
            ]),
        )
        .unwrap();
    };
    write("SELECT 1", "1h");
    let ex = Exporter::start_file(path.clone()).await;
    for (m, t) in [("pg", db::PG), ("redis", db::REDIS)] {
        let (_, body) = ex.probe(m, t).await;
        assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    }
    assert_eq!(ex.app.env.pools.len(), 2);
    // Reload with a changed pg module: its pool goes, the unchanged redis pool stays.
    write("SELECT 2", "1s");
    assert_eq!(request("POST", &ex.url("/-/reload"), &[]).await.status, 200);
    assert_eq!(ex.app.env.pools.len(), 1);
    let metrics = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(&metrics, "siembox_pool_pools", &[("type", "postgres")]),
        Some(0.0)
    );
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_pool_connections_closed_total",
            &[("type", "postgres")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value_with(&metrics, "siembox_pool_pools", &[("type", "redis")]),
        Some(1.0)
    );
    // A pool unused for its idle_timeout (1s) is closed by the sweep.
    let (_, body) = ex.probe("pg", db::PG).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert_eq!(ex.app.env.pools.len(), 2);
    let deadline = Instant::now() + Duration::from_secs(6);
    while ex.app.env.pools.len() > 1 {
        assert!(Instant::now() < deadline, "idle pool was not closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_pool_connections_closed_total",
            &[("type", "postgres")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn pool_metrics_have_one_series_per_type_and_no_targets() {
    let ex = Exporter::start(&config(&[module("r", Server::Redis, "5s", "")])).await;
    let (_, body) = ex.probe("r", db::REDIS).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    let metrics = ex.get("/metrics").await.body;
    let pool_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("siembox_pool_") && !l.contains("_bucket"))
        .collect();
    assert!(!pool_lines.is_empty());
    for l in &pool_lines {
        assert!(!l.contains("127.0.0.1") && !l.contains("module="), "{l}");
    }
    for name in [
        "siembox_pool_waits_total",
        "siembox_pool_exhausted_total",
        "siembox_pool_acquire_duration_seconds_count",
        "siembox_pool_connections",
        "siembox_pool_idle_connections",
        "siembox_pool_in_use_connections",
        "siembox_pool_connections_created_total",
        "siembox_pool_connections_closed_total",
    ] {
        for t in ["postgres", "mysql", "redis", "mongodb"] {
            assert!(
                metric_value_with(&metrics, name, &[("type", t)]).is_some(),
                "{name}{{type={t}}} missing"
            );
        }
    }
}

/// The local PostgreSQL has `ssl = on` with Debian's self-signed snakeoil certificate: with
/// `insecure_skip_verify` the probe succeeds over TLS (the server says so in pg_stat_ssl);
/// verified against the system roots it fails with reason `tls`.
#[tokio::test]
async fn postgres_tls_is_used_and_verified() {
    let user = TempUser::create(Server::Postgres);
    let login = login_as(&user, &user.password);
    let insecure =
        format!("{login}      tls: true\n      tls_config: {{insecure_skip_verify: true}}\n");
    let verified = format!("{login}      tls: true\n");
    let plain = login.clone();
    let ex = Exporter::start(&config(&[
        module("insecure", Server::Postgres, "5s", &insecure),
        module("verified", Server::Postgres, "5s", &verified),
        module("plain", Server::Postgres, "5s", &plain),
    ]))
    .await;
    let (_, body) = ex.probe("insecure", db::PG).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    let ssl = |expect: &str| {
        db::psql(&format!(
            "SELECT string_agg(s.ssl::text, ',') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = '{}'",
            user.name
        )) == expect
    };
    assert!(ssl("true"), "the pooled connection does not use TLS");
    let debug = ex.debug_probe("verified", db::PG).await;
    assert_eq!(failure_reason(&debug), Some("tls"), "{debug}");
    assert!(debug.contains("certificate"), "{debug}");
    // Without tls the same login runs in clear: a second, non-TLS session appears.
    let (_, body) = ex.probe("plain", db::PG).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert!(ssl("true,false") || ssl("false,true"));
}

/// After a burst opened three connections, steady sequential probes keep using one (LIFO):
/// the spare ones are closed after `idle_timeout`, down to `min_idle`.
async fn shrink_case(min_idle: usize) -> (f64, f64) {
    let extra = format!(
        "      user: postgres\n      database: test\n      query: SELECT pg_sleep(0.3)\n      pool: {{max_size: 3, min_idle: {min_idle}, idle_timeout: 1s}}\n"
    );
    let ex = Exporter::start(&config(&[module("pg", Server::Postgres, "5s", &extra)])).await;
    let burst: Vec<_> = (0..3)
        .map(|i| {
            // Distinct hostnames: three probes, not one shared by single-flight.
            let url = ex.url(&format!("/probe?module=pg&target={}&hostname=b{i}", db::PG));
            tokio::spawn(async move { support::get(&url, &[]).await.body })
        })
        .collect();
    for b in burst {
        let body = b.await.unwrap();
        assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    }
    let t = [("type", "postgres")];
    let m = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(&m, "siembox_pool_connections", &t),
        Some(3.0),
        "{m}"
    );
    let until = Instant::now() + Duration::from_millis(2600);
    while Instant::now() < until {
        let (_, body) = ex.probe("pg", db::PG).await;
        assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    }
    let m = ex.get("/metrics").await.body;
    (
        metric_value_with(&m, "siembox_pool_connections", &t).unwrap(),
        metric_value_with(&m, "siembox_pool_connections_closed_total", &t).unwrap(),
    )
}

#[tokio::test]
async fn spare_connections_close_after_idle_timeout() {
    assert_eq!(shrink_case(0).await, (1.0, 2.0));
}

#[tokio::test]
async fn min_idle_connections_are_kept() {
    assert_eq!(shrink_case(2).await, (2.0, 1.0));
}

/// `max_lifetime: 0s`: no connection is handed out twice.
#[tokio::test]
async fn max_lifetime_replaces_connections() {
    let extra = "      user: postgres\n      database: test\n      pool: {max_lifetime: 0s}\n";
    let ex = Exporter::start(&config(&[module("pg", Server::Postgres, "5s", extra)])).await;
    for _ in 0..5 {
        let (_, body) = ex.probe("pg", db::PG).await;
        assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
        assert_eq!(metric_value(&body, "probe_db_connection_reused"), Some(0.0));
    }
    let m = ex.get("/metrics").await.body;
    let t = [("type", "postgres")];
    assert_eq!(
        metric_value_with(&m, "siembox_pool_connections_created_total", &t),
        Some(5.0)
    );
    assert_eq!(
        metric_value_with(&m, "siembox_pool_connections_closed_total", &t),
        Some(4.0)
    );
}

/// After a successful probe the pool opens connections up to `min_idle` in the background.
#[tokio::test]
async fn min_idle_connections_are_opened_after_a_probe() {
    let extra = "      pool: {max_size: 4, min_idle: 3}\n";
    let ex = Exporter::start(&config(&[module("r", Server::Redis, "5s", extra)])).await;
    let (_, body) = ex.probe("r", db::REDIS).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    let t = [("type", "redis")];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let m = ex.get("/metrics").await.body;
        if metric_value_with(&m, "siembox_pool_connections", &t) == Some(3.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pool did not warm up to min_idle: {m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Redis over TLS (a TLS-only redis-server started for the test): verified against the server's
/// certificate as `ca_file` the probe succeeds; against the system roots it fails with `tls`;
/// in clear text against the TLS port it fails too.
#[tokio::test]
async fn redis_tls_with_ca_file_and_verification_failure() {
    let server = support::redis_tls::RedisTls::start();
    let ca = server.ca_file.display().to_string();
    let ex = Exporter::start(&config(&[
        module(
            "tls_ca",
            Server::Redis,
            "3s",
            &format!("      tls: true\n      tls_config: {{ca_file: {ca}}}\n"),
        ),
        module("tls_system", Server::Redis, "3s", "      tls: true\n"),
        module(
            "tls_insecure",
            Server::Redis,
            "3s",
            "      tls: true\n      tls_config: {insecure_skip_verify: true}\n",
        ),
        module("plain", Server::Redis, "2s", ""),
    ]))
    .await;
    let target = format!("127.0.0.1:{}", server.port);
    for m in ["tls_ca", "tls_insecure"] {
        let (_, body) = ex.probe(m, &target).await;
        assert_eq!(
            metric_value(&body, "probe_success"),
            Some(1.0),
            "{m}: {body}"
        );
    }
    let debug = ex.debug_probe("tls_system", &target).await;
    assert!(debug.contains("probe_success 0"), "{debug}");
    assert_eq!(failure_reason(&debug), Some("tls"), "{debug}");
    let debug = ex.debug_probe("plain", &target).await;
    assert!(debug.contains("probe_success 0"), "{debug}");
}

/// The local MariaDB has TLS disabled: a module asking for TLS fails with reason `tls` instead
/// of falling back to clear text.
#[tokio::test]
async fn mysql_tls_required_but_not_offered_fails_with_tls() {
    let extra = "      user: root\n      tls: true\n";
    let ex = Exporter::start(&config(&[module("tls", Server::Mysql, "3s", extra)])).await;
    let debug = ex.debug_probe("tls", db::MYSQL).await;
    assert!(debug.contains("probe_success 0"), "{debug}");
    assert_eq!(failure_reason(&debug), Some("tls"), "{debug}");
}
