//! SSH audits against real OpenSSH servers started by the tests: success on this machine, wrong
//! key, host-key mismatch (no credential sent), pool recovery after an sshd restart, a hung
//! server, unknown server names, and the global connection cap under a burst of audits.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::sshd::{
    chmod, counted_maxima, counting_wrapper, KeyPair, Sshd, SshdOptions, TempUser,
};
use support::{metric_value, metric_value_with, request, Exporter};

struct Fixture {
    dir: PathBuf,
    client: KeyPair,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap().keep();
    let client = KeyPair::generate(&dir, "client_ed25519");
    Fixture { dir, client }
}

impl Fixture {
    /// An sshd in a PID and mount namespace of its own (the audited "server") that lets the
    /// fixture's client in.
    fn isolated_sshd(&self) -> Sshd {
        Sshd::start_isolated(
            SshdOptions {
                authorized: vec![self.client.public_line.clone()],
                ..Default::default()
            },
            "",
        )
    }

    /// An sshd that lets the fixture's client in, and a known_hosts file that trusts it.
    fn sshd(&self) -> (Sshd, PathBuf) {
        let sshd = Sshd::start(SshdOptions {
            authorized: vec![self.client.public_line.clone()],
            ..Default::default()
        });
        let kh = write(
            &self.dir,
            "known_hosts",
            &format!("{}\n", sshd.known_hosts_line()),
        );
        (sshd, kh)
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Heavy checks off: the SUID scan of this machine takes tens of seconds of I/O.
const LIGHT: &str = "{pending_updates: {enabled: false}, suid_files: {enabled: false}}";

/// A config with one ssh_audit module and the given `servers:` entries (YAML lines).
fn config(key: &Path, known_hosts: &Path, pool: &str, servers: &[String]) -> String {
    config_with(key, known_hosts, pool, LIGHT, servers)
}

fn config_with(
    key: &Path,
    known_hosts: &Path,
    pool: &str,
    checks: &str,
    servers: &[String],
) -> String {
    let mut y = format!(
        "modules:\n  vps_audit:\n    prober: ssh_audit\n    timeout: 60s\n    ssh_audit:\n      user: root\n      private_key_file: {}\n      known_hosts_file: {}\n      pool: {pool}\n      checks: {checks}\nservers:{}\n",
        key.display(),
        known_hosts.display(),
        if servers.is_empty() { " []" } else { "" }
    );
    for s in servers {
        y.push_str(&format!("  - {s}\n"));
    }
    y
}

fn server(name: &str, sshd: &Sshd) -> String {
    format!("{{name: {name}, address: \"{}\"}}", sshd.address())
}

async fn debug_probe(ex: &Exporter, module: &str, target: &str) -> String {
    ex.get(&format!(
        "/probe?module={module}&target={target}&debug=true"
    ))
    .await
    .body
}

#[tokio::test]
async fn audit_of_this_machine_reports_checks_and_reuses_the_connection() {
    let f = fixture();
    let sshd = Sshd::start(SshdOptions {
        authorized: vec![f.client.public_line.clone()],
        ..Default::default()
    });
    // Hashed known_hosts entry (ssh-keygen -H), as many operators keep them.
    let kh = write(
        &f.dir,
        "known_hosts",
        &format!("{}\n", sshd.known_hosts_line()),
    );
    assert!(std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .status()
        .unwrap()
        .success());
    assert!(std::fs::read_to_string(&kh).unwrap().starts_with("|1|"));
    // Pending updates run (heavy, then cached); the SUID scan stays off (slow here).
    let yaml = config_with(
        &f.client.private,
        &kh,
        "{max_connections: 4}",
        "{suid_files: {enabled: false}}",
        &[server("local", &sshd)],
    );
    let ex = Exporter::start(&yaml).await;

    let (status, body) = ex.probe("vps_audit", "local").await;
    assert_eq!(status, 200);
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    let disk = metric_value_with(
        &body,
        "siembox_vps_audit_check_value",
        &[("server", "local"), ("check", "disk_usage")],
    )
    .expect("disk_usage value");
    assert!((0.0..=100.0).contains(&disk), "{disk}");
    let root = metric_value_with(
        &body,
        "siembox_vps_audit_disk_used_percent",
        &[("mount", "/")],
    )
    .expect("/ mount");
    assert!(
        root <= disk,
        "the check reports the fullest mount: / {root} vs {disk}"
    );
    let load = metric_value_with(
        &body,
        "siembox_vps_audit_check_value",
        &[("check", "load_per_core")],
    )
    .unwrap();
    assert!(load >= 0.0);
    for check in [
        "ssh_root_login",
        "ssh_password_auth",
        "ssh_port",
        "memory_usage",
        "public_ports",
        "time_sync",
    ] {
        let v = metric_value_with(
            &body,
            "siembox_vps_audit_check_status",
            &[("server", "local"), ("check", check)],
        );
        assert!(
            matches!(v, Some(x) if (0.0..=3.0).contains(&x)),
            "{check}: {v:?}\n{body}"
        );
    }
    assert!(
        body.contains("siembox_vps_audit_server_info{server=\"local\",os=\"debian"),
        "{body}"
    );
    assert_eq!(
        metric_value(&body, "siembox_vps_audit_connection_reused"),
        Some(0.0)
    );

    // The second audit rides the pooled connection.
    let (_, body2) = ex.probe("vps_audit", "local").await;
    assert_eq!(metric_value(&body2, "probe_success"), Some(1.0), "{body2}");
    assert_eq!(
        metric_value(&body2, "siembox_vps_audit_connection_reused"),
        Some(1.0),
        "{body2}"
    );
    // Pending updates come from the per-server cache on the second audit, with the same value.
    let pending = |b: &str| {
        metric_value_with(
            b,
            "siembox_vps_audit_check_value",
            &[("check", "pending_updates")],
        )
    };
    assert!(pending(&body).is_some(), "{body}");
    assert_eq!(pending(&body), pending(&body2));
    // OS and kernel come from the per-boot cache (the script skipped them this time).
    assert!(
        body2.contains("siembox_vps_audit_server_info{server=\"local\",os=\"debian"),
        "{body2}"
    );
    assert!(!body.contains("suid_files"), "switched off");

    let m = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(
            &m,
            "siembox_vps_audit_ssh_connections_total",
            &[("status", "success")]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric_value_with(
            &m,
            "siembox_vps_audit_audits_total",
            &[("status", "success")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric_value(&m, "siembox_vps_audit_connection_pool_active"),
        Some(0.0)
    );
    assert_eq!(
        metric_value(&m, "siembox_vps_audit_connection_pool_open"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, "siembox_vps_audit_connection_pool_max"),
        Some(4.0)
    );
    assert!(metric_value_with(
        &m,
        "siembox_vps_audit_check_status",
        &[("server", "local"), ("check", "disk_usage")]
    )
    .is_some());
    assert_eq!(
        metric_value_with(
            &m,
            "siembox_vps_audit_audit_duration_seconds_count",
            &[("server", "local")]
        ),
        Some(2.0)
    );
    assert!(
        metric_value_with(
            &m,
            "siembox_vps_audit_last_audit_timestamp_seconds",
            &[("server", "local")]
        )
        .unwrap()
            > 1.7e9
    );

    // Removing the server from the config removes its series.
    let path = ex.app.config_path().unwrap().clone();
    std::fs::write(
        &path,
        config(&f.client.private, &kh, "{max_connections: 4}", &[]),
    )
    .unwrap();
    ex.app.reload().unwrap();
    let m = ex.get("/metrics").await.body;
    assert!(!m.contains("server=\"local\""), "{m}");
}

#[tokio::test]
async fn wrong_key_fails_with_reason_auth() {
    let f = fixture();
    let other = KeyPair::generate(&f.dir, "other_ed25519");
    let sshd = Sshd::start(SshdOptions {
        authorized: vec![other.public_line.clone()],
        ..Default::default()
    });
    let kh = write(
        &f.dir,
        "known_hosts",
        &format!("{}\n", sshd.known_hosts_line()),
    );
    let ex = Exporter::start(&config(
        &f.client.private,
        &kh,
        "{retry_limit: 3, retry_delay: 1s}",
        &[server("local", &sshd)],
    ))
    .await;
    let body = debug_probe(&ex, "vps_audit", "local").await;
    assert!(body.contains("probe_success 0"), "{body}");
    assert!(body.contains("failure_reason=auth"), "{body}");
    assert!(!body.contains("BEGIN OPENSSH"), "no key material in output");
    // Credentials are not retried: exactly one failed connection.
    let m = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(
            &m,
            "siembox_vps_audit_ssh_connections_total",
            &[("status", "failed")]
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn host_key_mismatch_fails_before_any_credential_is_sent() {
    let f = fixture();
    let sshd = Sshd::start(SshdOptions {
        authorized: vec![f.client.public_line.clone()],
        ..Default::default()
    });
    let impostor = KeyPair::generate(&f.dir, "impostor_host");
    let kh = write(
        &f.dir,
        "known_hosts",
        &format!("[127.0.0.1]:{} {}\n", sshd.port, impostor.public_key()),
    );
    let pinned_wrong = format!(
        "{{name: pinned, address: \"{}\", host_key_fingerprint: \"{}\"}}",
        sshd.address(),
        impostor.fingerprint()
    );
    let pinned_right = format!(
        "{{name: pinned-ok, address: \"{}\", host_key_fingerprint: \"{}\"}}",
        sshd.address(),
        sshd.host_key.fingerprint()
    );
    let unknown_kh = write(&f.dir, "empty_known_hosts", "# nothing\n");
    let unlisted = format!(
        "{{name: unlisted, address: \"{}\", known_hosts_file: {}}}",
        sshd.address(),
        unknown_kh.display()
    );
    let ex = Exporter::start(&config(
        &f.client.private,
        &kh,
        "{retry_limit: 3, retry_delay: 1s}",
        &[server("local", &sshd), pinned_wrong, pinned_right, unlisted],
    ))
    .await;
    for target in ["local", "pinned", "unlisted"] {
        let body = debug_probe(&ex, "vps_audit", target).await;
        assert!(body.contains("probe_success 0"), "{target}: {body}");
        assert!(body.contains("failure_reason=host_key"), "{target}: {body}");
    }
    let m = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(
            &m,
            "siembox_vps_audit_ssh_connections_total",
            &[("status", "failed")]
        ),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        metric_value_with(&m, "siembox_vps_audit_audits_total", &[("status", "error")]),
        Some(3.0)
    );
    // sshd (LogLevel DEBUG) logs every userauth request; none may have arrived.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = sshd.log_text();
    assert!(
        log.contains("Connection from 127.0.0.1"),
        "the log is being written: {log}"
    );
    assert!(
        !log.contains("userauth-request"),
        "a credential was offered:\n{log}"
    );
    // The right pinned fingerprint works against the same server.
    let (_, body) = ex.probe("vps_audit", "pinned-ok").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert!(sshd.log_text().contains("userauth-request"));
}

#[tokio::test]
async fn pool_recovers_after_sshd_restart() {
    let f = fixture();
    let mut sshd = Sshd::start(SshdOptions {
        authorized: vec![f.client.public_line.clone()],
        ..Default::default()
    });
    let kh = write(
        &f.dir,
        "known_hosts",
        &format!("{}\n", sshd.known_hosts_line()),
    );
    let ex = Exporter::start(&config(
        &f.client.private,
        &kh,
        "{retry_delay: 200ms}",
        &[server("local", &sshd)],
    ))
    .await;
    let (_, body) = ex.probe("vps_audit", "local").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    let m = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value(&m, "siembox_vps_audit_connection_pool_open"),
        Some(1.0)
    );
    sshd.restart();
    let (_, body) = ex.probe("vps_audit", "local").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert_eq!(
        metric_value(&body, "siembox_vps_audit_connection_reused"),
        Some(0.0),
        "a new connection: {body}"
    );
    let m = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value(&m, "siembox_vps_audit_connection_pool_open"),
        Some(1.0),
        "the dead one was dropped: {m}"
    );
    assert_eq!(
        metric_value_with(
            &m,
            "siembox_vps_audit_ssh_connections_total",
            &[("status", "success")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn hung_server_times_out_and_leaks_nothing() {
    let f = fixture();
    // Accepts and never speaks.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            h.lock().push(s);
        }
    });
    let kh = write(&f.dir, "known_hosts", "# none\n");
    let ex = Exporter::start(&config(
        &f.client.private,
        &kh,
        "{connection_timeout: 1s, retry_limit: 1, retry_delay: 100ms}",
        &[format!("{{name: hung, address: \"{addr}\"}}")],
    ))
    .await;
    let started = std::time::Instant::now();
    let body = debug_probe(&ex, "vps_audit", "hung").await;
    assert!(body.contains("probe_success 0"), "{body}");
    assert!(body.contains("failure_reason=timeout"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(held.lock().len(), 2, "one attempt plus one retry");
    let m = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value(&m, "siembox_vps_audit_connection_pool_active"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "siembox_vps_audit_connection_pool_open"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "siembox_vps_audit_audit_queue_size"),
        Some(0.0)
    );
    assert_eq!(
        metric_value_with(
            &m,
            "siembox_vps_audit_ssh_connections_total",
            &[("status", "failed")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn unknown_server_name_is_400_and_nothing_is_contacted() {
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let kh = write(&f.dir, "known_hosts", "# none\n");
    let ex = Exporter::start(&config(
        &f.client.private,
        &kh,
        "{}",
        &["{name: web-1, address: \"192.0.2.1:22\"}".to_string()],
    ))
    .await;
    for target in [
        addr.to_string(),
        "web-2".to_string(),
        "127.0.0.1".to_string(),
    ] {
        let (status, body) = ex.probe("vps_audit", &target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(body.contains("not a configured server name"), "{body}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(listener.accept().is_err(), "no connection was made");
    let m = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(
            &m,
            "siembox_vps_audit_ssh_connections_total",
            &[("status", "failed")]
        ),
        Some(0.0)
    );
    assert_eq!(
        metric_value_with(
            &m,
            "siembox_vps_audit_ssh_connections_total",
            &[("status", "success")]
        ),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_servers_at_once_never_exceed_max_connections() {
    let f = fixture();
    let count_dir = f.dir.join("count");
    std::fs::create_dir_all(&count_dir).unwrap();
    // Ports first, so the wrapper can count established connections to all three servers.
    let ports: Vec<u16> = (0..3).map(|_| support::free_port()).collect();
    let wrapper = counting_wrapper(&count_dir, &ports, "0.3");
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Sshd::start(SshdOptions {
            authorized: vec![f.client.public_line.clone()],
            force_command: Some(wrapper.clone()),
        }));
    }
    // The helper picks its own ports; rebuild the wrapper with the real ones.
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    counting_wrapper(&count_dir, &ports, "0.3");
    let kh_text: String = servers
        .iter()
        .map(|s| s.known_hosts_line() + "\n")
        .collect();
    let kh = write(&f.dir, "known_hosts", &kh_text);
    let names: Vec<String> = (0..30).map(|i| format!("srv-{i:02}")).collect();
    let entries: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| server(n, &servers[i % 3]))
        .collect();
    let ex = Exporter::start(&config(
        &f.client.private,
        &kh,
        "{max_connections: 10, min_connections: 2}",
        &entries,
    ))
    .await;
    let mut tasks = Vec::new();
    for n in &names {
        let url = ex.url(&format!("/probe?module=vps_audit&target={n}"));
        tasks.push(tokio::spawn(
            async move { support::get(&url, &[]).await.body },
        ));
    }
    for t in tasks {
        let body = t.await.unwrap();
        assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    }
    let (sessions, connections, logged) = counted_maxima(&count_dir);
    assert_eq!(logged, 30, "every audit ran through the wrapper");
    assert!(sessions <= 10, "{sessions} sessions at once");
    assert!(connections <= 10, "{connections} connections at once");
    assert!(sessions >= 3, "audits did run concurrently ({sessions})");
    let m = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value(&m, "siembox_vps_audit_connection_pool_active"),
        Some(0.0)
    );
    assert!(metric_value(&m, "siembox_vps_audit_connection_pool_open").unwrap() <= 10.0);
    assert_eq!(
        metric_value_with(
            &m,
            "siembox_vps_audit_audits_total",
            &[("status", "success")]
        ),
        Some(30.0)
    );
}

#[tokio::test]
async fn encrypted_key_with_passphrase_file_and_per_server_overrides() {
    let f = fixture();
    let enc = KeyPair::generate_with(&f.dir, "enc_ed25519", "correct horse");
    let sshd = Sshd::start(SshdOptions {
        authorized: vec![enc.public_line.clone()],
        ..Default::default()
    });
    let kh = write(
        &f.dir,
        "known_hosts",
        &format!("{}\n", sshd.known_hosts_line()),
    );
    let pass = write(&f.dir, "passphrase", "correct horse\n");
    let wrong = write(&f.dir, "wrong_passphrase", "battery staple\n");
    let good = format!(
        "{{name: enc, address: \"{}\", private_key_file: {}, passphrase_file: {}}}",
        sshd.address(),
        enc.private.display(),
        pass.display()
    );
    let bad = format!(
        "{{name: enc-bad, address: \"{}\", private_key_file: {}, passphrase_file: {}}}",
        sshd.address(),
        enc.private.display(),
        wrong.display()
    );
    let ex = Exporter::start(&config(&f.client.private, &kh, "{}", &[good, bad])).await;
    let (_, body) = ex.probe("vps_audit", "enc").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    let body = debug_probe(&ex, "vps_audit", "enc-bad").await;
    assert!(body.contains("failure_reason=config"), "{body}");
    assert!(body.contains("wrong passphrase"), "{body}");
    assert!(
        !body.contains("battery") && !body.contains("horse"),
        "no passphrase in output"
    );
}

#[tokio::test]
async fn health_check_replaces_a_dead_pooled_connection() {
    let f = fixture();
    let mut sshd = Sshd::start(SshdOptions {
        authorized: vec![f.client.public_line.clone()],
        ..Default::default()
    });
    let kh = write(
        &f.dir,
        "known_hosts",
        &format!("{}\n", sshd.known_hosts_line()),
    );
    let ex = Exporter::start(&config(
        &f.client.private,
        &kh,
        "{health_check_interval: 1s, max_idle_time: 4s, min_connections: 1}",
        &[server("local", &sshd)],
    ))
    .await;
    let (_, body) = ex.probe("vps_audit", "local").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    sshd.restart();
    // Within a few health-check rounds the dead connection is found and replaced.
    let mut replaced = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let m = ex.get("/metrics").await.body;
        let ok = metric_value_with(
            &m,
            "siembox_vps_audit_ssh_connections_total",
            &[("status", "success")],
        );
        if ok == Some(2.0)
            && metric_value(&m, "siembox_vps_audit_connection_pool_open") == Some(1.0)
        {
            replaced = true;
            break;
        }
    }
    assert!(replaced, "no replacement connection");
    // The replacement is the one the next audit uses.
    let (_, body) = ex.probe("vps_audit", "local").await;
    assert_eq!(
        metric_value(&body, "siembox_vps_audit_connection_reused"),
        Some(1.0),
        "{body}"
    );
}

#[tokio::test]
async fn cache_for_serves_a_fresh_result_without_auditing_again() {
    let f = fixture();
    let (sshd, kh) = f.sshd();
    let yaml = config(&f.client.private, &kh, "{}", &[server("local", &sshd)]).replace(
        "    timeout: 60s\n",
        "    timeout: 60s\n    cache_for: 1m\n",
    );
    let ex = Exporter::start(&yaml).await;
    let (_, first) = ex.probe("vps_audit", "local").await;
    let (_, second) = ex.probe("vps_audit", "local").await;
    assert_eq!(
        metric_value(&second, "probe_success"),
        Some(1.0),
        "{second}"
    );
    let ts = |b: &str| {
        metric_value_with(
            b,
            "siembox_vps_audit_check_value",
            &[("check", "memory_usage")],
        )
    };
    assert_eq!(ts(&first), ts(&second), "the same result");
    let m = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(
            &m,
            "siembox_vps_audit_audits_total",
            &[("status", "success")]
        ),
        Some(1.0),
        "{m}"
    );
}

/// One audit through `/probe?debug=true`: check → (status word, detail), and the check values.
struct Verdicts {
    body: String,
}

impl Verdicts {
    async fn of(ex: &Exporter, target: &str) -> Verdicts {
        Self::of_module(ex, "vps_audit", target).await
    }

    async fn of_module(ex: &Exporter, module: &str, target: &str) -> Verdicts {
        let body = debug_probe(ex, module, target).await;
        assert!(body.contains("probe_success 1"), "{body}");
        Verdicts { body }
    }

    fn has(&self, check: &str) -> bool {
        self.body.contains(&format!("msg=\"check {check} "))
    }

    fn status(&self, check: &str) -> &str {
        self.line(check).split(':').next().unwrap_or("")
    }

    fn detail(&self, check: &str) -> &str {
        self.line(check).split_once(": ").map_or("", |x| x.1)
    }

    fn line(&self, check: &str) -> &str {
        let start = format!("msg=\"check {check} ");
        let Some(at) = self.body.find(&start) else {
            panic!("no {check} in {}", self.body)
        };
        let rest = &self.body[at + start.len()..];
        &rest[..rest.find("\"\n").unwrap_or(rest.len())]
    }

    fn value(&self, check: &str) -> Option<f64> {
        metric_value_with(
            &self.body,
            "siembox_vps_audit_check_value",
            &[("check", check)],
        )
    }
}

fn audit_config(f: &Fixture, sshd: &Sshd, user: &str) -> String {
    let kh = write(
        &f.dir,
        "known_hosts",
        &format!("{}\n", sshd.known_hosts_line()),
    );
    config(
        &f.client.private,
        &kh,
        "{max_connections: 2}",
        &[server("box", sshd)],
    )
    .replace("user: root", &format!("user: {user}"))
}

/// The sshd checks grade what the listening sshds run, in a PID namespace of their own (the
/// audited "server"): the test's sshd with its own `-f` file (PermitRootLogin yes, unlike this
/// machine's /etc/ssh/sshd_config), then a second sshd that takes passwords through
/// keyboard-interactive PAM, then that sshd's file edited but not reloaded, then reloaded.
#[tokio::test]
async fn sshd_checks_grade_the_listening_sshds_not_etc_ssh() {
    let f = fixture();
    let sshd = f.isolated_sshd();
    let ex = Exporter::start(&audit_config(&f, &sshd, "root")).await;

    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("ssh_root_login"), "fail", "{}", v.body);
    assert_eq!(v.value("ssh_root_login"), Some(2.0));
    assert_eq!(v.status("ssh_password_auth"), "pass", "{}", v.body);
    assert_eq!(v.value("ssh_port"), Some(f64::from(sshd.port)));
    assert!(v.detail("ssh_root_login").contains("sshd -T"), "as root");

    let second = sshd.start_sibling(
        "PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication yes\nUsePAM yes\n",
        &[],
    );
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("ssh_password_auth"), "fail", "{}", v.body);
    let detail = v.detail("ssh_password_auth");
    assert!(
        detail.contains(&second.config.display().to_string())
            && detail.contains("KbdInteractiveAuthentication yes with UsePAM yes"),
        "{detail}"
    );
    assert_eq!(
        v.status("ssh_root_login"),
        "fail",
        "the first sshd still allows root"
    );
    let ports = v.detail("ssh_port");
    assert!(
        ports.contains(&format!("Port {}", sshd.port))
            && ports.contains(&format!("Port {}", second.port)),
        "{ports}"
    );

    // Edited on disk (a second later, so its mtime is after the load) but not reloaded: what runs
    // is not what the file says, so the audit cannot tell.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let text = std::fs::read_to_string(&second.config).unwrap();
    std::fs::write(
        &second.config,
        text.replace(
            "KbdInteractiveAuthentication yes",
            "KbdInteractiveAuthentication no",
        ),
    )
    .unwrap();
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("ssh_password_auth"), "unknown", "{}", v.body);
    assert!(
        v.detail("ssh_password_auth").contains("reload sshd"),
        "{}",
        v.detail("ssh_password_auth")
    );
    assert_eq!(
        v.status("ssh_root_login"),
        "fail",
        "a proven fail stays a fail"
    );

    second.reload();
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("ssh_password_auth"), "pass", "{}", v.body);

    // A third sshd whose file says no, but whose command line says yes (sshd keeps the -o value).
    let third = sshd.start_sibling(
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n",
        &["-o", "PasswordAuthentication=yes"],
    );
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("ssh_password_auth"), "fail", "{}", v.body);
    let detail = v.detail("ssh_password_auth");
    assert!(
        detail.contains(&format!(
            "({}): PasswordAuthentication yes",
            third.config.display()
        )),
        "{detail}"
    );
}

/// Shell lines (for a `set -e` script run by `Sshd::inside`) that give the audited namespace an
/// /etc of its own: a copy with `passwd` and `shadow` lines added, bind-mounted over the
/// directory. Every write goes to the copy, never through /etc (the namespace has its own mounts
/// but this machine's files), and the mount is made last. Bind-mounting copies over the files
/// /etc/passwd and /etc/shadow would not hold: another test's `useradd` renames a new file over
/// them, and the kernel then detaches such a mount in every namespace.
fn own_etc(dir: &Path, passwd: &str, shadow: &str) -> String {
    let etc = dir.join("etc");
    format!(
        "e={e}
cp -a /etc \"$e\" 2>/dev/null || true  # lock files of a concurrent useradd may vanish mid-copy
grep -q '^root:' \"$e/passwd\" && grep -q '^root:' \"$e/shadow\"
echo '{passwd}' >> \"$e/passwd\"
echo '{shadow}' >> \"$e/shadow\"
mount --bind \"$e\" /etc",
        e = etc.display()
    )
}

/// A namespaced sshd whose main file an ordinary user reads, with an `Include`d drop-in
/// (`PermitRootLogin no`, `PasswordAuthentication no`) only root can read (mode 600). Returns
/// the sshd, the drop-in's directory (keep it alive) and the drop-in's path.
fn sshd_with_unreadable_drop_in(f: &Fixture) -> (Sshd, tempfile::TempDir, PathBuf) {
    let conf_d = tempfile::tempdir().unwrap();
    let drop_in = write(
        conf_d.path(),
        "10-hard.conf",
        "PermitRootLogin no\nPasswordAuthentication no\n",
    );
    chmod("755", conf_d.path());
    chmod("600", &drop_in);
    let sshd = Sshd::start_isolated(
        SshdOptions {
            authorized: vec![f.client.public_line.clone()],
            ..Default::default()
        },
        &format!("Include {}/*.conf\n", conf_d.path().display()),
    );
    // The user reads the main file and its authorized_keys, not the drop-in.
    chmod("755", &sshd.dir);
    chmod("644", &sshd.config);
    chmod("644", &sshd.dir.join("authorized_keys"));
    (sshd, conf_d, drop_in)
}

/// As an ordinary user (no sudo): a drop-in the user cannot read leaves every setting it may
/// set unknown, naming the file, instead of grading sshd's defaults; once readable, its
/// `PermitRootLogin no` (which sshd -T confirms) is graded over the main file's later `yes`.
#[tokio::test]
async fn an_unreadable_sshd_drop_in_is_unknown_not_a_default() {
    let f = fixture();
    let user = TempUser::create("dropin");
    let (sshd, _conf_d, drop_in) = sshd_with_unreadable_drop_in(&f);
    let truth = std::process::Command::new("/usr/sbin/sshd")
        .arg("-T")
        .arg("-f")
        .arg(&sshd.config)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&truth.stdout).contains("permitrootlogin no"));
    let ex = Exporter::start(&audit_config(&f, &sshd, &user.name)).await;

