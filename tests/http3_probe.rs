//! The http prober with `enable_http3` against a real HTTP/3 server (QUIC on loopback UDP)
//! started by each test; follows blackbox prober/http_test.go TestHTTP3ProbeQUIC and
//! TestValidHTTPVersionsQUIC, with our own certificates instead of insecure_skip_verify.

mod support;

use std::time::{Duration, Instant};
use support::certs::{TestPki, VALID_NOT_AFTER};
use support::h3_server::{start_silent_udp, H3Server};
use support::{failure_reason, metric_value, metric_value_with, Exporter};

const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

/// An HTTP/3 module `name` (blackbox's rules: enable_http2 off) with extra `http:` lines.
fn h3_module(name: &str, timeout: &str, http: &str) -> String {
    format!("  {name}:\n    prober: http\n    timeout: {timeout}\n    http:\n      preferred_ip_protocol: ip4\n      enable_http3: true\n      enable_http2: false\n{http}")
}

fn with_ca(pki: &TestPki, extra: &str) -> String {
    format!(
        "{extra}      tls_config:\n        ca_file: {}\n",
        pki.ca_file.display()
    )
}

async fn exporter(modules: &str) -> Exporter {
    Exporter::start(&format!("modules:\n{modules}")).await
}

async fn probe(ex: &Exporter, module: &str, target: &str) -> String {
    let (status, body) = ex.probe(module, target).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn value(body: &str, name: &str) -> f64 {
    metric_value(body, name).unwrap_or_else(|| panic!("no {name} in\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_succeeds_with_version_phases_and_tls_metrics() {
    let pki = TestPki::generate();
    let server = H3Server::start(&pki.valid).await;
    let mods = h3_module(
        "h3",
        "5s",
        &with_ca(&pki, "      valid_http_versions: [\"HTTP/3.0\"]\n"),
    ) + &h3_module("h3_any_version", "5s", &with_ca(&pki, ""));
    let ex = exporter(&mods).await;
    for module in ["h3", "h3_any_version"] {
        let body = probe(&ex, module, &server.url("/")).await;
        assert_eq!(value(&body, "probe_success"), 1.0, "{module}: {body}");
        assert_eq!(value(&body, "probe_http_version"), 3.0);
        assert_eq!(value(&body, "probe_http_status_code"), 200.0);
        assert_eq!(value(&body, "probe_http_ssl"), 1.0);
        assert_eq!(value(&body, "probe_http_uncompressed_body_length"), 12.0);
        assert_eq!(value(&body, "probe_ip_protocol"), 4.0);
        assert_eq!(
            value(&body, "probe_ssl_earliest_cert_expiry"),
            VALID_NOT_AFTER as f64
        );
        assert!(
            metric_value(&body, "probe_ssl_last_chain_expiry_timestamp_seconds").is_some(),
            "{body}"
        );
        assert!(body.contains("probe_ssl_last_chain_info{"), "{body}");
        assert!(
            body.contains("probe_tls_version_info{version=\"TLS 1.3\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("probe_tls_cipher_info{cipher=\"TLS_AES_128_GCM_SHA256\"} 1"),
            "{body}"
        );
        for phase in PHASES {
            assert!(
                metric_value_with(&body, "probe_http_duration_seconds", &[("phase", phase)])
                    .is_some(),
                "phase {phase} missing:\n{body}"
            );
        }
        // The QUIC handshake is the tls phase; the request the processing phase.
        for phase in ["tls", "processing"] {
            let took = metric_value_with(&body, "probe_http_duration_seconds", &[("phase", phase)]);
            assert!(took.unwrap() > 0.0, "{phase}: {body}");
        }
    }
    let r = server.last_request();
    assert_eq!(r.version, "HTTP/3.0");
    assert_eq!(r.method, "GET");
    assert_eq!(r.header("host"), Some(server.addr.to_string().as_str()));
    assert_eq!(
        r.header("connection"),
        None,
        "HTTP/3 has no Connection header"
    );
    assert!(r
        .header("user-agent")
        .unwrap()
        .starts_with("siembox-exporter/"));
}

// blackbox prober/http.go: with enable_http3 an http:// (or scheme-less) target is probed as
// https://.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_targets_are_probed_as_https() {
    let pki = TestPki::generate();
    let server = H3Server::start(&pki.valid).await;
    let ex = exporter(&h3_module("h3", "5s", &with_ca(&pki, ""))).await;
    for target in [
        format!("http://{}/", server.addr),
        format!("{}/", server.addr),
    ] {
        let body = probe(&ex, "h3", &target).await;
        assert_eq!(value(&body, "probe_success"), 1.0, "{target}: {body}");
        assert_eq!(value(&body, "probe_http_ssl"), 1.0);
    }
    let out = ex
        .debug_probe("h3", &format!("http://{}/", server.addr))
        .await;
    assert!(out.contains("Converting HTTP to HTTPS"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_matchers_redirects_and_bodies_use_the_http_pipeline() {
    let pki = TestPki::generate();
    let server = H3Server::start(&pki.valid).await;
    let mods = h3_module("h3", "5s", &with_ca(&pki, ""))
        + &h3_module(
            "want_404",
            "5s",
            &with_ca(&pki, "      valid_status_codes: [404]\n"),
        )
        + &h3_module(
            "body_regex",
            "5s",
            &with_ca(&pki, "      fail_if_body_not_matches_regexp: [\"hello w.rld\"]\n"),
        )
        + &h3_module(
            "header_regex",
            "5s",
            &with_ca(
                &pki,
                "      fail_if_header_not_matches:\n        - header: X-Test\n          regexp: '^beta$'\n",
            ),
        )
        + &h3_module(
            "post",
            "5s",
            &with_ca(
                &pki,
                "      method: POST\n      body: ping-over-quic\n      headers:\n        X-Probe: h3\n      fail_if_body_not_matches_regexp: [\"body=ping-over-quic\", \"x-probe: h3\"]\n",
            ),
        );
    let ex = exporter(&mods).await;

    // Status code mismatch: 2xx wanted by default.
    let body = probe(&ex, "h3", &server.url("/status/404")).await;
    assert_eq!(value(&body, "probe_success"), 0.0, "{body}");
    assert_eq!(value(&body, "probe_http_status_code"), 404.0);
    assert_eq!(value(&body, "probe_http_version"), 3.0);
    let body = probe(&ex, "want_404", &server.url("/status/404")).await;
    assert_eq!(value(&body, "probe_success"), 1.0, "{body}");

    // Redirects are followed over HTTP/3 too, each hop counted.
    let body = probe(&ex, "h3", &server.url("/redirect/2")).await;
    assert_eq!(value(&body, "probe_success"), 1.0, "{body}");
    assert_eq!(value(&body, "probe_http_redirects"), 2.0);
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/redirect/"))
            .count(),
        3
    );

    // Body and header matchers.
    let body = probe(&ex, "body_regex", &server.url("/")).await;
    assert_eq!(value(&body, "probe_success"), 1.0, "{body}");
    let body = probe(&ex, "body_regex", &server.url("/status/200")).await;
    assert_eq!(value(&body, "probe_success"), 0.0, "{body}");
    assert_eq!(value(&body, "probe_failed_due_to_regex"), 1.0);
    let body = probe(&ex, "header_regex", &server.url("/headers")).await;
    assert_eq!(value(&body, "probe_success"), 0.0, "{body}");
    assert_eq!(value(&body, "probe_failed_due_to_regex"), 1.0);

    // A request body and module headers reach the server.
    let body = probe(&ex, "post", &server.url("/echo")).await;
    assert_eq!(value(&body, "probe_success"), 1.0, "{body}");
    assert_eq!(server.last_request().method, "POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_fails_with_reason_tls_and_tls_settings_apply() {
    let pki = TestPki::generate();
    let untrusted = H3Server::start(&pki.untrusted).await;
    let valid = H3Server::start(&pki.valid).await;
    let mods = h3_module("h3", "5s", &with_ca(&pki, ""))
        + &h3_module(
            "insecure",
            "5s",
            "      tls_config:\n        insecure_skip_verify: true\n",
        )
        + &h3_module(
            "other_name",
            "5s",
            &format!(
                "      tls_config:\n        ca_file: {}\n        server_name: elsewhere.example\n",
                pki.ca_file.display()
            ),
        )
        + &h3_module(
            "by_name",
            "5s",
            &format!(
                "      tls_config:\n        ca_file: {}\n        server_name: localhost\n",
                pki.ca_file.display()
            ),
        );
    let ex = exporter(&mods).await;

    let body = probe(&ex, "h3", &untrusted.url("/")).await;
    assert_eq!(value(&body, "probe_success"), 0.0, "{body}");
    assert_eq!(
        value(&body, "probe_ssl_unverified_cert_expiry"),
        VALID_NOT_AFTER as f64
    );
    assert!(!body.contains("probe_tls_version_info"), "{body}");
    let out = ex.debug_probe("h3", &untrusted.url("/")).await;
    assert_eq!(failure_reason(&out), Some("tls"), "{out}");
    assert!(out.contains("certificate verification failed"), "{out}");
    assert!(
        untrusted.requests().is_empty(),
        "no request goes to an unverified server"
    );

    let body = probe(&ex, "insecure", &untrusted.url("/")).await;
    assert_eq!(value(&body, "probe_success"), 1.0, "{body}");

    let out = ex.debug_probe("other_name", &valid.url("/")).await;
    assert_eq!(failure_reason(&out), Some("tls"), "{out}");
    let body = probe(&ex, "by_name", &valid.url("/")).await;
    assert_eq!(value(&body, "probe_success"), 1.0, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_or_no_answer_fails_within_the_timeout() {
    let pki = TestPki::generate();
    let ex = exporter(&h3_module("h3", "2s", &with_ca(&pki, ""))).await;
    // A UDP port nobody listens on.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (silent, _task) = start_silent_udp().await;
    for addr in [closed, silent] {
        let target = format!("https://{addr}/");
        let started = Instant::now();
        let out = ex.debug_probe("h3", &target).await;
        let took = started.elapsed();
        assert!(out.contains("probe_success 0"), "{addr}: {out}");
        assert_eq!(failure_reason(&out), Some("timeout"), "{addr}: {out}");
        assert!(
            took < Duration::from_millis(3000),
            "{addr}: answered after {took:?} with a 2 s timeout"
        );
    }
}

// Every hop goes through the allow-list first, as over TCP; a hop that is allowed but leaves
// https fails, as quic-go refuses it in blackbox ("unsupported protocol scheme").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_hops_are_checked_against_the_allow_list_and_need_https() {
    let pki = TestPki::generate();
    let server = H3Server::start(&pki.valid).await;
    let ex = Exporter::start(&format!(
        "modules:\n{}    allowed_targets: [\"127.0.0.1/32\"]\n",
        h3_module("h3", "5s", &with_ca(&pki, ""))
    ))
    .await;
    // As over TCP (tests/allow_list.rs): a denied hop answers 403 naming it.
    let (status, body) = ex.probe("h3", &server.url("/goto/127.0.0.2:9/")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("http://127.0.0.2:9/ is not in the allow-list"),
        "{body}"
    );
    let out = ex
        .debug_probe("h3", &server.url(&format!("/goto/{}/", server.addr)))
        .await;
    assert!(out.contains("probe_success 0"), "{out}");
    assert_eq!(failure_reason(&out), Some("protocol"), "{out}");
    assert!(out.contains("HTTP/3 needs https"), "{out}");
}

// The body goes through the same bounded reader as over TCP; a TLS range without 1.3 cannot
// carry QUIC (blackbox raises the minimum to 1.3, so its handshake fails too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_size_limit_applies_and_tls12_only_is_refused() {
    let pki = TestPki::generate();
    let server = H3Server::start(&pki.valid).await;
    let mods = h3_module(
        "limited",
        "5s",
        &with_ca(&pki, "      body_size_limit: 1000\n"),
    ) + &h3_module(
        "tls12",
        "5s",
        &format!(
            "      tls_config:\n        ca_file: {}\n        max_version: TLS12\n",
            pki.ca_file.display()
        ),
    );
    let ex = exporter(&mods).await;
    let body = probe(&ex, "limited", &server.url("/big/500")).await;
    assert_eq!(value(&body, "probe_success"), 1.0, "{body}");
    assert_eq!(value(&body, "probe_http_uncompressed_body_length"), 500.0);
    let out = ex.debug_probe("limited", &server.url("/big/100000")).await;
    assert!(out.contains("probe_success 0"), "{out}");
    assert!(out.contains("larger than body_size_limit"), "{out}");
    assert!(
        metric_value(&out, "probe_http_uncompressed_body_length") == Some(1000.0),
        "{out}"
    );

    let out = ex.debug_probe("tls12", &server.url("/")).await;
    assert!(out.contains("probe_success 0"), "{out}");
    assert_eq!(failure_reason(&out), Some("config"), "{out}");
    assert!(out.contains("HTTP/3 needs TLS 1.3"), "{out}");
}
