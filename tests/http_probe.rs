//! The http prober against real HTTP and HTTPS servers started by each test.

mod support;

use support::certs::{TestPki, EXPIRED_NOT_AFTER, VALID_NOT_AFTER};
use support::http_server::{self, HttpServer, GZIP_REPEAT, GZIP_TEXT, LAST_MODIFIED_UNIX};
use support::{metric_value, metric_value_with, request, Exporter};

const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

/// Starts the exporter with `modules` (YAML lines indented under `modules:`).
async fn exporter(modules: &str) -> Exporter {
    Exporter::start(&format!("modules:\n{modules}")).await
}

/// A module `name` with the given `http:` settings (YAML lines, 6 spaces deep).
fn module(name: &str, http: &str) -> String {
    format!("  {name}:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n{http}")
}

async fn probe(ex: &Exporter, module: &str, target: &str) -> String {
    let (status, body) = ex.probe(module, target).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The debug output (logs, failure reason, metrics, module) of one probe.
async fn debug(ex: &Exporter, module: &str, target: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("module", module)
        .append_pair("target", target)
        .append_pair("debug", "true")
        .finish();
    ex.get(&format!("/probe?{q}")).await.body
}

fn success(body: &str) -> f64 {
    metric_value(body, "probe_success").unwrap_or_else(|| panic!("no probe_success in\n{body}"))
}

fn value(body: &str, name: &str) -> f64 {
    metric_value(body, name).unwrap_or_else(|| panic!("no {name} in\n{body}"))
}

#[tokio::test]
async fn plain_200_succeeds_with_blackbox_metrics() {
    let server = HttpServer::start().await;
    let ex = exporter(&module("web", "")).await;
    let body = probe(&ex, "web", &server.url("/")).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(value(&body, "probe_http_status_code"), 200.0);
    assert_eq!(value(&body, "probe_http_version"), 1.1);
    assert_eq!(value(&body, "probe_http_ssl"), 0.0);
    assert_eq!(value(&body, "probe_http_redirects"), 0.0);
    assert_eq!(value(&body, "probe_http_content_length"), 12.0);
    assert_eq!(value(&body, "probe_http_uncompressed_body_length"), 12.0);
    assert_eq!(value(&body, "probe_failed_due_to_regex"), 0.0);
    assert_eq!(value(&body, "probe_ip_protocol"), 4.0);
    for phase in PHASES {
        assert!(
            metric_value_with(&body, "probe_http_duration_seconds", &[("phase", phase)]).is_some(),
            "phase {phase} missing:\n{body}"
        );
    }
    // A bare host:port/path target means http://.
    let bare = format!("{}/", server.addr);
    assert_eq!(success(&probe(&ex, "web", &bare).await), 1.0);
    let r = server.last_request();
    assert_eq!(r.method, "GET");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r
        .header("user-agent")
        .unwrap()
        .starts_with("siembox-exporter/"));
}

#[tokio::test]
async fn status_codes_default_to_2xx_and_can_be_listed() {
    let server = HttpServer::start().await;
    let mods = module("web", "") + &module("want_404", "      valid_status_codes: [404]\n");
    let ex = exporter(&mods).await;
    let target = server.url("/status/404");
    let body = probe(&ex, "web", &target).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(value(&body, "probe_http_status_code"), 404.0);
    assert!(debug(&ex, "web", &target)
        .await
        .contains("failure_reason=status"));
    assert_eq!(success(&probe(&ex, "want_404", &target).await), 1.0);
    assert_eq!(
        success(&probe(&ex, "want_404", &server.url("/")).await),
        0.0
    );
}

