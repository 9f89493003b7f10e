//! `siembox-exporter audit` and `siembox-exporter probe` as an operator runs them: the real
//! binary against a real sshd whose state the test sets (its own `-f` file says
//! `PermitRootLogin yes`, `PasswordAuthentication no`) and a real HTTP server; verdict rows,
//! JSON, colour only on a terminal, exit statuses (0 pass, 1 failed, 2 usage), no secret printed.

mod support;

use siembox_exporter::audit::checks::CHECKS;
use std::path::PathBuf;
use support::binary::{config_file, run_once, Ran};
use support::http_server::HttpServer;
use support::sshd::{KeyPair, Sshd, SshdOptions};

/// `checks:` with only `on` enabled: the verdicts the test knows the truth of.
fn only(on: &[&str]) -> String {
    let items: Vec<String> = CHECKS
        .iter()
        .map(|c| format!("{}: {{enabled: {}}}", c.name, on.contains(&c.name)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// An isolated sshd (a "server" of its own) and a config with two ssh_audit modules over it:
/// `root_login` grades ssh_root_login and ssh_password_auth (fail and pass on this sshd),
/// `password_auth` only ssh_password_auth (pass).
fn audited_server() -> (Sshd, PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let client = KeyPair::generate(&dir, "client_ed25519");
    let sshd = Sshd::start_isolated(
        SshdOptions {
            authorized: vec![client.public_line.clone()],
            ..Default::default()
        },
        "",
    );
    let kh = dir.join("known_hosts");
    std::fs::write(&kh, format!("{}\n", sshd.known_hosts_line())).unwrap();
    let module = |checks: String| {
        format!(
            "    prober: ssh_audit\n    timeout: 60s\n    ssh_audit:\n      user: root\n      private_key_file: {}\n      known_hosts_file: {}\n      checks: {checks}\n",
            client.private.display(),
            kh.display()
        )
    };
    let yaml = format!(
        "modules:\n  root_login:\n{}  password_auth:\n{}servers:\n  - {{name: box, address: \"{}\"}}\n  - {{name: other, address: \"127.0.0.1:1\"}}\n",
        module(only(&["ssh_root_login", "ssh_password_auth"])),
        module(only(&["ssh_password_auth"])),
        sshd.address()
    );
    (sshd, config_file(&yaml))
}

fn audit(config: &std::path::Path, args: &[&str]) -> Ran {
    let mut all = vec!["audit", "--config.file", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run_once(&all)
}

/// The report row of `check`, split into words (check, verdict, value, reason…).
fn row<'a>(stdout: &'a str, check: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&check))
        .unwrap_or_else(|| panic!("no row for {check}:\n{stdout}"))
}

#[test]
fn audit_prints_verdict_rows_and_exits_1_on_a_failed_check_0_when_all_pass() {
    let (sshd, config) = audited_server();

    let failing = audit(&config, &["--module", "root_login", "box"]);
    assert_eq!(
        failing.code,
        Some(1),
        "{}{}",
        failing.stdout,
        failing.stderr
    );
    assert!(
        !failing.stdout.contains('\x1b'),
        "not a terminal: plain text\n{}",
        failing.stdout
    );
    assert!(failing.stdout.contains("Server box"), "{}", failing.stdout);
    let root = row(&failing.stdout, "ssh_root_login");
    assert_eq!(root[1..3], ["FAIL", "2"], "{}", failing.stdout);
    assert!(
        root[3..].join(" ").contains("yes"),
        "the reason says what was found: {root:?}"
    );
    assert_eq!(row(&failing.stdout, "ssh_password_auth")[1], "PASS");
    assert!(
        failing.stdout.contains("1 pass, 0 warn, 1 fail, 0 unknown"),
        "{}",
        failing.stdout
    );
    // A check switched off is not in the report.
    assert!(!failing.stdout.contains("ssh_port"), "{}", failing.stdout);

    let passing = audit(&config, &["--module", "password_auth", "box"]);
    assert_eq!(
        passing.code,
        Some(0),
        "{}{}",
        passing.stdout,
        passing.stderr
    );
    assert_eq!(row(&passing.stdout, "ssh_password_auth")[1], "PASS");

    // A server that cannot be audited counts as a failure, and says why.
    let unreachable = audit(&config, &["--module", "password_auth", "box", "other"]);
    assert_eq!(unreachable.code, Some(1), "{}", unreachable.stdout);
    assert!(
        unreachable.stdout.contains("Server other") && unreachable.stdout.contains("AUDIT FAILED"),
        "{}",
        unreachable.stdout
    );
    drop(sshd);
}

#[test]
fn audit_json_matches_the_text_report() {
    let (_sshd, config) = audited_server();
    let ran = audit(
        &config,
        &["--module", "root_login", "--output", "json", "box"],
    );
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).expect("valid JSON");
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["module"], "root_login");
    assert_eq!(doc["fail_on"], "fail");
    assert_eq!(doc["exit_code"], 1);
    let server = &doc["servers"][0];
    assert_eq!(server["server"], "box");
    assert_eq!(server["audited"], true);
    assert!(server["error"].is_null());
    let checks: Vec<(String, String, serde_json::Value)> = server["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert!(c["reason"].as_str().is_some_and(|r| !r.is_empty()), "{c}");
            (
                c["check"].as_str().unwrap().to_string(),
                c["verdict"].as_str().unwrap().to_string(),
                c["value"].clone(),
            )
        })
        .collect();
    assert_eq!(
        checks,
        vec![
            (
                "ssh_root_login".into(),
                "fail".into(),
                serde_json::json!(2.0)
            ),
            (
                "ssh_password_auth".into(),
                "pass".into(),
                checks[1].2.clone()
            ),
        ]
    );
    assert_eq!(
        server["summary"],
        serde_json::json!({"pass": 1, "warn": 0, "fail": 1, "unknown": 0})
    );

    // --fail-on unknown on the passing module: still 0 (nothing unknown), and JSON says so.
    let ran = audit(
        &config,
        &[
            "--module",
            "password_auth",
            "--output",
            "json",
            "--fail-on",
            "unknown",
            "box",
        ],
    );
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(doc["exit_code"], 0);
}

