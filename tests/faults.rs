//! Faulty targets: silent, resetting, trickling. Each gives the right probe_success and reason,
//! leaks no file descriptors or tasks, and the exporter stays responsive on /-/healthy.

mod support;

use std::time::{Duration, Instant};
use support::{request, Exporter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Starts a fault server: `kind` is "silent", "reset" or "trickle".
async fn fault_server(kind: &'static str) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                match kind {
                    "silent" => {
                        let mut buf = [0u8; 64];
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    }
                    "reset" => {
                        // SO_LINGER 0 turns close into a TCP reset.
                        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                        drop(s);
                    }
                    _ => {
                        for b in b"220 slowly, very slowly\r\n" {
                            if s.write_all(&[*b]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                    }
                }
            });
        }
    });
    addr
}

const CONFIG: &str = "
modules:
  banner:
    prober: tcp
    timeout: 30s
    tcp:
      query_response:
        - expect: \"^220 \"
";

async fn probe_with_timeout(ex: &Exporter, target: &str, seconds: &str) -> (String, Duration) {
    let start = Instant::now();
    let r = request(
        "GET",
        &ex.url(&format!("/probe?module=banner&target={target}&debug=true")),
        &[("X-Prometheus-Scrape-Timeout-Seconds", seconds)],
    )
    .await;
    (r.body, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_targets_fail_cleanly_without_leaks() {
    let ex = Exporter::start(CONFIG).await;
    let silent = fault_server("silent").await;
    let reset = fault_server("reset").await;
    let trickle = fault_server("trickle").await;
    // Warm up lazily created state (resolver, runtime workers) before counting.
    let _ = probe_with_timeout(&ex, &reset.to_string(), "2").await;
    let fds_before = open_fds();
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();

    let health = {
        let url = ex.url("/-/healthy");
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            for _ in 0..20 {
                let t = Instant::now();
                assert_eq!(request("GET", &url, &[]).await.status, 200);
                worst = worst.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            worst
        })
    };
    let (body, took) = probe_with_timeout(&ex, &silent.to_string(), "1.5").await;
    assert!(
        body.contains("probe_success 0") && body.contains("failure_reason=timeout"),
        "{body}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (body, _) = probe_with_timeout(&ex, &reset.to_string(), "2").await;
    assert!(body.contains("probe_success 0"), "{body}");
    assert!(
        body.contains("failure_reason=regexp") || body.contains("failure_reason=connection"),
        "{body}"
    );
    // The trickling server needs ~7s for its line; the 2s deadline cuts it off.
    let (body, took) = probe_with_timeout(&ex, &trickle.to_string(), "2.5").await;
    assert!(
        body.contains("probe_success 0") && body.contains("failure_reason=timeout"),
        "{body}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    let worst = health.await.unwrap();
    assert!(
        worst < Duration::from_secs(1),
        "/-/healthy took {worst:?} while probes were stuck"
    );

    // Connections of finished probes are closed, and their tasks gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fds_after = open_fds();
    let tasks_after = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert!(
        fds_after <= fds_before + 2,
        "fds {fds_before} -> {fds_after}"
    );
    assert!(
        tasks_after <= tasks_before + 2,
        "tasks {tasks_before} -> {tasks_after}"
    );
}
