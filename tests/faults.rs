//! Faults: silent, resetting and trickling targets, an sshd that dies mid-audit, a database that
//! stops mid-probe, a flood of /probe calls beyond the limits. Each gives the right
//! probe_success and reason, leaks no file descriptors or tasks, and the exporter stays
//! responsive on /-/healthy throughout.

mod support;

use std::time::{Duration, Instant};
use support::redis_server::RedisServer;
use support::slow_server::SlowServer;
use support::sshd::{KeyPair, Sshd, SshdOptions};
use support::{failure_reason, metric_value, metric_value_with, request, Exporter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The tests count the whole process's sockets: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Open sockets of this process. Not all fds: the runtimes of tests waiting for `SERIAL` (epoll,
/// eventfd) come and go in parallel, and leaked connections are what matters here.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Asks /-/healthy every 100 ms until told to stop; answers with the slowest reply seen.
fn watch_health(
    ex: &Exporter,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Duration>,
) {
    let url = ex.url("/-/healthy");
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        loop {
            let t = Instant::now();
            assert_eq!(request("GET", &url, &[]).await.status, 200);
            worst = worst.max(t.elapsed());
            tokio::select! {
                _ = &mut stopped => return worst,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    });
    (stop, task)
}

async fn worst_health(
    watch: (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Duration>,
    ),
) {
    let _ = watch.0.send(());
    let worst = watch.1.await.unwrap();
    assert!(
        worst < Duration::from_secs(1),
        "/-/healthy took {worst:?} during the fault"
    );
}

/// Fds and tasks are back where they were (a little slack for runtime internals).
async fn assert_no_leaks(fds_before: usize, tasks_before: usize) {
    // Closed sockets and finished tasks are reaped asynchronously.
    let mut settled = (0, 0);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        settled = (open_fds(), alive_tasks());
        if settled.0 <= fds_before + 2 && settled.1 <= tasks_before + 2 {
            return;
        }
    }
    panic!(
        "fds {fds_before} -> {}, tasks {tasks_before} -> {}",
        settled.0, settled.1
    );
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
    let _serial = SERIAL.lock().await;
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

/// An sshd whose sessions wait `hold` seconds (after touching `dir/started`) before running the
/// audit script, so a test can kill it while an audit is in flight.
fn slow_sshd(dir: &std::path::Path, client: &KeyPair, hold: &str) -> Sshd {
    let wrapper = dir.join("hold.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ntouch {}/started\nsleep {hold}\nexec sh -c \"$SSH_ORIGINAL_COMMAND\"\n",
            dir.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&wrapper)
        .status()
        .unwrap();
    Sshd::start(SshdOptions {
        authorized: vec![client.public_line.clone()],
        force_command: Some(wrapper),
    })
}

async fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < until, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_dying_mid_audit_fails_the_audit_and_the_pool_recovers() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap().keep();
    let client = KeyPair::generate(&dir, "client_ed25519");
    let mut sshd = slow_sshd(&dir, &client, "2");
    let kh = dir.join("known_hosts");
    std::fs::write(&kh, format!("{}\n", sshd.known_hosts_line())).unwrap();
    let yaml = format!(
        "modules:\n  vps_audit:\n    prober: ssh_audit\n    timeout: 30s\n    ssh_audit:\n      user: root\n      private_key_file: {}\n      known_hosts_file: {}\n      pool: {{retry_limit: 1, retry_delay: 100ms}}\n      checks: {{pending_updates: {{enabled: false}}, suid_files: {{enabled: false}}}}\nservers:\n  - {{name: local, address: \"{}\"}}\n",
        client.private.display(),
        kh.display(),
        sshd.address()
    );
    let ex = Exporter::start(&yaml).await;
    let audit_url = ex.url("/probe?module=vps_audit&target=local&debug=true");
    // A first audit opens the pooled connection the next one will be running on when it dies.
    let body = request("GET", &audit_url, &[]).await.body;
    assert!(body.contains("probe_success 1"), "{body}");
    let (fds_before, tasks_before) = (open_fds(), alive_tasks());
    let health = watch_health(&ex);

    let started = dir.join("started");
    std::fs::remove_file(&started).unwrap();
    let url = audit_url.clone();
    let audit = tokio::spawn(async move {
        let t = Instant::now();
        (request("GET", &url, &[]).await.body, t.elapsed())
    });
    wait_for("the audit session", || started.exists()).await;
    sshd.kill();
    let (body, took) = audit.await.unwrap();
    assert!(body.contains("probe_success 0"), "{body}");
    // The pooled connection died under the audit; the one retry found the port closed.
    assert_eq!(failure_reason(&body), Some("connection_refused"), "{body}");
    assert!(
        took < Duration::from_secs(20),
        "the audit waited for its deadline instead of failing: {took:?}"
    );
    let m = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value(&m, "siembox_vps_audit_connection_pool_open"),
        Some(0.0),
        "the dead connection left the pool: {m}"
    );
    assert_eq!(
        metric_value(&m, "siembox_vps_audit_connection_pool_active"),
        Some(0.0)
    );
    worst_health(health).await;

    // Back up on the same port: the next audit connects afresh and succeeds.
    sshd.restart();
    let body = request("GET", &audit_url, &[]).await.body;
    assert!(body.contains("probe_success 1"), "{body}");
    assert_eq!(
        metric_value(&body, "siembox_vps_audit_connection_reused"),
        Some(0.0)
    );
    // As before the fault: one pooled connection, nothing else left over.
    assert_no_leaks(fds_before, tasks_before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_fails_its_probes_and_the_pool_recovers() {
    let _serial = SERIAL.lock().await;
    let mut redis = RedisServer::start();
    let key = support::db::unique("siembox_never");
    let ex = Exporter::start(&format!(
        "modules:\n  ping:\n    prober: redis\n    timeout: 5s\n    redis:\n      command: PING\n  \
         blocked:\n    prober: redis\n    timeout: 20s\n    redis:\n      command: BLPOP {key} 10\n"
    ))
    .await;
    let target = redis.address();
    let debug = |module: &str| {
        ex.url(&format!(
            "/probe?module={module}&target={target}&debug=true"
        ))
    };
    let body = request("GET", &debug("ping"), &[]).await.body;
    assert!(body.contains("probe_success 1"), "{body}");
    let (fds_before, tasks_before) = (open_fds(), alive_tasks());
    let health = watch_health(&ex);

    // A command in flight when the server dies.
    let url = debug("blocked");
    let blocked = tokio::spawn(async move {
        let t = Instant::now();
        (request("GET", &url, &[]).await.body, t.elapsed())
    });
    let metrics_url = ex.url("/metrics");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let m = request("GET", &metrics_url, &[]).await.body;
        if metric_value_with(&m, "siembox_pool_in_use_connections", &[("type", "redis")])
            == Some(1.0)
        {
            break;
        }
        assert!(Instant::now() < until, "the blocking command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.kill();
    let (body, took) = blocked.await.unwrap();
    assert!(body.contains("probe_success 0"), "{body}");
    assert_eq!(failure_reason(&body), Some("connection"), "{body}");
    assert!(
        took < Duration::from_secs(10),
        "the probe waited for the command's own timeout: {took:?}"
    );
    // While it is down, the pooled connection of the other module is dead too.
    let body = request("GET", &debug("ping"), &[]).await.body;
    assert!(body.contains("probe_success 0"), "{body}");
    assert!(
        matches!(
            failure_reason(&body),
            Some("connection" | "connection_refused")
        ),
        "{body}"
    );
    worst_health(health).await;

    redis.restart();
    let body = request("GET", &debug("ping"), &[]).await.body;
    assert!(body.contains("probe_success 1"), "{body}");
    let m = request("GET", &metrics_url, &[]).await.body;
    assert_eq!(
        metric_value_with(&m, "siembox_pool_in_use_connections", &[("type", "redis")]),
        Some(0.0),
        "{m}"
    );
    assert_no_leaks(fds_before, tasks_before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_the_limits_is_refused_at_once_and_the_admitted_probes_finish() {
    let _serial = SERIAL.lock().await;
    let ex = Exporter::start(
        "limits: {max_concurrent: 4, per_type: {tcp: 2}, queue_size: 4}\nmodules:\n  slow:\n    prober: tcp\n    timeout: 10s\n    tcp:\n      query_response:\n        - expect: \"^READY\"\n",
    )
    .await;
    let server = SlowServer::start(Duration::from_millis(800)).await;
    let url = |i: usize| {
        ex.url(&format!(
            "/probe?module=slow&target={}&hostname=flood{i}&debug=true",
            server.target()
        ))
    };
    let body = request("GET", &url(9999), &[]).await.body;
    assert!(body.contains("probe_success 1"), "{body}");
    let (fds_before, tasks_before) = (open_fds(), alive_tasks());
    let health = watch_health(&ex);

    const FLOOD: usize = 150;
    let calls: Vec<_> = (0..FLOOD)
        .map(|i| {
            let u = url(i);
            tokio::spawn(async move { request("GET", &u, &[]).await })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for c in calls {
        let r = c.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body.contains("probe_success 1") {
            ok += 1;
        } else {
            assert!(r.body.contains("probe_success 0"), "{}", r.body);
            assert_eq!(
                failure_reason(&r.body),
                Some("rejected_by_limit"),
                "{}",
                r.body
            );
            assert!(r.body.contains("probe queue is full"), "{}", r.body);
            refused += 1;
        }
    }
    assert_eq!(ok + refused, FLOOD);
    // Two running and four queued at least; everything over the queue was turned away.
    assert!(ok >= 6, "{ok} succeeded");
    assert!(refused >= FLOOD / 2, "only {refused} refused");
    assert!(server.max_active() <= 2, "{} at once", server.max_active());
    // Refused at the door (queue full), not after waiting in vain for a slot.
    let m = ex.get("/metrics").await.body;
    let rejected = |reason: &str| {
        metric_value_with(
            &m,
            "siembox_queue_rejected_total",
            &[("type", "tcp"), ("reason", reason)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(rejected("queue_full"), refused as f64, "{m}");
    assert_eq!(rejected("wait_timeout"), 0.0, "{m}");
    assert_eq!(
        metric_value_with(&m, "siembox_limit_in_use", &[("limit", "tcp")]),
        Some(0.0)
    );
    assert_eq!(
        metric_value_with(&m, "siembox_queue_depth", &[("type", "tcp")]),
        Some(0.0),
        "{m}"
    );
    worst_health(health).await;
    assert_no_leaks(fds_before, tasks_before).await;
}