#[tokio::test]
async fn redirects_are_followed_and_counted_or_refused() {
    let server = HttpServer::start().await;
    let mods = module("web", "")
        + &module("no_follow", "      follow_redirects: false\n")
        + &module(
            "no_follow_302_ok",
            "      follow_redirects: false\n      valid_status_codes: [302]\n",
        );
    let ex = exporter(&mods).await;
    let body = probe(&ex, "web", &server.url("/redirect/3")).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(value(&body, "probe_http_redirects"), 3.0);
    assert_eq!(value(&body, "probe_http_status_code"), 200.0);
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        ["/redirect/3", "/redirect/2", "/redirect/1", "/redirect/0"]
    );

    let body = probe(&ex, "no_follow", &server.url("/redirect/3")).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(value(&body, "probe_http_status_code"), 302.0);
    // blackbox counts the redirect it refused to follow.
    assert_eq!(value(&body, "probe_http_redirects"), 1.0);
    let body = probe(&ex, "no_follow_302_ok", &server.url("/redirect/3")).await;
    assert_eq!(success(&body), 1.0, "{body}");

    // Cookies set by a redirect go back on the next hop (a login flow).
    let body = probe(&ex, "web", &server.url("/login")).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(server.last_request().header("cookie"), Some("session=s1"));

    // Go's limit: the 11th redirect is not followed.
    let body = probe(&ex, "web", &server.url("/redirect/12")).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(value(&body, "probe_http_redirects"), 11.0);
    assert_eq!(value(&body, "probe_http_status_code"), 302.0);
}

#[tokio::test]
async fn body_regexps_in_both_directions() {
    let server = HttpServer::start().await;
    let mods = module(
        "bad_word",
        "      fail_if_body_matches_regexp: [\"hel+o\"]\n",
    ) + &module(
        "must_have",
        "      fail_if_body_not_matches_regexp: [\"^hello world\\n$\"]\n",
    ) + &module(
        "must_have_absent",
        "      fail_if_body_not_matches_regexp: [\"goodbye\"]\n",
    );
    let ex = exporter(&mods).await;
    let target = server.url("/");
    let body = probe(&ex, "bad_word", &target).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(value(&body, "probe_failed_due_to_regex"), 1.0);
    assert!(debug(&ex, "bad_word", &target)
        .await
        .contains("failure_reason=regexp"));
    let body = probe(&ex, "must_have", &target).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(value(&body, "probe_failed_due_to_regex"), 0.0);
    let body = probe(&ex, "must_have_absent", &target).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(value(&body, "probe_failed_due_to_regex"), 1.0);
}

#[tokio::test]
async fn header_match_specs_with_allow_missing() {
    let server = HttpServer::start().await;
    let spec = |list: &str, header: &str, re: &str, allow: bool| {
        format!("      {list}:\n        - header: {header}\n          regexp: \"{re}\"\n          allow_missing: {allow}\n")
    };
    let mods = module(
        "no_alpha",
        &spec("fail_if_header_matches", "X-Test", "alp", false),
    ) + &module(
        "any_two",
        &spec("fail_if_header_not_matches", "x-multi", "^two$", false),
    ) + &module(
        "any_three",
        &spec("fail_if_header_not_matches", "X-Multi", "^three$", false),
    ) + &module(
        "missing",
        &spec("fail_if_header_not_matches", "X-Nope", ".*", false),
    ) + &module(
        "missing_ok",
        &spec("fail_if_header_matches", "X-Nope", ".*", true),
    );
    let ex = exporter(&mods).await;
    let target = server.url("/headers");
    let check = |name: &'static str, want: f64| {
        let ex = &ex;
        let target = &target;
        async move {
            let body = probe(ex, name, target).await;
            assert_eq!(success(&body), want, "module {name}:\n{body}");
            assert_eq!(
                value(&body, "probe_failed_due_to_regex"),
                1.0 - want,
                "module {name}"
            );
            body
        }
    };
    check("no_alpha", 0.0).await;
    check("any_two", 1.0).await;
    check("any_three", 0.0).await;
    check("missing", 0.0).await;
    let body = check("missing_ok", 1.0).await;
    assert_eq!(
        value(&body, "probe_http_last_modified_timestamp_seconds"),
        LAST_MODIFIED_UNIX
    );
}

#[tokio::test]
async fn post_body_and_headers_reach_the_server() {
    let server = HttpServer::start().await;
    let mods = module(
        "post",
        "      method: POST\n      body: '{\"probe\":true}'\n      headers:\n        Content-Type: application/json\n        X-Probe: yes-please\n",
    );
    let ex = exporter(&mods).await;
    let body = probe(&ex, "post", &server.url("/echo")).await;
    assert_eq!(success(&body), 1.0, "{body}");
    let r = server.last_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.body, b"{\"probe\":true}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-probe"), Some("yes-please"));
}