    let v = Verdicts::of(&ex, "box").await;
    for check in ["ssh_root_login", "ssh_password_auth", "ssh_port"] {
        assert_eq!(v.status(check), "unknown", "{check}: {}", v.body);
        assert!(
            v.detail(check).contains("10-hard.conf is not readable"),
            "{check}: {}",
            v.detail(check)
        );
    }

    // This kernel has netfilter built in (no /proc/modules to say otherwise) and an ordinary
    // user can read no rule: the firewall cannot be graded either way.
    assert!(Path::new("/proc/net/ip_tables_names").exists());
    assert_eq!(v.status("firewall"), "unknown", "{}", v.body);

    chmod("644", &drop_in);
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("ssh_root_login"), "pass", "{}", v.body);
    assert!(v.detail("ssh_root_login").contains("config files"));
    assert_eq!(v.status("ssh_password_auth"), "pass", "{}", v.body);
    assert_eq!(v.value("ssh_port"), Some(f64::from(sshd.port)));
}

/// failed_logins counts each failed attempt once, and only those of the last 24 h. The audited
/// namespace gets its own /var/log (a tmpfs) with an auth.log as sshd, PAM and rsyslog write it:
/// three sshd attempts of the last day, each logged three times (Invalid user, pam_unix failure,
/// Failed …), one RFC 3339 line, a "message repeated 2 times", an su failure — 7 attempts — and
/// attempts 25 h, 30 h and 47 h old that must not count.
#[tokio::test]
async fn failed_logins_counts_attempts_once_within_24h() {
    let f = fixture();
    let sshd = f.isolated_sshd();
    sshd.inside(
        r#"mount -t tmpfs siembox-test-log /var/log
t() { date -d "@$(( $(date +%s) - $1 ))" '+%b %e %H:%M:%S'; }
iso() { date -d "@$(( $(date +%s) - $1 ))" '+%Y-%m-%dT%H:%M:%S.000000%:z'; }
attempt() { # AGE PID USER
  echo "$(t $1) box sshd[$2]: Invalid user $3 from 192.0.2.7 port 4$2"
  echo "$(t $1) box sshd[$2]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.7"
  echo "$(t $1) box sshd[$2]: Failed password for invalid user $3 from 192.0.2.7 port 4$2 ssh2"
}
{
  attempt 169200 101 old47h
  attempt 90000 102 old25h
  echo "$(iso 108000) box sshd[103]: Failed password for root from 192.0.2.8 port 40103 ssh2"
  attempt 82800 104 admin
  attempt 7200 105 oracle
  echo "$(t 7000) box sshd[106]: message repeated 2 times: [ Failed password for root from 192.0.2.9 port 40106 ssh2]"
  echo "$(iso 3600) box sshd[107]: Failed publickey for invalid user git from 192.0.2.10 port 40107 ssh2: ED25519 SHA256:x"
  echo "$(t 600) box su[108]: pam_unix(su:auth): authentication failure; logname=bob uid=1000 euid=0 tty=pts/0 ruser=bob rhost=  user=root"
  attempt 60 109 test
} > /var/log/auth.log"#,
    );
    let ex = Exporter::start(&audit_config(&f, &sshd, "root")).await;
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.value("failed_logins"), Some(7.0), "{}", v.body);
    assert_eq!(
        v.status("failed_logins"),
        "pass",
        "below the warn threshold of 10"
    );
}

