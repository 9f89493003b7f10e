//! Debian's blackbox_exporter, run as the reference for compatibility tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Blackbox {
    child: Child,
    pub port: u16,
}

impl Drop for Blackbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> &'static str {
    for p in [
        "/usr/bin/prometheus-blackbox-exporter",
        "/usr/local/bin/blackbox_exporter",
    ] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("blackbox_exporter is not installed: run scripts/test-prerequisites (Debian package prometheus-blackbox-exporter)");
}

impl Blackbox {
    /// Starts blackbox_exporter on a free port with `config` and waits until it answers.
    pub async fn start(config: &Path) -> Blackbox {
        let port = super::free_port();
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("blackbox_exporter starts");
        let bb = Blackbox { child, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return bb;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("blackbox_exporter did not start listening on {port}");
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