#[tokio::test]
async fn credentials_reach_the_server_but_never_the_debug_output() {
    let server = HttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-from-file-123\n").unwrap();
    let mods = module(
        "basic",
        "      basic_auth:\n        username: prober\n        password: s3cret-pass\n",
    ) + &module(
        "bearer",
        &format!("      bearer_token_file: {}\n", token_file.display()),
    );
    let ex = exporter(&mods).await;
    let target = server.url("/echo");
    let body = probe(&ex, "basic", &target).await;
    assert_eq!(success(&body), 1.0, "{body}");
    // base64("prober:s3cret-pass")
    let basic = "Basic cHJvYmVyOnMzY3JldC1wYXNz";
    assert_eq!(server.last_request().header("authorization"), Some(basic));
    let out = debug(&ex, "basic", &target).await;
    assert!(out.contains("probe_success 1"), "{out}");
    assert!(!out.contains("s3cret-pass"), "{out}");
    assert!(!out.contains("cHJvYmVyOnMzY3JldC1wYXNz"), "{out}");

    assert_eq!(success(&probe(&ex, "bearer", &target).await), 1.0);
    assert_eq!(
        server.last_request().header("authorization"),
        Some("Bearer tok-from-file-123")
    );
    let out = debug(&ex, "bearer", &target).await;
    assert!(!out.contains("tok-from-file-123"), "{out}");
}

#[tokio::test]
async fn gzip_bodies_are_decoded_and_measured() {
    let server = HttpServer::start().await;
    let mods = module(
        "gz",
        &format!("      compression: gzip\n      fail_if_body_not_matches_regexp: [\"^({GZIP_TEXT})+$\"]\n"),
    ) + &module("plain", "");
    let ex = exporter(&mods).await;
    let target = server.url("/gzip");
    let body = probe(&ex, "gz", &target).await;
    assert_eq!(success(&body), 1.0, "{body}");
    let expanded = (GZIP_TEXT.len() * GZIP_REPEAT) as f64;
    assert_eq!(
        value(&body, "probe_http_uncompressed_body_length"),
        expanded
    );
    let compressed = value(&body, "probe_http_content_length");
    assert!(compressed > 0.0 && compressed < expanded, "{body}");
    assert_eq!(
        server.last_request().header("accept-encoding"),
        Some("gzip")
    );
    // Without `compression` the body is counted as it came.
    let body = probe(&ex, "plain", &target).await;
    assert_eq!(
        value(&body, "probe_http_uncompressed_body_length"),
        compressed
    );
}

#[tokio::test]
async fn body_size_limit_stops_reading_and_fails() {
    let server = HttpServer::start().await;
    let ex = exporter(&module("limited", "      body_size_limit: 1000\n")).await;
    let body = probe(&ex, "limited", &server.url("/big/500")).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(value(&body, "probe_http_uncompressed_body_length"), 500.0);
    let target = server.url("/big/100000");
    let body = probe(&ex, "limited", &target).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(value(&body, "probe_http_uncompressed_body_length"), 1000.0);
    assert!(debug(&ex, "limited", &target)
        .await
        .contains("larger than body_size_limit"));
}

/// Body regexps see the whole body up to the limit (the default one here), as blackbox's do;
/// past it they fail, as blackbox's do when `body_size_limit` stops their read
/// (prober/http.go matchRegularExpressions).
#[tokio::test]
async fn body_regexps_match_up_to_the_limit_and_fail_past_it() {
    let server = HttpServer::start().await;
    let limit = 4 << 20; // limits.body_size_limit's default
    let mods = module(
        "at_end",
        "      fail_if_body_not_matches_regexp: ['x{100}$']\n",
    ) + &module(
        "small_limit",
        "      body_size_limit: 1000\n      fail_if_body_matches_regexp: [never-there]\n",
    );
    let ex = exporter(&mods).await;
    let body = probe(&ex, "at_end", &server.url(&format!("/big/{limit}"))).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(value(&body, "probe_failed_due_to_regex"), 0.0);
    assert_eq!(
        value(&body, "probe_http_uncompressed_body_length"),
        f64::from(limit)
    );

    let target = server.url(&format!("/big/{}", limit + 1));
    let body = probe(&ex, "at_end", &target).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(value(&body, "probe_failed_due_to_regex"), 1.0);
    assert!(debug(&ex, "at_end", &target)
        .await
        .contains("larger than limits.body_size_limit (4194304 bytes)"));

    let body = probe(&ex, "small_limit", &server.url("/big/1001")).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(value(&body, "probe_failed_due_to_regex"), 1.0);
    assert_eq!(value(&body, "probe_http_uncompressed_body_length"), 1000.0);
    let body = probe(&ex, "small_limit", &server.url("/big/1000")).await;
    assert_eq!(success(&body), 1.0, "{body}");
}