/// Two ssh_audit modules with different settings audit one server: each grades the same apt
/// state with its own thresholds (heavy results are cached per module and server, not shared),
/// and a module that switches pending_updates off does not report it from another's cache.
#[tokio::test]
async fn modules_do_not_share_heavy_results_or_switched_off_checks() {
    let f = fixture();
    let (sshd, kh) = f.sshd();
    let module = |name: &str, checks: &str| {
        format!(
            "  {name}:\n    prober: ssh_audit\n    timeout: 60s\n    ssh_audit:\n      user: root\n      private_key_file: {}\n      known_hosts_file: {}\n      checks: {checks}\n",
            f.client.private.display(),
            kh.display()
        )
    };
    let yaml = format!(
        "modules:\n{}{}{}servers:\n  - {}\n",
        module(
            "strict",
            "{pending_updates: {warn: 0, fail: 1000000}, suid_files: {enabled: false}}"
        ),
        module(
            "lenient",
            "{pending_updates: {warn: 1000000, fail: 2000000}, suid_files: {enabled: false}}"
        ),
        module("off", LIGHT),
        server("box", &sshd)
    );
    let ex = Exporter::start(&yaml).await;
    let strict = Verdicts::of_module(&ex, "strict", "box").await;
    let lenient = Verdicts::of_module(&ex, "lenient", "box").await;
    let off = Verdicts::of_module(&ex, "off", "box").await;
    assert_eq!(strict.status("pending_updates"), "warn", "{}", strict.body);
    assert_eq!(
        lenient.status("pending_updates"),
        "pass",
        "{}",
        lenient.body
    );
    assert_eq!(
        strict.value("pending_updates"),
        lenient.value("pending_updates"),
        "one apt state"
    );
    assert!(!off.has("pending_updates"), "{}", off.body);
    assert!(!off.has("security_updates"), "{}", off.body);
}

