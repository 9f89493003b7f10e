//! A real Prometheus server (/usr/bin/prometheus, Debian package `prometheus`) on a free loopback
//! port, with a config and rule files written to a temp dir and its TSDB there too; killed when
//! dropped. Queries go through its HTTP API.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Prometheus {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Prometheus {
    /// Starts Prometheus with `config` (prometheus.yml text; `rule_files` may name files relative
    /// to the temp dir) after copying `rules` into that dir, and waits until it is ready.
    pub async fn start(config: &str, rules: &[PathBuf]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        for r in rules {
            std::fs::copy(r, dir.path().join(r.file_name().unwrap())).unwrap();
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = super::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("/usr/bin/prometheus")
            .current_dir(dir.path())
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("/usr/bin/prometheus runs (apt-get install prometheus)");
        let mut p = Prometheus { port, dir, child };
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", p.log_text());
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && super::get(&p.url("/-/ready"), &[]).await.status == 200
            {
                break;
            }
            assert!(
                Instant::now() < until,
                "prometheus not ready within 20s:\n{}",
                p.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        p
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path; panics unless Prometheus answers `"status": "success"`. Returns `data`.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let r = super::get(&self.url(&format!("{path}?{q}")), &[]).await;
        let v: Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("{path} {params:?}: not JSON ({e}): {}", r.body));
        assert_eq!(v["status"], "success", "{path} {params:?}: {}", r.body);
        v["data"].clone()
    }

    /// An instant query at `time` (unix seconds; now when None). Returns `data.result`
    /// (an array for vectors and matrices, a `[time, "value"]` pair for scalars).
    pub async fn query_at(&self, expr: &str, time: Option<f64>) -> Value {
        let time = time.map(|t| format!("{t:.3}"));
        let mut params = vec![("query", expr)];
        if let Some(t) = &time {
            params.push(("time", t));
        }
        self.api("/api/v1/query", &params).await["result"].clone()
    }

    pub async fn query(&self, expr: &str) -> Value {
        self.query_at(expr, None).await
    }

    /// Whether `result` (from [`Self::query`]) holds at least one sample.
    pub fn has_data(result: &Value) -> bool {
        match result {
            // a vector or matrix: an array of series objects
            Value::Array(a) if a.first().is_some_and(Value::is_object) => true,
            // a scalar or string: [time, "value"]
            Value::Array(a) => a.len() == 2 && a[1].is_string(),
            _ => false,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every panel query of a Grafana dashboard (panels inside rows included), as
/// (`"<title>" (<refId>)`, expression as written, Grafana variables and all).
pub fn dashboard_panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for p in panels.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut panels = Vec::new();
    walk(&dashboard["panels"], &mut panels);
    let mut out = Vec::new();
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push((format!("{} ({})", p["title"], t["refId"]), expr.to_string()));
            }
        }
    }
    out
}