#[tokio::test]
async fn https_with_ca_file_reports_the_leaf_expiry() {
    let pki = TestPki::generate();
    let server = HttpServer::start_tls(&pki.valid, false).await;
    let ca = pki.ca_file.display();
    let mods = module(
        "tls",
        &format!("      tls_config:\n        ca_file: {ca}\n"),
    ) + &module(
        "tls_only",
        &format!("      fail_if_not_ssl: true\n      tls_config:\n        ca_file: {ca}\n"),
    ) + &module(
        "no_tls_wanted",
        &format!("      fail_if_ssl: true\n      tls_config:\n        ca_file: {ca}\n"),
    );
    let ex = exporter(&mods).await;
    for host in ["127.0.0.1", "localhost"] {
        let target = format!("https://{host}:{}/", server.addr.port());
        let body = probe(&ex, "tls", &target).await;
        assert_eq!(success(&body), 1.0, "{host}: {body}");
        assert_eq!(value(&body, "probe_http_ssl"), 1.0);
        assert_eq!(
            value(&body, "probe_ssl_earliest_cert_expiry"),
            VALID_NOT_AFTER as f64
        );
        assert_eq!(pki.valid.not_after, VALID_NOT_AFTER);
        assert!(
            body.contains("probe_tls_version_info{version=\"TLS 1.3\"} 1"),
            "{body}"
        );
        assert!(body.contains("probe_tls_cipher_info{"), "{body}");
        let tls = metric_value_with(&body, "probe_http_duration_seconds", &[("phase", "tls")]);
        assert!(tls.unwrap() > 0.0, "{body}");
    }
    let target = server.url("/");
    assert_eq!(success(&probe(&ex, "tls_only", &target).await), 1.0);
    let body = probe(&ex, "no_tls_wanted", &target).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert!(debug(&ex, "no_tls_wanted", &target)
        .await
        .contains("Final request was over SSL"));
}

#[tokio::test]
async fn unknown_ca_fails_with_tls_and_reports_expiry_as_unverified() {
    let pki = TestPki::generate();
    let server = HttpServer::start_tls(&pki.untrusted, false).await;
    let mods = module(
        "tls",
        &format!(
            "      tls_config:\n        ca_file: {}\n",
            pki.ca_file.display()
        ),
    ) + &module("system_roots", "")
        + &module(
            "insecure",
            "      tls_config:\n        insecure_skip_verify: true\n",
        );
    let ex = exporter(&mods).await;
    let target = server.url("/");
    for m in ["tls", "system_roots"] {
        let body = probe(&ex, m, &target).await;
        assert_eq!(success(&body), 0.0, "{m}: {body}");
        // blackbox's series only for a verified chain; its expiry under our own name.
        assert_eq!(
            metric_value(&body, "probe_ssl_earliest_cert_expiry"),
            None,
            "{body}"
        );
        assert_eq!(
            value(&body, "probe_ssl_unverified_cert_expiry"),
            VALID_NOT_AFTER as f64
        );
        let out = debug(&ex, m, &target).await;
        assert!(out.contains("failure_reason=tls"), "{out}");
        // Verification failed: no request was sent.
        assert!(server.requests().is_empty());
    }
    let body = probe(&ex, "insecure", &target).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(value(&body, "probe_http_status_code"), 200.0);
}

#[tokio::test]
async fn expired_certificate_fails_and_reports_its_past_expiry() {
    let pki = TestPki::generate();
    let server = HttpServer::start_tls(&pki.expired, false).await;
    let ex = exporter(&module(
        "tls",
        &format!(
            "      tls_config:\n        ca_file: {}\n",
            pki.ca_file.display()
        ),
    ))
    .await;
    let target = server.url("/");
    let body = probe(&ex, "tls", &target).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert!(!body.contains("probe_ssl_earliest_cert_expiry"), "{body}");
    assert!(!body.contains("probe_tls_version_info"), "{body}");
    let expiry = value(&body, "probe_ssl_unverified_cert_expiry");
    assert_eq!(expiry, EXPIRED_NOT_AFTER as f64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry < now);
    let out = debug(&ex, "tls", &target).await;
    assert!(out.contains("failure_reason=tls"), "{out}");
    assert!(out.to_lowercase().contains("expired"), "{out}");
}