/// disk_usage goes by filesystem type, not by the name df shows as source: on the audited
/// "server", a full 64 KiB tmpfs mounted as "tmpfs" and a half-full one mounted as "scratch"
/// are both measured, and the full one fails the check.
#[tokio::test]
async fn disk_usage_measures_tmpfs_whatever_its_name() {
    let f = fixture();
    let sshd = f.isolated_sshd();
    let mnt = tempfile::tempdir().unwrap();
    let (full, half) = (mnt.path().join("full"), mnt.path().join("half"));
    std::fs::create_dir(&full).unwrap();
    std::fs::create_dir(&half).unwrap();
    sshd.inside(&format!(
        "mount -t tmpfs -o size=64k tmpfs {full} && mount -t tmpfs -o size=64k scratch {half} \
         && (dd if=/dev/zero of={full}/fill bs=4k 2>/dev/null; true) \
         && dd if=/dev/zero of={half}/fill bs=4k count=8 2>/dev/null",
        full = full.display(),
        half = half.display()
    ));
    let ex = Exporter::start(&audit_config(&f, &sshd, "root")).await;
    let v = Verdicts::of(&ex, "box").await;
    let used = |m: &Path| {
        metric_value_with(
            &v.body,
            "siembox_vps_audit_disk_used_percent",
            &[("mount", &m.display().to_string())],
        )
    };
    assert_eq!(used(&full), Some(100.0), "{}", v.body);
    assert_eq!(used(&half), Some(50.0), "{}", v.body);
    assert_eq!(v.status("disk_usage"), "fail", "{}", v.body);
    assert_eq!(v.value("disk_usage"), Some(100.0));
}

