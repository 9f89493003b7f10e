//! The websocket prober (blackbox master `prober/websocket.go`, CONFIGURATION.md
//! `<websocket_probe>`; follows prober/websocket_test.go TestProbeWebsocket and
//! TestCostructHeadersFromConfig) against a websocket server of the test's own, plain and wss:
//! the query/response dialogue matching and not, credentials and headers as sent, a server that
//! never upgrades or never answers (a clear reason, probe_success 0 within the timeout), and no
//! header secret in /config or debug output. blackbox 0.28 has no websocket prober, so there is
//! no side-by-side comparison; the metric names are those of blackbox's source.

mod support;

use siembox_exporter::config::Config;
use std::time::{Duration, Instant};
use support::websocket_server::{not_upgrading, WsMode, WsServer};
use support::{failure_reason, metric_value, metric_value_with, Exporter};

const SECRET: &str = "s3cret-header-value";
const PASSWORD: &str = "basic-pass-word";
const FILE_SECRET: &str = "from-a-file-secret";

fn modules(ca: &str, header_file: &str) -> String {
    format!(
        "modules:
  ws_dialogue:
    prober: websocket
    timeout: 2s
    websocket:
      preferred_ip_protocol: ip4
      http_config:
        basic_auth: {{username: probe, password: {PASSWORD}}}
      headers:
        X-Plain:
          values: [plain-value]
        X-Token:
          secrets: [{SECRET}]
        X-From-File:
          files: [{header_file}]
      query_response:
        - expect: \"^Hello, (.+)$\"
          labels:
            - name: client
              value: \"${{1}}\"
          send: \"I am ${{1}}\"
        - expect: \"^Welcome I am client-42$\"
  ws_no_match:
    prober: websocket
    timeout: 2s
    websocket:
      preferred_ip_protocol: ip4
      query_response:
        - expect: \"^Goodbye\"
  ws_connect:
    prober: websocket
    timeout: 1s
    websocket:
      preferred_ip_protocol: ip4
  ws_expect:
    prober: websocket
    timeout: 1s
    websocket:
      preferred_ip_protocol: ip4
      query_response:
        - expect: \"^Hello\"
  wss_trusted:
    prober: websocket
    timeout: 2s
    websocket:
      preferred_ip_protocol: ip4
      http_config:
        authorization: {{credentials: {SECRET}}}
        tls_config: {{ca_file: {ca}}}
      query_response:
        - expect: \"^Hello, client-42$\"
  wss_untrusted:
    prober: websocket
    timeout: 2s
    websocket:
      preferred_ip_protocol: ip4
"
    )
}

struct Setup {
    _pki: support::certs::TestPki,
    _dir: tempfile::TempDir,
    ours: Exporter,
}