#[tokio::test]
async fn fail_if_not_ssl_on_plain_http() {
    let server = HttpServer::start().await;
    let ex = exporter(&module("tls_only", "      fail_if_not_ssl: true\n")).await;
    let target = server.url("/");
    let body = probe(&ex, "tls_only", &target).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(value(&body, "probe_http_status_code"), 200.0);
    assert!(debug(&ex, "tls_only", &target)
        .await
        .contains("Final request was not over SSL"));
}

#[tokio::test]
async fn http2_is_negotiated_over_tls() {
    let pki = TestPki::generate();
    let server = HttpServer::start_tls(&pki.valid, true).await;
    let ca = pki.ca_file.display();
    let mods = module(
        "h2",
        &format!("      valid_http_versions: [\"HTTP/2.0\"]\n      tls_config:\n        ca_file: {ca}\n"),
    ) + &module(
        "h1_only",
        &format!("      enable_http2: false\n      valid_http_versions: [\"HTTP/2.0\"]\n      tls_config:\n        ca_file: {ca}\n"),
    );
    let ex = exporter(&mods).await;
    let target = server.url("/redirect/1");
    let body = probe(&ex, "h2", &target).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(value(&body, "probe_http_version"), 2.0);
    assert_eq!(value(&body, "probe_http_redirects"), 1.0);
    assert_eq!(server.last_request().version, "HTTP/2.0");
    let body = probe(&ex, "h1_only", &target).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(value(&body, "probe_http_version"), 1.1);
    assert_eq!(server.last_request().version, "HTTP/1.1");
}

#[tokio::test]
async fn hostname_parameter_and_host_header_set_host() {
    let server = HttpServer::start().await;
    let mods = module("web", "")
        + &module(
            "vhost",
            "      headers:\n        Host: configured.example\n",
        );
    let ex = exporter(&mods).await;
    let target = server.url("/echo");
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("module", "web")
        .append_pair("target", &target)
        .append_pair("hostname", "param.example")
        .finish();
    let r = ex.get(&format!("/probe?{q}")).await;
    assert_eq!(success(&r.body), 1.0, "{}", r.body);
    assert_eq!(server.last_request().header("host"), Some("param.example"));
    assert_eq!(success(&probe(&ex, "vhost", &target).await), 1.0);
    assert_eq!(
        server.last_request().header("host"),
        Some("configured.example")
    );
    assert_eq!(success(&probe(&ex, "web", &target).await), 1.0);
    assert_eq!(
        server.last_request().header("host"),
        Some(format!("{}", server.addr).as_str())
    );
}

#[tokio::test]
async fn hostname_parameter_is_the_tls_server_name() {
    let pki = TestPki::generate();
    let server = HttpServer::start_tls(&pki.valid, false).await;
    let ex = exporter(&module(
        "tls",
        &format!(
            "      tls_config:\n        ca_file: {}\n",
            pki.ca_file.display()
        ),
    ))
    .await;
    let ask = |hostname: &'static str| {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("module", "tls")
            .append_pair("target", &server.url("/"))
            .append_pair("hostname", hostname)
            .finish();
        let ex = &ex;
        async move { ex.get(&format!("/probe?{q}")).await.body }
    };
    // The certificate names localhost: verified against the hostname, not the IP target.
    assert_eq!(success(&ask("localhost").await), 1.0);
    assert_eq!(success(&ask("other.example").await), 0.0);
}