/// Runs the binary under a pseudo-terminal (util-linux `script`), as an operator's shell does.
fn on_a_terminal(args: &[&str], no_color: Option<&str>) -> String {
    let line = args
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec"])
        .arg(format!("{} {line}", env!("CARGO_BIN_EXE_siembox-exporter")))
        .arg("/dev/null")
        .env_remove("NO_COLOR");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    let (_sshd, config) = audited_server();
    let args = [
        "audit",
        "--config.file",
        config.to_str().unwrap(),
        "--module",
        "root_login",
        "box",
    ];
    let coloured = on_a_terminal(&args, None);
    assert!(coloured.contains("\x1b[1;31mFAIL"), "{coloured:?}");
    assert!(coloured.contains("\x1b[32mPASS"), "{coloured:?}");
    let plain = on_a_terminal(&args, Some("1"));
    assert!(
        plain.contains("FAIL") && !plain.contains('\x1b'),
        "{plain:?}"
    );
}

#[test]
fn unknown_server_or_module_is_a_usage_error() {
    let (_sshd, config) = audited_server();
    let ran = audit(&config, &["--module", "root_login", "box", "nope"]);
    assert_eq!(ran.code, Some(2), "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr
            .contains("not a configured server: nope (servers: box, other)"),
        "{}",
        ran.stderr
    );
    assert!(ran.stdout.is_empty(), "nothing audited: {}", ran.stdout);
    // Two ssh_audit modules: which one must be said.
    let ran = audit(&config, &["box"]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr.contains("choose one with --module"),
        "{}",
        ran.stderr
    );
    let ran = audit(&config, &["--module", "missing", "box"]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr.contains("no module \"missing\""),
        "{}",
        ran.stderr
    );
    // No server named at all: clap's usage error, same status.
    assert_eq!(audit(&config, &[]).code, Some(2));
    // An unreadable configuration file.
    let ran = run_once(&["audit", "--config.file", "/nonexistent/siembox.yml", "box"]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr.contains("/nonexistent/siembox.yml"),
        "{}",
        ran.stderr
    );
}

