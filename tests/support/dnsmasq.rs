//! A real DNS server for tests: dnsmasq (Debian package `dnsmasq-base`) on a free loopback port,
//! answering authoritatively (with an SOA whose serial we know) for two small zones:
//!
//! | name | records |
//! | --- | --- |
//! | `example.test.` | SOA (serial [`SOA_SERIAL`]), NS `ns.example.test.`, MX `10 mail.example.test.`, TXT `"v=spf1 -all"` |
//! | `www.example.test.` | A 127.0.0.2, A 127.0.0.3 |
//! | `www.prometheus.io.` | A 127.0.0.1 (the record blackbox's example.yml validates) |
//!
//! Every TTL is 300. Other names in the zones are NXDOMAIN; names outside them are REFUSED.
//! dnsmasq is chosen over a hickory-server dev-dependency because it is a stock, independent
//! server (what the prober meets in production) and costs no extra compile time.

use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SOA_SERIAL: u32 = 2024010101;

pub struct Dnsmasq {
    pub port: u16,
    child: Child,
    log: PathBuf,
}

impl Dnsmasq {
    /// Starts dnsmasq and waits until it accepts TCP connections (it binds UDP first).
    pub fn start() -> Dnsmasq {
        let dir = tempfile::tempdir().unwrap().keep();
        let log = dir.join("dnsmasq.log");
        let port = free_udp_and_tcp_port();
        let child = Command::new("dnsmasq")
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--no-resolv",
                "--no-hosts",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--auth-server=ns.example.test,127.0.0.1",
                "--auth-zone=example.test",
                "--auth-zone=prometheus.io",
                "--auth-soa=2024010101,hostmaster.example.test",
                "--auth-ttl=300",
                "--host-record=www.example.test,127.0.0.2",
                "--host-record=www.example.test,127.0.0.3",
                "--host-record=www.prometheus.io,127.0.0.1",
                "--mx-host=example.test,mail.example.test,10",
                "--txt-record=example.test,v=spf1 -all",
                "--log-queries",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--log-facility={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq runs (install the Debian package dnsmasq-base)");
        let mut server = Dnsmasq { port, child, log };
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("dnsmasq exited with {status}: {}", server.log_text());
            }
            assert!(
                Instant::now() < until,
                "dnsmasq did not listen within 10s: {}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `127.0.0.1:port`, the probe target.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP at the time of the call.
pub fn free_udp_and_tcp_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// DNS over TLS in front of a [`Dnsmasq`] (which has no TLS): a TLS terminator on a free
/// loopback port that forwards each connection to dnsmasq's TCP port. Its certificate is
/// self-signed for `dns.example.test`; `ca_file` is where the test finds it.
pub struct DotFrontend {
    pub port: u16,
    pub ca_file: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DotFrontend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DotFrontend {
    pub async fn start(backend_port: u16) -> DotFrontend {
        use std::sync::Arc;
        let key = rcgen::generate_simple_self_signed(vec!["dns.example.test".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap().keep();
        let ca_file = dir.join("dot-ca.pem");
        std::fs::write(&ca_file, key.cert.pem()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![key.cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut backend) =
                        tokio::net::TcpStream::connect(("127.0.0.1", backend_port)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
                });
            }
        });
        DotFrontend {
            port,
            ca_file,
            task,
        }
    }
}