/// auto_updates: unattended-upgrades installed and APT::Periodic::Unattended-Upgrade "1" pass
/// while apt-daily-upgrade.timer (what runs it under systemd) is enabled, and warn once it is
/// masked. The audited namespace gets that state: the package in its dpkg status, the apt
/// setting in its own apt.conf.d, then a mask link in its own /etc/systemd/system.
#[tokio::test]
async fn auto_updates_warns_when_the_upgrade_timer_is_masked() {
    let f = fixture();
    let sshd = f.isolated_sshd();
    let timer = "/lib/systemd/system/apt-daily-upgrade.timer";
    assert!(Path::new(timer).exists(), "apt's timer unit ships here");
    let state = tempfile::tempdir().unwrap();
    sshd.inside(&format!(
        "set -e; s={d}/status; cp /var/lib/dpkg/status $s
printf '\\nPackage: unattended-upgrades\\nStatus: install ok installed\\nVersion: 2.9.1\\nArchitecture: all\\n\\n' >> $s
mount --bind $s /var/lib/dpkg/status
mount -t tmpfs apt-conf /etc/apt/apt.conf.d
echo 'APT::Periodic::Unattended-Upgrade \"1\";' > /etc/apt/apt.conf.d/20auto-upgrades",
        d = state.path().display()
    ));
    let ex = Exporter::start(&audit_config(&f, &sshd, "root")).await;
    let enabled = std::process::Command::new("systemctl")
        .args(["is-enabled", "apt-daily-upgrade.timer"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&enabled.stdout).trim(), "enabled");
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("auto_updates"), "pass", "{}", v.body);

    // systemctl mask, on this "server" only: the unit linked to /dev/null.
    sshd.inside(
        "mount -t tmpfs units /etc/systemd/system && ln -s /dev/null /etc/systemd/system/apt-daily-upgrade.timer",
    );
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("auto_updates"), "warn", "{}", v.body);
    assert!(
        v.detail("auto_updates")
            .contains("apt-daily-upgrade.timer is masked"),
        "{}",
        v.detail("auto_updates")
    );
}

