//! The grpc prober against a real HTTP/2 gRPC health server (tests/support/grpc_server.rs).

mod support;

use support::grpc_server::{GrpcHealthServer, NOT_SERVING, SERVING};
use support::{metric_value, metric_value_with, Exporter};

const CONFIG: &str = r#"
modules:
  grpc:
    prober: grpc
    timeout: 3s
    grpc:
      preferred_ip_protocol: ip4
  grpc_orders:
    prober: grpc
    timeout: 3s
    grpc:
      service: orders
      metadata:
        x-probe-tenant: [blue]
        authorization: [Bearer test-token]
  grpc_missing:
    prober: grpc
    timeout: 3s
    grpc:
      service: not-registered
"#;

async fn probe(ex: &Exporter, module: &str, target: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("module", module)
        .append_pair("target", target)
        .append_pair("debug", "true")
        .finish();
    let r = ex.get(&format!("/probe?{q}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn reason(body: &str) -> Option<&str> {
    body.lines().find_map(|l| l.strip_prefix("failure_reason="))
}

fn serving(body: &str, status: &str) -> Option<f64> {
    metric_value_with(
        body,
        "probe_grpc_healthcheck_response",
        &[("serving_status", status)],
    )
}

#[tokio::test]
async fn serving_server_succeeds() {
    let server = GrpcHealthServer::start(&[("", SERVING)]).await;
    let ex = Exporter::start(CONFIG).await;
    let body = probe(&ex, "grpc", &server.target()).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert_eq!(metric_value(&body, "probe_grpc_status_code"), Some(0.0));
    assert_eq!(serving(&body, "SERVING"), Some(1.0));
    for other in ["UNKNOWN", "NOT_SERVING", "SERVICE_UNKNOWN"] {
        assert_eq!(serving(&body, other), Some(0.0), "{other}");
    }
    assert_eq!(metric_value(&body, "probe_grpc_ssl"), Some(0.0));
    assert_eq!(metric_value(&body, "probe_ip_protocol"), Some(4.0));
    let check = metric_value_with(&body, "probe_grpc_duration_seconds", &[("phase", "check")])
        .expect("check phase");
    assert!(check > 0.0 && check < 3.0, "check {check}");
    // The call was a real gRPC call: content type, te, deadline header.
    let requests = server.requests.lock().unwrap();
    let h = &requests[0];
    assert_eq!(h["content-type"], "application/grpc");
    assert_eq!(h["te"], "trailers");
    assert!(h["grpc-timeout"].to_str().unwrap().ends_with('m'));
}

#[tokio::test]
async fn not_serving_fails_with_status_ok_and_the_status_reported() {
    let server = GrpcHealthServer::start(&[("", NOT_SERVING)]).await;
    let ex = Exporter::start(CONFIG).await;
    let body = probe(&ex, "grpc", &server.target()).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(0.0), "{body}");
    assert_eq!(metric_value(&body, "probe_grpc_status_code"), Some(0.0));
    assert_eq!(serving(&body, "NOT_SERVING"), Some(1.0));
    assert_eq!(serving(&body, "SERVING"), Some(0.0));
    assert_eq!(reason(&body), Some("status"), "{body}");
}

#[tokio::test]
async fn unknown_service_is_not_found() {
    let server = GrpcHealthServer::start(&[("", SERVING), ("orders", SERVING)]).await;
    let ex = Exporter::start(CONFIG).await;
    let body = probe(&ex, "grpc_missing", &server.target()).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(0.0), "{body}");
    assert_eq!(metric_value(&body, "probe_grpc_status_code"), Some(5.0));
    assert!(body.contains("NOT_FOUND"), "{body}");
    assert!(body.contains("unknown service"), "{body}");
    for status in ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"] {
        assert_eq!(serving(&body, status), Some(0.0), "{status}");
    }
}

#[tokio::test]
async fn service_and_metadata_reach_the_server() {
    let server = GrpcHealthServer::start(&[("orders", SERVING)]).await;
    let ex = Exporter::start(CONFIG).await;
    let body = probe(&ex, "grpc_orders", &server.target()).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests[0]["x-probe-tenant"], "blue");
    assert_eq!(requests[0]["authorization"], "Bearer test-token");
    // The token reaches the server, never the debug output (which shows the module config).
    assert!(!body.contains("test-token"), "{body}");
    assert!(body.contains("x-probe-tenant"), "{body}");
    assert!(body.contains("<secret>"), "{body}");
}

#[tokio::test]
async fn closed_port_fails_as_unavailable() {
    let ex = Exporter::start(CONFIG).await;
    let port = support::free_port();
    let body = probe(&ex, "grpc", &format!("127.0.0.1:{port}")).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(0.0), "{body}");
    assert_eq!(reason(&body), Some("connection_refused"), "{body}");
    assert_eq!(metric_value(&body, "probe_grpc_status_code"), Some(14.0));
}

#[tokio::test]
async fn tls_with_alpn_h2_reports_tls_metrics() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, key.cert.pem()).unwrap();
    let mut server_cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![key.cert.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
    )
    .unwrap();
    server_cfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_cfg));
    let server = GrpcHealthServer::start_tls(&[("", SERVING)], acceptor).await;

    let yaml = format!(
        "modules:\n  grpc_tls:\n    prober: grpc\n    timeout: 3s\n    grpc:\n      tls: true\n      tls_config:\n        ca_file: {}\n        server_name: localhost\n",
        ca.display()
    );
    let ex = Exporter::start(&yaml).await;
    let body = probe(&ex, "grpc_tls", &server.target()).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert_eq!(metric_value(&body, "probe_grpc_ssl"), Some(1.0));
    assert_eq!(
        metric_value_with(&body, "probe_tls_version_info", &[("version", "TLS 1.3")]),
        Some(1.0),
        "{body}"
    );
    let expiry = metric_value(&body, "probe_ssl_earliest_cert_expiry").expect("expiry");
    assert!(expiry > 1.7e9, "{expiry}");
}

#[tokio::test]
async fn silent_server_fails_at_the_deadline_as_deadline_exceeded() {
    let yaml = "modules:\n  grpc_1s:\n    prober: grpc\n    timeout: 1s\n";
    let ex = Exporter::start(yaml).await;
    // The kernel completes the TCP handshake from the backlog; nobody ever answers HTTP/2.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let started = std::time::Instant::now();
    let body = probe(&ex, "grpc_1s", &silent.local_addr().unwrap().to_string()).await;
    let took = started.elapsed().as_secs_f64();
    assert_eq!(metric_value(&body, "probe_success"), Some(0.0), "{body}");
    assert_eq!(reason(&body), Some("timeout"), "{body}");
    assert_eq!(
        metric_value(&body, "probe_grpc_status_code"),
        Some(4.0),
        "{body}"
    );
    assert!((0.9..5.0).contains(&took), "took {took}s");
    let check = metric_value_with(&body, "probe_grpc_duration_seconds", &[("phase", "check")])
        .expect("check phase");
    assert!(check >= 0.9, "check {check}");
}
