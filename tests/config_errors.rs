//! Bad configuration gets one clear error per problem, naming file, line and field; a blackbox
//! file loads unchanged; `--config.check` exits non-zero with that error.

mod support;

use siembox_exporter::Config;
use std::path::Path;
use std::process::Command;

fn load(yaml: &str) -> Result<Config, String> {
    Config::from_yaml_str(yaml, "test.yml").map_err(|e| e.to_string())
}

#[test]
fn malformed_yaml_names_the_line() {
    let e = load("modules:\n  a:\n    prober: tcp\n   bad indent: [\n").unwrap_err();
    assert!(e.starts_with("test.yml:"), "{e}");
    assert!(e.contains(":4") || e.contains(":5"), "{e}");
}

#[test]
fn wrong_type_names_line_and_field() {
    let e = load("modules:\n  a:\n    prober: tcp\n    tcp:\n      tls: maybe\n").unwrap_err();
    assert!(e.contains("test.yml:5"), "{e}");
    assert!(e.contains("modules.a.tcp.tls"), "{e}");
}

#[test]
fn unknown_prober_is_an_error() {
    let e = load("modules:\n  a:\n    prober: carrier_pigeon\n").unwrap_err();
    assert!(e.contains("test.yml:3"), "{e}");
    assert!(e.contains("carrier_pigeon"), "{e}");
    assert!(e.contains("modules.a.prober"), "{e}");
}

#[test]
fn unknown_field_is_an_error() {
    let e = load("modules:\n  a:\n    prober: http\n    http:\n      methd: GET\n").unwrap_err();
    assert!(e.contains("test.yml:5"), "{e}");
    assert!(e.contains("methd"), "{e}");
}

#[test]
fn bad_regexp_names_the_pattern() {
    let e = load("modules:\n  a:\n    prober: http\n    http:\n      fail_if_body_matches_regexp: [\"a(b\"]\n").unwrap_err();
    assert!(
        e.contains("invalid regexp \\\"a(b\\\"") || e.contains("invalid regexp \"a(b\""),
        "{e}"
    );
    assert!(e.contains("test.yml:5"), "{e}");
    assert!(e.contains("fail_if_body_matches_regexp"), "{e}");
}

#[test]
fn missing_file_is_a_warning_at_load() {
    // Blackbox reads such files when probing, so its configs must still load; we warn with the line.
    let c = load("modules:\n  a:\n    prober: tcp\n    tcp:\n      tls: true\n      tls_config:\n        ca_file: /nonexistent/ca.pem\n").unwrap();
    let w = siembox_exporter::config::format_warnings("test.yml", &c.warnings);
    assert!(
        w.contains("test.yml:7") && w.contains("/nonexistent/ca.pem"),
        "{w}"
    );
}

#[tokio::test]
async fn missing_file_is_a_clear_error_in_the_probe() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ex = support::Exporter::start("modules:\n  a:\n    prober: tcp\n    tcp:\n      tls: true\n      tls_config:\n        ca_file: /nonexistent/ca.pem\n").await;
    let r = ex
        .get(&format!("/probe?module=a&target={addr}&debug=true"))
        .await;
    assert!(r.body.contains("probe_success 0"), "{}", r.body);
    assert!(
        r.body.contains("/nonexistent/ca.pem") && r.body.contains("failure_reason=config"),
        "{}",
        r.body
    );
}

#[test]
fn bad_duration_is_an_error() {
    let e = load("modules:\n  a:\n    prober: tcp\n    timeout: 5 seconds\n").unwrap_err();
    assert!(e.contains("test.yml:4"), "{e}");
    assert!(e.contains("invalid duration"), "{e}");
}

#[test]
fn cross_field_problems_are_all_reported() {
    let e = load(
        "modules:\n  d:\n    prober: dns\nschedule:\n  - module: missing\n    interval: 30s\n    targets: [a]\n",
    )
    .unwrap_err();
    assert!(e.contains("modules.d.dns.query_name"), "{e}");
    assert!(e.contains("schedule[0].module"), "{e}");
    assert_eq!(e.lines().count(), 2, "{e}");
}

