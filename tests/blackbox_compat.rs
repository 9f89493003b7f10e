//! Drop-in compatibility: blackbox_exporter 0.28 (the release we are a drop-in for), Debian's
//! 0.23, and ours run the same modules against the same targets; ours must agree with each on
//! `probe_success`, and emit every metric name it emits.

mod support;

use support::blackbox::{Blackbox, Version};
use support::compat::{compare, write_config, Case};
use support::{metric_value, Exporter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_modules_agree_with_blackbox() {
    // A banner server of our own: greets like an SSH server and reads the client's line.
    let banner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let banner_addr = banner.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = banner.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 test\r\n").await;
                let mut buf = [0u8; 256];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            });
        }
    });
    let config = write_config(
        "modules:
  tcp_connect:
    prober: tcp
    timeout: 3s
  ssh_banner:
    prober: tcp
    timeout: 3s
    tcp:
      query_response:
      - expect: \"^SSH-2.0-\"
      - send: \"SSH-2.0-blackbox-ssh-check\"
  wrong_banner:
    prober: tcp
    timeout: 3s
    tcp:
      query_response:
      - expect: \"^220 \"
",
    );
    let closed = support::free_port();
    let cases = vec![
        Case {
            module: "tcp_connect",
            target: banner_addr.to_string(),
        },
        Case {
            module: "tcp_connect",
            target: format!("127.0.0.1:{closed}"),
        },
        Case {
            module: "tcp_connect",
            target: format!("localhost:{}", banner_addr.port()),
        },
        Case {
            module: "ssh_banner",
            target: banner_addr.to_string(),
        },
        Case {
            module: "wrong_banner",
            target: banner_addr.to_string(),
        },
    ];
    compare(&config, &Version::ALL, &cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_icmp_and_grpc_modules_agree_with_blackbox() {
    let dns = support::dnsmasq::Dnsmasq::start();
    let grpc = support::grpc_server::GrpcHealthServer::start(&[
        ("", 1),
        ("down", support::grpc_server::NOT_SERVING),
    ])
    .await;
    let config = write_config(
        "modules:
  dns_a:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      query_type: A
      preferred_ip_protocol: ip4
  dns_soa:
    prober: dns
    timeout: 3s
    dns:
      query_name: example.test
      query_type: SOA
      preferred_ip_protocol: ip4
  dns_tcp_mx:
    prober: dns
    timeout: 3s
    dns:
      transport_protocol: tcp
      query_name: example.test
      query_type: MX
      preferred_ip_protocol: ip4
      validate_answer_rrs:
        fail_if_none_matches_regexp: [\"mail\\\\.example\\\\.test\"]
  dns_nx:
    prober: dns
    timeout: 3s
    dns:
      query_name: nothing.example.test
      query_type: A
      preferred_ip_protocol: ip4
  dns_regexp_fails:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      query_type: A
      preferred_ip_protocol: ip4
      validate_answer_rrs:
        fail_if_matches_regexp: [\"127\\\\.0\\\\.0\\\\.2\"]
  icmp:
    prober: icmp
    timeout: 3s
    icmp:
      preferred_ip_protocol: ip4
  grpc_plain:
    prober: grpc
    timeout: 3s
    grpc:
      preferred_ip_protocol: ip4
  grpc_down:
    prober: grpc
    timeout: 3s
    grpc:
      service: down
      preferred_ip_protocol: ip4
",
    );
    let cases = vec![
        Case {
            module: "dns_a",
            target: dns.target(),
        },
        Case {
            module: "dns_soa",
            target: dns.target(),
        },
        Case {
            module: "dns_tcp_mx",
            target: dns.target(),
        },
        Case {
            module: "dns_nx",
            target: dns.target(),
        },
        Case {
            module: "dns_regexp_fails",
            target: dns.target(),
        },
        Case {
            module: "icmp",
            target: "127.0.0.1".into(),
        },
        Case {
            module: "grpc_plain",
            target: grpc.target(),
        },
        Case {
            module: "grpc_down",
            target: grpc.target(),
        },
    ];
    compare(&config, &Version::ALL, &cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_modules_agree_with_blackbox() {
    let server = support::http_server::HttpServer::start().await;
    let base = server.url("").trim_end_matches('/').to_string();
    let config = write_config(
        "modules:
  http_2xx:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
  http_post_2xx:
    prober: http
    timeout: 3s
    http:
      method: POST
      body: '{}'
      preferred_ip_protocol: ip4
  http_body_must_match:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      fail_if_body_not_matches_regexp: [\"never-in-any-body\"]
  http_no_redirects:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      follow_redirects: false
",
    );
    let closed = support::free_port();
    let cases = vec![
        Case {
            module: "http_2xx",
            target: format!("{base}/"),
        },
        Case {
            module: "http_2xx",
            target: format!("{base}/status/404"),
        },
        Case {
            module: "http_2xx",
            target: format!("{base}/redirect/2"),
        },
        Case {
            module: "http_post_2xx",
            target: format!("{base}/"),
        },
        Case {
            module: "http_body_must_match",
            target: format!("{base}/"),
        },
        Case {
            module: "http_no_redirects",
            target: format!("{base}/redirect/1"),
        },
        Case {
            module: "http_2xx",
            target: format!("http://127.0.0.1:{closed}/"),
        },
    ];
    compare(&config, &Version::ALL, &cases).await;
}

/// The http prober's options one by one (blackbox CONFIGURATION.md `<http_probe>`; the cases of
/// prober/http_test.go TestValidHTTPVersion, TestFailIfNotSSL, TestFailIfSSL,
/// TestFailIfHeaderMatches, TestHTTPHeaders, TestBodySizeLimit, TestHandlingOfCompressionSetting).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_options_agree_with_blackbox() {
    let server = support::http_server::HttpServer::start().await;
    let base = server.url("").trim_end_matches('/').to_string();
    let config = write_config(
        "modules:
  status_404_expected:
    prober: http
    timeout: 3s
    http: {valid_status_codes: [404], preferred_ip_protocol: ip4}
  http11_only:
    prober: http
    timeout: 3s
    http: {valid_http_versions: [HTTP/1.1], preferred_ip_protocol: ip4}
  http2_only:
    prober: http
    timeout: 3s
    http: {valid_http_versions: [HTTP/2.0], preferred_ip_protocol: ip4}
  must_be_ssl:
    prober: http
    timeout: 3s
    http: {fail_if_not_ssl: true, preferred_ip_protocol: ip4}
  must_not_be_ssl:
    prober: http
    timeout: 3s
    http: {fail_if_ssl: true, preferred_ip_protocol: ip4}
  header_matches:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      fail_if_header_matches: [{header: X-Test, regexp: '^alpha$'}]
  header_not_matches:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      fail_if_header_not_matches: [{header: X-Multi, regexp: '^two$'}]
  header_missing_allowed:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      fail_if_header_not_matches: [{header: X-Absent, regexp: '.*', allow_missing: true}]
  head:
    prober: http
    timeout: 3s
    http: {method: HEAD, preferred_ip_protocol: ip4}
  body_matches:
    prober: http
    timeout: 3s
    http: {fail_if_body_matches_regexp: ['hello'], preferred_ip_protocol: ip4}
  body_limit:
    prober: http
    timeout: 3s
    http: {body_size_limit: 1KiB, preferred_ip_protocol: ip4}
  body_limit_regexp:
    prober: http
    timeout: 3s
    http: {body_size_limit: 1KiB, fail_if_body_not_matches_regexp: ['x$'], preferred_ip_protocol: ip4}
  gzip_limit_regexp:
    prober: http
    timeout: 3s
    http: {body_size_limit: 1KiB, compression: gzip, fail_if_body_matches_regexp: [absent], preferred_ip_protocol: ip4}
  gzip:
    prober: http
    timeout: 3s
    http: {compression: gzip, preferred_ip_protocol: ip4}
  with_headers:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      headers: {X-Probe: compat, Accept: text/plain}
  basic_auth:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      basic_auth: {username: u, password: p}
  ip6_fallback:
    prober: http
    timeout: 3s
    http: {preferred_ip_protocol: ip6, ip_protocol_fallback: true}
",
    );
    let case = |module, path: &str| Case {
        module,
        target: format!("{base}{path}"),
    };
    let cases = vec![
        case("status_404_expected", "/status/404"),
        case("status_404_expected", "/"),
        case("http11_only", "/"),
        case("http2_only", "/"),
        case("must_be_ssl", "/"),
        case("must_not_be_ssl", "/"),
        case("header_matches", "/headers"),
        case("header_not_matches", "/headers"),
        case("header_missing_allowed", "/headers"),
        case("head", "/"),
        case("body_matches", "/"),
        case("body_limit", "/big/4096"),
        case("body_limit", "/big/512"),
        case("body_limit_regexp", "/big/1024"),
        case("body_limit_regexp", "/big/1025"),
        case("gzip_limit_regexp", "/gzip"),
        case("gzip", "/gzip"),
        case("with_headers", "/echo"),
        case("basic_auth", "/echo"),
        case("ip6_fallback", "/"),
        Case {
            module: "ip6_fallback",
            target: format!("http://localhost:{}/", server.addr.port()),
        },
    ];
    compare(&config, &Version::ALL, &cases).await;
}

/// HTTPS against a certificate signed by the test's CA, an expired one and an untrusted one
/// (blackbox prober/http_test.go TestHTTPSCertificateExpiry-style cases; tls_config as in
/// CONFIGURATION.md `<tls_config>`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_modules_agree_with_blackbox() {
    let pki = support::certs::TestPki::generate();
    let valid = support::http_server::HttpServer::start_tls(&pki.valid, true).await;
    let valid_h1 = support::http_server::HttpServer::start_tls(&pki.valid, false).await;
    let expired = support::http_server::HttpServer::start_tls(&pki.expired, false).await;
    let untrusted = support::http_server::HttpServer::start_tls(&pki.untrusted, false).await;
    let ca = pki.ca_file.display();
    let config = write_config(&format!(
        "modules:
  https_ca:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      tls_config: {{ca_file: {ca}}}
  https_ca_http2:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      valid_http_versions: [HTTP/2.0]
      tls_config: {{ca_file: {ca}}}
  https_insecure:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      tls_config: {{insecure_skip_verify: true}}
  https_must_be_ssl:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      fail_if_not_ssl: true
      tls_config: {{ca_file: {ca}}}
  https_tls13_only:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      tls_config: {{ca_file: {ca}, min_version: TLS13}}
  https_wrong_name:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      tls_config: {{ca_file: {ca}, server_name: elsewhere.example}}
"
    ));
    let cases = vec![
        Case {
            module: "https_ca",
            target: valid.url("/"),
        },
        Case {
            module: "https_ca_http2",
            target: valid.url("/"),
        },
        Case {
            module: "https_ca_http2",
            target: valid_h1.url("/"),
        },
        Case {
            module: "https_must_be_ssl",
            target: valid.url("/"),
        },
        Case {
            module: "https_tls13_only",
            target: valid.url("/"),
        },
        Case {
            module: "https_insecure",
            target: untrusted.url("/"),
        },
        Case {
            module: "https_wrong_name",
            target: valid.url("/"),
        },
        Case {
            module: "https_ca",
            target: expired.url("/"),
        },
        Case {
            module: "https_ca",
            target: untrusted.url("/"),
        },
    ];
    compare(&config, &Version::ALL, &cases).await;
}

/// HTTP/3 on one server of ours (quinn + h3) probed by both: blackbox 0.28 over quic-go, ca_file
/// for trust (follows prober/http_test.go TestHTTP3ProbeQUIC and TestValidHTTPVersionsQUIC, with
/// a verified chain instead of insecure_skip_verify). 0.23 has no HTTP/3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_modules_agree_with_blackbox() {
    let pki = support::certs::TestPki::generate();
    let valid = support::h3_server::H3Server::start(&pki.valid).await;
    let untrusted = support::h3_server::H3Server::start(&pki.untrusted).await;
    let ca = pki.ca_file.display();
    let config = write_config(&format!(
        "modules:
  h3_ca:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      enable_http3: true
      enable_http2: false
      valid_http_versions: [HTTP/3.0]
      tls_config: {{ca_file: {ca}}}
  h3_any_version:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      enable_http3: true
      enable_http2: false
      tls_config: {{ca_file: {ca}}}
  h3_body:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      enable_http3: true
      enable_http2: false
      fail_if_body_not_matches_regexp: [\"hello w.rld\"]
      tls_config: {{ca_file: {ca}}}
"
    ));
    let cases = vec![
        Case {
            module: "h3_ca",
            target: valid.url("/"),
        },
        Case {
            module: "h3_any_version",
            target: valid.url("/headers"),
        },
        Case {
            module: "h3_ca",
            target: valid.url("/status/404"),
        },
        Case {
            module: "h3_ca",
            target: valid.url("/redirect/2"),
        },
        Case {
            module: "h3_body",
            target: valid.url("/"),
        },
        Case {
            module: "h3_body",
            target: valid.url("/status/200"),
        },
        // An http:// target: both probe it as https://.
        Case {
            module: "h3_ca",
            target: format!("http://{}/", valid.addr),
        },
        Case {
            module: "h3_ca",
            target: untrusted.url("/"),
        },
    ];
    compare(&config, &[Version::V0_28], &cases).await;
}

/// Record types and the validation rules on each section (blackbox prober/dns_test.go
/// TestRecursiveDNSResponse, TestAuthoritativeDNSResponse, TestServfailDNSResponse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_record_types_and_rules_agree_with_blackbox() {
    let dns = support::dnsmasq::Dnsmasq::start();
    let config = write_config(
        "modules:
  dns_txt:
    prober: dns
    timeout: 3s
    dns: {query_name: example.test, query_type: TXT, preferred_ip_protocol: ip4}
  dns_ns:
    prober: dns
    timeout: 3s
    dns: {query_name: example.test, query_type: NS, preferred_ip_protocol: ip4}
  dns_aaaa:
    prober: dns
    timeout: 3s
    dns: {query_name: www.example.test, query_type: AAAA, preferred_ip_protocol: ip4}
  dns_nx_is_valid:
    prober: dns
    timeout: 3s
    dns:
      query_name: nothing.example.test
      preferred_ip_protocol: ip4
      valid_rcodes: [NXDOMAIN]
  dns_authority_rule:
    prober: dns
    timeout: 3s
    dns:
      query_name: nothing.example.test
      preferred_ip_protocol: ip4
      valid_rcodes: [NXDOMAIN]
      validate_authority_rrs:
        fail_if_not_matches_regexp: ['.*\\tSOA\\t.*']
  dns_all_must_match:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      preferred_ip_protocol: ip4
      validate_answer_rrs:
        fail_if_all_match_regexp: ['.*127\\.0\\.0\\..*']
  dns_none_may_be_missing:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      preferred_ip_protocol: ip4
      validate_answer_rrs:
        fail_if_none_matches_regexp: ['www\\.example\\.test\\.\\t']
  dns_no_recursion:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      preferred_ip_protocol: ip4
      recursion_desired: false
",
    );
    let cases: Vec<Case> = [
        "dns_txt",
        "dns_ns",
        "dns_aaaa",
        "dns_nx_is_valid",
        "dns_authority_rule",
        "dns_all_must_match",
        "dns_none_may_be_missing",
        "dns_no_recursion",
    ]
    .into_iter()
    .map(|module| Case {
        module,
        target: dns.target(),
    })
    .collect();
    compare(&config, &Version::ALL, &cases).await;
}

/// TCP with TLS and query_response over TLS (blackbox prober/tcp_test.go TestTCPConnectionWithTLS,
/// TestTCPConnectionQueryResponseMatching; `expect_bytes` TestTCPConnectionQueryResponseBytes
/// exists only since 0.27, so that case runs against 0.28 alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_tls_and_bytes_agree_with_blackbox() {
    let pki = support::certs::TestPki::generate();
    let tls = support::http_server::HttpServer::start_tls(&pki.valid, false).await;
    let ca = pki.ca_file.display();
    let banner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let banner_addr = banner.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = banner.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"\x00\x01ready\r\n").await;
                let mut buf = [0u8; 64];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            });
        }
    });
    let config = write_config(&format!(
        "modules:
  tcp_tls:
    prober: tcp
    timeout: 3s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config: {{ca_file: {ca}}}
  tcp_tls_http:
    prober: tcp
    timeout: 3s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config: {{ca_file: {ca}}}
      query_response:
      - send: \"GET / HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n\"
      - expect: \"^HTTP/1.1 200\"
  tcp_tls_untrusted:
    prober: tcp
    timeout: 3s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
"
    ));
    // 0.23 refuses `expect_bytes` as an unknown field: a config of its own.
    let bytes_config = write_config(
        "modules:
  bytes_match:
    prober: tcp
    timeout: 3s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
      - expect_bytes: \"\\x00\\x01ready\"
  bytes_differ:
    prober: tcp
    timeout: 3s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
      - expect_bytes: \"\\x00\\x02\"
",
    );
    let tls_target = tls.addr.to_string();
    let both = vec![
        Case {
            module: "tcp_tls",
            target: tls_target.clone(),
        },
        Case {
            module: "tcp_tls_http",
            target: tls_target.clone(),
        },
        Case {
            module: "tcp_tls_untrusted",
            target: tls_target,
        },
    ];
    compare(&config, &Version::ALL, &both).await;
    let only_028 = vec![
        Case {
            module: "bytes_match",
            target: banner_addr.to_string(),
        },
        Case {
            module: "bytes_differ",
            target: banner_addr.to_string(),
        },
    ];
    compare(&bytes_config, &[Version::V0_28], &only_028).await;
}