/// pending_updates counts nothing from package lists that are missing or old: with an empty
/// /var/lib/apt/lists on the audited "server" it is unknown, with lists 10 days old it is
/// unknown and says their age, and with this machine's fresh lists it is graded.
#[tokio::test]
async fn pending_updates_is_unknown_on_missing_or_old_package_lists() {
    let f = fixture();
    let sshd = f.isolated_sshd();
    let module = |interval: &str| {
        let kh = write(
            &f.dir,
            "known_hosts",
            &format!("{}\n", sshd.known_hosts_line()),
        );
        config_with(
            &f.client.private,
            &kh,
            "{max_connections: 2}",
            &format!(
                "{{pending_updates: {{interval: {interval}}}, suid_files: {{enabled: false}}}}"
            ),
            &[server("box", &sshd)],
        )
    };
    // Fresh lists first (this machine's), then the same server with none, then old ones.
    let ex = Exporter::start(&module("1ms")).await;
    let v = Verdicts::of(&ex, "box").await;
    assert_ne!(v.status("pending_updates"), "unknown", "{}", v.body);

    sshd.inside(
        "set -e; mount -t tmpfs no-lists /var/lib/apt/lists; mkdir /var/lib/apt/lists/partial
         if [ -d /var/lib/apt/periodic ]; then mount -t tmpfs no-stamp /var/lib/apt/periodic; fi",
    );
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("pending_updates"), "unknown", "{}", v.body);
    assert!(v.detail("pending_updates").contains("no package lists"));
    assert_eq!(v.status("security_updates"), "unknown");

    sshd.inside(
        "cd /var/lib/apt/lists && touch -d '10 days ago' deb.example_dists_stable_InRelease \
         deb.example_dists_stable_main_binary-amd64_Packages",
    );
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("pending_updates"), "unknown", "{}", v.body);
    assert!(
        v.detail("pending_updates").contains("10 days old"),
        "{}",
        v.detail("pending_updates")
    );
}

