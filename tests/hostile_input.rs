//! Hostile input never panics and never gets a 5xx: arbitrary YAML into the config loader,
//! arbitrary query strings and headers into /probe, huge and binary targets.

mod support;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use siembox_exporter::Config;
use support::{request, Exporter};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn config_loader_never_panics_on_any_text(text in "\\PC{0,400}") {
        let _ = Config::from_yaml_str(&text, "fuzz.yml");
    }

    #[test]
    fn config_loader_never_panics_on_yaml_like_text(
        text in "(modules|prober|http|tcp|timeout|query_response|expect|send|[a-z_]{1,8}|: |- |\\n  |\\n    |\\[|\\]|\\{|\\}|&a|\\*a|\"|'|[0-9]{1,3}s|\\|)*"
    ) {
        let _ = Config::from_yaml_str(&text, "fuzz.yml");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_queries_never_get_a_server_error() {
    let ex = Exporter::start("modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 1s\n  http_2xx:\n    prober: http\n    timeout: 1s\n").await;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    let strategy = "[ -~]{0,200}";
    for _ in 0..200 {
        let tree = strategy.new_tree(&mut runner).unwrap();
        let raw: String = tree.current();
        let encoded: String = url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
        for q in [
            format!("/probe?module=tcp_connect&target={encoded}"),
            format!("/probe?module={encoded}&target=127.0.0.1:1"),
            format!("/probe?{encoded}"),
        ] {
            let r = request(
                "GET",
                &ex.url(&q),
                &[("X-Prometheus-Scrape-Timeout-Seconds", "1")],
            )
            .await;
            assert!(r.status < 500, "{q} -> {} {}", r.status, r.body);
        }
    }
}

#[tokio::test]
async fn huge_binary_idn_and_credential_targets_get_clear_answers() {
    let ex = Exporter::start("modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 1s\n  http_2xx:\n    prober: http\n    timeout: 1s\n").await;
    let huge = "a".repeat(5000);
    let (status, body) = ex.probe("tcp_connect", &format!("{huge}:80")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("longer than"), "{body}");
    let (status, body) = ex.probe("tcp_connect", "\u{0}\u{1}binary:80").await;
    assert_eq!(status, 400, "{body}");
    // An IPv6 literal and an IDN host are fine targets; they just fail to connect here.
    let (status, _) = ex.probe("tcp_connect", "[::1]:1").await;
    assert_eq!(status, 200);
    let (status, _) = ex.probe("tcp_connect", "bücher.invalid:80").await;
    assert_eq!(status, 200);
    // Bad scrape-timeout headers are the caller's error.
    let r = request(
        "GET",
        &ex.url("/probe?module=tcp_connect&target=127.0.0.1:1"),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "soon")],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A query string over the limit is refused before any work.
    let long = format!(
        "/probe?module=tcp_connect&target=127.0.0.1:1&pad={}",
        "x".repeat(9000)
    );
    assert_eq!(ex.get(&long).await.status, 414);
}
