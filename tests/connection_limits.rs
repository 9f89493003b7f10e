//! Our listener stays answerable under clients that connect and stall: hyper's header-read
//! timer closes a client that never finishes its headers or idles between requests, and past
//! `--web.max-connections` the oldest idle connection is shed for the new one.

mod support;

use siembox_exporter::{App, AppOptions, Config};
use std::time::{Duration, Instant};
use support::Exporter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes `s`; `None` if it is still open after `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_idle_clients_are_closed_after_the_header_read_timeout() {
    let options = AppOptions {
        header_read_timeout: Duration::from_millis(500),
        ..AppOptions::default()
    };
    let ex = Exporter::start_app(App::new(Config::builtin(), None, options)).await;
    let mut silent = TcpStream::connect(ex.addr).await.unwrap();
    let mut partial = TcpStream::connect(ex.addr).await.unwrap();
    partial
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A keep-alive client that got its answer and then idles.
    let mut idle = TcpStream::connect(ex.addr).await.unwrap();
    idle.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    for (what, s) in [
        ("silent", &mut silent),
        ("partial", &mut partial),
        ("idle", &mut idle),
    ] {
        let after = closed_within(s, Duration::from_secs(5)).await;
        let after = after.unwrap_or_else(|| panic!("the {what} client was never closed"));
        assert!(after < Duration::from_secs(2), "{what}: {after:?}");
    }
}

/// 2,000 clients (half silent, half stuck mid-headers) against the default cap of 1,024: a
/// scrape still gets through within a second, the oldest stalled clients are the ones closed,
/// and the newest are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_stalled_clients_cannot_lock_out_a_scrape() {
    let ex = Exporter::start_app(App::new(Config::builtin(), None, AppOptions::default())).await;
    let mut stalled = Vec::with_capacity(2000);
    for i in 0..2000 {
        let mut s = TcpStream::connect(ex.addr).await.unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        stalled.push(s);
    }
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(1),
        support::get(&ex.url("/-/healthy"), &[]),
    )
    .await
    .expect("/-/healthy did not answer within 1 s");
    assert_eq!(answer.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    for (i, s) in stalled[..900].iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(2)).await.is_some(),
            "stalled client {i}, among the oldest, is still open"
        );
    }
    let newest = stalled.last_mut().unwrap();
    assert!(
        closed_within(newest, Duration::from_millis(200))
            .await
            .is_none(),
        "the newest client was closed too: the cap sheds more than it needs"
    );
}