#[test]
fn yaml_alias_bombs_are_refused() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        yaml.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    yaml.push_str("modules: {}\n");
    let started = std::time::Instant::now();
    assert!(load(&yaml).is_err());
    assert!(
        started.elapsed().as_secs() < 10,
        "alias expansion must be bounded"
    );
}

#[test]
fn empty_file_is_an_empty_config() {
    assert!(load("").unwrap().modules.is_empty());
}

#[test]
fn spec_appendix_shape_loads() {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "pg.pass",
        "my.pass",
        "redis.pass",
        "id_ed25519",
        "known_hosts",
    ] {
        std::fs::write(dir.path().join(f), "x\n").unwrap();
    }
    let yaml = include_str!("../examples/siembox.yml")
        .replace("/etc/siembox/", &format!("{}/", dir.path().display()));
    let c = load(&yaml).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.modules.contains_key("vps_audit"));
    assert_eq!(c.limits.max_concurrent, 512);
}

#[test]
fn blackbox_debian_configs_load_unchanged() {
    for path in [
        "/etc/prometheus/blackbox.yml",
        "/usr/share/doc/prometheus-blackbox-exporter/examples/example.yml",
    ] {
        let p = Path::new(path);
        assert!(p.exists(), "{path} is missing: run scripts/test-prerequisites (installs prometheus-blackbox-exporter)");
        let text = std::fs::read_to_string(p).unwrap();
        let c = Config::from_yaml_str(&text, path).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.modules.len() >= 5, "{path}");
    }
}

#[test]
fn config_check_flag_validates_and_exits() {
    let exe = env!("CARGO_BIN_EXE_siembox-exporter");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(&good, "modules:\n  t:\n    prober: tcp\n").unwrap();
    let out = Command::new(exe)
        .args(["--config.check", "--config.file"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "modules:\n  t:\n    prober: tcp\n    timeout: forever\n",
    )
    .unwrap();
    let out = Command::new(exe)
        .args(["--config.check", "--config.file"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yml:4"), "{stderr}");
    assert!(stderr.contains("modules.t.timeout"), "{stderr}");
}

#[test]
fn version_completions_and_man_page() {
    let exe = env!("CARGO_BIN_EXE_siembox-exporter");
    let out = Command::new(exe).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")) && version.contains("revision"),
        "{version}"
    );
    let out = Command::new(exe)
        .args(["--completions", "bash"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--web.listen-address"));
    let out = Command::new(exe).arg("--man").output().unwrap();
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(
        man.contains(".TH siembox-exporter") && man.contains("config.file"),
        "{man}"
    );
}

/// `--config.check` run as the exporter's (non-root) user fails when a key file it names exists
/// but cannot be read (mode 600 root), as it fails for a missing one.
#[test]
fn config_check_fails_on_a_key_file_the_user_cannot_read() {
    let exe = env!("CARGO_BIN_EXE_siembox-exporter");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    std::fs::write(&key, "not a key, only its mode matters\n").unwrap();
    let yml = dir.path().join("audit.yml");
    std::fs::write(
        &yml,
        format!(
            "modules:\n  a:\n    prober: ssh_audit\n    ssh_audit:\n      user: audit\n      private_key_file: {}\n      known_hosts_file: {}\nservers: []\n",
            key.display(),
            yml.display()
        ),
    )
    .unwrap();
    let chmod = |mode: &str, p: &std::path::Path| {
        assert!(Command::new("chmod")
            .arg(mode)
            .arg(p)
            .status()
            .unwrap()
            .success());
    };
    chmod("755", dir.path());
    chmod("644", &yml);
    chmod("600", &key);
    let check_as_nobody = || {
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(exe)
            .args(["--config.check", "--config.file"])
            .arg(&yml)
            .output()
            .unwrap()
    };
    let out = check_as_nobody();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("id_ed25519") && stderr.contains("ermission denied"),
        "{stderr}"
    );
    chmod("644", &key);
    let out = check_as_nobody();
    assert!(out.status.success(), "{out:?}");
}
