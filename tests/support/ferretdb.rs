//! A private FerretDB (a MongoDB wire-protocol server, built by scripts/go-tools) on a free
//! loopback port, storing its data in the local PostgreSQL (database `test`). The `mongodb`
//! prober's tests use it because no MongoDB server can run here; where FerretDB answers
//! differently from MongoDB, the tests say so.
//!
//! Logins: FerretDB 1.24 passes PLAIN credentials on to PostgreSQL, so a PLAIN login is checked
//! as that PostgreSQL role's password (`db::TempUser::create_password_checked`). Its SCRAM
//! (`--test-enable-new-auth`) cannot complete with the Rust driver: the driver asks for
//! `skipEmptyExchange` (MongoDB 4.4+) and fails when the server, as FerretDB 1.24 does, still
//! wants the empty last round. Without a login, commands run as the URL's trusted `postgres`.

use super::child_server::ChildServer;
use std::process::Command;

/// The user of `FerretDb::start_scram`, and its password.
pub const SCRAM_USER: &str = "monitor";
pub const SCRAM_PASSWORD: &str = "Ferret-Scram-pw-7";

pub struct FerretDb {
    server: ChildServer,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl FerretDb {
    /// On PostgreSQL, PLAIN logins checked by PostgreSQL.
    pub fn start() -> FerretDb {
        Self::start_with(false)
    }

    /// On SQLite files of its own, with FerretDB's SCRAM users (one: `SCRAM_USER`).
    pub fn start_scram() -> FerretDb {
        Self::start_with(true)
    }

    fn start_with(scram: bool) -> FerretDb {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let state = dir.path().display().to_string();
        let server = ChildServer::start(port, "ferretdb", move || {
            let mut cmd = Command::new(super::tools::go_tool("ferretdb-1.24.2"));
            cmd.args(["--log-level=ERROR", "--debug-addr=-"])
                // No reports to the vendor from a test run (and no network here to send them).
                .arg("--telemetry=disable")
                .arg(format!("--state-dir={state}"))
                .arg(format!("--listen-addr=127.0.0.1:{port}"));
            if scram {
                cmd.arg("--handler=sqlite")
                    .arg(format!("--sqlite-url=file:{state}/"))
                    .arg("--test-enable-new-auth")
                    .args(["--setup-database=admin", "--setup-username", SCRAM_USER])
                    .arg(format!("--setup-password={SCRAM_PASSWORD}"));
            } else {
                cmd.arg("--handler=postgresql")
                    .arg("--postgresql-url=postgres://postgres@127.0.0.1:5432/test");
            }
            cmd
        });
        FerretDb {
            server,
            port,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// SIGSTOP: the server accepts nothing and answers nothing, as a hung one would.
    pub fn freeze(&self) {
        signal(self.pid(), "STOP");
    }

    /// SIGCONT after `freeze`.
    pub fn thaw(&self) {
        signal(self.pid(), "CONT");
    }

    /// SIGKILL: the server dies with its connections, as a crashed one would (a frozen one too).
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts again on the same port with the same data (its user included).
    pub fn restart(&mut self) {
        self.server.restart();
    }

    pub fn address(&self) -> String {
        self.server.address()
    }

    /// TCP connections established to the server now, counted on the server's side by the
    /// kernel (`ss`), not by anything the exporter reports.
    pub fn connections(&self) -> usize {
        let out = Command::new("ss")
            .args(["-Htn", "state", "established"])
            .arg(format!("( sport = :{} )", self.port))
            .output()
            .expect("ss runs (package iproute2)");
        String::from_utf8_lossy(&out.stdout).lines().count()
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid}");
}