async fn setup() -> Setup {
    let pki = support::certs::TestPki::generate();
    let dir = tempfile::tempdir().unwrap();
    let header_file = dir.path().join("header.txt");
    std::fs::write(&header_file, format!("  {FILE_SECRET}\n")).unwrap();
    let ours = Exporter::start(&modules(
        &pki.ca_file.display().to_string(),
        &header_file.display().to_string(),
    ))
    .await;
    Setup {
        _pki: pki,
        _dir: dir,
        ours,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialogue_that_matches_succeeds_with_blackbox_metrics_and_headers_sent() {
    let s = setup().await;
    let server = WsServer::start(WsMode::Greeter, None).await;
    let (_, body) = s.ours.probe("ws_dialogue", &server.url("ws")).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert_eq!(
        metric_value(&body, "probe_websocket_status_code"),
        Some(101.0)
    );
    assert_eq!(
        metric_value(&body, "probe_websocket_connection_upgraded"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&body, "probe_websocket_failed_due_to_regex"),
        Some(0.0)
    );
    for phase in ["resolve", "connect", "processing", "transfer"] {
        assert!(
            metric_value_with(
                &body,
                "probe_websocket_duration_seconds",
                &[("phase", phase)]
            )
            .is_some(),
            "{phase}: {body}"
        );
    }
    assert_eq!(
        metric_value_with(&body, "probe_expect_info", &[("client", "client-42")]),
        Some(1.0),
        "{body}"
    );
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("probe:{PASSWORD}"));
    assert_eq!(server.header("authorization"), [format!("Basic {basic}")]);
    assert_eq!(server.header("x-plain"), ["plain-value"]);
    assert_eq!(server.header("x-token"), [SECRET]);
    assert_eq!(server.header("x-from-file"), [FILE_SECRET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_does_not_match_fails_on_the_regex() {
    let s = setup().await;
    let server = WsServer::start(WsMode::Greeter, None).await;
    let debug = s.ours.debug_probe("ws_no_match", &server.url("ws")).await;
    assert_eq!(metric_value(&debug, "probe_success"), Some(0.0), "{debug}");
    assert_eq!(failure_reason(&debug), Some("regexp"), "{debug}");
    assert_eq!(
        metric_value(&debug, "probe_websocket_failed_due_to_regex"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&debug, "probe_websocket_connection_upgraded"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_verifies_the_certificate_and_reports_tls() {
    let s = setup().await;
    let server = WsServer::start(WsMode::Greeter, Some(s._pki.valid.acceptor(&[]))).await;
    let (_, body) = s.ours.probe("wss_trusted", &server.url("wss")).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert!(
        metric_value(&body, "probe_tls_version_info").is_some(),
        "{body}"
    );
    assert_eq!(server.header("authorization"), [format!("Bearer {SECRET}")]);
    let debug = s
        .ours
        .debug_probe("wss_untrusted", &server.url("wss"))
        .await;
    assert_eq!(metric_value(&debug, "probe_success"), Some(0.0), "{debug}");
    assert_eq!(failure_reason(&debug), Some("tls"), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_upgrades_fails_with_its_status() {
    let s = setup().await;
    let (addr, _task) = not_upgrading(Some(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")).await;
    let debug = s
        .ours
        .debug_probe("ws_connect", &format!("ws://{addr}/"))
        .await;
    assert_eq!(metric_value(&debug, "probe_success"), Some(0.0), "{debug}");
    assert_eq!(
        metric_value(&debug, "probe_websocket_status_code"),
        Some(200.0),
        "{debug}"
    );
    assert_eq!(
        metric_value(&debug, "probe_websocket_connection_upgraded"),
        Some(0.0)
    );
    assert_eq!(failure_reason(&debug), Some("status"), "{debug}");
    assert!(debug.contains("not 101 Switching Protocols"), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_within_the_timeout() {
    let s = setup().await;
    // Never answers the upgrade request.
    let (addr, _task) = not_upgrading(None).await;
    let started = Instant::now();
    let debug = s
        .ours
        .debug_probe("ws_connect", &format!("ws://{addr}/"))
        .await;
    assert!(started.elapsed() < Duration::from_millis(1500), "{debug}");
    assert_eq!(failure_reason(&debug), Some("timeout"), "{debug}");
    assert!(
        debug.contains("did not answer the upgrade request"),
        "{debug}"
    );
    assert_eq!(metric_value(&debug, "probe_success"), Some(0.0), "{debug}");
    // Upgrades, then never sends the message `expect` waits for.
    let silent = WsServer::start(WsMode::Silent, None).await;
    let started = Instant::now();
    let debug = s.ours.debug_probe("ws_expect", &silent.url("ws")).await;
    assert!(started.elapsed() < Duration::from_millis(1500), "{debug}");
    assert_eq!(failure_reason(&debug), Some("timeout"), "{debug}");
    assert!(debug.contains("did not answer as expected"), "{debug}");
    assert_eq!(
        metric_value(&debug, "probe_websocket_connection_upgraded"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&debug, "probe_websocket_failed_due_to_regex"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_secrets_never_show_in_config_or_debug_output() {
    let s = setup().await;
    let server = WsServer::start(WsMode::Greeter, None).await;
    let debug = s.ours.debug_probe("ws_dialogue", &server.url("ws")).await;
    assert_eq!(metric_value(&debug, "probe_success"), Some(1.0), "{debug}");
    let config = s.ours.get("/config").await.body;
    for body in [&debug, &config] {
        for secret in [SECRET, PASSWORD, FILE_SECRET] {
            assert!(!body.contains(secret), "{secret} shown:\n{body}");
        }
    }
    assert!(config.contains("X-Plain"), "{config}");
}

#[test]
fn bad_websocket_options_are_refused_at_load_with_line_and_field() {
    let load = |section: &str| {
        Config::from_yaml_str(
            &format!("modules:\n  ws:\n    prober: websocket\n    websocket:\n{section}"),
            "t.yml",
        )
        .unwrap_err()
        .to_string()
    };
    let err = load("      headers:\n        \"Bad Name\":\n          values: [x]\n");
    assert!(
        err.contains("t.yml:6") && err.contains("websocket.headers.Bad Name"),
        "{err}"
    );
    let err = load("      query_response:\n        - expect: x\n          starttls: true\n");
    assert!(
        err.contains("websocket.query_response[0].starttls"),
        "{err}"
    );
    let err = load(
        "      query_response:\n        - expect: x\n          labels: [{name: 1bad, value: v}]\n",
    );
    assert!(
        err.contains("t.yml:7") && err.contains("not a valid label name"),
        "{err}"
    );
    let err = load("      http_config:\n        proxy_url: http://proxy:3128\n");
    assert!(err.contains("proxy_url"), "{err}");
}
