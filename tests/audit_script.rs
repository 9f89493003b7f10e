//! The audit script itself, run locally (no SSH) under dash and under busybox ash with busybox's
//! applets first in PATH (as on Alpine): it must run to its end marker and its output must parse
//! into findings with values on this machine.

use siembox_exporter::audit::checks::{evaluate, CheckStatus, Rules};
use siembox_exporter::audit::sections::{Sections, SCRIPT};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

fn run(shell: &str, path: Option<&str>) -> String {
    let mut cmd = Command::new(shell);
    cmd.args(["-s", "--", "-", "-", "0"]);
    if let Some(p) = path {
        cmd.env_clear().env("PATH", p);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{shell}: {e} (apt-get install busybox)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SCRIPT.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{shell} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn assert_parses(out: &str) {
    let s = Sections::parse(out);
    assert!(s.complete(), "{out}");
    assert!(
        !s.has("updates") && !s.has("suid"),
        "heavy sections only when asked"
    );
    assert!(
        s.has("static"),
        "no cached boot id: static facts are printed"
    );
    let checks = BTreeMap::new();
    let f = evaluate(&s, &Rules { checks: &checks });
    for check in [
        "disk_usage",
        "memory_usage",
        "load_per_core",
        "public_ports",
        "ssh_port",
        "ssh_max_auth_tries",
        "ssh_empty_passwords",
        "uid0_accounts",
        "kernel_hardening",
        "tmp_mounts",
        "mac_enforcing",
        "auditd",
    ] {
        let x = f.iter().find(|x| x.check == check).unwrap();
        assert_ne!(x.status, CheckStatus::Unknown, "{check}: {x:?}\n{out}");
        assert!(x.value.is_some(), "{check}");
    }
}

#[test]
fn runs_under_dash() {
    assert_parses(&run("/bin/sh", None));
}

#[test]
fn runs_under_busybox_ash_with_busybox_tools() {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("busybox")
        .arg("--install")
        .arg("-s")
        .arg(dir.path())
        .status()
        .expect("busybox is installed (apt-get install busybox)");
    assert!(st.success());
    let path = dir.path().display().to_string();
    let out = run(&format!("{path}/sh"), Some(&path));
    assert_parses(&out);
}

#[test]
fn cached_boot_id_skips_static_facts() {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let mut child = Command::new("/bin/sh")
        .args(["-s", "--", boot.trim(), "-", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SCRIPT.as_bytes())
        .unwrap();
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let s = Sections::parse(&out);
    assert!(s.complete());
    assert!(!s.has("static"), "{out}");
}
