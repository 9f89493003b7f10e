//! A websocket server for the websocket prober's tests, plain or TLS (wss): greets each client
//! with `Hello, client-42`, answers every text message `m` with `Welcome m`, and keeps the
//! headers of the last upgrade request so a test sees what the prober sent. `Silent` upgrades
//! and then never sends a message.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

pub enum WsMode {
    Greeter,
    Silent,
}

pub struct WsServer {
    pub addr: SocketAddr,
    /// `(name, value)` of every header of the last upgrade request.
    pub last_headers: Arc<Mutex<Vec<(String, String)>>>,
    task: JoinHandle<()>,
}

impl Drop for WsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WsServer {
    pub async fn start(mode: WsMode, tls: Option<tokio_rustls::TlsAcceptor>) -> WsServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let last_headers = Arc::new(Mutex::new(Vec::new()));
        let seen = last_headers.clone();
        let greet = matches!(mode, WsMode::Greeter);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, tls) = (seen.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                serve(s, seen, greet).await;
                            }
                        }
                        None => serve(stream, seen, greet).await,
                    }
                });
            }
        });
        WsServer {
            addr,
            last_headers,
            task,
        }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://localhost:{}/chat", self.addr.port())
    }

    pub fn header(&self, name: &str) -> Vec<String> {
        self.last_headers
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

// tungstenite's callback type returns its large error response by value.
#[allow(clippy::result_large_err)]
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    greet: bool,
) {
    use futures::{SinkExt, StreamExt};
    let record = |req: &Request, resp: Response| {
        *seen.lock().unwrap() = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
        return;
    };
    if !greet {
        // Hold the connection open, saying nothing.
        while ws.next().await.is_some() {}
        return;
    }
    if ws.send(Message::text("Hello, client-42")).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(t) = message {
            if ws
                .send(Message::text(format!("Welcome {t}")))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// A TCP server that answers every request with `answer` (an HTTP response that is no
/// upgrade), or, with `None`, reads and never answers.
pub async fn not_upgrading(answer: Option<&'static [u8]>) -> (SocketAddr, JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                if let Some(a) = answer {
                    let _ = s.write_all(a).await;
                }
                // Keep the connection until the client goes.
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (addr, task)
}
