//! The mongodb prober against a real MongoDB wire-protocol server: FerretDB 1.24 on the local
//! PostgreSQL, started per test on a free loopback port (tests/support/ferretdb.rs). No MongoDB
//! server can run on this machine; where FerretDB answers differently from MongoDB, the test
//! says so. Logins are PLAIN, checked by PostgreSQL against a role the test creates (FerretDB's
//! SCRAM cannot complete with the Rust driver, see the support module).
//!
//! Success (ping, server version, `hello` role, a custom command, `expected_result`),
//! authentication that succeeds and fails, pool reuse counted on the server's side, pool
//! exhaustion, and a server that hangs, dies and comes back.

mod support;

use std::time::{Duration, Instant};
use support::db::TempUser;
use support::ferretdb::{self, FerretDb};
use support::{failure_reason, metric_value, metric_value_with, Exporter};

/// A config with one mongodb module per `(name, extra lines of its mongodb section)`.
fn config(modules: &[(&str, &str)]) -> String {
    let mut yaml = String::from("modules:\n");
    for (name, extra) in modules {
        yaml.push_str(&format!(
            "  {name}:\n    prober: mongodb\n    timeout: 3s\n    mongodb:\n{extra}"
        ));
    }
    yaml
}

/// The section lines that log in as `user` with `password`.
fn login_as(user: &TempUser, password: &str) -> String {
    format!(
        "      username: {}\n      password: {password}\n      auth_mechanism: PLAIN\n",
        user.name
    )
}

fn login(user: &TempUser) -> String {
    login_as(user, &user.password)
}

#[tokio::test]
async fn ping_reports_version_role_and_phases_and_reuses_the_connection() {
    let db = FerretDb::start();
    let user = TempUser::create_password_checked();
    let ex = Exporter::start(&config(&[("ok", &login(&user))])).await;
    let (status, body) = ex.probe("ok", &db.address()).await;
    assert_eq!(status, 200);
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    // FerretDB 1.24 answers buildInfo with the MongoDB version it is compatible with (7.0.x);
    // a MongoDB server answers with its own.
    let info = body
        .lines()
        .find(|l| l.starts_with("probe_db_server_info{"))
        .unwrap_or_else(|| panic!("no server info in {body}"));
    assert!(info.contains("version=\"7.0."), "{info}");
    // A standalone server: hello says isWritablePrimary, no `secondary`. FerretDB has no
    // replica sets, so the replica side of the role is covered by the unit test on `hello`.
    assert_eq!(
        metric_value(&body, "probe_db_is_replica"),
        Some(0.0),
        "{body}"
    );
    for phase in ["acquire", "query"] {
        let v = metric_value_with(&body, "probe_db_duration_seconds", &[("phase", phase)]);
        assert!(v.is_some_and(|v| v >= 0.0), "{phase}: {body}");
    }
    // No expected_result configured: no match series.
    assert_eq!(metric_value(&body, "probe_db_expected_result_match"), None);

    let (_, body) = ex.probe("ok", &db.address()).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert_eq!(
        metric_value_with(&body, "probe_db_pool_connections", &[("state", "in_use")]),
        Some(0.0),
        "{body}"
    );
    assert!(
        metric_value_with(&body, "probe_db_pool_connections", &[("state", "idle")])
            .is_some_and(|n| n >= 1.0),
        "{body}"
    );
    let metrics = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_pool_connections_created_total",
            &[("type", "mongodb")]
        ),
        Some(1.0),
        "two probes, one after the other, share one connection: {metrics}"
    );
}

#[tokio::test]
async fn custom_command_reply_field_is_compared_with_expected_result() {
    let db = FerretDb::start();
    let user = TempUser::create_password_checked();
    let login = login(&user);
    // FerretDB's buildInfo carries its own version next to the MongoDB one.
    let build = format!(
        "{login}      command: '{{\"buildInfo\": 1}}'\n      result_field: ferretdbVersion\n      expected_result: v1.24.2\n"
    );
    let wrong = format!(
        "{login}      command: '{{\"buildInfo\": 1}}'\n      result_field: ferretdbVersion\n      expected_result: v9.9.9\n"
    );
    let hello = format!(
        "{login}      command: hello\n      result_field: isWritablePrimary\n      expected_result: \"true\"\n"
    );
    let unknown = format!("{login}      command: noSuchCommandAnywhere\n");
    let ex = Exporter::start(&config(&[
        ("build", &build),
        ("wrong", &wrong),
        ("hello", &hello),
        ("unknown", &unknown),
    ]))
    .await;
    for module in ["build", "hello"] {
        let (_, body) = ex.probe(module, &db.address()).await;
        assert_eq!(
            metric_value(&body, "probe_success"),
            Some(1.0),
            "{module}: {body}"
        );
        assert_eq!(
            metric_value(&body, "probe_db_expected_result_match"),
            Some(1.0),
            "{module}: {body}"
        );
    }
    let debug = ex.debug_probe("wrong", &db.address()).await;
    assert!(debug.contains("probe_success 0"), "{debug}");
    assert!(
        debug.contains("probe_db_expected_result_match 0"),
        "{debug}"
    );
    assert!(
        debug.contains("v1.24.2"),
        "the reason shows what came back: {debug}"
    );

    let debug = ex.debug_probe("unknown", &db.address()).await;
    assert!(debug.contains("probe_success 0"), "{debug}");
    assert_eq!(failure_reason(&debug), Some("status"), "{debug}");
    assert!(debug.contains("noSuchCommandAnywhere"), "{debug}");
}

