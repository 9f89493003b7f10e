//! The exporter's real binary as a child process: for what only a process has (flags, signals,
//! exit status, stderr).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The exporter binary as a child process on a free port; killed if a test fails before it
/// exits by itself.
pub struct Binary {
    pub child: Child,
    pub port: u16,
    /// The config file it was started with (tests rewrite it and reload).
    pub config: PathBuf,
    log: PathBuf,
}

impl Binary {
    pub fn start(config: &str, extra: &[&str]) -> Binary {
        let dir = tempfile::tempdir().unwrap().keep();
        let path = dir.join("siembox.yml");
        std::fs::write(&path, config).unwrap();
        let log = dir.join("stderr.log");
        let port = super::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_siembox-exporter"))
            .arg("--config.file")
            .arg(&path)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let b = Binary {
            child,
            port,
            config: path,
            log,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while get(port, "/-/healthy").is_none_or(|r| !r.contains("200 OK")) {
            assert!(Instant::now() < until, "the exporter never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A `/proc/<pid>/status` field in KiB: `VmRSS` (resident now), `VmHWM` (peak resident).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/<pid>/status"))
    }

    /// Resets the peak (`VmHWM`) to the resident size now (proc(5), `clear_refs` value 5).
    pub fn reset_peak_memory(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").unwrap();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection: the raw response, or None if the connection
/// could not be made or closed before any answer.
pub fn get(port: u16, path: &str) -> Option<String> {
    send(port, "GET", path)
}

/// As [`get`], a POST without a body.
pub fn post(port: u16, path: &str) -> Option<String> {
    send(port, "POST", path)
}

fn send(port: u16, method: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    (!out.is_empty()).then_some(out)
}

/// What a one-shot run of the binary (`audit`, `probe`, …) left: exit code and both streams.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary once with `args`, stdout and stderr piped (so not a terminal) and NO_COLOR
/// unset (so plain output is the binary's own choice), and waits for it to exit.
pub fn run_once(args: &[&str]) -> Ran {
    let out = Command::new(env!("CARGO_BIN_EXE_siembox-exporter"))
        .args(args)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes `yaml` to a config file of its own (kept for the test's life) and returns its path.
pub fn config_file(yaml: &str) -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("siembox.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}