/// ICMP options, gRPC over TLS, DNS over TLS and HTTP through a proxy
/// (blackbox CONFIGURATION.md `<icmp_probe>` ttl/payload_size/dont_fragment, `<grpc_probe>` tls,
/// `<dns_probe>` dns_over_tls; prober/icmp_test.go, grpc_test.go TestGRPCTLSConnection,
/// http_test.go TestHTTPProxy-style cases); ICMP to `::1`, where both report
/// `probe_icmp_reply_hop_limit` from the IPv6 control message (prober/icmp.go `FlagHopLimit`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmp_grpc_tls_dot_and_proxy_agree_with_blackbox() {
    use support::grpc_server::{GrpcHealthServer, NOT_SERVING};
    let pki = support::certs::TestPki::generate();
    let grpc = GrpcHealthServer::start_tls(
        &[("", 1), ("down", NOT_SERVING)],
        pki.valid.acceptor(&[b"h2"]),
    )
    .await;
    let dns = support::dnsmasq::Dnsmasq::start();
    let dot = support::dnsmasq::DotFrontend::start(dns.port).await;
    let web = support::http_server::HttpServer::start().await;
    let proxy = support::http_server::TestProxy::start().await;
    let ca = pki.ca_file.display();
    let config = write_config(&format!(
        "modules:
  icmp_ttl:
    prober: icmp
    timeout: 3s
    icmp: {{preferred_ip_protocol: ip4, ttl: 5, payload_size: 64}}
  icmp_df:
    prober: icmp
    timeout: 3s
    icmp: {{preferred_ip_protocol: ip4, dont_fragment: true}}
  icmp_v6:
    prober: icmp
    timeout: 3s
    icmp: {{preferred_ip_protocol: ip6, ip_protocol_fallback: false}}
  grpc_tls:
    prober: grpc
    timeout: 3s
    grpc:
      tls: true
      preferred_ip_protocol: ip4
      tls_config: {{ca_file: {ca}}}
  grpc_tls_down:
    prober: grpc
    timeout: 3s
    grpc:
      tls: true
      service: down
      preferred_ip_protocol: ip4
      tls_config: {{ca_file: {ca}}}
  dot:
    prober: dns
    timeout: 3s
    dns:
      dns_over_tls: true
      transport_protocol: tcp
      query_name: example.test
      query_type: SOA
      preferred_ip_protocol: ip4
      tls_config: {{ca_file: {dot_ca}, server_name: dns.example.test}}
  via_proxy:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      proxy_url: http://{proxy}
",
        dot_ca = dot.ca_file.display(),
        proxy = proxy.addr,
    ));
    let cases = vec![
        Case {
            module: "icmp_ttl",
            target: "127.0.0.1".into(),
        },
        Case {
            module: "icmp_df",
            target: "127.0.0.1".into(),
        },
        Case {
            module: "icmp_v6",
            target: "::1".into(),
        },
        Case {
            module: "grpc_tls",
            target: format!("localhost:{}", grpc.target().rsplit(':').next().unwrap()),
        },
        Case {
            module: "grpc_tls_down",
            target: format!("localhost:{}", grpc.target().rsplit(':').next().unwrap()),
        },
        Case {
            module: "dot",
            target: format!("127.0.0.1:{}", dot.port),
        },
        Case {
            module: "via_proxy",
            target: web.url("/"),
        },
    ];
    compare(&config, &Version::ALL, &cases).await;
}