const SECRETS: &[&str] = &["HEADER-TOKEN-91", "APIKEY-92", "HTTPHEADER-93"];

fn probe_config() -> PathBuf {
    config_file(
        "modules:\n  web:\n    prober: http\n    timeout: 5s\n    http:\n      headers:\n        Authorization: Bearer HEADER-TOKEN-91\n        X-Api-Key: APIKEY-92\n      http_headers:\n        X-Token: {secrets: [HTTPHEADER-93]}\n",
    )
}

fn probe(config: &std::path::Path, args: &[&str]) -> Ran {
    let mut all = vec!["probe", "--config.file", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run_once(&all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_prints_the_debug_output_and_exits_by_probe_success() {
    let server = HttpServer::start().await;
    let config = probe_config();
    let (ok_url, bad_url) = (server.url("/status/200"), server.url("/status/503"));
    let (ok, bad, json) = tokio::task::spawn_blocking({
        let config = config.clone();
        move || {
            (
                probe(&config, &["--module", "web", &ok_url]),
                probe(&config, &["--module", "web", &bad_url]),
                probe(&config, &["--module", "web", "--output", "json", &bad_url]),
            )
        }
    })
    .await
    .unwrap();

    assert_eq!(ok.code, Some(0), "{}{}", ok.stdout, ok.stderr);
    for part in [
        "Logs for the probe:",
        "Metrics that would have been returned:",
        "probe_http_status_code 200",
        "Module configuration (web):",
        "probe_success 1: web",
    ] {
        assert!(ok.stdout.contains(part), "{part:?} missing:\n{}", ok.stdout);
    }
    assert!(!ok.stdout.contains('\x1b'), "not a terminal: plain text");

    assert_eq!(bad.code, Some(1), "{}{}", bad.stdout, bad.stderr);
    let verdict = bad.stdout.lines().last().unwrap();
    assert!(
        verdict.starts_with("probe_success 0: web") && verdict.contains("503"),
        "the reason is in the output: {verdict}"
    );

    assert_eq!(json.code, Some(1));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("valid JSON");
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["success"], false);
    assert_eq!(doc["module"], "web");
    assert!(doc["error"].as_str().unwrap().contains("503"), "{doc}");
    assert!(doc["metrics"]
        .as_str()
        .unwrap()
        .contains("probe_http_status_code 503"));
    assert!(doc["module_config"].as_str().unwrap().contains("<secret>"));
    assert!(doc["log"].as_array().is_some_and(|l| !l.is_empty()));

    // The secrets were sent to the server, and printed nowhere.
    let sent = server.last_request();
    assert_eq!(sent.header("authorization"), Some("Bearer HEADER-TOKEN-91"));
    for ran in [&ok, &bad, &json] {
        for secret in SECRETS {
            assert!(
                !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
                "{secret} printed:\n{}{}",
                ran.stdout,
                ran.stderr
            );
        }
    }
}

#[test]
fn probe_with_an_unknown_module_or_bad_target_is_a_usage_error() {
    let config = probe_config();
    let ran = probe(&config, &["--module", "nope", "http://127.0.0.1:1/"]);
    assert_eq!(ran.code, Some(2), "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr
            .contains("no module \"nope\" in the configuration (modules: web)"),
        "{}",
        ran.stderr
    );
    assert!(ran.stdout.is_empty());
    let ran = probe(
        &config,
        &["--module", "web", "http://user:TARGET-PASS-94@exa mple/"],
    );
    assert_eq!(ran.code, Some(2), "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stderr.contains("invalid target"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("TARGET-PASS-94"), "{}", ran.stderr);
}

#[test]
fn man_page_and_completions_include_the_commands() {
    let man = run_once(&["--man"]).stdout;
    for part in [
        "COMMAND AUDIT",
        "COMMAND PROBE",
        "\\-\\-fail\\-on",
        "Exit status: 0",
    ] {
        assert!(man.contains(part), "{part:?} missing from the man page");
    }
    let bash = run_once(&["--completions", "bash"]).stdout;
    assert!(
        bash.contains("audit")
            && bash.contains("--fail-on")
            && bash.contains("--web.listen-address")
    );
    // The serving flags still work without a command.
    let ran = run_once(&["--config.check"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
}
