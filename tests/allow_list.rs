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

/// A backslash in the authority is a path separator to the URL parser the http prober uses:
/// the check reads the target the same way, so `A\@B` is judged (and refused) as A.
#[tokio::test]
async fn a_backslash_in_the_authority_is_judged_as_the_host_connected_to() {
    let (denied, hits) = counting_listener("127.0.0.2").await;
    let ex = Exporter::start(
        "web:\n  allowed_targets: [\"127.0.0.1/32\", \"*.allowed.test\"]\nmodules:\n  http:\n    prober: http\n    timeout: 2s\n",
    )
    .await;
    for target in [
        format!("http://{denied}\\@127.0.0.1:1/"),
        format!("http://{denied}\\.allowed.test/"),
        format!("{denied}\\@127.0.0.1:1/"),
    ] {
        let (status, body) = ex.probe("http", &target).await;
        assert_eq!(status, 403, "{target}: {body}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

/// A target allowed by IP literal, host pattern or URL pattern may not redirect to an address
/// the list does not allow.
#[tokio::test]
async fn every_redirect_hop_is_checked_like_the_first_target() {
    let (denied, hits) = counting_listener("127.0.0.2").await;
    let server = support::http_server::HttpServer::start().await;
    let port = server.addr.port();
    let ex = Exporter::start(&format!(
        "modules:\n  by_ip:\n    prober: http\n    timeout: 2s\n    allowed_targets: [\"127.0.0.1/32\"]\n  by_host:\n    prober: http\n    timeout: 2s\n    allowed_targets: [\"localhost\"]\n  by_url:\n    prober: http\n    timeout: 2s\n    allowed_targets: [\"http://localhost:{port}/goto/**\", \"http://localhost:{port}/\"]\n"
    ))
    .await;
    for (module, host) in [
        ("by_ip", "127.0.0.1"),
        ("by_host", "localhost"),
        ("by_url", "localhost"),
    ] {
        // Allowed, and followed: the redirect to an allowed place still works.
        let ok = format!("http://{host}:{port}/goto/{host}:{port}/");
        let (status, body) = ex.probe(module, &ok).await;
        assert_eq!(
            (status, metric_value(&body, "probe_success")),
            (200, Some(1.0)),
            "{module} {ok}: {body}"
        );
        let bad = format!("http://{host}:{port}/goto/{denied}/");
        let (status, body) = ex.probe(module, &bad).await;
        assert_eq!(status, 403, "{module}: {body}");
        assert!(
            body.contains(&format!("http://{denied}/ is not in the allow-list")),
            "{body}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a redirect reached a denied address"
    );
}

/// With `skip_resolve_phase_with_proxy` the proxy picks the address: only a name pattern can
/// allow such a target, never a range the exporter cannot check.
#[tokio::test]
async fn a_proxy_that_resolves_for_us_needs_a_name_pattern() {
    let (target, hits) = counting_listener("127.0.0.1").await;
    let proxy = support::http_server::TestProxy::start().await;
    let module = |list: &str| {
        format!("    prober: http\n    timeout: 2s\n    allowed_targets: [{list}]\n    http:\n      proxy_url: http://{}\n      skip_resolve_phase_with_proxy: true\n", proxy.addr)
    };
    let ex = Exporter::start(&format!(
        "modules:\n  ranges:\n{}  names:\n{}",
        module("\"127.0.0.0/8\""),
        module("\"localhost\"")
    ))
    .await;
    let url = format!("http://localhost:{}/", target.port());
    let (status, body) = ex.probe("ranges", &url).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("skip_resolve_phase_with_proxy"), "{body}");
    assert!(
        proxy.seen.lock().is_empty(),
        "the proxy was asked: {:?}",
        proxy.seen.lock()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // By name it is allowed, and goes through the proxy.
    let (status, body) = ex.probe("names", &url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(proxy.seen.lock().len(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn ipv4_mapped_ipv6_targets_are_checked_as_ipv4() {
    let (allowed, allowed_hits) = counting_listener("127.0.0.1").await;
    let (denied, denied_hits) = counting_listener("127.0.0.2").await;
    let ex = Exporter::start(
        "web:\n  allowed_targets: [\"127.0.0.1/32\"]\nmodules:\n  tcp:\n    prober: tcp\n    timeout: 2s\n",
    )
    .await;
    let (status, body) = ex
        .probe("tcp", &format!("[::ffff:127.0.0.2]:{}", denied.port()))
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = ex
        .probe("tcp", &format!("[::ffff:127.0.0.1]:{}", allowed.port()))
        .await;
    assert_eq!(
        (status, metric_value(&body, "probe_success")),
        (200, Some(1.0)),
        "{body}"
    );
    assert_eq!(denied_hits.load(Ordering::SeqCst), 0);
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 1);
}

/// Whatever the target string, through whichever prober: the only address ever connected to is
/// one the list allows. Targets are built from the pieces attackers combine (user info,
/// backslashes, encoded and mapped addresses, redirects); the denied listener counts contacts.
#[test]
fn fuzzed_targets_only_reach_allowed_addresses() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (ex, server, denied, hits) = rt.block_on(async {
        let (denied, hits) = counting_listener("127.0.0.2").await;
        let server = support::http_server::HttpServer::start().await;
        let modules = "  http:\n    prober: http\n    timeout: 300ms\n  tcp:\n    prober: tcp\n    timeout: 300ms\n  dns:\n    prober: dns\n    timeout: 300ms\n    dns:\n      query_name: example.org\n      transport_protocol: tcp\n  grpc:\n    prober: grpc\n    timeout: 300ms\n  pg:\n    prober: postgres\n    timeout: 300ms\n  redis:\n    prober: redis\n    timeout: 300ms\n";
        let port = server.addr.port();
        let ex = Exporter::start(&format!(
            "web:\n  allowed_targets: [\"127.0.0.1/32\", \"*.allowed.test\", \"http://127.0.0.1:{port}/goto/*\"]\nmodules:\n{modules}"
        ))
        .await;
        (ex, server, denied, hits)
    });
    let (a, d) = (server.addr.port().to_string(), denied.port().to_string());
    let fill = |s: &str| s.replace("{A}", &a).replace("{D}", &d);
    let schemes: Vec<String> = [
        "",
        "http://",
        "HTTP://",
        "https://",
        "tcp://",
        "postgres://",
        "redis://",
    ]
    .map(fill)
    .to_vec();
    let userinfo: Vec<String> = [
        "",
        "127.0.0.2:{D}@",
        "127.0.0.2:{D}\\@",
        "x:y@",
        "127.0.0.1:{A}@",
    ]
    .map(fill)
    .to_vec();
    // Allowed hosts, ports and the http prober come up more often, so that redirects from an
    // allowed server to the denied one are tried many times per run.
    let hosts: Vec<String> = [
        "127.0.0.1",
        "127.0.0.1",
        "127.0.0.1",
        "localhost",
        "localhost",
        "127.0.0.2",
        "[::ffff:127.0.0.2]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:2]",
        "localhost",
        "2130706434",
        "0x7f000002",
        "127.2",
        "a.allowed.test",
        "127.0.0.2\\.allowed.test",
        "127.0.0.1\\@127.0.0.2",
        "127.0.0.2%2f.allowed.test",
    ]
    .map(fill)
    .to_vec();
    let ports: Vec<String> = ["", ":{A}", ":{A}", ":{A}", ":{D}", ":{A}:{D}"]
        .map(fill)
        .to_vec();
    let tails: Vec<String> = [
        "",
        "/",
        "/goto/127.0.0.2:{D}/",
        "/goto/[::ffff:127.0.0.2]:{D}/",
        "/goto/127.0.0.1:{A}/",
        "\\@127.0.0.2:{D}/",
        "@127.0.0.2:{D}/",
        "#@127.0.0.2:{D}",
        "?@127.0.0.2:{D}",
        "/..\\@127.0.0.2:{D}",
    ]
    .map(fill)
    .to_vec();
    let modules = ["http", "http", "http", "tcp", "dns", "grpc", "pg", "redis"];
    let strategy = (
        proptest::sample::select(schemes),
        proptest::sample::select(userinfo),
        proptest::sample::select(hosts),
        proptest::sample::select(ports),
        proptest::sample::select(tails),
        proptest::sample::select(modules.to_vec()),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&strategy, |(s, u, h, p, t, module)| {
            let target = format!("{s}{u}{h}{p}{t}");
            let (status, body) = rt.block_on(ex.probe(module, &target));
            prop_assert!(status < 500, "{module} {target}: {status} {body}");
            prop_assert_eq!(
                hits.load(Ordering::SeqCst),
                0,
                "{} {} reached the denied address: {}",
                module,
                target,
                body
            );
            Ok(())
        })
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a generated target reached the denied address"
    );
    // The exporter does reach allowed addresses, so the zero above is the list's doing.
    let (status, body) = rt.block_on(ex.probe("http", &format!("http://127.0.0.1:{a}/")));
    assert_eq!(
        (status, metric_value(&body, "probe_success")),
        (200, Some(1.0)),
        "{body}"
    );
    assert!(!server.requests().is_empty());
}

/// Where only a range allows a database target, the driver does not resolve the name again: it
/// is handed the address just checked (postgres `hostaddr`, mysql and redis by IP), so a name
/// that answers differently a moment later cannot lead it elsewhere.
#[tokio::test]
async fn database_drivers_connect_to_the_checked_address() {
    let redis = support::redis_server::RedisServer::start();
    let ex = Exporter::start(
        "web:\n  allowed_targets: [\"127.0.0.0/8\"]\nmodules:\n  pg:\n    prober: postgres\n    timeout: 5s\n    postgres:\n      user: postgres\n      database: test\n      query: SELECT host(inet_server_addr())\n      expected_result: 127.0.0.1\n  my:\n    prober: mysql\n    timeout: 5s\n    mysql:\n      user: root\n  rd:\n    prober: redis\n    timeout: 5s\n",
    )
    .await;
    let targets = [
        // The system resolver (which the drivers would use) does not know `localhost.`; ours
        // finds it in the hosts file: only a driver pinned to the checked address connects.
        ("pg", "localhost.:5432".to_string()),
        ("my", "localhost.:3306".to_string()),
        ("rd", format!("localhost.:{}", redis.port)),
    ];
    for (module, target) in targets {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("module", module)
            .append_pair("target", &target)
            .append_pair("debug", "true")
            .finish();
        let body = ex.get(&format!("/probe?{q}")).await.body;
        assert!(
            body.contains("at the checked address 127.0.0.1"),
            "{module}: {body}"
        );
        assert!(body.contains("probe_success 1"), "{module}: {body}");
    }
}

/// The mongodb driver, plain, is pinned like the others: FerretDB reached through `localhost.`,
/// a name only our resolver knows, so only a driver handed the checked address connects.
#[tokio::test]
async fn the_mongodb_driver_connects_to_the_checked_address() {
    let ferret = support::ferretdb::FerretDb::start();
    let port = ferret.address().rsplit(':').next().unwrap().to_string();
    let ex = Exporter::start(
        "web:\n  allowed_targets: [\"127.0.0.0/8\"]\nmodules:\n  mg:\n    prober: mongodb\n    timeout: 5s\n",
    )
    .await;
    let body = ex.debug_probe("mg", &format!("localhost.:{port}")).await;
    assert!(body.contains("at the checked address 127.0.0.1"), "{body}");
    assert!(body.contains("probe_success 1"), "{body}");
}

/// Over TLS, redis-rs and the mongodb driver need the name to connect and look it up again
/// themselves, so an address range cannot hold them to the address checked (TTL 0 rebinding):
/// such a name is refused unless the allow-list names it; by name, or by IP literal, it is
/// probed.
#[tokio::test]
async fn drivers_that_resolve_names_themselves_need_the_name_allowed() {
    let (listener, hits) = counting_listener("127.0.0.1").await;
    let port = listener.port();
    let module = |name: &str, prober: &str, list: &str| {
        format!("  {name}:\n    prober: {prober}\n    timeout: 2s\n    allowed_targets: [{list}]\n    {prober}:\n      tls: true\n")
    };
    let ex = Exporter::start(&format!(
        "modules:\n{}{}{}{}",
        module("redis_range", "redis", "\"127.0.0.0/8\""),
        module("mongo_range", "mongodb", "\"127.0.0.0/8\""),
        module("redis_name", "redis", "\"localhost\""),
        module("mongo_name", "mongodb", "\"localhost\""),
    ))
    .await;
    for m in ["redis_range", "mongo_range"] {
        let (status, body) = ex.probe(m, &format!("localhost:{port}")).await;
        assert_eq!(status, 403, "{m}: {body}");
        assert!(body.contains("host pattern"), "{m}: {body}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a refused target was connected to"
    );
    // An IP literal in the range needs no lookup: it is probed (and fails the TLS handshake
    // with this listener, which only counts).
    for m in ["redis_range", "mongo_range"] {
        let (status, body) = ex.probe(m, &format!("127.0.0.1:{port}")).await;
        assert_eq!(status, 200, "{m}: {body}");
        assert_eq!(metric_value(&body, "probe_success"), Some(0.0), "{m}");
    }
    let after_literals = hits.load(Ordering::SeqCst);
    assert!(after_literals >= 2, "IP literals were not probed");
    // Allowed by name, the driver may resolve it itself.
    for m in ["redis_name", "mongo_name"] {
        let (status, body) = ex.probe(m, &format!("localhost:{port}")).await;
        assert_eq!(status, 200, "{m}: {body}");
    }
    assert!(
        hits.load(Ordering::SeqCst) > after_literals,
        "names were not probed"
    );
}
