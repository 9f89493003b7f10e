//! blackbox_exporter, run as the reference for compatibility tests: 0.28 (the version we are a
//! drop-in for, built by scripts/go-tools) and Debian's 0.23 (where an older release adds a case).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Blackbox {
    child: Child,
    pub port: u16,
    pub version: Version,
}

impl Drop for Blackbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The releases the tests compare against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// blackbox_exporter 0.28.0, from the Go module proxy (scripts/go-tools).
    V0_28,
    /// Debian's package (0.23.0 on bookworm).
    Debian,
}

impl Version {
    pub const ALL: [Version; 2] = [Version::V0_28, Version::Debian];

    pub fn binary(self) -> PathBuf {
        match self {
            Version::V0_28 => super::tools::go_tool("blackbox_exporter-0.28.0"),
            Version::Debian => {
                let p = Path::new("/usr/bin/prometheus-blackbox-exporter");
                assert!(p.exists(), "Debian's blackbox_exporter is not installed: run scripts/test-prerequisites (package prometheus-blackbox-exporter)");
                p.to_path_buf()
            }
        }
    }
}

impl Version {
    /// `--config.check` on `config`: `Err` with blackbox's error text when it rejects the file.
    pub fn check_config(self, config: &Path) -> Result<(), String> {
        let out = Command::new(self.binary())
            .arg("--config.check")
            .arg(format!("--config.file={}", config.display()))
            .output()
            .expect("blackbox_exporter runs");
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Blackbox {
    /// Starts blackbox_exporter 0.28 on a free port with `config` and waits until it answers.
    pub async fn start(config: &Path) -> Blackbox {
        Self::start_version(Version::V0_28, config).await
    }

    /// Starts the given release on a free port with `config` and waits until it answers.
    pub async fn start_version(version: Version, config: &Path) -> Blackbox {
        Self::start_with_args(version, config, &[]).await
    }

    /// Starts the given release with extra flags (e.g. `--config.enable-auto-reload`).
    pub async fn start_with_args(version: Version, config: &Path, extra: &[&str]) -> Blackbox {
        let port = super::free_port();
        let child = Command::new(version.binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=error")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("blackbox_exporter starts");
        let bb = Blackbox {
            child,
            port,
            version,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return bb;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("blackbox_exporter {version:?} did not start listening on {port}");
    }

    /// GET `path_and_query` as written (no encoding of ours).
    pub async fn get(&self, path_and_query: &str) -> super::Response {
        super::get(
            &format!("http://127.0.0.1:{}{path_and_query}", self.port),
            &[],
        )
        .await
    }

    pub async fn probe(&self, module: &str, target: &str) -> String {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("module", module)
            .append_pair("target", target)
            .finish();
        super::get(
            &format!("http://127.0.0.1:{}/probe?{q}", self.port),
            &[("X-Prometheus-Scrape-Timeout-Seconds", "5")],
        )
        .await
        .body
    }
}
