//! A real HTTP/3 server (QUIC on loopback UDP) in the test process, with the routes of
//! `http_server` (`/`, `/status/<code>`, `/redirect/<n>`, `/headers`, `/echo`, …); it records
//! every request it receives. Also a UDP socket that never answers.

use super::certs::Leaf;
use super::http_server::{respond, Recorded};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

pub struct H3Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    endpoint: quinn::Endpoint,
    task: JoinHandle<()>,
}

impl Drop for H3Server {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"");
        self.task.abort();
    }
}

impl H3Server {
    /// Serves HTTP/3 on 127.0.0.1 with `leaf` (ALPN h3).
    pub async fn start(leaf: &Leaf) -> H3Server {
        let tls = quinn::crypto::rustls::QuicServerConfig::try_from(leaf.server_config(&[b"h3"]))
            .unwrap();
        let config = quinn::ServerConfig::with_crypto(Arc::new(tls));
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = endpoint.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let accepting = endpoint.clone();
        let task = tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = incoming.await {
                        serve(conn, seen).await;
                    }
                });
            }
        });
        H3Server {
            addr,
            requests,
            endpoint,
            task,
        }
    }

    /// `https://127.0.0.1:port/path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().clone()
    }

    pub fn last_request(&self) -> Recorded {
        self.requests
            .lock()
            .last()
            .cloned()
            .expect("the server received a request")
    }
}

async fn serve(conn: quinn::Connection, seen: Arc<Mutex<Vec<Recorded>>>) {
    let Ok(mut h3) = h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await
    else {
        return;
    };
    while let Ok(Some(resolver)) = h3.accept().await {
        let seen = seen.clone();
        tokio::spawn(async move {
            let Ok((req, mut stream)) = resolver.resolve_request().await else {
                return;
            };
            let mut body = BytesMut::new();
            while let Ok(Some(mut chunk)) = stream.recv_data().await {
                body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
            }
            let (parts, ()) = req.into_parts();
            let response = respond(http::Request::from_parts(parts, body.freeze()), &seen);
            let (parts, full) = response.into_parts();
            let data = full
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if stream
                .send_response(http::Response::from_parts(parts, ()))
                .await
                .is_err()
            {
                return;
            }
            if !data.is_empty() {
                let _ = stream.send_data(data).await;
            }
            let _ = stream.finish().await;
        });
    }
}

/// A UDP socket on 127.0.0.1 that reads every datagram and never answers.
pub async fn start_silent_udp() -> (SocketAddr, JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while socket.recv_from(&mut buf).await.is_ok() {}
    });
    (addr, task)
}
