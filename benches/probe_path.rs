//! The probe path's own cost: request parse → target check → single-flight → limits → prober →
//! exposition, as `/probe` runs it but without the HTTP listener. The targets are servers of
//! this process on loopback, and `connect_floor` measures a bare loopback connect, so what a
//! probe adds to the network is `tcp_connect` minus `connect_floor` (benches/README.md).
//! `https_2xx` (HTTP/1.1 over TLS) and `http3_2xx` (QUIC) use the same certificate, trusted
//! through `ca_file`, so they show what QUIC costs next to TCP + TLS.
//!
//! The query_response probers side by side: `tcp_query`, `unix_query` and `websocket_query` run
//! the same dialogue (the server greets, the probe sends PING and expects PONG) over TCP, a unix
//! socket and websocket messages; `unix_connect` and `websocket_connect` are their bare
//! connections (websocket: the HTTP upgrade included).
//!
//! `probe_path_concurrent` runs each of them 64 at a time (per-probe cost under load).
//!
//! Run: `cargo bench --bench probe_path`.

#[allow(dead_code)]
#[path = "../tests/support/certs.rs"]
mod certs;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::BodyExt;
use siembox_exporter::{App, AppOptions, Config};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The modules, with `{ca}` the test CA's file.
const CONFIG: &str = "
modules:
  http_2xx:
    prober: http
    timeout: 5s
  tcp_connect:
    prober: tcp
    timeout: 5s
  https_2xx:
    prober: http
    timeout: 5s
    http:
      tls_config: {ca_file: '{ca}'}
  http3_2xx:
    prober: http
    timeout: 5s
    http:
      enable_http3: true
      enable_http2: false
      tls_config: {ca_file: '{ca}'}
  tcp_query:
    prober: tcp
    timeout: 5s
    tcp:
      query_response: [{expect: \"^HELLO\"}, {send: PING}, {expect: \"^PONG\"}]
  unix_connect:
    prober: unix
    timeout: 5s
  unix_query:
    prober: unix
    timeout: 5s
    unix:
      query_response: [{expect: \"^HELLO\"}, {send: PING}, {expect: \"^PONG\"}]
  websocket_connect:
    prober: websocket
    timeout: 5s
  websocket_query:
    prober: websocket
    timeout: 5s
    websocket:
      query_response: [{expect: \"^HELLO\"}, {send: PING}, {expect: \"^PONG\"}]
";

/// Greets with `HELLO`, answers each `PING` line with `PONG`, over any byte stream.
async fn ping_lines<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(s: S) {
    use tokio::io::AsyncBufReadExt;
    let (r, mut w) = tokio::io::split(s);
    if w.write_all(b"HELLO\n").await.is_err() {
        return;
    }
    let mut lines = tokio::io::BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line == "PING" && w.write_all(b"PONG\n").await.is_err() {
            return;
        }
    }
}

async fn ping_tcp_server(ip: &str) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(ping_lines(s));
        }
    });
    addr
}

async fn ping_unix_server(path: std::path::PathBuf) {
    let l = tokio::net::UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(ping_lines(s));
        }
    });
}

/// The same dialogue in websocket messages.
async fn ping_websocket_server() -> SocketAddr {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                if ws.send(Message::text("HELLO")).await.is_err() {
                    return;
                }
                while let Some(Ok(m)) = ws.next().await {
                    if m.to_text().is_ok_and(|t| t == "PING")
                        && ws.send(Message::text("PONG")).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Accepts and closes at once (what a tcp_connect probe needs).
async fn closing_server(ip: &str) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    addr
}

/// Answers every request with the same small HTTP/1.1 response, then closes; over TLS when
/// `tls` is given.
async fn http_server(tls: Option<tokio_rustls::TlsAcceptor>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(mut s) = acceptor.accept(s).await {
                            answer_once(&mut s).await;
                            // close_notify, as a TLS server ends cleanly.
                            let _ = s.shutdown().await;
                        }
                    }
                    None => answer_once(&mut { s }).await,
                }
            });
        }
    });
    addr
}

async fn answer_once<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S) {
    let mut buf = [0u8; 2048];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        .await;
}

/// Answers every HTTP/3 request with the same small response (quinn + h3 on loopback UDP).
async fn http3_server(leaf: &certs::Leaf) -> SocketAddr {
    let tls =
        quinn::crypto::rustls::QuicServerConfig::try_from(leaf.server_config(&[b"h3"])).unwrap();
    let config = quinn::ServerConfig::with_crypto(std::sync::Arc::new(tls));
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let Ok(mut h3) =
                    h3::server::Connection::<_, bytes::Bytes>::new(h3_quinn::Connection::new(conn))
                        .await
                else {
                    return;
                };
                while let Ok(Some(resolver)) = h3.accept().await {
                    tokio::spawn(async move {
                        let Ok((_, mut stream)) = resolver.resolve_request().await else {
                            return;
                        };
                        let response = http::Response::builder()
                            .status(200)
                            .header("content-length", "3")
                            .body(())
                            .unwrap();
                        if stream.send_response(response).await.is_ok() {
                            let _ = stream.send_data(bytes::Bytes::from_static(b"ok\n")).await;
                            let _ = stream.finish().await;
                        }
                    });
                }
            });
        }
    });
    addr
}

