//! Secrets never leave the exporter: `proxy_url` user info, credential-like `http.headers`
//! values and credentials pasted into targets (refused or not) are absent from every endpoint
//! (`/config`, `/probe` and its debug output, the status page, `/logs`, `/metrics`) and from
//! the log, checked against the real binary at debug level.

mod support;

use support::binary::{get, Binary};

const SECRETS: &[&str] = &[
    "PROXY-PASS-1",
    "HEADER-TOKEN-2",
    "COOKIE-3",
    "APIKEY-4",
    "TARGET-PASS-5",
    "TARGET-PASS-6",
    "TARGET-PASS-7",
    "TARGET-PASS-8",
    "proxyuser",
];

fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[test]
fn secrets_appear_on_no_endpoint_and_in_no_log() {
    let config = "modules:\n  web:\n    prober: http\n    timeout: 1s\n    allowed_targets: [\"127.0.0.1/32\"]\n    http:\n      proxy_url: http://proxyuser:PROXY-PASS-1@127.0.0.1:1\n      headers:\n        Authorization: Bearer HEADER-TOKEN-2\n        Cookie: session=COOKIE-3\n        X-Api-Key: APIKEY-4\n        X-Plain: visible-value\n  tcp:\n    prober: tcp\n    timeout: 1s\n    allowed_targets: [\"127.0.0.1/32\"]\n";
    let bin = Binary::start(config, &["--log.level=debug"]);
    let mut paths = Vec::new();
    let probes: &[(&str, &str)] = &[
        // Allowed, fails at the (closed) proxy.
        ("web", "http://127.0.0.1:1/"),
        ("web", "http://tuser:TARGET-PASS-5@127.0.0.1:1/"),
        // Refused by the allow-list.
        ("web", "http://tuser:TARGET-PASS-6@10.9.9.9/"),
        ("tcp", "tuser:TARGET-PASS-7@10.9.9.9:80"),
        // Refused as malformed.
        ("web", "http://tuser:TARGET-PASS-8@bad host/"),
    ];
    for (module, target) in probes {
        for debug in ["false", "true"] {
            paths.push(format!(
                "/probe?{}",
                query(&[("module", module), ("target", target), ("debug", debug)])
            ));
        }
        paths.push(format!(
            "/logs?{}",
            query(&[("module", module), ("target", target)])
        ));
    }
    paths.extend(["/config", "/", "/metrics"].map(String::from));
    let mut seen_any = 0;
    for path in &paths {
        let answer = get(bin.port, path).unwrap_or_default();
        seen_any += usize::from(!answer.is_empty());
        for secret in SECRETS {
            assert!(!answer.contains(secret), "{path} shows {secret}:\n{answer}");
        }
    }
    assert_eq!(seen_any, paths.len(), "some endpoint did not answer");
    let config_page = get(bin.port, "/config").unwrap();
    // Redaction hides the secret, not the setting.
    assert!(config_page.contains("visible-value"), "{config_page}");
    assert!(config_page.contains("127.0.0.1:1"), "{config_page}");
    let log = bin.log_text();
    assert!(log.contains("debug") || log.contains("DEBUG"), "{log}");
    for secret in SECRETS {
        assert!(!log.contains(secret), "the log shows {secret}:\n{log}");
    }
}