#[tokio::test]
async fn silent_server_fails_at_the_scrape_timeout() {
    let (addr, _held) = http_server::start_silent().await;
    let ex = Exporter::start("modules:\n  slow:\n    prober: http\n    timeout: 30s\n").await;
    let start = std::time::Instant::now();
    let r = request(
        "GET",
        &ex.url(&format!("/probe?module=slow&target=http://{addr}/")),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "1.5")],
    )
    .await;
    let took = start.elapsed();
    assert_eq!(success(&r.body), 0.0, "{}", r.body);
    assert!(took.as_secs_f64() < 5.0, "probe took {took:?}");
    let duration = value(&r.body, "probe_duration_seconds");
    assert!((0.9..5.0).contains(&duration), "{}", r.body);
    for phase in PHASES {
        assert!(
            metric_value_with(&r.body, "probe_http_duration_seconds", &[("phase", phase)])
                .is_some(),
            "phase {phase} missing:\n{}",
            r.body
        );
    }
    // The wait was for the response: processing holds nearly all of it.
    let processing = metric_value_with(
        &r.body,
        "probe_http_duration_seconds",
        &[("phase", "processing")],
    );
    assert!(processing.unwrap() >= 0.8, "{}", r.body);
}

#[tokio::test]
async fn phases_sum_over_a_redirect_within_the_probe_duration() {
    let pki = TestPki::generate();
    let server = HttpServer::start_tls(&pki.valid, true).await;
    let ex = exporter(&module(
        "tls",
        &format!(
            "      tls_config:\n        ca_file: {}\n",
            pki.ca_file.display()
        ),
    ))
    .await;
    let body = probe(&ex, "tls", &server.url("/redirect/1")).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(value(&body, "probe_http_redirects"), 1.0);
    let mut sum = 0.0;
    for phase in PHASES {
        let v = metric_value_with(&body, "probe_http_duration_seconds", &[("phase", phase)])
            .unwrap_or_else(|| panic!("phase {phase} missing:\n{body}"));
        assert!(v >= 0.0);
        if phase != "resolve" {
            assert!(v > 0.0, "phase {phase} is 0 over two hops:\n{body}");
        }
        sum += v;
    }
    assert!(sum <= value(&body, "probe_duration_seconds"), "{body}");
}

#[tokio::test]
async fn refused_connection_has_its_reason() {
    let port = support::free_port();
    let ex = exporter(&module("web", "")).await;
    let target = format!("http://127.0.0.1:{port}/");
    let body = probe(&ex, "web", &target).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(value(&body, "probe_http_status_code"), 0.0);
    assert!(debug(&ex, "web", &target)
        .await
        .contains("failure_reason=connection_refused"));
}

// blackbox prober/http.go getDecompressionReader: an unsupported compression loads (blackbox
// checks it only when probing) and fails each probe; ours warns at load with line and field.
#[tokio::test]
async fn unsupported_compression_warns_at_load_and_fails_the_probe() {
    let yaml = "modules:\n  zstd:\n    prober: http\n    http:\n      compression: zstd\n";
    let c = siembox_exporter::Config::from_yaml_str(yaml, "test.yml").unwrap();
    let w = siembox_exporter::config::format_warnings("test.yml", &c.warnings);
    assert!(
        w.contains("test.yml:5: field modules.zstd.http.compression"),
        "{w}"
    );
    assert!(w.contains("\"zstd\" is not supported"), "{w}");
    let server = HttpServer::start().await;
    let ex = exporter(&module("zstd", "      compression: zstd\n")).await;
    let target = server.url("/");
    assert_eq!(success(&probe(&ex, "zstd", &target).await), 0.0);
    let out = debug(&ex, "zstd", &target).await;
    assert!(
        out.contains("failure_reason=config") && out.contains("zstd"),
        "{out}"
    );
}

#[tokio::test]
async fn oauth2_client_credentials_token_is_fetched_once_and_sent() {
    let server = HttpServer::start().await;
    let oauth = |secret: &str| {
        format!(
            "      oauth2:\n        client_id: client-a\n        client_secret: \"{secret}\"\n        scopes: [probe]\n        token_url: {}\n",
            server.url("/token")
        )
    };
    let mods = module("oauth", &oauth("sec ret")) + &module("bad_secret", &oauth("wrong"));
    let ex = exporter(&mods).await;
    let target = server.url("/echo");
    for _ in 0..2 {
        let body = probe(&ex, "oauth", &target).await;
        assert_eq!(success(&body), 1.0, "{body}");
        assert_eq!(
            server.last_request().header("authorization"),
            Some(format!("Bearer {}", http_server::OAUTH2_TOKEN).as_str())
        );
    }
    let token_calls: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/token")
        .collect();
    assert_eq!(token_calls.len(), 1, "the token is cached");
    assert!(String::from_utf8_lossy(&token_calls[0].body).contains("scope=probe"));
    let out = debug(&ex, "oauth", &target).await;
    assert!(!out.contains(http_server::OAUTH2_TOKEN), "{out}");
    assert!(!out.contains("sec ret"), "{out}");

    let before = server.requests().len();
    let out = debug(&ex, "bad_secret", &target).await;
    assert!(out.contains("probe_success 0"), "{out}");
    assert!(out.contains("failure_reason=auth"), "{out}");
    assert!(out.contains("the token endpoint answered 401"), "{out}");
    assert!(!out.contains("wrong"), "{out}");
    // Only the token request was made: the target never saw an unauthenticated probe.
    let after = server.requests();
    assert_eq!(after.len(), before + 1);
    assert_eq!(after.last().unwrap().path, "/token");
}