/// A PLAIN login with the role's password passes and reads data (listDatabases needs a login
/// on MongoDB; on FerretDB it runs as the PostgreSQL role), and /config never shows it.
#[tokio::test]
async fn a_plain_login_with_the_password_succeeds_and_is_never_shown() {
    let db = FerretDb::start();
    let user = TempUser::create_password_checked();
    let logged_in = format!("{}      command: listDatabases\n", login(&user));
    let ex = Exporter::start(&config(&[("logged_in", &logged_in)])).await;
    let debug = ex.debug_probe("logged_in", &db.address()).await;
    assert!(debug.contains("probe_success 1"), "{debug}");
    assert!(!debug.contains(&user.password), "{debug}");
    let config = ex.get("/config").await.body;
    assert!(config.contains(&user.name), "{config}");
    assert!(!config.contains(&user.password), "{config}");
}

/// FerretDB checks a PLAIN login only when the first command needs PostgreSQL, and then answers
/// InternalError (code 1) with PostgreSQL's "password authentication failed"; MongoDB answers
/// the login itself with AuthenticationFailed (18). So here a wrong PLAIN password is a
/// `status` failure whose reason names the refused login; the `auth` reason is checked with
/// SCRAM below, where FerretDB answers as MongoDB does.
#[tokio::test]
async fn a_refused_plain_login_fails_the_probe_naming_the_refusal() {
    let db = FerretDb::start();
    let user = TempUser::create_password_checked();
    let bad_password = "Wrong-Pw-Never-Shown-42";
    let ex = Exporter::start(&config(&[("wrong", &login_as(&user, bad_password))])).await;
    let debug = ex.debug_probe("wrong", &db.address()).await;
    assert!(debug.contains("probe_success 0"), "{debug}");
    assert!(debug.contains("password authentication failed"), "{debug}");
    assert!(!debug.contains(bad_password), "{debug}");
}

/// SCRAM against FerretDB's own users (`--test-enable-new-auth`): a wrong password and an
/// unknown user fail with reason `auth`, fast, the password never shown. The right password
/// cannot succeed against FerretDB 1.24: the driver asks the server to skip SCRAM's empty last
/// round (`skipEmptyExchange`, MongoDB 4.4+) and FerretDB does not, so the driver stops with
/// "expected SCRAM authentication to have completed". Asserted, so that the day either side
/// changes, this test says to move SCRAM success here.
#[tokio::test]
async fn scram_logins_are_refused_with_reason_auth() {
    let db = FerretDb::start_scram();
    let bad_password = "Wrong-Scram-Pw-Never-Shown";
    let section = |user: &str, password: &str| {
        format!("      username: {user}\n      password: {password}\n      auth_source: admin\n      auth_mechanism: SCRAM-SHA-256\n")
    };
    let ex = Exporter::start(&config(&[
        ("wrong", &section(ferretdb::SCRAM_USER, bad_password)),
        ("nouser", &section("nobody_here", bad_password)),
        (
            "right",
            &section(ferretdb::SCRAM_USER, ferretdb::SCRAM_PASSWORD),
        ),
    ]))
    .await;
    for module in ["wrong", "nouser"] {
        let start = Instant::now();
        let debug = ex.debug_probe(module, &db.address()).await;
        assert!(debug.contains("probe_success 0"), "{module}: {debug}");
        assert_eq!(failure_reason(&debug), Some("auth"), "{module}: {debug}");
        assert!(!debug.contains(bad_password), "{debug}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{module}: {:?}",
            start.elapsed()
        );
    }
    let debug = ex.debug_probe("right", &db.address()).await;
    assert!(
        debug.contains("expected SCRAM authentication to have completed"),
        "SCRAM now completes against FerretDB: assert success here instead. {debug}"
    );
    assert!(!debug.contains(ferretdb::SCRAM_PASSWORD), "{debug}");
}

