//! The unix prober's own behaviour beyond what tests/blackbox_compat.rs compares with blackbox:
//! bad input (a path that does not exist, a server that never answers) fails with a clear reason
//! within the timeout, `probe_expect_info` values are capped like every label, and the target
//! allow-list covers socket paths.

mod support;

use siembox_exporter::config::Config;
use std::time::{Duration, Instant};
use support::line_server::{UnixLineServer, UnixMode};
use support::{failure_reason, metric_value, Exporter};

const MODULES: &str = "modules:
  unix_ping:
    prober: unix
    timeout: 1s
    unix:
      query_response:
        - send: \"PING\"
        - expect: \"PONG\"
  unix_long_label:
    prober: unix
    unix:
      query_response:
        - expect: \"^(.*)$\"
          labels:
            - name: banner
              value: \"${1}\"
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_path_fails_at_once_with_its_reason() {
    let ours = Exporter::start(MODULES).await;
    let started = Instant::now();
    let debug = ours
        .debug_probe("unix_ping", "/nonexistent/siembox-test.sock")
        .await;
    assert!(started.elapsed() < Duration::from_millis(900), "{debug}");
    assert!(
        debug.contains("unix socket /nonexistent/siembox-test.sock does not exist"),
        "{debug}"
    );
    assert_eq!(metric_value(&debug, "probe_success"), Some(0.0), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_within_the_timeout() {
    let silent = UnixLineServer::start(b"", UnixMode::Silent).await;
    let ours = Exporter::start(MODULES).await;
    let started = Instant::now();
    let debug = ours.debug_probe("unix_ping", &silent.target()).await;
    let took = started.elapsed();
    // Module timeout 1s: the probe ends by then, not later.
    assert!(took < Duration::from_millis(1500), "{took:?}\n{debug}");
    assert_eq!(failure_reason(&debug), Some("timeout"), "{debug}");
    assert!(
        debug.contains("did not answer as expected before the probe timeout"),
        "{debug}"
    );
    assert_eq!(metric_value(&debug, "probe_success"), Some(0.0), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_label_values_are_capped_like_every_label() {
    let banner: &'static [u8] = b"a banner far longer than the forty characters allowed here\n";
    let server = UnixLineServer::start(banner, UnixMode::Plain).await;
    let ours = Exporter::start(&format!(
        "cardinality: {{max_label_value_length: 40}}\n{MODULES}"
    ))
    .await;
    let (_, body) = ours.probe("unix_long_label", &server.target()).await;
    let line = body
        .lines()
        .find(|l| l.starts_with("probe_expect_info{"))
        .unwrap_or_else(|| panic!("{body}"));
    let value = line.split('"').nth(1).unwrap();
    assert_eq!(value.chars().count(), 40, "{line}");
    assert!(value.starts_with("a banner far longer"), "{line}");
}

// A path is not a name any certificate carries: without `server_name` verification cannot work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_a_server_name_fails_with_its_reason() {
    {
        let pki = support::certs::TestPki::generate();
        let tls = UnixLineServer::start(b"x\n", UnixMode::Tls(pki.valid.acceptor(&[]))).await;
        let ours = Exporter::start(&format!(
            "modules:\n  t:\n    prober: unix\n    unix:\n      tls: true\n      tls_config: {{ca_file: {}}}\n",
            pki.ca_file.display()
        ))
        .await;
        let debug = ours.debug_probe("t", &tls.target()).await;
        assert_eq!(failure_reason(&debug), Some("tls"), "{debug}");
        assert!(debug.contains("set tls_config.server_name"), "{debug}");
    }
}

#[test]
fn an_allow_list_without_socket_paths_refuses_a_unix_module_at_load() {
    let err = Config::from_yaml_str(
        "web:\n  allowed_targets: [\"127.0.0.1\"]\nmodules:\n  u:\n    prober: unix\n",
        "t.yml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("web.allowed_targets"), "{err}");
    assert!(err.contains("unix:/run/app/*.sock"), "{err}");
    let err = Config::from_yaml_str(
        "modules:\n  u:\n    prober: unix\n    allowed_targets: [\"*.example.org\"]\n",
        "t.yml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("t.yml:4") && err.contains("modules.u.allowed_targets"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_list_admits_only_the_socket_paths_it_names() {
    let server = UnixLineServer::start(b"x\n", UnixMode::Plain).await;
    let dir = server.path.parent().unwrap().display().to_string();
    let ours = Exporter::start(&format!(
        "web:\n  allowed_targets: [\"127.0.0.1\", \"unix:{dir}/*.sock\"]\nmodules:\n  u:\n    prober: unix\n"
    ))
    .await;
    let (_, body) = ours.probe("u", &server.target()).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    for denied in [
        "/run/other.sock".to_string(),
        format!(
            "{dir}/../{}/server.sock",
            server
                .path
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
        ),
    ] {
        let (status, body) = ours.probe("u", &denied).await;
        assert_eq!(status, 403, "{denied}: {body}");
        assert!(body.contains("allow-list"), "{body}");
    }
}