/// The HTTP modules of the stock blackbox configs load unchanged.
#[test]
fn blackbox_stock_configs_load() {
    for path in [
        "/etc/prometheus/blackbox.yml",
        "/usr/share/doc/prometheus-blackbox-exporter/examples/example.yml",
    ] {
        let p = std::path::Path::new(path);
        assert!(
            p.exists(),
            "{path} is missing: run scripts/test-prerequisites (it installs prometheus-blackbox-exporter)"
        );
        let config = siembox_exporter::Config::load_file(p)
            .unwrap_or_else(|e| panic!("{path} does not load:\n{e}"));
        let http: Vec<&String> = config
            .modules
            .iter()
            .filter(|(_, m)| m.prober == siembox_exporter::config::ProberKind::Http)
            .map(|(n, _)| n)
            .collect();
        assert!(
            http.iter().any(|n| n.as_str() == "http_post_2xx"),
            "{path}: {http:?}"
        );
    }
}

/// A `ca_file` that does not exist loads (as in blackbox) but fails the probes that need it.
#[tokio::test]
async fn missing_ca_file_fails_the_probe_not_the_load() {
    let pki = TestPki::generate();
    let server = HttpServer::start_tls(&pki.valid, false).await;
    let ex = exporter(&module(
        "tls",
        "      tls_config:\n        ca_file: /nonexistent/siembox-ca.pem\n",
    ))
    .await;
    let out = debug(&ex, "tls", &server.url("/")).await;
    assert!(out.contains("probe_success 0"), "{out}");
    assert!(out.contains("failure_reason=config"), "{out}");
    assert!(
        out.contains("cannot read ca_file /nonexistent/siembox-ca.pem"),
        "{out}"
    );
}

#[tokio::test]
async fn proxy_url_forwards_http_and_tunnels_https() {
    let pki = TestPki::generate();
    let plain = HttpServer::start().await;
    let tls = HttpServer::start_tls(&pki.valid, true).await;
    let proxy = http_server::TestProxy::start().await;
    let mods = module(
        "proxied",
        &format!(
            "      proxy_url: http://user:pw@{}\n      skip_resolve_phase_with_proxy: true\n      tls_config:\n        ca_file: {}\n",
            proxy.addr,
            pki.ca_file.display()
        ),
    );
    let ex = exporter(&mods).await;
    let body = probe(&ex, "proxied", &plain.url("/echo")).await;
    assert_eq!(success(&body), 1.0, "{body}");
    // Skipped resolve phase: no lookup was timed.
    assert_eq!(
        metric_value_with(
            &body,
            "probe_http_duration_seconds",
            &[("phase", "resolve")]
        ),
        Some(0.0)
    );
    let https_target = format!("https://localhost:{}/", tls.addr.port());
    let body = probe(&ex, "proxied", &https_target).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(value(&body, "probe_http_ssl"), 1.0);
    let seen = proxy.seen.lock().clone();
    // base64("user:pw")
    assert_eq!(
        seen,
        [
            format!(
                "GET http://{}/echo HTTP/1.1 | proxy-authorization: Basic dXNlcjpwdw==",
                plain.addr
            ),
            format!(
                "CONNECT localhost:{} HTTP/1.1 | Proxy-Authorization: Basic dXNlcjpwdw==",
                tls.addr.port()
            ),
        ]
    );
    assert_eq!(
        plain.last_request().header("host"),
        Some(plain.addr.to_string().as_str())
    );
}

