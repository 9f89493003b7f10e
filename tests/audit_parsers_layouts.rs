//! The audit's readers on the outputs of other systems: the real audit script runs here with
//! captured Debian, Ubuntu, RHEL-family and Alpine outputs (tests/fixtures/audit-layouts/) in
//! place of `df`, `ss`/`netstat`, `apt-get`/`dnf`/`yum`/`apk`, `timedatectl`/`chronyc`, the
//! journal and the auth logs, inside a mount and PID namespace of its own (so this machine's
//! tools, logs, daemons and sshd are out of sight), "now" fixed at the captures' time; its
//! output is graded as an audit grades it. Each expected count is written down beside the
//! captures (expected.txt) from reading them. Alpine runs under busybox ash with busybox
//! applets only, as there.

use siembox_exporter::audit::sections::SCRIPT;
use siembox_exporter::audit::{grade_output, CheckStatus, Graded};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// 2026-11-23T09:38:44Z: the captures' "now".
const NOW: u64 = 1_795_426_724;

fn fixture(layout: &str, name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audit-layouts")
        .join(layout)
        .join(name);
    assert!(p.exists(), "{}", p.display());
    p
}

/// A system to imitate: stand-in tools, files placed at their paths, tools hidden.
struct Layout {
    /// tool name → the sh body of its stand-in.
    tools: Vec<(&'static str, String)>,
    /// absolute path → fixture copied there (its directory gets a tmpfs of its own).
    files: Vec<(&'static str, PathBuf)>,
    /// Tools of this machine the imitated system does not have.
    hide: Vec<&'static str>,
    /// Busybox ash with busybox applets as the only /usr/bin and /usr/sbin (Alpine).
    busybox: bool,
    /// sshd_config's Port.
    ssh_port: u16,
    /// Processes running under these names (time daemons), in the namespace only.
    daemons: Vec<&'static str>,
}

fn cat(path: &Path) -> String {
    format!("cat '{}'", path.display())
}

impl Layout {
    fn new(ssh_port: u16) -> Layout {
        Layout {
            tools: Vec::new(),
            files: Vec::new(),
            hide: Vec::new(),
            busybox: false,
            ssh_port,
            daemons: Vec::new(),
        }
    }

    fn tool(mut self, name: &'static str, body: String) -> Self {
        self.tools.push((name, body));
        self
    }

    fn file(mut self, at: &'static str, fixture: PathBuf) -> Self {
        self.files.push((at, fixture));
        self
    }

    fn daemon(mut self, name: &'static str) -> Self {
        self.daemons.push(name);
        self
    }

    fn hide(mut self, tools: &[&'static str]) -> Self {
        self.hide.extend_from_slice(tools);
        self
    }

    /// Runs the script (pending updates on, SUID scan off) and grades its output.
    fn audit(&self) -> (Graded, String) {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        // `date` answers for NOW unless asked about a given time (-d @SECONDS).
        let mut tools = self.tools.clone();
        tools.push((
            "date",
            format!("case \"$*\" in *-d*) exec /usr/bin/date \"$@\" ;; *) exec /usr/bin/date -d @{NOW} \"$@\" ;; esac"),
        ));
        for (name, body) in &tools {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let sshd_config = dir.path().join("sshd_config");
        std::fs::write(
            &sshd_config,
            format!(
                "Port {}\nPermitRootLogin no\nPasswordAuthentication no\n",
                self.ssh_port
            ),
        )
        .unwrap();
        let hidden = dir.path().join("hidden");
        std::fs::write(&hidden, "").unwrap();
        // The prelude runs as root in the new namespaces; nothing it mounts is seen outside.
        let mut pre = String::from("set -e\n");
        pre += &format!(
            "mount --bind '{}' /etc/ssh/sshd_config\n",
            sshd_config.display()
        );
        pre += "mount -t tmpfs tmpfs /var/log\nmkdir -p /var/lib/apt/lists\nmount -t tmpfs tmpfs /var/lib/apt/lists\n";
        // apt's lists fetched an hour before NOW: fresh, so counts are graded.
        pre += &format!(
            "touch -d @{} /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages\n",
            NOW - 3600
        );
        for (at, fixture) in &self.files {
            pre += &format!("cp '{}' '{at}'\n", fixture.display());
        }
        for name in &self.daemons {
            // A process's name is its program's file name: a copy of sleep named like the daemon.
            let daemon = dir.path().join(name);
            std::fs::copy("/usr/bin/sleep", &daemon).unwrap();
            pre += &format!("'{}' 60 &\n", daemon.display());
        }
        for tool in &self.hide {
            pre += &format!(
                "for d in /usr/bin /usr/sbin; do if [ -e $d/{tool} ]; then mount --bind '{}' $d/{tool}; fi; done\n",
                hidden.display()
            );
        }
        let shell = if self.busybox {
            let bb = dir.path().join("busybox-bin");
            std::fs::create_dir(&bb).unwrap();
            std::fs::copy("/usr/bin/busybox", bb.join("busybox"))
                .expect("busybox is installed (apt-get install busybox)");
            // Links to /usr/bin/busybox: that is the copy once the directory is /usr/bin.
            pre += &format!(
                "/usr/bin/busybox --list | while read a; do [ \"$a\" = busybox ] || ln -s /usr/bin/busybox '{d}'/$a; done\n\
                 mount --bind '{d}' /usr/bin\nmount --bind '{d}' /usr/sbin\n",
                d = bb.display()
            );
            "/usr/bin/busybox sh"
        } else {
            "/bin/dash"
        };
        pre += &format!("exec {shell} -s -- - updates 0\n");
        let mut child = Command::new("unshare")
            .args([
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "sh",
                "-c",
                &pre,
            ])
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("TZ", "UTC")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare runs (util-linux; the tests run as root)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(SCRIPT.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the script failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let graded =
            grade_output(&text, &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        (graded, text)
    }
}

/// (status, value, detail) of a check.
fn verdict(g: &Graded, check: &str) -> (CheckStatus, Option<f64>, String) {
    let f = g
        .finding(check)
        .unwrap_or_else(|| panic!("no {check}: {g:?}"));
    (f.status, f.value, f.detail.clone())
}

fn mounts(g: &Graded) -> Vec<(&str, f64)> {
    g.disks.iter().map(|(m, p)| (m.as_str(), *p)).collect()
}

fn debian12(logs: &str) -> Layout {
    let l = Layout::new(22)
        .tool("df", cat(&fixture("debian12", "df.txt")))
        .tool("ss", cat(&fixture("debian12", "ss.txt")))
        .tool("apt-get", cat(&fixture("debian12", "apt-get-upgrade.txt")))
        .tool("timedatectl", "echo no".into())
        .daemon("systemd-timesyn");
    match logs {
        "journal" => l.tool("journalctl", cat(&fixture("debian12", "journal.txt"))),
        _ => l
            .hide(&["journalctl"])
            .file("/var/log/auth.log", fixture("debian12", "auth-rfc3339.log")),
    }
}

#[test]
fn debian12_with_journald_only() {
    let (g, out) = debian12("journal").audit();
    assert_eq!(
        mounts(&g),
        [
            ("/run", 1.0),
            ("/", 51.0),
            ("/dev/shm", 0.0),
            ("/run/lock", 0.0),
            ("/boot/efi", 10.0),
            ("/run/user/1000", 0.0)
        ],
        "devtmpfs is skipped\n{out}"
    );
    assert_eq!(verdict(&g, "disk_usage").1, Some(51.0));
    let (status, value, detail) = verdict(&g, "public_ports");
    assert_eq!(
        (status, value),
        (CheckStatus::Warn, Some(2.0)),
        "{detail}\n{out}"
    );
    assert!(detail.ends_with("68/udp, 80/tcp"), "{detail}");
    assert_eq!(verdict(&g, "pending_updates").1, Some(6.0), "{out}");
    assert_eq!(verdict(&g, "security_updates").1, Some(3.0));
    let (_, value, detail) = verdict(&g, "failed_logins");
    assert_eq!(value, Some(4.0), "{detail}\n{out}");
    assert!(detail.contains("journal"), "{detail}");
    assert_eq!(
        verdict(&g, "time_sync"),
        (
            CheckStatus::Warn,
            Some(0.0),
            "systemd-timesyn running but not synchronized".into()
        ),
        "{out}"
    );
}

#[test]
fn debian12_with_rsyslog_rfc3339_stamps() {
    let (g, out) = debian12("rsyslog").audit();
    let (_, value, detail) = verdict(&g, "failed_logins");
    assert_eq!(
        value,
        Some(2.0),
        "two lines are older than 24 h: {detail}\n{out}"
    );
    assert!(detail.contains("file"), "{detail}");
}

#[test]
fn ubuntu2204_with_snaps_resolved_and_classic_auth_log() {
    let (g, out) = Layout::new(22)
        .tool("df", cat(&fixture("ubuntu2204", "df.txt")))
        .tool("ss", cat(&fixture("ubuntu2204", "ss.txt")))
        .tool(
            "apt-get",
            cat(&fixture("ubuntu2204", "apt-get-upgrade.txt")),
        )
        .hide(&["journalctl"])
        .file("/var/log/auth.log", fixture("ubuntu2204", "auth.log"))
        .audit();
    assert!(
        !mounts(&g).iter().any(|(m, _)| m.starts_with("/snap")),
        "squashfs snaps are always full: skipped\n{out}"
    );
    assert_eq!(verdict(&g, "disk_usage").1, Some(87.0));
    assert_eq!(verdict(&g, "disk_usage").0, CheckStatus::Warn);
    let (_, value, detail) = verdict(&g, "public_ports");
    assert_eq!(value, Some(2.0), "{detail}\n{out}");
    assert!(detail.ends_with("68/udp, 443/tcp"), "{detail}");
    assert_eq!(verdict(&g, "pending_updates").1, Some(4.0), "{out}");
    assert_eq!(verdict(&g, "security_updates").1, Some(2.0));
    assert_eq!(verdict(&g, "failed_logins").1, Some(6.0), "{out}");
}

#[test]
fn rhel9_with_dnf_cockpit_and_var_log_secure() {
    let dnf = format!(
        "case \"$*\" in *check-update*) {}; exit 100 ;; *updateinfo*) {} ;; esac",
        cat(&fixture("rhel9", "dnf-check-update.txt")),
        cat(&fixture("rhel9", "dnf-updateinfo-security.txt"))
    );
    let (g, out) = Layout::new(22)
        .tool("df", cat(&fixture("rhel9", "df.txt")))
        .tool("ss", cat(&fixture("rhel9", "ss.txt")))
        .tool("dnf", dnf)
        .tool("chronyc", cat(&fixture("rhel9", "chronyc-tracking.txt")))
        .daemon("chronyd")
        .hide(&["apt-get", "journalctl", "timedatectl"])
        .file("/var/log/secure", fixture("rhel9", "secure"))
        .audit();
    assert_eq!(
        verdict(&g, "disk_usage"),
        (
            CheckStatus::Fail,
            Some(91.0),
            "fullest mount /home at 91%".into()
        ),
        "{out}"
    );
    let (_, value, detail) = verdict(&g, "public_ports");
    assert_eq!(value, Some(1.0), "{detail}\n{out}");
    assert!(detail.ends_with("9090/tcp"), "{detail}");
    let (_, value, detail) = verdict(&g, "pending_updates");
    assert_eq!(value, Some(7.0), "{detail}\n{out}");
    assert!(detail.contains("dnf"), "{detail}");
    assert_eq!(verdict(&g, "security_updates").1, Some(4.0));
    assert_eq!(verdict(&g, "failed_logins").1, Some(3.0), "{out}");
    assert_eq!(
        verdict(&g, "time_sync"),
        (CheckStatus::Pass, Some(1.0), "chrony synchronized".into()),
        "{out}"
    );
}

#[test]
fn centos7_with_net_tools_netstat_and_yum() {
    let (g, out) = Layout::new(22)
        .tool("df", cat(&fixture("centos7", "df.txt")))
        .tool("netstat", cat(&fixture("centos7", "netstat.txt")))
        .tool(
            "yum",
            format!(
                "{}; exit 100",
                cat(&fixture("centos7", "yum-check-update.txt"))
            ),
        )
        .hide(&["ss", "apt-get", "journalctl"])
        .file("/var/log/secure", fixture("centos7", "secure"))
        .audit();
    assert!(
        out.contains("tcp6 :::22"),
        "netstat, not ss, was read:\n{out}"
    );
    assert_eq!(verdict(&g, "disk_usage").1, Some(82.0));
    let (_, value, detail) = verdict(&g, "public_ports");
    assert_eq!(value, Some(2.0), "{detail}\n{out}");
    assert!(detail.ends_with("3306/tcp, 68/udp"), "{detail}");
    assert_eq!(verdict(&g, "pending_updates").1, Some(4.0), "{out}");
    assert_eq!(verdict(&g, "security_updates").0, CheckStatus::Unknown);
    assert_eq!(verdict(&g, "failed_logins").1, Some(1.0), "{out}");
}

fn alpine(df: &str) -> Layout {
    let df = match df {
        "with -T" => cat(&fixture("alpine320", "df.txt")),
        // An old busybox: no -T; the script falls back to `df -P -k`.
        _ => format!(
            "case \"$*\" in *-T*) echo \"df: unrecognized option '-T'\" >&2; exit 1 ;; esac; {}",
            cat(&fixture("alpine320", "df-no-T.txt"))
        ),
    };
    let mut l = Layout::new(2222)
        .tool("df", df)
        .tool("netstat", cat(&fixture("alpine320", "netstat.txt")))
        .tool(
            "apk",
            format!(
                "case \"$*\" in version*) {} ;; esac",
                cat(&fixture("alpine320", "apk-version.txt"))
            ),
        )
        .tool(
            "chronyc",
            cat(&fixture("alpine320", "chronyc-tracking.txt")),
        )
        .daemon("chronyd")
        .file("/var/log/messages", fixture("alpine320", "messages"));
    l.busybox = true;
    l
}

#[test]
fn alpine320_busybox() {
    let (g, out) = alpine("with -T").audit();
    assert!(
        !out.contains("manager=apt") && out.contains("manager=apk"),
        "only busybox and the stand-ins are on the system:\n{out}"
    );
    assert_eq!(
        mounts(&g),
        [
            ("/", 98.0),
            ("/dev/shm", 0.0),
            ("/boot", 14.0),
            ("/run", 0.0)
        ],
        "{out}"
    );
    assert_eq!(verdict(&g, "disk_usage").0, CheckStatus::Fail);
    let (_, value, detail) = verdict(&g, "public_ports");
    assert_eq!(value, Some(1.0), "2222 is sshd's port: {detail}\n{out}");
    assert!(detail.ends_with("8080/tcp"), "{detail}");
    assert_eq!(verdict(&g, "pending_updates").1, Some(3.0), "{out}");
    assert_eq!(verdict(&g, "security_updates").0, CheckStatus::Unknown);
    let (_, value, detail) = verdict(&g, "failed_logins");
    assert_eq!(value, Some(2.0), "{detail}\n{out}");
    assert!(detail.contains("file"), "{detail}");
    assert_eq!(
        verdict(&g, "time_sync"),
        (
            CheckStatus::Warn,
            Some(0.0),
            "chrony leap status: Not synchronised".into()
        ),
        "{out}"
    );
}

#[test]
fn alpine_with_an_old_busybox_df_without_types() {
    let (g, out) = alpine("without -T").audit();
    // Without types nothing can be skipped: devtmpfs is graded too (0%, harmless).
    assert_eq!(
        mounts(&g),
        [
            ("/", 98.0),
            ("/dev", 0.0),
            ("/dev/shm", 0.0),
            ("/boot", 14.0),
            ("/run", 0.0)
        ],
        "{out}"
    );
    assert_eq!(verdict(&g, "disk_usage").1, Some(98.0));
}