// blackbox prober/tcp_test.go (TestTCPConnectionQueryResponseMatching with expect_bytes:
// probe_failed_due_to_bytes 0 on a match, 1 on a mismatch) and its shipped blackbox.yml
// (`send: !!binary` of PostgreSQL's SSLRequest, `labels` giving probe_expect_info): ours and
// 0.28 agree on probe_success, names, and these values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_bytes_binary_send_and_labels_agree_with_blackbox() {
    let server = support::line_server::LineServer::start(b"SSH-2.0-OpenSSH_9.2p1 test\r\n").await;
    let config = write_config(
        "modules:
  bytes_match:
    prober: tcp
    timeout: 3s
    tcp:
      query_response:
      - expect_bytes: \"SSH-2.0-\"
  bytes_mismatch:
    prober: tcp
    timeout: 3s
    tcp:
      query_response:
      - expect_bytes: \"SSH-1.99\"
  binary_send:
    prober: tcp
    timeout: 3s
    tcp:
      query_response:
      - expect: \"^SSH-2.0-\"
      - send: !!binary AAAACATSFi8=
      - expect: \"^GOT 0000000804d2162f$\"
  banner_labels:
    prober: tcp
    timeout: 3s
    tcp:
      query_response:
      - expect: \"^SSH-2.0-([^ -]+)(?: (.*))?$\"
        labels:
        - name: ssh_version
          value: \"${1}\"
        - name: ssh_comments
          value: \"${2}\"
",
    );
    let target = server.target();
    let cases: Vec<Case> = [
        "bytes_match",
        "bytes_mismatch",
        "binary_send",
        "banner_labels",
    ]
    .into_iter()
    .map(|module| Case {
        module,
        target: target.clone(),
    })
    .collect();
    compare(&config, &[Version::V0_28], &cases).await;

    let ours = Exporter::start_file(config.clone()).await;
    let bb = Blackbox::start(&config).await;
    let expected = [
        ("bytes_match", "probe_success", 1.0),
        ("bytes_match", "probe_failed_due_to_bytes", 0.0),
        ("bytes_mismatch", "probe_success", 0.0),
        ("bytes_mismatch", "probe_failed_due_to_bytes", 1.0),
        ("bytes_mismatch", "probe_failed_due_to_regex", 0.0),
        ("binary_send", "probe_success", 1.0),
    ];
    for (module, metric, want) in expected {
        let (_, mine) = ours.probe(module, &target).await;
        let theirs = bb.probe(module, &target).await;
        assert_eq!(
            metric_value(&theirs, metric),
            Some(want),
            "blackbox {module} {metric}\n{theirs}"
        );
        assert_eq!(
            metric_value(&mine, metric),
            Some(want),
            "ours {module} {metric}\n{mine}"
        );
    }
    let labels = [("ssh_version", "OpenSSH_9.2p1"), ("ssh_comments", "test")];
    let (_, mine) = ours.probe("banner_labels", &target).await;
    let theirs = bb.probe("banner_labels", &target).await;
    for body in [&theirs, &mine] {
        assert_eq!(
            support::metric_value_with(body, "probe_expect_info", &labels),
            Some(1.0),
            "{body}"
        );
    }
}

