//! blackbox_exporter 0.28's own configs load here and every module in them works: its shipped
//! `blackbox.yml` and its documented `example.yml`, read from the 0.28 module source that
//! `scripts/go-tools` downloaded (not a copy of ours), written out as one module file with only
//! the site-specific values a user would change (proxy address, file paths, token URL and OAuth2
//! client). Each module then probes a server of this test's own, on ours and on blackbox 0.28
//! side by side: both must succeed (the one module that cannot succeed by construction must
//! fail on both), and agree on every series `support::compat` compares.
//!
//! Modules without a `tls_config` trust the system roots, so both exporters are started with
//! `SSL_CERT_FILE` naming the test CA (rustls-native-certs and Go read it the same way); this
//! file holds one test so the variable cannot leak into another.

mod support;

use std::path::PathBuf;
use support::blackbox::Version;
use support::certs::TestPki;
use support::compat::{compare, write_config, Case};
use support::grpc_server::{GrpcHealthServer, SERVING};
use support::http_server::{HttpServer, TestProxy};
use support::script_server::{ScriptServer, Step};
use support::{metric_value, Exporter};

/// The 0.28 module source `scripts/go-tools` fetched (GOPATH under the tools directory).
fn blackbox_source_file(name: &str) -> String {
    let bin = support::tools::go_tool("blackbox_exporter-0.28.0");
    let root = bin.parent().and_then(|b| b.parent()).unwrap();
    let path = root
        .join("gopath/pkg/mod/github.com/prometheus/blackbox_exporter@v0.28.0")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/go-tools)", path.display()))
}

/// The `modules:` body of a blackbox config (everything after its first line).
fn module_lines(config: &str) -> &str {
    let body = config
        .strip_prefix("modules:\n")
        .expect("a blackbox config starts with `modules:`");
    body
}

