//! A real OpenSSH server (/usr/sbin/sshd) on a free loopback port with a temporary host key and
//! authorized_keys, LogLevel DEBUG to a file. Runs as the current user (root in CI containers),
//! with StrictModes and PAM off so temporary files are accepted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// An ed25519 key pair made with ssh-keygen in a temp dir (no passphrase unless asked).
pub struct KeyPair {
    pub private: PathBuf,
    pub public_line: String,
}

impl KeyPair {
    pub fn generate(dir: &Path, name: &str) -> KeyPair {
        Self::generate_with(dir, name, "")
    }

    pub fn generate_with(dir: &Path, name: &str, passphrase: &str) -> KeyPair {
        let private = dir.join(name);
        let _ = std::fs::remove_file(&private);
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f"])
            .arg(&private)
            .status()
            .expect("ssh-keygen runs");
        assert!(st.success(), "ssh-keygen failed");
        let public_line = std::fs::read_to_string(private.with_extension("pub"))
            .unwrap_or_else(|_| {
                std::fs::read_to_string(format!("{}.pub", private.display())).unwrap()
            })
            .trim()
            .to_string();
        KeyPair {
            private,
            public_line,
        }
    }

    /// `ssh-ed25519 AAAA…` without the comment.
    pub fn public_key(&self) -> String {
        self.public_line
            .split(' ')
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The SHA256 fingerprint as ssh-keygen prints it (`SHA256:…`).
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(format!("{}.pub", self.private.display()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }
}

#[derive(Default, Clone)]
pub struct SshdOptions {
    /// Public keys allowed to log in.
    pub authorized: Vec<String>,
    /// A `ForceCommand` wrapper (e.g. to count sessions); it must run "$SSH_ORIGINAL_COMMAND".
    pub force_command: Option<PathBuf>,
}

pub struct Sshd {
    pub port: u16,
    pub dir: PathBuf,
    pub host_key: KeyPair,
    pub config: PathBuf,
    pub log: PathBuf,
    own_pid_namespace: bool,
    child: Option<Child>,
}

impl Sshd {
    pub fn start(opts: SshdOptions) -> Sshd {
        Self::start_in(opts, "", false)
    }

    /// Runs in its own PID namespace with its own /proc, as on a server of its own: an audit
    /// through it sees only this sshd, its sessions and the siblings started in it.
    /// `first_lines` go before the generated config (sshd keeps a setting's first value).
    pub fn start_isolated(opts: SshdOptions, first_lines: &str) -> Sshd {
        Self::start_in(opts, first_lines, true)
    }

    fn start_in(opts: SshdOptions, first_lines: &str, own_pid_namespace: bool) -> Sshd {
        let dir = tempfile::tempdir().unwrap().keep();
        let host_key = KeyPair::generate(&dir, "host_ed25519");
        let port = super::free_port();
        let mut auth = std::fs::File::create(dir.join("authorized_keys")).unwrap();
        for k in &opts.authorized {
            writeln!(auth, "{k}").unwrap();
        }
        let config = dir.join("sshd_config");
        let mut c = first_lines.to_string();
        c += &format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\nPermitRootLogin yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel DEBUG\n\
             MaxStartups 500\nMaxSessions 100\nMaxAuthTries 20\n",
            hk = host_key.private.display(),
            d = dir.display()
        );
        if let Some(fc) = &opts.force_command {
            c.push_str(&format!("ForceCommand {}\n", fc.display()));
        }
        std::fs::write(&config, c).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = dir.join("sshd.log");
        let mut sshd = Sshd {
            port,
            dir,
            host_key,
            config,
            log,
            own_pid_namespace,
            child: None,
        };
        sshd.spawn();
        sshd
    }

    fn spawn(&mut self) {
        let mut cmd = if self.own_pid_namespace {
            // --kill-child: killing unshare kills the namespace's init, and with it the namespace.
            let mut c = Command::new("unshare");
            c.args([
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                "/usr/sbin/sshd",
            ]);
            c
        } else {
            Command::new("/usr/sbin/sshd")
        };
        let child = cmd
            .arg("-D")
            .arg("-f")
            .arg(&self.config)
            .arg("-E")
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/sbin/sshd starts (apt-get install openssh-server)");
        self.child = Some(child);
        super::wait_for_listener(self.port, "sshd");
    }

    /// Kills the listener and every per-connection sshd of this instance (pooled connections
    /// die with them).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Per-connection children outlive the listener: end the ones serving this port.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for p in $(ss -Htnp state established '( sport = :{} )' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do kill $p; done",
                self.port
            ))
            .status();
    }

    /// Starts again on the same port with the same host key.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// `[127.0.0.1]:port ssh-ed25519 AAAA…`, the known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_key.public_key())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The host pid of the isolated sshd (its namespace's init).
    fn namespace_init(&self) -> String {
        assert!(
            self.own_pid_namespace,
            "only an isolated sshd has a namespace"
        );
        let unshare = self.child.as_ref().expect("running").id();
        let children = format!("/proc/{unshare}/task/{unshare}/children");
        (0..200)
            .find_map(|_| {
                let pid = std::fs::read_to_string(&children).unwrap_or_default();
                let pid = pid.split_whitespace().next().map(str::to_string);
                if pid.is_none() {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                pid
            })
            .expect("the namespace's init is running")
    }

    /// Runs `script` with sh in the isolated sshd's mount namespace, so what it mounts (a tmpfs
    /// over /var/log, a full tmpfs) exists only on this "server" and goes with it.
    pub fn inside(&self, script: &str) {
        self.nsenter(&["-m"], script);
    }

    /// Runs `script` with sh in the isolated sshd's PID and mount namespaces: a process it starts
    /// in the background runs on this "server" only and ends with it.
    pub fn inside_pids(&self, script: &str) {
        self.nsenter(&["-p", "-m"], script);
    }

    fn nsenter(&self, namespaces: &[&str], script: &str) {
        let out = Command::new("nsenter")
            .args(["-t", &self.namespace_init()])
            .args(namespaces)
            .args(["sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter runs");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts a second sshd in this one's PID namespace with its own `-f` file holding `lines`
    /// (plus host key, port and pid file) and the command-line `args`, as an operator's extra
    /// sshd would run.
    pub fn start_sibling(&self, lines: &str, args: &[&str]) -> Sibling {
        let init = self.namespace_init();
        let dir = tempfile::tempdir().unwrap().keep();
        let port = super::free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "{lines}Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {d}/sshd.pid\n",
                hk = self.host_key.private.display(),
                d = dir.display()
            ),
        )
        .unwrap();
        let log = dir.join("sshd.log");
        let nsenter = Command::new("nsenter")
            .args(["-t", &init, "-p", "-m", "/usr/sbin/sshd", "-D", "-f"])
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nsenter runs");
        let mut sibling = Sibling {
            port,
            config,
            log,
            nsenter,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline || sibling.nsenter.try_wait().unwrap().is_some()
            {
                panic!("sibling sshd did not start: {}", sibling.log_text());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        sibling
    }
}

/// A second sshd in a namespaced `Sshd`'s namespace; stopped when dropped (or with the namespace).
pub struct Sibling {
    pub port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Exits when the sshd it started does.
    nsenter: Child,
}

impl Sibling {
    /// Host pids of its listener (its title holds its unique `-f` path).
    fn listener_pids(&self) -> Vec<String> {
        let needle = format!("-f {}", self.config.display());
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if comm.trim() == "sshd" && cmd.contains(&needle) {
                out.push(pid);
            }
        }
        out
    }

    /// SIGHUP: sshd re-executes itself and loads its configuration again.
    pub fn reload(&self) {
        let pid_file = self.config.with_file_name("sshd.pid");
        let before = std::fs::metadata(&pid_file).and_then(|m| m.modified()).ok();
        for pid in self.listener_pids() {
            Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        }
        // Reloaded once the re-executed sshd has written its pid file again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(&pid_file).and_then(|m| m.modified()).ok() == before {
            assert!(std::time::Instant::now() < deadline, "sshd did not reload");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        super::wait_for_listener(self.port, "reloaded sibling sshd");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sibling {
    fn drop(&mut self) {
        for pid in self.listener_pids() {
            let _ = Command::new("kill").arg(&pid).status();
        }
        let _ = self.nsenter.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A ForceCommand wrapper that records, at the start of every session, how many sessions run at
/// once (across every sshd using the same `dir`) and how many SSH connections are established to
/// `ports`, then holds the session `hold` seconds so overlaps show.
pub fn counting_wrapper(dir: &Path, ports: &[u16], hold: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("sessions")).unwrap();
    let filter = ports
        .iter()
        .map(|p| format!("sport = :{p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let script = format!(
        "#!/bin/sh\nd={d}\ntouch $d/sessions/$$\n\
         s=$(ls $d/sessions | wc -l)\n\
         c=$(ss -Htn state established '( {filter} )' | wc -l)\n\
         echo \"$s $c\" >> $d/counts.log\n\
         sleep {hold}\n\
         sh -c \"$SSH_ORIGINAL_COMMAND\"\nrc=$?\nrm -f $d/sessions/$$\nexit $rc\n",
        d = dir.display()
    );
    let path = dir.join("wrap.sh");
    std::fs::write(&path, script).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&path)
        .status()
        .unwrap();
    path
}

/// The (sessions, connections) maxima the counting wrapper saw, and how many sessions it logged.
pub fn counted_maxima(dir: &Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(dir.join("counts.log")).unwrap_or_default();
    let mut max = (0, 0, 0);
    for line in text.lines() {
        let mut it = line
            .split_whitespace()
            .filter_map(|v| v.parse::<usize>().ok());
        if let (Some(s), Some(c)) = (it.next(), it.next()) {
            max.0 = max.0.max(s);
            max.1 = max.1.max(c);
            max.2 += 1;
        }
    }
    max
}

/// A login account made for one test (`useradd`), removed when dropped: an ordinary audit user.
/// Its password field is `*` (no password, not locked), which sshd accepts without PAM.
pub struct TempUser {
    pub name: String,
}

impl TempUser {
    pub fn create(tag: &str) -> TempUser {
        let name = format!("sbx{tag}{}", std::process::id());
        let _ = Command::new("userdel")
            .arg("-f")
            .arg(&name)
            .stderr(Stdio::null())
            .status();
        let st = Command::new("useradd")
            .args(["-M", "-d", "/", "-s", "/bin/sh", "-p", "*"])
            .arg(&name)
            .status()
            .expect("useradd runs");
        assert!(st.success(), "useradd {name}");
        TempUser { name }
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        // -f: the exporter's pooled session may still be closing as this user.
        let _ = Command::new("userdel").arg("-f").arg(&self.name).status();
    }
}

/// chmod, for a test that makes its files readable (or not) to an ordinary user.
pub fn chmod(mode: &str, path: &Path) {
    assert!(Command::new("chmod")
        .arg(mode)
        .arg(path)
        .status()
        .unwrap()
        .success());
}