/// README step 1: `useradd` leaves the account locked (`!` as its password), which sshd without
/// PAM refuses even with the right key; `usermod -p '*'` unlocks it without giving a password.
#[tokio::test]
async fn a_locked_audit_account_is_refused_until_unlocked() {
    let f = fixture();
    let user = TempUser::create("locked");
    let sshd = Sshd::start(SshdOptions {
        authorized: vec![f.client.public_line.clone()],
        ..Default::default()
    });
    chmod("755", &sshd.dir);
    chmod("644", &sshd.dir.join("authorized_keys"));
    let usermod = |password: &str| {
        assert!(std::process::Command::new("usermod")
            .args(["-p", password, &user.name])
            .status()
            .unwrap()
            .success());
    };
    usermod("!");
    let ex = Exporter::start(&audit_config(&f, &sshd, &user.name)).await;
    let (_, body) = ex.probe("vps_audit", "box").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(0.0), "{body}");
    assert!(
        sshd.log_text().contains("account is locked"),
        "{}",
        sshd.log_text()
    );
    usermod("*");
    let (_, body) = ex.probe("vps_audit", "box").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
}

/// A reload that changes a module's thresholds re-grades its heavy checks at the next audit
/// instead of serving findings graded with the old settings until their interval ends.
#[tokio::test]
async fn a_reload_with_new_thresholds_regrades_cached_heavy_checks() {
    let f = fixture();
    let (sshd, kh) = f.sshd();
    let yaml = |warn: u32| {
        config_with(
            &f.client.private,
            &kh,
            "{max_connections: 2}",
            &format!(
                "{{pending_updates: {{warn: {warn}, fail: 2000000, interval: 6h}}, suid_files: {{enabled: false}}}}"
            ),
            &[server("box", &sshd)],
        )
    };
    let file = write(&f.dir, "siembox.yml", &yaml(0));
    let ex = Exporter::start_file(file.clone()).await;
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("pending_updates"), "warn", "{}", v.body);
    write(&f.dir, "siembox.yml", &yaml(1_000_000));
    let r = request("POST", &ex.url("/-/reload"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("pending_updates"), "pass", "{}", v.body);
}

/// The hardening checks grade the audited "server" (an sshd in its own PID and mount namespace)
/// in states the test sets there, each first seen without the finding, then with it: a second
/// UID-0 account with an empty password (its own /etc/passwd and /etc/shadow), /tmp mounted
/// nosuid,noexec and then without nosuid, sysctls this "server" shows as 0, a newer kernel
/// installed in its /boot, a process named auditd (the check's rule: the daemon runs), and a
/// second sshd started with `-o PermitEmptyPasswords=yes -o MaxAuthTries=10`. As an ordinary
/// user, /etc/shadow is unreadable: empty_passwords is unknown, never pass.
#[tokio::test]
async fn hardening_checks_grade_the_states_the_test_sets() {
    let f = fixture();
    let user = TempUser::create("hard");
    let sshd = Sshd::start_isolated(
        SshdOptions {
            authorized: vec![f.client.public_line.clone()],
            ..Default::default()
        },
        "MaxAuthTries 4\n",
    );
    chmod("755", &sshd.dir);
    chmod("644", &sshd.config);
    chmod("644", &sshd.dir.join("authorized_keys"));
    let ex = Exporter::start(&audit_config(&f, &sshd, "root")).await;

    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("uid0_accounts"), "pass", "{}", v.body);
    assert_eq!(v.status("ssh_empty_passwords"), "pass", "{}", v.body);
    assert_eq!(
        (
            v.status("ssh_max_auth_tries"),
            v.value("ssh_max_auth_tries")
        ),
        ("pass", Some(4.0)),
        "{}",
        v.body
    );
    assert!(!v.detail("kernel_hardening").contains("randomize_va_space"));
    assert!(!v.detail("kernel_hardening").contains("tcp_syncookies"));
    assert_eq!(v.status("auditd"), "warn", "{}", v.body);
    // This machine has no kernel images in /boot (a VM kernel from outside).
    assert_eq!(v.status("running_kernel"), "unknown", "{}", v.body);
    // ... and neither SELinux nor AppArmor.
    assert!(!Path::new("/sys/fs/selinux/enforce").exists());
    assert!(!Path::new("/sys/module/apparmor").exists());
    assert_eq!(v.status("mac_enforcing"), "warn", "{}", v.body);
    let before = v.value("tmp_mounts").unwrap();

    // The server's own account files, sysctls, /tmp and /boot.
    let state = tempfile::tempdir().unwrap();
    let d = state.path().display();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let release = release.trim();
    let (major, rest) = release.split_once('.').unwrap();
    let newer = format!("{}.{rest}", major.parse::<u32>().unwrap() + 1);
    sshd.inside(&format!(
        "set -e
{etc}
echo 0 > {d}/zero
mount --bind {d}/zero /proc/sys/kernel/randomize_va_space
mount --bind {d}/zero /proc/sys/net/ipv4/tcp_syncookies
mount --bind /tmp /tmp && mount -o remount,bind,nosuid,noexec /tmp
mount -t tmpfs boot /boot && touch /boot/vmlinuz-{release} /boot/vmlinuz-{newer}",
        etc = own_etc(
            state.path(),
            "toor:x:0:0:second root:/root:/bin/sh",
            "toor::19000:0:99999:7:::"
        )
    ));
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(
        (v.status("uid0_accounts"), v.value("uid0_accounts")),
        ("fail", Some(1.0)),
        "{}",
        v.body
    );
    assert!(v.detail("uid0_accounts").contains("toor"));
    assert_eq!(v.status("empty_passwords"), "fail", "{}", v.body);
    assert!(v.detail("empty_passwords").contains("toor"));
    let hardening = v.detail("kernel_hardening");
    assert!(
        hardening.contains("kernel.randomize_va_space = 0")
            && hardening.contains("net.ipv4.tcp_syncookies = 0"),
        "{hardening}"
    );
    let tmp_listed = |d: &str| d.split("; ").any(|part| part.starts_with("/tmp "));
    assert!(!tmp_listed(v.detail("tmp_mounts")), "{}", v.body);
    let with_tmp_hardened = v.value("tmp_mounts").unwrap();
    assert!(
        with_tmp_hardened < before,
        "{before} -> {with_tmp_hardened}"
    );
    assert_eq!(v.status("running_kernel"), "warn", "{}", v.body);
    assert!(v.detail("running_kernel").contains(&newer));

    sshd.inside("mount -o remount,bind,suid,noexec /tmp");
    sshd.inside_pids(&format!(
        // A tmpfs of its own: /tmp is noexec on this "server" now.
        "mkdir {d}/bin && mount -t tmpfs bin {d}/bin && cp /bin/sleep {d}/bin/auditd
setsid {d}/bin/auditd 600 </dev/null >/dev/null 2>&1 &
sleep 0.2; grep -qsx auditd /proc/[0-9]*/comm"
    ));
    let sibling = sshd.start_sibling(
        "",
        &["-o", "PermitEmptyPasswords=yes", "-o", "MaxAuthTries=10"],
    );
    let v = Verdicts::of(&ex, "box").await;
    assert!(tmp_listed(v.detail("tmp_mounts")), "{}", v.body);
    assert!(
        v.detail("tmp_mounts").contains("/tmp without nosuid"),
        "{}",
        v.body
    );
    assert_eq!(v.value("tmp_mounts"), Some(with_tmp_hardened + 1.0));
    assert_eq!(v.status("auditd"), "pass", "{}", v.body);
    assert_eq!(v.status("ssh_empty_passwords"), "fail", "{}", v.body);
    assert!(v.detail("ssh_empty_passwords").contains(&format!(
        "({}): PermitEmptyPasswords yes",
        sibling.config.display()
    )));
    assert_eq!(
        (
            v.status("ssh_max_auth_tries"),
            v.value("ssh_max_auth_tries")
        ),
        ("warn", Some(10.0)),
        "{}",
        v.body
    );

    // An ordinary user without sudo reads /etc/passwd but not /etc/shadow.
    drop(sibling);
    let ex = Exporter::start(&audit_config(&f, &sshd, &user.name)).await;
    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("uid0_accounts"), "fail", "{}", v.body);
    assert_eq!(v.status("empty_passwords"), "unknown", "{}", v.body);
    assert!(v.detail("empty_passwords").contains("needs root"));
}