/// Replaces `from` (which must occur exactly once, so a changed upstream file is noticed).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} should occur once in blackbox's example config"
    );
    text.replacen(from, to, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackbox_0_28_shipped_and_example_modules_load_and_probe_local_servers() {
    let pki = TestPki::generate();
    // Before any TLS client of ours exists: the system roots are read once per process.
    std::env::set_var("SSL_CERT_FILE", &pki.ca_file);

    let http = HttpServer::start().await;
    let https = HttpServer::start_tls(&pki.valid, true).await;
    let h3 = support::h3_server::H3Server::start(&pki.valid).await;
    let proxy = TestProxy::start().await;
    let dns = support::dnsmasq::Dnsmasq::start();
    let grpc_tls =
        GrpcHealthServer::start_tls(&[("", SERVING)], pki.valid.acceptor(&[b"h2"])).await;
    let grpc_plain = GrpcHealthServer::start(&[("service1", SERVING)]).await;
    let tls = || Some(pki.valid.acceptor(&[]));

    let ssh = ScriptServer::tcp(
        vec![
            Step::Send(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"),
            Step::Expect("SSH-2.0-blackbox-ssh-check"),
        ],
        None,
        false,
    )
    .await;
    let irc = ScriptServer::tcp(
        vec![
            Step::Expect("NICK prober"),
            Step::Expect("USER prober prober prober :prober"),
            Step::Send(b"PING :c0ffee\r\n"),
            Step::Expect("PONG c0ffee"),
            Step::Send(b":irc.test 001 prober :Welcome\r\n"),
        ],
        None,
        false,
    )
    .await;
    let pop3s = ScriptServer::tcp(vec![Step::Send(b"+OK POP3 ready\r\n")], tls(), true).await;
    let imap = ScriptServer::tcp(
        vec![
            Step::Send(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
            Step::Expect(". STARTTLS"),
            Step::Send(b". OK Begin TLS negotiation now\r\n"),
            Step::StartTls,
            Step::Expect(". capability"),
            Step::Send(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n. OK done\r\n"),
        ],
        tls(),
        false,
    )
    .await;
    let smtp = ScriptServer::tcp(
        vec![
            Step::Send(b"220 mail.test ESMTP Postfix\r\n"),
            Step::Expect("EHLO prober"),
            Step::Send(b"250-mail.test\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n"),
            Step::Expect("STARTTLS"),
            Step::Send(b"220 2.0.0 Ready to start TLS\r\n"),
            Step::StartTls,
            Step::Expect("EHLO prober"),
            Step::Send(b"250-mail.test\r\n250-AUTH PLAIN LOGIN\r\n250 SMTPUTF8\r\n"),
            Step::Expect("QUIT"),
            Step::Send(b"221 2.0.0 Bye\r\n"),
        ],
        tls(),
        false,
    )
    .await;
    // RabbitMQ answers an unknown protocol header with its own AMQP header and closes.
    let amqp = ScriptServer::tcp(
        vec![
            Step::Expect("HELO"),
            Step::Expect(""),
            Step::Expect(""),
            Step::Expect(""),
            Step::Send(b"AMQP\x00\x00\x09\x01"),
            Step::Close,
        ],
        tls(),
        true,
    )
    .await;
    // PostgreSQL's SSLRequest answered 'S', then TLS. blackbox (and so we) end every `send`
    // with a newline, binary ones too; PostgreSQL 15 takes that and still completes the
    // handshake (checked against this machine's server), so this one reads it too.
    let postgres = ScriptServer::tcp(
        vec![
            Step::ExpectBytes(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f, b'\n']),
            Step::Send(b"S"),
            Step::StartTls,
        ],
        tls(),
        false,
    )
    .await;

    let unix = ScriptServer::unix(
        vec![Step::Expect("PING"), Step::Send(b"PONG\n")],
        None,
        false,
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body.txt");
    std::fs::write(&body_file, "body from a file").unwrap();
    let api_key_file = dir.path().join("api-key.txt");
    std::fs::write(&api_key_file, "key-from-file").unwrap();
    let path = |p: &PathBuf| p.display().to_string();

    // blackbox.yml's modules, the ones example.yml also names renamed `…_shipped`.
    let shipped = blackbox_source_file("blackbox.yml");
    let shipped = replace_once(
        module_lines(&shipped),
        "  http_post_2xx:\n",
        "  http_post_2xx_shipped:\n",
    );
    let shipped = replace_once(&shipped, "  postgresql:\n", "  postgresql_shipped:\n");
    let example = blackbox_source_file("example.yml");
    let mut example = module_lines(&example).to_string();
    for (from, to) in [
        (
            "\"http://127.0.0.1:3128\"\n      skip",
            format!("\"http://{}\"\n      skip", proxy.addr),
        ),
        (
            "\"http://127.0.0.1:3128\"\n      proxy_connect",
            format!("\"http://{}\"\n      proxy_connect", proxy.addr),
        ),
        ("\"/files/body.txt\"", format!("{:?}", path(&body_file))),
        (
            "\"https://api.example.com/token\"",
            format!("{:?}", http.url("/token")),
        ),
        (
            "client_id: \"client_id\"",
            "client_id: \"client-a\"".to_string(),
        ),
        (
            "client_secret: \"client_secret\"",
            "client_secret: \"sec ret\"".to_string(),
        ),
        (
            "\"/certs/my_cert.crt\"",
            format!("{:?}", path(&pki.ca_file)),
        ),
        ("/path/to/api-key.txt", path(&api_key_file)),
    ] {
        example = replace_once(&example, from, &to);
    }
    let example = example.replace(
        "\"/etc/blackbox_exporter/CA_cert.crt\"",
        &format!("{:?}", path(&pki.ca_file)),
    );
    let config = write_config(&format!("modules:\n{shipped}{example}"));

    // The modules not yet probed here, each with what it waits for (kept honest: a module of
    // blackbox's files that is neither probed nor listed here fails the test).
    let not_probed: &[(&str, &str)] = &[];

    let tcp = http.addr.to_string();
    let cases: Vec<(&str, String)> = vec![
        // blackbox.yml
        ("http_2xx", http.url("/")),
        ("http_post_2xx_shipped", http.url("/echo")),
        ("tcp_connect", tcp.clone()),
        ("pop3s_banner", pop3s.target.clone()),
        ("grpc", grpc_tls.target()),
        ("grpc_plain", grpc_plain.target()),
        ("ssh_banner", ssh.target.clone()),
        ("ssh_banner_extract", ssh.target.clone()),
        ("irc_banner", irc.target.clone()),
        ("icmp", "127.0.0.1".into()),
        ("icmp_ttl5", "127.0.0.1".into()),
        ("http_3xx", h3.url("/")),
        ("postgresql_shipped", postgres.target.clone()),
        // example.yml
        ("http_2xx_example", http.url("/download")),
        ("http_with_proxy", http.url("/")),
        ("http_with_proxy_and_headers", http.url("/")),
        ("http_post_2xx", http.url("/echo")),
        ("http_post_body_file", http.url("/echo")),
        ("http_basic_auth_example", http.url("/echo")),
        ("http_json_cel_match", http.url("/example.json")),
        ("http_2xx_oauth_client_credentials", http.url("/")),
        ("http_custom_ca_example", https.url("/")),
        ("http_gzip", http.url("/gzip")),
        ("http_gzip_with_accept_encoding", http.url("/gzip")),
        ("tls_connect", https.addr.to_string()),
        ("tcp_connect_example", tcp.clone()),
        ("imap_starttls", imap.target.clone()),
        ("smtp_starttls", smtp.target.clone()),
        ("irc_banner_example", irc.target.clone()),
        ("rabbitmq", amqp.target.clone()),
        ("rabbitmq_insecure", amqp.target.clone()),
        ("icmp_example", "127.0.0.1".into()),
        ("dns_udp_example", dns.target()),
        ("dns_soa", dns.target()),
        ("dns_tcp_example", dns.target()),
        ("unix_socket_ping", unix.target.clone()),
        ("postgresql", postgres.target.clone()),
        ("http_with_header_from_files", http.url("/echo")),
    ];
    // Modules no real server can pass, which both exporters must fail alike.
    let fails_by_construction: &[(&str, &str)] = &[
        (
            "dns_udp_example",
            "asks for 127.0.0.1 in the answer and fails on 127.0.0.1 in the answer",
        ),
        (
            "pop3s_banner",
            "`^+OK` is a repeated `^` then `OK` (in RE2 as in Rust's regex): a POP3 greeting `+OK` never matches",
        ),
    ];

    // Every module of both files is probed or listed as not probed.
    let all_modules: Vec<String> = format!("{shipped}{example}")
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':').to_string())
        .collect();
    for m in &all_modules {
        assert!(
            cases.iter().any(|(c, _)| c == m) || not_probed.iter().any(|(n, _)| n == m),
            "module {m} of blackbox's files is not probed by this test"
        );
    }

    // Ours loads it (as the binary's --config.check does) and each module succeeds.
    let ours = Exporter::start_file(config.clone()).await;
    let mut failures = Vec::new();
    for (module, target) in &cases {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("module", module)
            .append_pair("target", target)
            .append_pair("debug", "true")
            .finish();
        let timeout = [("X-Prometheus-Scrape-Timeout-Seconds", "5")];
        let debug = support::get(&ours.url(&format!("/probe?{q}")), &timeout)
            .await
            .body;
        let success = metric_value(&debug, "probe_success");
        let fails = fails_by_construction.iter().any(|(m, _)| m == module);
        let want = if fails { 0.0 } else { 1.0 };
        if success != Some(want) {
            failures.push(format!(
                "{module} {target}: probe_success {success:?}, want {want}\n{debug}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // What the servers saw: the body file's content and the header file's value were sent.
    let seen = http.requests();
    assert!(seen.iter().any(|r| r.body == b"body from a file"));
    assert!(seen
        .iter()
        .any(|r| r.header("x-api-key") == Some("key-from-file")));
    assert!(seen.iter().any(|r| r.header("authorization")
        == Some(&format!("Bearer {}", support::http_server::OAUTH2_TOKEN)[..])));

    // And blackbox 0.28 agrees on each, series by series.
    let cases: Vec<Case> = cases
        .into_iter()
        .map(|(module, target)| Case { module, target })
        .collect();
    compare(&config, &[Version::V0_28], &cases).await;
}
