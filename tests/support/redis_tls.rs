//! A throwaway redis-server with TLS only, on a free loopback port, with a fresh self-signed
//! certificate for `localhost` and `127.0.0.1`. Stops (killed by pid) when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct RedisTls {
    pub port: u16,
    /// The server's certificate, which is its own CA.
    pub ca_file: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RedisTls {
    pub fn start() -> RedisTls {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let port = super::free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--tls-port",
                &port.to_string(),
            ])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&cert)
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (Debian package redis-server)");
        super::wait_for_listener(port, "redis-server");
        RedisTls {
            port,
            ca_file: cert,
            child,
            _dir: dir,
        }
    }
}

impl Drop for RedisTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