/// The TLS series blackbox emits only for a chain it verified.
const CERT_SERIES: [&str; 4] = [
    "probe_ssl_earliest_cert_expiry",
    "probe_tls_version_info",
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "probe_ssl_last_chain_info",
];

// Certificates as blackbox 0.28 judges them: a valid chain, an expired leaf and an untrusted CA
// (blackbox emits none of its certificate series for the last two: Go's handshake fails first;
// ours keeps the expiry as probe_ssl_unverified_cert_expiry), a self-signed CA:TRUE certificate
// trusted through ca_file (Go accepts a root as its own chain; webpki alone would refuse it),
// and `hostname=` as the TLS server name of a tcp probe (blackbox prober/handler.go).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_verdicts_and_series_agree_with_blackbox() {
    use support::certs::{TestPki, EXPIRED_NOT_AFTER, VALID_NOT_AFTER};
    use support::http_server::HttpServer;
    let pki = TestPki::generate();
    let valid = HttpServer::start_tls(&pki.valid, false).await;
    let expired = HttpServer::start_tls(&pki.expired, false).await;
    let untrusted = HttpServer::start_tls(&pki.untrusted, false).await;
    let self_signed = HttpServer::start_tls(&pki.self_signed_ca, false).await;
    let config = write_config(&format!(
        "modules:
  http_ca:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {ca}
  http_self_signed:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {self_signed}
  http_self_signed_other_name:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {self_signed}
        server_name: other.example
  tcp_tls_ca:
    prober: tcp
    timeout: 3s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        ca_file: {ca}
",
        ca = pki.ca_file.display(),
        self_signed = pki.self_signed_ca_file.display(),
    ));
    let cases = vec![
        Case {
            module: "http_ca",
            target: valid.url("/"),
        },
        Case {
            module: "http_ca",
            target: expired.url("/"),
        },
        Case {
            module: "http_ca",
            target: untrusted.url("/"),
        },
        Case {
            module: "http_self_signed",
            target: self_signed.url("/"),
        },
        Case {
            module: "http_self_signed_other_name",
            target: self_signed.url("/"),
        },
        Case {
            module: "tcp_tls_ca",
            target: valid.addr.to_string(),
        },
        Case {
            module: "tcp_tls_ca",
            target: expired.addr.to_string(),
        },
        Case {
            module: "tcp_tls_ca",
            target: untrusted.addr.to_string(),
        },
    ];
    compare(&config, &Version::ALL, &cases).await;

    let ours = Exporter::start_file(config.clone()).await;
    let bb = Blackbox::start(&config).await;
    let mut problems = Vec::new();
    for c in &cases {
        let (_, mine) = ours.probe(c.module, &c.target).await;
        let theirs = bb.probe(c.module, &c.target).await;
        for name in CERT_SERIES {
            let (t, m) = (
                theirs.contains(&format!("\n{name}")),
                mine.contains(&format!("\n{name}")),
            );
            if t != m {
                problems.push(format!(
                    "{} {}: {name} blackbox {t}, ours {m}",
                    c.module, c.target
                ));
            }
        }
        let verified = metric_value(&theirs, "probe_success") == Some(1.0);
        let unverified = metric_value(&mine, "probe_ssl_unverified_cert_expiry");
        if verified != unverified.is_none() {
            problems.push(format!(
                "{} {}: probe_ssl_unverified_cert_expiry {unverified:?}",
                c.module, c.target
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // blackbox prober/tls.go: the leaf's labels as Go prints them (DN order and escapes, serial,
    // DNS names only), on a certificate whose names hold more than a CN.
    let (_, mine) = ours.probe("http_ca", &valid.url("/")).await;
    let theirs = bb.probe("http_ca", &valid.url("/")).await;
    let chain_info = |body: &str| {
        body.lines()
            .find(|l| l.starts_with("probe_ssl_last_chain_info{"))
            .map(|l| {
                let mut labels: Vec<String> = l
                    ["probe_ssl_last_chain_info{".len()..l.rfind('}').unwrap()]
                    .split("\",")
                    .map(|p| p.trim_end_matches('"').to_string())
                    .collect();
                labels.sort();
                labels
            })
    };
    assert!(chain_info(&theirs).is_some(), "{theirs}");
    assert_eq!(
        chain_info(&mine),
        chain_info(&theirs),
        "ours:\n{mine}\nblackbox:\n{theirs}"
    );
    let (_, mine) = ours.probe("http_ca", &expired.url("/")).await;
    assert_eq!(
        metric_value(&mine, "probe_ssl_unverified_cert_expiry"),
        Some(EXPIRED_NOT_AFTER as f64)
    );
    let (_, mine) = ours.probe("http_ca", &untrusted.url("/")).await;
    assert_eq!(
        metric_value(&mine, "probe_ssl_unverified_cert_expiry"),
        Some(VALID_NOT_AFTER as f64)
    );

    // hostname= names the TLS server of a tcp probe: a name the certificate lacks fails it.
    for (hostname, want) in [("localhost", 1.0), ("other.example", 0.0)] {
        let q = format!(
            "module=tcp_tls_ca&target={}&hostname={hostname}",
            valid.addr
        );
        let mine = ours.get(&format!("/probe?{q}")).await.body;
        let theirs = support::get(&format!("http://127.0.0.1:{}/probe?{q}", bb.port), &[])
            .await
            .body;
        assert_eq!(
            metric_value(&theirs, "probe_success"),
            Some(want),
            "blackbox {hostname}\n{theirs}"
        );
        assert_eq!(
            metric_value(&mine, "probe_success"),
            Some(want),
            "ours {hostname}\n{mine}"
        );
    }
}

// blackbox prober/handler.go setHTTPHost: `hostname=` next to a different Host header of the
// module is a 400 with blackbox's message; the same Host is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_with_a_host_header_answers_400_like_blackbox() {
    let server = support::http_server::HttpServer::start().await;
    let config = write_config(
        "modules:
  with_host:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      headers:
        host: configured.example
",
    );
    let ours = Exporter::start_file(config.clone()).await;
    let bb = Blackbox::start(&config).await;
    let target = server.url("/");
    for (hostname, status) in [("other.example", 400), ("configured.example", 200)] {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("module", "with_host")
            .append_pair("target", &target)
            .append_pair("hostname", hostname)
            .finish();
        let mine = ours.get(&format!("/probe?{q}")).await;
        let theirs = support::get(&format!("http://127.0.0.1:{}/probe?{q}", bb.port), &[]).await;
        assert_eq!(
            theirs.status, status,
            "blackbox {hostname}: {}",
            theirs.body
        );
        assert_eq!(mine.status, status, "ours {hostname}: {}", mine.body);
        if status == 400 {
            assert_eq!(mine.body.trim(), theirs.body.trim());
        }
    }
}

// blackbox prober/utils.go chooseProtocol registers probe_ip_protocol and probe_ip_addr_hash
// before resolving: a target without an address of the wanted family (no fallback) shows both
// at 0, in ours as in 0.28.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_resolution_reports_zero_address_hash_like_blackbox() {
    let config = write_config(
        "modules:
  tcp_ip6_only:
    prober: tcp
    timeout: 3s
    tcp:
      preferred_ip_protocol: ip6
      ip_protocol_fallback: false
  http_ip6_only:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip6
      ip_protocol_fallback: false
",
    );
    let port = support::free_port();
    let cases = vec![
        Case {
            module: "tcp_ip6_only",
            target: format!("127.0.0.1:{port}"),
        },
        Case {
            module: "http_ip6_only",
            target: format!("http://127.0.0.1:{port}/"),
        },
    ];
    compare(&config, &[Version::V0_28], &cases).await;
    let ours = Exporter::start_file(config.clone()).await;
    let bb = Blackbox::start(&config).await;
    for c in &cases {
        let (_, mine) = ours.probe(c.module, &c.target).await;
        let theirs = bb.probe(c.module, &c.target).await;
        for body in [&theirs, &mine] {
            assert_eq!(metric_value(body, "probe_success"), Some(0.0), "{body}");
            assert_eq!(
                metric_value(body, "probe_ip_addr_hash"),
                Some(0.0),
                "{body}"
            );
            assert_eq!(metric_value(body, "probe_ip_protocol"), Some(0.0), "{body}");
        }
    }
}

// blackbox prober/http.go getDecompressionReader: `compression: br` decodes the body before the
// regexps see it (ours asks for it with Accept-Encoding: br); ours agrees with 0.28 on verdicts and lengths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brotli_bodies_agree_with_blackbox() {
    use support::http_server::{HttpServer, GZIP_REPEAT, GZIP_TEXT};
    let server = HttpServer::start().await;
    let config = write_config(&format!(
        "modules:
  br:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      compression: br
      fail_if_body_not_matches_regexp: [\"^({GZIP_TEXT})+$\"]
  not_decoded:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      fail_if_body_not_matches_regexp: [\"^({GZIP_TEXT})+$\"]
"
    ));
    let target = server.url("/br");
    let cases = vec![
        Case {
            module: "br",
            target: target.clone(),
        },
        Case {
            module: "not_decoded",
            target: target.clone(),
        },
    ];
    compare(&config, &[Version::V0_28], &cases).await;
    let ours = Exporter::start_file(config.clone()).await;
    let bb = Blackbox::start(&config).await;
    let theirs = bb.probe("br", &target).await;
    let (_, mine) = ours.probe("br", &target).await;
    assert_eq!(server.last_request().header("accept-encoding"), Some("br"));
    assert_eq!(metric_value(&mine, "probe_success"), Some(1.0), "{mine}");
    let expanded = (GZIP_TEXT.len() * GZIP_REPEAT) as f64;
    for body in [&theirs, &mine] {
        assert_eq!(
            metric_value(body, "probe_http_uncompressed_body_length"),
            Some(expanded),
            "{body}"
        );
    }
}

/// `name{labels}` lines of `name` in an exposition, each as its label set (label order aside).
fn labelled(body: &str, name: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let prefix = format!("{name}{{");
    body.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| l.rsplit_once("} "))
        .map(|(labels, _)| {
            let mut out = std::collections::BTreeMap::new();
            let mut rest = labels;
            while let Some((key, after)) = rest.split_once("=\"") {
                let mut value = String::new();
                let mut chars = after.char_indices();
                let mut end = after.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next().map(|(_, c)| c).unwrap_or('\\')),
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                out.insert(key.trim_start_matches(',').to_string(), value);
                rest = &after[end..];
            }
            out
        })
        .collect()
}