/// Hundreds of probes, 8 at a time, through a pool of 2: the server's side of the TCP
/// connections (counted by the kernel) never holds more than the pool's two plus the driver's
/// monitoring connection, and the pool opened two at most.
#[tokio::test]
async fn pool_reuse_holds_the_server_side_connection_count_at_the_pool_size() {
    let db = FerretDb::start();
    let user = TempUser::create_password_checked();
    let section = format!("{}      pool: {{max_size: 2}}\n", login(&user));
    let ex = Exporter::start(&config(&[("reuse", &section)])).await;
    let target = db.address();
    let before = db.connections();
    assert_eq!(before, 0);
    let mut most = 0;
    for _round in 0..40 {
        let batch: Vec<_> = (0..8)
            .map(|_| {
                let url = ex.url(&format!("/probe?module=reuse&target={target}"));
                tokio::spawn(async move { support::get(&url, &[]).await.body })
            })
            .collect();
        most = most.max(db.connections());
        for b in batch {
            let body = b.await.unwrap();
            assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
        }
    }
    most = most.max(db.connections());
    let metrics = ex.get("/metrics").await.body;
    let created = metric_value_with(
        &metrics,
        "siembox_pool_connections_created_total",
        &[("type", "mongodb")],
    )
    .unwrap();
    assert!((1.0..=2.0).contains(&created), "created {created}");
    // Plus the driver's one monitoring connection (a second, for round-trip times, comes only
    // with MongoDB's streaming hello, which FerretDB lacks): 2 pooled + 1 at most.
    assert!(
        (1..=3).contains(&most),
        "the server saw {most} connections at once for a pool of 2"
    );
}

/// With `max_size: 1`, a probe stuck on a hung server holds the only connection: a concurrent
/// probe fails at once with `pool_exhausted`; the stuck one fails at its deadline.
#[tokio::test]
async fn pool_exhaustion_fails_fast_while_a_hung_server_holds_the_connection() {
    let db = FerretDb::start();
    let user = TempUser::create_password_checked();
    let section = format!(
        "{}      pool: {{max_size: 1, acquire_timeout: 200ms}}\n",
        login(&user)
    );
    let ex = Exporter::start(&config(&[("one", &section)])).await;
    let (_, body) = ex.probe("one", &db.address()).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");

    db.freeze();
    // A distinct `hostname` keeps single-flight from merging the two probes into one.
    let url = ex.url(&format!(
        "/probe?module=one&target={}&hostname=holder&debug=true",
        db.address()
    ));
    let holder = tokio::spawn(async move { support::get(&url, &[]).await.body });
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let m = ex.get("/metrics").await.body;
        if metric_value_with(
            &m,
            "siembox_pool_in_use_connections",
            &[("type", "mongodb")],
        ) == Some(1.0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first probe never took the connection: {m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    let debug = ex.debug_probe("one", &db.address()).await;
    assert_eq!(failure_reason(&debug), Some("pool_exhausted"), "{debug}");
    assert!(debug.contains("max_size 1"), "{debug}");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );

    let held = holder.await.unwrap();
    assert!(held.contains("probe_success 0"), "{held}");
    assert_eq!(failure_reason(&held), Some("timeout"), "{held}");
    db.thaw();
    let metrics = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_pool_exhausted_total",
            &[("type", "mongodb")]
        ),
        Some(1.0),
        "{metrics}"
    );
}

/// A server killed mid-probe fails that probe (not a hang past the timeout), the next probe
/// fails as refused while it is down, and once it is back the pool serves again.
#[tokio::test]
async fn a_server_killed_mid_probe_fails_the_probe_and_the_pool_recovers() {
    let mut db = FerretDb::start();
    let user = TempUser::create_password_checked();
    let ex = Exporter::start(&config(&[("m", &login(&user))])).await;
    let (_, body) = ex.probe("m", &db.address()).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");

    // Hang the server so the probe is surely in flight, then kill it under the probe.
    db.freeze();
    let url = ex.url(&format!(
        "/probe?module=m&target={}&debug=true",
        db.address()
    ));
    let in_flight = tokio::spawn(async move { support::get(&url, &[]).await.body });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    db.kill();
    let body = in_flight.await.unwrap();
    assert!(body.contains("probe_success 0"), "{body}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let reason = failure_reason(&body).unwrap_or_default().to_string();
    assert!(
        ["connection", "connection_refused", "timeout"].contains(&reason.as_str()),
        "{body}"
    );

    let debug = ex.debug_probe("m", &db.address()).await;
    assert!(debug.contains("probe_success 0"), "{debug}");
    assert_eq!(
        failure_reason(&debug),
        Some("connection_refused"),
        "{debug}"
    );

    db.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = ex.probe("m", &db.address()).await;
        if metric_value(&body, "probe_success") == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after restart: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_malformed_command_document_is_a_config_error_naming_the_field() {
    let yaml =
        "modules:\n  m:\n    prober: mongodb\n    mongodb:\n      command: '{\"dbStats\": '\n";
    let err = siembox_exporter::Config::from_yaml_str(yaml, "siembox.yml")
        .expect_err("a malformed command is refused")
        .to_string();
    assert!(err.contains("modules.m.mongodb.command"), "{err}");
    assert!(err.contains("siembox.yml"), "{err}");
    assert!(err.contains("JSON"), "{err}");
}