fn probe_request(module: &str, target: &str) -> hyper::Request<()> {
    hyper::Request::get(format!("/probe?module={module}&target={target}"))
        .header("X-Prometheus-Scrape-Timeout-Seconds", "10")
        .body(())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pki = certs::TestPki::generate();
    let yaml = CONFIG.replace("{ca}", &pki.ca_file.display().to_string());
    let config = Config::from_yaml_str(&yaml, "bench.yml").unwrap();
    let app = rt.block_on(async { App::new(config, None, AppOptions::default()) });
    let tcp_target = rt.block_on(closing_server("127.0.0.1"));
    let http_target = rt.block_on(http_server(None));
    let https_target = rt.block_on(http_server(Some(pki.valid.acceptor(&[b"http/1.1"]))));
    let http3_target = rt.block_on(http3_server(&pki.valid));
    let ping_tcp = rt.block_on(ping_tcp_server("127.0.0.1"));
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ping.sock");
    rt.block_on(ping_unix_server(socket.clone()));
    let ws = rt.block_on(ping_websocket_server());

    let tcp = probe_request("tcp_connect", &tcp_target.to_string());
    let http = probe_request("http_2xx", &format!("http://{http_target}/"));
    let https = probe_request("https_2xx", &format!("https://{https_target}/"));
    let http3 = probe_request("http3_2xx", &format!("https://{http3_target}/"));
    let socket = socket.display().to_string();
    let ws_url = format!("ws://{ws}/");
    let query_probes = [
        (
            "tcp_query",
            probe_request("tcp_query", &ping_tcp.to_string()),
        ),
        ("unix_connect", probe_request("unix_connect", &socket)),
        ("unix_query", probe_request("unix_query", &socket)),
        (
            "websocket_connect",
            probe_request("websocket_connect", &ws_url),
        ),
        ("websocket_query", probe_request("websocket_query", &ws_url)),
    ];
    // A probe that failed would make the figures meaningless.
    for req in [&tcp, &http, &https, &http3]
        .into_iter()
        .chain(query_probes.iter().map(|(_, r)| r))
    {
        let body = rt.block_on(async {
            let resp = siembox_exporter::server::probe_response(&app, req).await;
            resp.into_body().collect().await.unwrap().to_bytes()
        });
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("probe_success 1"), "{}: {body}", req.uri());
    }

    let mut group = c.benchmark_group("probe_path");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("connect_floor", |b| {
        b.to_async(&rt)
            .iter(|| async { TcpStream::connect(tcp_target).await.unwrap() })
    });
    group.bench_function("tcp_connect", |b| {
        b.to_async(&rt)
            .iter(|| siembox_exporter::server::probe_response(&app, &tcp))
    });
    group.bench_function("http_2xx", |b| {
        b.to_async(&rt)
            .iter(|| siembox_exporter::server::probe_response(&app, &http))
    });
    group.bench_function("https_2xx", |b| {
        b.to_async(&rt)
            .iter(|| siembox_exporter::server::probe_response(&app, &https))
    });
    group.bench_function("http3_2xx", |b| {
        b.to_async(&rt)
            .iter(|| siembox_exporter::server::probe_response(&app, &http3))
    });
    for (name, req) in &query_probes {
        group.bench_function(*name, |b| {
            b.to_async(&rt)
                .iter(|| siembox_exporter::server::probe_response(&app, req))
        });
    }
    group.finish();

    // Under load: CONCURRENT probes of one module at once, each to a target of its own (the
    // same target would share one probe: single flight), tcp on 127.0.0.1 … 127.0.0.64, unix
    // through a symlink each, the URL probers by path; the figure is per probe (throughput),
    // next to the one-at-a-time cost above.
    let ips: Vec<String> = (1..=CONCURRENT).map(|i| format!("127.0.0.{i}")).collect();
    let many = |module: &str, targets: Vec<String>| -> (String, Vec<hyper::Request<()>>) {
        let reqs = targets.iter().map(|t| probe_request(module, t)).collect();
        (module.to_string(), reqs)
    };
    let by_path =
        |base: &str| -> Vec<String> { (0..CONCURRENT).map(|i| format!("{base}p{i}")).collect() };
    let closing: Vec<String> = ips
        .iter()
        .map(|ip| rt.block_on(closing_server(ip)).to_string())
        .collect();
    let pinging: Vec<String> = ips
        .iter()
        .map(|ip| rt.block_on(ping_tcp_server(ip)).to_string())
        .collect();
    let links: Vec<String> = (0..CONCURRENT)
        .map(|i| {
            let link = dir.path().join(format!("ping-{i}.sock"));
            std::os::unix::fs::symlink(&socket, &link).unwrap();
            link.display().to_string()
        })
        .collect();
    let loaded = [
        many("tcp_connect", closing),
        many("http_2xx", by_path(&format!("http://{http_target}/"))),
        many("https_2xx", by_path(&format!("https://{https_target}/"))),
        many("http3_2xx", by_path(&format!("https://{http3_target}/"))),
        many("tcp_query", pinging),
        many("unix_query", links),
        many("websocket_query", by_path(&ws_url)),
    ];
    for (module, reqs) in &loaded {
        for req in reqs {
            let body = rt.block_on(async {
                let resp = siembox_exporter::server::probe_response(&app, req).await;
                resp.into_body().collect().await.unwrap().to_bytes()
            });
            let body = String::from_utf8_lossy(&body);
            assert!(
                body.contains("probe_success 1"),
                "{module} {}: {body}",
                req.uri()
            );
        }
    }
    let mut group = c.benchmark_group("probe_path_concurrent");
    group.throughput(Throughput::Elements(CONCURRENT as u64));
    group.measurement_time(Duration::from_secs(5));
    for (module, reqs) in &loaded {
        group.bench_function(module.as_str(), |b| {
            b.to_async(&rt).iter(|| {
                futures::future::join_all(
                    reqs.iter()
                        .map(|r| siembox_exporter::server::probe_response(&app, r)),
                )
            })
        });
    }
    group.finish();
}

/// Probes in flight at once in the `probe_path_concurrent` group.
const CONCURRENT: usize = 64;

criterion_group!(benches, bench);
criterion_main!(benches);