/// blackbox prober/tls.go: `getLastChainExpiry` (over every verified chain, the earliest
/// notAfter of the chain, root included; the latest of those) and the labels of
/// `probe_ssl_last_chain_info` (`pkix.Name.String()` subject and issuer, `DNSNames` joined by
/// ",", serial as `%x` of its bytes). A CA re-issued under the same name and key verifies the
/// leaf through either copy: 2030 through the first, 2035 through the second; the series is 2035.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_chain_expiry_and_info_agree_with_blackbox() {
    use support::certs::{ReissuedCa, LONG_ROOT_NOT_AFTER};
    let pki = ReissuedCa::generate();
    let web = support::http_server::HttpServer::start_tls(&pki.leaf, false).await;
    let config = write_config(&format!(
        "modules:
  https:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      tls_config: {{ca_file: {ca}}}
",
        ca = pki.ca_file.display()
    ));
    let target = web.url("/");
    let cases = [Case {
        module: "https",
        target: target.clone(),
    }];
    compare(&config, &[Version::V0_28], &cases).await;

    let ours = Exporter::start_file(config.clone()).await;
    let bb = Blackbox::start(&config).await;
    let (_, mine) = ours.probe("https", &target).await;
    let theirs = bb.probe("https", &target).await;
    let expiry = "probe_ssl_last_chain_expiry_timestamp_seconds";
    assert_eq!(
        metric_value(&theirs, expiry),
        Some(LONG_ROOT_NOT_AFTER as f64),
        "{theirs}"
    );
    assert_eq!(
        metric_value(&mine, expiry),
        Some(LONG_ROOT_NOT_AFTER as f64),
        "{mine}"
    );
    let info = "probe_ssl_last_chain_info";
    let (want, got) = (labelled(&theirs, info), labelled(&mine, info));
    assert_eq!(want.len(), 1, "{theirs}");
    assert_eq!(got, want, "ours:\n{mine}\nblackbox:\n{theirs}");
    // The series line itself too (labels in the order blackbox prints them).
    let series = |body: &str| {
        body.lines()
            .find(|l| l.starts_with("probe_ssl_last_chain_info{"))
            .and_then(|l| l.rsplit_once(' '))
            .map(|(s, _)| s.to_string())
    };
    assert_eq!(series(&mine), series(&theirs));
    let labels = &got[0];
    assert_eq!(labels["subject"], "CN=chain.test,O=Siembox Org");
    assert_eq!(
        labels["issuer"],
        "CN=siembox reissued CA,O=Siembox Test\\, Inc."
    );
    assert_eq!(labels["subjectalternative"], "localhost,chain.test");
    assert_eq!(labels["serialnumber"], "8f123456");
}

