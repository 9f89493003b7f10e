//! The `/probe` target allow-list: names, URLs and CIDR ranges; a denied target gets 403 and
//! no connection; the address checked is the address probed (a name resolving outside the
//! allowed ranges is refused after resolution).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::{metric_value, metric_value_with, Exporter};

/// A listener on `ip` that counts the connections it accepts.
async fn counting_listener(ip: &str) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let counter = n.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (addr, n)
}

#[tokio::test]
async fn denied_targets_get_403_and_no_connection() {
    let (allowed, allowed_hits) = counting_listener("127.0.0.1").await;
    let (other, other_hits) = counting_listener("127.0.0.2").await;
    let ex = Exporter::start(
        "web:\n  allowed_targets: [\"127.0.0.1/32\", \"*.allowed.test\"]\nmodules:\n  tcp_connect:\n    prober: tcp\n    timeout: 2s\n",
    )
    .await;
    let (status, body) = ex.probe("tcp_connect", &allowed.to_string()).await;
    assert_eq!(
        (status, metric_value(&body, "probe_success")),
        (200, Some(1.0)),
        "{body}"
    );
    let (status, body) = ex.probe("tcp_connect", &other.to_string()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("allow-list"), "{body}");
    // `localhost` is not named in the list, but resolves (hosts file) into an allowed range.
    let (status, body) = ex
        .probe("tcp_connect", &format!("localhost:{}", allowed.port()))
        .await;
    assert_eq!(
        (status, metric_value(&body, "probe_success")),
        (200, Some(1.0)),
        "{body}"
    );
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 2);
    assert_eq!(
        other_hits.load(Ordering::SeqCst),
        0,
        "a denied target must not be contacted"
    );
    let metrics = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_probe_failures_total",
            &[("reason", "denied")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_name_resolving_outside_the_ranges_is_refused_after_resolution() {
    let (target, hits) = counting_listener("127.0.0.1").await;
    let ex = Exporter::start("web:\n  allowed_targets: [\"10.0.0.0/8\"]\nmodules:\n  tcp_connect:\n    prober: tcp\n    timeout: 2s\n").await;
    let (status, body) = ex
        .probe("tcp_connect", &format!("localhost:{}", target.port()))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("127.0.0.1"), "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_module_list_replaces_the_global_one() {
    let (target, _) = counting_listener("127.0.0.1").await;
    let ex = Exporter::start(
        "web:\n  allowed_targets: [\"10.0.0.0/8\"]\nmodules:\n  open:\n    prober: tcp\n    allowed_targets: [\"127.0.0.0/8\"]\n  closed:\n    prober: tcp\n",
    )
    .await;
    assert_eq!(ex.probe("open", &target.to_string()).await.0, 200);
    assert_eq!(ex.probe("closed", &target.to_string()).await.0, 403);
}

#[test]
fn bad_patterns_are_config_errors() {
    let e = siembox_exporter::Config::from_yaml_str(
        "web:\n  allowed_targets: [\"10.0.0.0/99\"]\n",
        "t.yml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("t.yml:2") && e.contains("web.allowed_targets[0]"),
        "{e}"
    );
}

#[tokio::test]
async fn database_targets_are_checked_by_address_too() {
    let ex = Exporter::start(
        "web:\n  allowed_targets: [\"10.0.0.0/8\"]\nmodules:\n  pg:\n    prober: postgres\n    timeout: 2s\n    postgres:\n      user: postgres\n      database: test\n",
    )
    .await;
    let (status, body) = ex.probe("pg", "localhost:5432").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("127.0.0.1"), "{body}");
}
