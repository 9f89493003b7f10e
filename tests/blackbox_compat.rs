//! Drop-in compatibility: blackbox_exporter 0.28 (the release we are a drop-in for), Debian's
//! 0.23, and ours run the same modules against the same targets; ours must agree with each on
//! `probe_success`, and emit every metric name it emits.

mod support;

use support::blackbox::{Blackbox, Version};
use support::{metric_names, metric_value, request, Exporter};

/// Metrics blackbox emits that we leave out on purpose, by prober module prefix, with the reason
/// (also in README.md, "Differences from blackbox_exporter").
const DELIBERATE_OMISSIONS: &[(&str, &str, &str)] = &[(
    "grpc_",
    "probe_ssl_earliest_cert_expiry",
    "blackbox reports 0 for plaintext gRPC, which fires certificate-expiry alerts",
)];

struct Case {
    module: &'static str,
    target: String,
}

/// Runs every case on ours and on each blackbox release in `versions` (all started on `config`).
async fn compare(config: &std::path::Path, versions: &[Version], cases: &[Case]) {
    let ours = Exporter::start_file(config.to_path_buf()).await;
    let mut problems = Vec::new();
    for &v in versions {
        let bb = Blackbox::start_version(v, config).await;
        problems.extend(differences(&ours, &bb, cases).await);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

async fn differences(ours: &Exporter, bb: &Blackbox, cases: &[Case]) -> Vec<String> {
    let version = bb.version;
    let mut problems = Vec::new();
    for c in cases {
        let theirs = bb.probe(c.module, &c.target).await;
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("module", c.module)
            .append_pair("target", &c.target)
            .finish();
        let mine = request(
            "GET",
            &ours.url(&format!("/probe?{q}")),
            &[("X-Prometheus-Scrape-Timeout-Seconds", "5")],
        )
        .await
        .body;
        let (s_theirs, s_mine) = (
            metric_value(&theirs, "probe_success"),
            metric_value(&mine, "probe_success"),
        );
        if s_theirs.is_none() || s_theirs != s_mine {
            problems.push(format!("{} {}: probe_success blackbox {version:?}={s_theirs:?} ours={s_mine:?}\n--- blackbox:\n{theirs}\n--- ours:\n{mine}", c.module, c.target));
        }
        let missing: Vec<_> = metric_names(&theirs)
            .difference(&metric_names(&mine))
            .filter(|m| {
                !DELIBERATE_OMISSIONS
                    .iter()
                    .any(|(prefix, name, _)| c.module.starts_with(prefix) && m == name)
            })
            .cloned()
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{} {}: metrics blackbox {version:?} emits and we do not: {missing:?}",
                c.module, c.target
            ));
        }
    }
    problems
}

fn write_config(yaml: &str) -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("modules.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

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
