//! The probe path's own cost: request parse → target check → single-flight → limits → prober →
//! exposition, as `/probe` runs it but without the HTTP listener. The targets are servers of
//! this process on loopback, and `connect_floor` measures a bare loopback connect, so what a
//! probe adds to the network is `tcp_connect` minus `connect_floor` (benches/README.md).
//! `https_2xx` (HTTP/1.1 over TLS) and `http3_2xx` (QUIC) use the same certificate, trusted
//! through `ca_file`, so they show what QUIC costs next to TCP + TLS.
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
";

/// Accepts and closes at once (what a tcp_connect probe needs).
async fn closing_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
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
    let tcp_target = rt.block_on(closing_server());
    let http_target = rt.block_on(http_server(None));
    let https_target = rt.block_on(http_server(Some(pki.valid.acceptor(&[b"http/1.1"]))));
    let http3_target = rt.block_on(http3_server(&pki.valid));

    let tcp = probe_request("tcp_connect", &tcp_target.to_string());
    let http = probe_request("http_2xx", &format!("http://{http_target}/"));
    let https = probe_request("https_2xx", &format!("https://{https_target}/"));
    let http3 = probe_request("http3_2xx", &format!("https://{http3_target}/"));
    // A probe that failed would make the figures meaningless.
    for req in [&tcp, &http, &https, &http3] {
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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
