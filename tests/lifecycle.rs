//! Reloads and shutdown with work in flight: a reload (even one that drops the pool a probe is
//! using) loses no probe, and SIGTERM to the real binary lets a probe that fits the grace period
//! answer, cancels the rest when it ends, refuses new connections at once and exits 0.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};
use support::binary::{get, Binary};
use support::redis_server::RedisServer;
use support::slow_server::SlowServer;
use support::{metric_value, metric_value_with, request, Exporter};

fn modules(tcp_timeout: &str, redis_timeout: &str, key: &str) -> String {
    format!(
        "modules:\n  slow:\n    prober: tcp\n    timeout: {tcp_timeout}\n    tcp:\n      query_response:\n        - expect: \"^READY\"\n  \
         blocked:\n    prober: redis\n    timeout: {redis_timeout}\n    redis:\n      command: BLPOP {key} 2\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_no_in_flight_probe() {
    let slow = SlowServer::start(Duration::from_millis(1500)).await;
    let redis = RedisServer::start();
    let key = support::db::unique("siembox_never");
    let ex = Exporter::start(&modules("10s", "10s", &key)).await;
    let path = ex.app.config_path().unwrap().clone();

    let mut calls = Vec::new();
    for i in 0..16 {
        let url = ex.url(&format!(
            "/probe?module=slow&target={}&hostname=r{i}",
            slow.target()
        ));
        calls.push(tokio::spawn(async move { request("GET", &url, &[]).await }));
    }
    for i in 0..3 {
        let url = ex.url(&format!(
            "/probe?module=blocked&target={}&hostname=r{i}",
            redis.address()
        ));
        calls.push(tokio::spawn(async move { request("GET", &url, &[]).await }));
    }
    let until = Instant::now() + Duration::from_secs(10);
    while slow.accepted() < 16 || ex.app.limiter.in_use(None) < 19 {
        assert!(Instant::now() < until, "the probes never all started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Mid-flight: both modules change (the redis one's pool is dropped and rebuilt), then a
    // second reload changes them back.
    std::fs::write(&path, modules("9s", "9s", &key)).unwrap();
    let r = request("POST", &ex.url("/-/reload"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    std::fs::write(&path, modules("10s", "10s", &key)).unwrap();
    let r = request("POST", &ex.url("/-/reload"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        ex.app.limiter.in_use(None) > 0,
        "the reloads happened after the probes ended: the test proves nothing"
    );

    for c in calls {
        let r = c.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            metric_value(&r.body, "probe_success"),
            Some(1.0),
            "{}",
            r.body
        );
    }
    let m = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value(&m, "siembox_exporter_config_last_reload_successful"),
        Some(1.0)
    );
    for module in ["slow", "blocked"] {
        assert_eq!(
            metric_value_with(
                &m,
                "siembox_probes_total",
                &[("module", module), ("result", "success")]
            ),
            Some(if module == "slow" { 16.0 } else { 3.0 }),
            "{m}"
        );
    }
    // The rebuilt redis pool serves the next probe.
    let (_, body) = ex.probe("blocked", &redis.address()).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
}

const TCP_MODULE: &str = "modules:\n  slow:\n    prober: tcp\n    timeout: 60s\n    tcp:\n      query_response:\n        - expect: \"^READY\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_short_probes_answer_and_cancels_long_ones_at_the_grace_period() {
    let short = SlowServer::start(Duration::from_millis(1500)).await;
    let long = SlowServer::start(Duration::from_secs(50)).await;
    let mut bin = Binary::start(TCP_MODULE, &["--web.shutdown-timeout", "4s"]);
    let port = bin.port;
    let probe = |target: String| {
        std::thread::spawn(move || get(port, &format!("/probe?module=slow&target={target}")))
    };
    let short_call = probe(short.target());
    let long_call = probe(long.target());
    let until = Instant::now() + Duration::from_secs(10);
    while short.accepted() == 0 || long.accepted() == 0 {
        assert!(Instant::now() < until, "the probes never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();
    bin.terminate();

    // The listener closes at once while the probes are still running.
    let until = Instant::now() + Duration::from_secs(2);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < until,
            "new connections are still accepted after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        bin.child.try_wait().unwrap().is_none(),
        "exited before the grace period"
    );
    // The short probe fits the grace period and gets its answer.
    let answer = short_call
        .join()
        .unwrap()
        .expect("the short probe answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("probe_success 1"), "{answer}");

    // The long one is cancelled when the grace period ends, and the process exits cleanly.
    let status = bin
        .wait(Duration::from_secs(10))
        .expect("still running 10s after a 4s grace period");
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}\n{}", bin.log_text());
    assert!(
        took >= Duration::from_secs(4),
        "exited after {took:?}: in-flight work was not given its grace period"
    );
    assert_eq!(
        long_call.join().unwrap(),
        None,
        "the long probe cannot answer"
    );
    let log = bin.log_text();
    assert!(log.contains("shutdown requested"), "{log}");
    assert!(log.contains("cancelled"), "{log}");
    assert!(log.contains("shut down"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_only_idle_connections_exits_without_waiting_for_them() {
    let mut bin = Binary::start(TCP_MODULE, &["--web.shutdown-timeout", "60s"]);
    // An idle keep-alive connection, as Prometheus holds between scrapes.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", bin.port)).unwrap();
    write!(idle, "GET /-/healthy HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    bin.terminate();
    let status = bin
        .wait(Duration::from_secs(20))
        .expect("an idle connection held the shutdown");
    assert!(status.success(), "{status:?}\n{}", bin.log_text());
    assert!(!bin.log_text().contains("cancelled"), "{}", bin.log_text());
}