/// `sudo: true` with the shipped `examples/sudoers-siembox-audit`, through real sudo: installed
/// only in the audited namespace (a tmpfs over /etc/sudoers.d there; this machine's sudoers are
/// untouched), for the test's user and with the test sshd's own `-f` file added, as the file's
/// comment tells operators (sudo refuses a world-writable /etc/sudoers.d, so the tmpfs is
/// 755). First without the file (sudo refuses: the same unknowns as without sudo), then with it: the effective settings come from `sshd -T` despite a drop-in the user
/// cannot read, and `passwd -S -a` finds the account the test gave an empty password.
#[tokio::test]
async fn sudo_with_the_shipped_sudoers_reads_what_only_root_can() {
    assert!(
        Path::new("/usr/bin/sudo").exists(),
        "sudo is missing: run scripts/test-prerequisites"
    );
    let f = fixture();
    let user = TempUser::create("sudo");
    let (sshd, _conf_d, _) = sshd_with_unreadable_drop_in(&f);
    let config = audit_config(&f, &sshd, &user.name)
        .replace("      checks:", "      sudo: true\n      checks:");
    assert!(config.contains("sudo: true"));
    let ex = Exporter::start(&config).await;

    // The server's accounts: one more, without a password.
    let state = tempfile::tempdir().unwrap();
    chmod("755", state.path());
    let nopw = format!("sbxnopw{}", std::process::id());
    sshd.inside(&format!(
        "set -e
{etc}",
        etc = own_etc(
            state.path(),
            &format!("{nopw}:x:4242:4242::/:/bin/sh"),
            &format!("{nopw}::19000:0:99999:7:::")
        )
    ));

    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(
        v.status("ssh_root_login"),
        "unknown",
        "no sudoers yet: {}",
        v.body
    );
    assert_eq!(v.status("empty_passwords"), "unknown", "{}", v.body);

    let sudoers = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/sudoers-siembox-audit"
    ))
    .unwrap();
    let sudoers = sudoers
        .replace("Defaults:audit ", &format!("Defaults:{} ", user.name))
        .replace("\naudit ALL=", &format!("\n{} ALL=", user.name))
        .replace(
            "/usr/sbin/sshd -T -f /etc/ssh/sshd_config, \\\n",
            &format!(
                "/usr/sbin/sshd -T -f /etc/ssh/sshd_config, \\\n                           /usr/sbin/sshd -T -f {}, \\\n",
                sshd.config.display()
            ),
        );
    assert!(sudoers.contains(&format!("\n{} ALL=", user.name)));
    assert!(sudoers.contains(&sshd.config.display().to_string()));
    let file = write(state.path(), "siembox-audit", &sudoers);
    let check = std::process::Command::new("visudo")
        .arg("-cf")
        .arg(&file)
        .output()
        .unwrap();
    assert!(check.status.success(), "visudo: {check:?}");
    sshd.inside(&format!(
        "set -e
mount -t tmpfs -o mode=755 siembox-test-sudoers /etc/sudoers.d
install -m 440 {} /etc/sudoers.d/siembox-audit",
        file.display()
    ));

    let v = Verdicts::of(&ex, "box").await;
    assert_eq!(v.status("ssh_root_login"), "pass", "{}", v.body);
    assert!(
        v.detail("ssh_root_login").contains("sshd -T"),
        "{}",
        v.detail("ssh_root_login")
    );
    assert_eq!(v.status("ssh_password_auth"), "pass", "{}", v.body);
    assert_eq!(v.value("ssh_port"), Some(f64::from(sshd.port)));
    assert_eq!(v.status("empty_passwords"), "fail", "{}", v.body);
    assert!(
        v.detail("empty_passwords").contains(&nopw),
        "{}",
        v.detail("empty_passwords")
    );
}