/// TLS metrics describe the final response only, as in blackbox: https redirected to plain http
/// reports no certificate.
#[tokio::test]
async fn tls_metrics_come_from_the_final_hop() {
    let pki = TestPki::generate();
    let tls = HttpServer::start_tls(&pki.valid, false).await;
    let plain = HttpServer::start().await;
    let ex = exporter(&module(
        "tls",
        &format!(
            "      tls_config:\n        ca_file: {}\n",
            pki.ca_file.display()
        ),
    ))
    .await;
    let target = tls.url(&format!("/goto/{}/", plain.addr));
    let body = probe(&ex, "tls", &target).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(value(&body, "probe_http_redirects"), 1.0);
    assert_eq!(value(&body, "probe_http_ssl"), 0.0);
    assert_eq!(
        metric_value(&body, "probe_ssl_earliest_cert_expiry"),
        None,
        "{body}"
    );
    assert!(!body.contains("probe_tls_version_info"), "{body}");
    // The TLS hop's handshake still counts in the tls phase.
    let tls_phase = metric_value_with(&body, "probe_http_duration_seconds", &[("phase", "tls")]);
    assert!(tls_phase.unwrap() > 0.0, "{body}");
    assert_eq!(plain.requests().len(), 1);
}

/// `http_headers` (Prometheus common's HTTP client headers, taken by blackbox 0.28 and used in
/// its example.yml): every value, secret and file content is sent, the same as blackbox 0.28
/// sends them to the same server; secrets stay out of /config; a reserved header is refused at
/// load by both (common config/headers.go ReservedHeaders, Headers.Validate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_headers_values_secrets_and_files_are_sent_as_blackbox_sends_them() {
    let server = HttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("api-key.txt");
    std::fs::write(&key_file, "  key-from-file-77\n").unwrap();
    let config = dir.path().join("modules.yml");
    std::fs::write(
        &config,
        format!(
            "modules:
  with_headers:
    prober: http
    timeout: 3s
    http:
      preferred_ip_protocol: ip4
      http_headers:
        Accept-Language:
          values: [en-US, fr-FR]
        X-Api-Token:
          secrets: [Sup3r-Secret-Token]
        X-Api-Key:
          files: ['{}']
",
            key_file.display()
        ),
    )
    .unwrap();
    let target = server.url("/echo");
    let ours = Exporter::start_file(config.clone()).await;
    let (_, body) = ours.probe("with_headers", &target).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    let mine = server.last_request();
    let bb = support::blackbox::Blackbox::start(&config).await;
    let theirs_body = bb.probe("with_headers", &target).await;
    assert_eq!(metric_value(&theirs_body, "probe_success"), Some(1.0));
    let theirs = server.last_request();
    let sent = |r: &http_server::Recorded| -> Vec<(String, String)> {
        let mut h: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| ["accept-language", "x-api-token", "x-api-key"].contains(&k.as_str()))
            .cloned()
            .collect();
        h.sort();
        h
    };
    assert_eq!(
        sent(&mine),
        vec![
            ("accept-language".to_string(), "en-US".to_string()),
            ("accept-language".to_string(), "fr-FR".to_string()),
            ("x-api-key".to_string(), "key-from-file-77".to_string()),
            ("x-api-token".to_string(), "Sup3r-Secret-Token".to_string()),
        ]
    );
    assert_eq!(sent(&mine), sent(&theirs), "ours vs blackbox 0.28");
    let shown = ours.get("/config").await.body;
    assert!(shown.contains("X-Api-Token"), "{shown}");
    assert!(!shown.contains("Sup3r-Secret-Token"), "{shown}");

    let reserved = dir.path().join("reserved.yml");
    std::fs::write(
        &reserved,
        "modules:\n  m:\n    prober: http\n    http:\n      http_headers:\n        authorization:\n          values: [x]\n",
    )
    .unwrap();
    let err = siembox_exporter::Config::load_file(&reserved)
        .expect_err("a reserved header is refused")
        .to_string();
    assert!(
        err.contains("http.http_headers.authorization") && err.contains("not allowed"),
        "{err}"
    );
    let check = std::process::Command::new(support::blackbox::Version::V0_28.binary())
        .arg(format!("--config.file={}", reserved.display()))
        .arg("--config.check")
        .output()
        .unwrap();
    assert!(!check.status.success(), "blackbox 0.28 accepted it too");
}
