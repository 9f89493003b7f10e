//! A private plain redis-server on a free loopback port, for tests that stop and restart it
//! (never the shared one on 6379). Killed when dropped.

use super::child_server::ChildServer;
use std::process::Command;

pub struct RedisServer {
    server: ChildServer,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let path = dir.path().to_path_buf();
        let server = ChildServer::start(
            port,
            "redis-server (Debian package redis-server)",
            move || {
                let mut cmd = Command::new("redis-server");
                cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no"])
                    .arg("--dir")
                    .arg(&path);
                cmd
            },
        );
        RedisServer {
            server,
            port,
            _dir: dir,
        }
    }

    /// SIGKILL: the server dies as a crashed or OOM-killed one would, connections and all.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts again on the same port.
    pub fn restart(&mut self) {
        self.server.restart();
    }

    pub fn address(&self) -> String {
        self.server.address()
    }
}
