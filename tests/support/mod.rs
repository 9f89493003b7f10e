//! Shared test helpers: the exporter in-process on a free loopback port, a small HTTP client,
//! free ports. Helpers that start real servers (sshd, nginx, DNS, …) live in sibling modules.
#![allow(dead_code)]

pub mod binary;
pub mod blackbox;
pub mod certs;
pub mod child_server;
pub mod chromium;
pub mod compat;
pub mod db;
pub mod dnsmasq;
pub mod ferretdb;
pub mod grpc_server;
pub mod h3_server;
pub mod http_server;
pub mod line_server;
pub mod prometheus;
pub mod redis_server;
pub mod redis_tls;
pub mod script_server;
pub mod slow_server;
pub mod tools;
pub mod websocket_server;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use siembox_exporter::server::web_config::WebSecurity;
use siembox_exporter::{App, AppOptions, Config};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A free TCP port on 127.0.0.1 (bound and released; fine for tests that start a server at once).
/// Never the same port twice in one test process: two tests starting servers at the same moment
/// could otherwise both be handed the port the kernel just released, and the second server,
/// unable to bind, would leave its test talking to the first test's server.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !handed.contains(&port) {
            handed.push(port);
            return port;
        }
    }
}

/// Blocks until something accepts TCP connections on 127.0.0.1:`port`; panics after 10 s naming
/// `what` (for servers the tests start as child processes).
pub fn wait_for_listener(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The exporter running in this process; stops when dropped.
pub struct Exporter {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Exporter {
    /// Starts on a config given as YAML text (written to a temp file, so reloads work).
    pub async fn start(yaml: &str) -> Exporter {
        let dir = tempfile::tempdir().unwrap().keep();
        let path = dir.join("siembox.yml");
        std::fs::write(&path, yaml).unwrap();
        Self::start_file(path).await
    }

    pub async fn start_file(path: PathBuf) -> Exporter {
        let config =
            Config::load_file(&path).unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
        let app = App::new(config, Some(path), AppOptions::default());
        Self::start_app(app).await
    }

    pub async fn start_app(app: Arc<App>) -> Exporter {
        Self::start_secured(app, None).await
    }

    /// Starts with TLS / basic auth from a web config.
    pub async fn start_secured(app: Arc<App>, web: Option<Arc<WebSecurity>>) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let served = app.clone();
        tokio::spawn(async move {
            siembox_exporter::server::serve_with(served, listener, web, async {
                let _ = rx.await;
            })
            .await;
        });
        Exporter {
            addr,
            app,
            stop: Some(tx),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// GET `/probe?module=…&target=…` and return status and body.
    pub async fn probe(&self, module: &str, target: &str) -> (u16, String) {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("module", module)
            .append_pair("target", target)
            .finish();
        let r = get(&self.url(&format!("/probe?{q}")), &[]).await;
        (r.status, r.body)
    }

    /// GET `/probe?module=…&target=…&debug=true`: the probe's log, metrics and module.
    pub async fn debug_probe(&self, module: &str, target: &str) -> String {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("module", module)
            .append_pair("target", target)
            .append_pair("debug", "true")
            .finish();
        self.get(&format!("/probe?{q}")).await.body
    }

    pub async fn get(&self, path_and_query: &str) -> Response {
        get(&self.url(path_and_query), &[]).await
    }
}

pub struct Response {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Response {
    request("GET", url, headers).await
}

pub async fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(60), client.request(req))
        .await
        .expect("request answered within 60s")
        .expect("request succeeds");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The `failure_reason=` line of a probe's debug output.
pub fn failure_reason(debug: &str) -> Option<&str> {
    debug
        .lines()
        .find_map(|l| l.strip_prefix("failure_reason="))
}

/// The value of an unlabelled sample (or the first sample with `labels` inside its braces).
pub fn metric_value(body: &str, name: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            return None;
        }
        l.rsplit(' ').next()?.parse().ok()
    })
}

/// The value of the sample whose label set contains every `name="value"` pair given.
pub fn metric_value_with(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| set.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.parse().ok())?
    })
}

/// Metric family names present in an exposition.
pub fn metric_names(body: &str) -> std::collections::BTreeSet<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}
pub mod sshd;