/// How `/probe` reads its query (blackbox prober/handler.go: `r.URL.Query()`, Go's
/// `url.ParseQuery`, then `params.Get`): percent escapes decoded, a parameter given twice takes
/// its first value, a pair with a broken escape or a `;` is dropped (its target is "missing").
/// Raw query strings, sent as written to ours and to both blackbox releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_query_is_read_as_blackbox_reads_it() {
    let server = support::line_server::LineServer::start(b"hello\r\n").await;
    let t = server.target();
    let encoded: String = t.bytes().map(|b| format!("%{b:02X}")).collect();
    let config = write_config(
        "modules:
  tcp:
    prober: tcp
    timeout: 2s
    tcp: {preferred_ip_protocol: ip4}
",
    );
    let queries = [
        format!("module=tcp&target={encoded}"),
        format!("module=tcp&target={t}&target=127.0.0.1:1"),
        format!("module=tcp&target=127.0.0.1:1&target={t}"),
        format!("target={t}&module=tcp&module=nosuch"),
        "module=tcp&target=%zz".to_string(),
        format!("module=tcp&target={t}%2"),
        format!("module=tcp&target={t};x=1"),
        format!("module=tcp&target={t}&debug=false&debug=true"),
    ];
    let ours = Exporter::start_file(config.clone()).await;
    let mut problems = Vec::new();
    for v in Version::ALL {
        let bb = Blackbox::start_version(v, &config).await;
        for q in &queries {
            let path = format!("/probe?{q}");
            let (theirs, mine) = (bb.get(&path).await, ours.get(&path).await);
            let verdict = |r: &support::Response| {
                if r.status == 200 {
                    format!(
                        "200 probe_success={:?} debug={}",
                        metric_value(&r.body, "probe_success"),
                        r.body.contains("Logs for the probe")
                    )
                } else {
                    format!("{} {}", r.status, r.body.trim())
                }
            };
            if verdict(&theirs) != verdict(&mine) {
                problems.push(format!(
                    "{q}: blackbox {v:?} {} / ours {}",
                    verdict(&theirs),
                    verdict(&mine)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The one deliberate difference in reading a target (README, "Differences from
/// blackbox_exporter", URL scheme case): 0.28's prober/http.go prepends `http://` to any target
/// not starting with lower-case `http://` or `https://`, so `HTTP://host/` fails there; RFC 3986
/// §3.1 makes the scheme case-insensitive, and ours probes it. Pinned side by side so the README
/// row stays true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upper_case_url_scheme_is_the_documented_difference() {
    let web = support::http_server::HttpServer::start().await;
    let config = write_config(
        "modules:
  http:
    prober: http
    timeout: 2s
    http: {preferred_ip_protocol: ip4}
",
    );
    let ours = Exporter::start_file(config.clone()).await;
    let bb = Blackbox::start(&config).await;
    let lower = web.url("/");
    for target in [
        lower.replacen("http", "HTTP", 1),
        lower.replacen("http", "Http", 1),
    ] {
        let (_, mine) = ours.probe("http", &target).await;
        let theirs = bb.probe("http", &target).await;
        assert_eq!(
            metric_value(&mine, "probe_success"),
            Some(1.0),
            "{target}\n{mine}"
        );
        assert_eq!(
            metric_value(&theirs, "probe_success"),
            Some(0.0),
            "{target}\n{theirs}"
        );
    }
    compare(
        &config,
        &[Version::V0_28],
        &[Case {
            module: "http",
            target: lower,
        }],
    )
    .await;
}

// blackbox prober/http_test.go TestFailIfBodyMatchesCEL and TestFailIfBodyNotMatchesCEL (0.27+):
// the JSON body bound to `body`; a match, no match, a body that is not JSON, a large body, a
// body over body_size_limit, an expression that errors at run time (a missing field) or gives no
// boolean, and a status failure before the body is looked at. Same verdict and same
// probe_failed_due_to_cel as 0.28 (0.23 has no CEL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cel_on_json_bodies_agrees_with_blackbox() {
    use support::http_server::HttpServer;
    let server = HttpServer::start().await;
    let module = |name: &str, body: &str| {
        format!(
            "  {name}:
    prober: http
    timeout: 4s
    http:
      preferred_ip_protocol: ip4
{body}"
        )
    };
    let all_up = "body.status == 'ok' && body.checks.all(c, c.up)";
    let big_items = 60_000;
    let config = write_config(&format!(
        "modules:\n{}{}{}{}{}{}{}",
        module(
            "cel_all_up",
            &format!("      fail_if_body_json_not_matches_cel: \"{all_up}\"\n")
        ),
        module(
            "cel_any_down",
            "      fail_if_body_json_matches_cel: \"body.checks.exists(c, !c.up)\"\n"
        ),
        // Both fields: fails if either one says so. JSON numbers are doubles; `== 3` holds.
        module(
            "cel_both",
            "      fail_if_body_json_matches_cel: \"body.version > 3\"\n      fail_if_body_json_not_matches_cel: \"body.version == 3\"\n"
        ),
        module(
            "cel_missing_field",
            "      fail_if_body_json_not_matches_cel: \"body.uptime.seconds > 10\"\n"
        ),
        module(
            "cel_not_bool",
            "      fail_if_body_json_not_matches_cel: \"body.version\"\n"
        ),
        module(
            "cel_big",
            &format!("      fail_if_body_json_not_matches_cel: \"body.count == {big_items} && size(body.items) == {big_items} && body.items.all(i, i.up)\"\n")
        ),
        module(
            "cel_limited",
            "      body_size_limit: 64KiB\n      fail_if_body_json_not_matches_cel: \"size(body.items) > 0\"\n"
        ),
    ));
    let case = |module: &'static str, path: &str| Case {
        module,
        target: server.url(path),
    };
    let big = format!("/json/items/{big_items}");
    let cases = vec![
        case("cel_all_up", "/json/health"),
        case("cel_all_up", "/json/degraded"),
        case("cel_all_up", "/json/not-json"),
        case("cel_all_up", "/status/503"),
        case("cel_any_down", "/json/health"),
        case("cel_any_down", "/json/degraded"),
        case("cel_both", "/json/health"),
        case("cel_missing_field", "/json/health"),
        case("cel_not_bool", "/json/health"),
        case("cel_big", &big),
        case("cel_limited", &big),
        case("cel_limited", "/json/items/3"),
    ];
    compare(&config, &[Version::V0_28], &cases).await;

    // The verdicts themselves, on both: success, and probe_failed_due_to_cel.
    let ours = Exporter::start_file(config.clone()).await;
    let bb = Blackbox::start(&config).await;
    let expected: &[(&str, &str, f64, f64)] = &[
        ("cel_all_up", "/json/health", 1.0, 0.0),
        ("cel_all_up", "/json/degraded", 0.0, 1.0),
        ("cel_all_up", "/json/not-json", 0.0, 1.0),
        ("cel_all_up", "/status/503", 0.0, 0.0),
        ("cel_any_down", "/json/health", 1.0, 0.0),
        ("cel_any_down", "/json/degraded", 0.0, 1.0),
        ("cel_both", "/json/health", 1.0, 0.0),
        ("cel_missing_field", "/json/health", 0.0, 1.0),
        ("cel_not_bool", "/json/health", 0.0, 1.0),
        ("cel_big", &big, 1.0, 0.0),
        ("cel_limited", &big, 0.0, 1.0),
        ("cel_limited", "/json/items/3", 1.0, 0.0),
    ];
    for (module, path, success, cel_failed) in expected {
        let target = server.url(path);
        let theirs = bb.probe(module, &target).await;
        let mine = ours.debug_probe(module, &target).await;
        for (who, body) in [("blackbox", &theirs), ("ours", &mine)] {
            let got = (
                metric_value(body, "probe_success"),
                metric_value(body, "probe_failed_due_to_cel"),
            );
            assert_eq!(
                got,
                (Some(*success), Some(*cel_failed)),
                "{who} {module} {path}:\n{body}"
            );
        }
        if *success == 0.0 && *cel_failed == 1.0 {
            // Ours says why in the probe log.
            let why = [
                "Body did not match CEL expression",
                "Body matched CEL expression",
                "Error unmarshalling HTTP body to JSON",
                "Error evaluating CEL expression",
                "not a boolean",
                "body_size_limit",
            ];
            assert!(
                why.iter().any(|w| mine.contains(w)),
                "{module} {path}:\n{mine}"
            );
        }
    }
    // A module without CEL has no probe_failed_due_to_cel, in both.
    let plain = write_config("modules:\n  plain:\n    prober: http\n    timeout: 3s\n");
    let (ours, bb) = (
        Exporter::start_file(plain.clone()).await,
        Blackbox::start(&plain).await,
    );
    let target = server.url("/json/health");
    for body in [
        bb.probe("plain", &target).await,
        ours.probe("plain", &target).await.1,
    ] {
        assert_eq!(
            metric_value(&body, "probe_failed_due_to_cel"),
            None,
            "{body}"
        );
    }
}

// blackbox 0.28 prober/unix_test.go (TestUnixConnection: a query_response dialogue over a unix
// socket; TestUnixConnectionFails: a path nothing listens on) and CONFIGURATION.md
// `<unix_probe>` (tls, tls_config; example.yml `unix_socket_ping`): the same modules against a
// unix socket server of the test's own, plain and TLS, on ours and 0.28 (0.23 has no unix
// prober): probe_success, metric names, the regexp/bytes verdicts, TLS series and the
// `probe_expect_info` labels agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_modules_agree_with_blackbox() {
    use support::line_server::{UnixLineServer, UnixMode};
    let pki = support::certs::TestPki::generate();
    let ca = pki.ca_file.display();
    let banner: &'static [u8] = b"SERVICE demo v7\n";
    let plain = UnixLineServer::start(banner, UnixMode::Plain).await;
    let tls = UnixLineServer::start(banner, UnixMode::Tls(pki.valid.acceptor(&[]))).await;
    let silent = UnixLineServer::start(banner, UnixMode::Silent).await;
    let config = write_config(&format!(
        "modules:
  unix_ping:
    prober: unix
    timeout: 3s
    unix:
      query_response:
        - send: \"PING\"
        - expect: \"PONG\"
  unix_labels:
    prober: unix
    timeout: 3s
    unix:
      query_response:
        - expect: \"^SERVICE (\\\\w+) v(\\\\d+)$\"
          labels:
            - name: service
              value: \"${{1}}\"
            - name: version
              value: \"v${{2}}\"
          send: \"ECHO ${{1}}\"
        - expect: \"^GOT 4543484f2064656d6f$\"
  unix_no_match:
    prober: unix
    timeout: 3s
    unix:
      query_response:
        - expect: \"^NOPE\"
  unix_bytes:
    prober: unix
    timeout: 3s
    unix:
      query_response:
        - expect_bytes: \"SERVICE\"
  unix_bytes_differ:
    prober: unix
    timeout: 3s
    unix:
      query_response:
        - expect_bytes: \"SERVER\"
  unix_tls:
    prober: unix
    timeout: 3s
    unix:
      tls: true
      tls_config: {{ca_file: {ca}, server_name: localhost}}
      query_response:
        - send: \"PING\"
        - expect: \"PONG\"
  unix_tls_no_server_name:
    prober: unix
    timeout: 3s
    unix:
      tls: true
      tls_config: {{ca_file: {ca}}}
  unix_tls_untrusted:
    prober: unix
    timeout: 3s
    unix:
      tls: true
      tls_config: {{server_name: localhost}}
  unix_silent:
    prober: unix
    timeout: 2s
    unix:
      query_response:
        - expect: \"SERVICE\"
"
    ));
    let case = |module: &'static str, server: &UnixLineServer| Case {
        module,
        target: server.target(),
    };
    let cases = vec![
        case("unix_ping", &plain),
        case("unix_labels", &plain),
        case("unix_no_match", &plain),
        case("unix_bytes", &plain),
        case("unix_bytes_differ", &plain),
        case("unix_tls", &tls),
        case("unix_tls_no_server_name", &tls),
        case("unix_tls_untrusted", &tls),
        case("unix_silent", &silent),
        Case {
            module: "unix_ping",
            target: "/nonexistent/siembox-test.sock".into(),
        },
    ];
    compare(&config, &[Version::V0_28], &cases).await;

    let ours = Exporter::start_file(config.clone()).await;
    let bb = Blackbox::start(&config).await;
    let expected = [
        ("unix_ping", &plain, "probe_success", 1.0),
        ("unix_labels", &plain, "probe_success", 1.0),
        // The server keeps the connection open: the read times out (regex stays 0 in both).
        ("unix_no_match", &plain, "probe_success", 0.0),
        ("unix_no_match", &plain, "probe_failed_due_to_regex", 0.0),
        ("unix_bytes", &plain, "probe_success", 1.0),
        (
            "unix_bytes_differ",
            &plain,
            "probe_failed_due_to_bytes",
            1.0,
        ),
        ("unix_tls", &tls, "probe_success", 1.0),
        ("unix_tls_no_server_name", &tls, "probe_success", 0.0),
        ("unix_silent", &silent, "probe_success", 0.0),
    ];
    for (module, server, metric, want) in expected {
        let (_, mine) = ours.probe(module, &server.target()).await;
        let theirs = bb.probe(module, &server.target()).await;
        assert_eq!(
            metric_value(&theirs, metric),
            Some(want),
            "blackbox {module} {metric}\n{theirs}"
        );
        assert_eq!(
            metric_value(&mine, metric),
            Some(want),
            "ours {module} {metric}\n{mine}"
        );
    }
    let labels = [("service", "demo"), ("version", "v7")];
    let (_, mine) = ours.probe("unix_labels", &plain.target()).await;
    let theirs = bb.probe("unix_labels", &plain.target()).await;
    for body in [&theirs, &mine] {
        assert_eq!(
            support::metric_value_with(body, "probe_expect_info", &labels),
            Some(1.0),
            "{body}"
        );
    }
}
