//! Servers for `query_response` dialogues (over TCP, or a unix socket plain or TLS): each greets
//! every connection with a fixed banner, then answers each line it receives with
//! `GOT <hex of the line's bytes>` (and `PING` with `PONG`), so a test sees exactly which bytes
//! a prober sent.

use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

pub struct LineServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for LineServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LineServer {
    pub async fn start(banner: &'static [u8]) -> LineServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer_lines(stream, banner));
            }
        });
        LineServer { addr, task }
    }

    pub fn target(&self) -> String {
        self.addr.to_string()
    }
}

/// The dialogue of every line server: the banner, then one answer per line.
async fn answer_lines<S: AsyncRead + AsyncWrite>(stream: S, banner: &'static [u8]) {
    let (read, mut write) = tokio::io::split(stream);
    if write.write_all(banner).await.is_err() {
        return;
    }
    let mut lines = BufReader::new(read);
    let mut line = Vec::new();
    while matches!(lines.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let answer = if body == b"PING" {
            "PONG\n".to_string()
        } else {
            let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
            format!("GOT {hex}\n")
        };
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        line.clear();
    }
}

/// The line server on a unix socket in a directory of its own, optionally TLS; `silent` accepts
/// connections and never writes a byte (a server that never answers).
pub struct UnixLineServer {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
    task: JoinHandle<()>,
}

impl Drop for UnixLineServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub enum UnixMode {
    Plain,
    Tls(tokio_rustls::TlsAcceptor),
    Silent,
}

impl UnixLineServer {
    pub async fn start(banner: &'static [u8], mode: UnixMode) -> UnixLineServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                match &mode {
                    UnixMode::Plain => {
                        tokio::spawn(answer_lines(stream, banner));
                    }
                    UnixMode::Tls(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                answer_lines(tls, banner).await;
                            }
                        });
                    }
                    UnixMode::Silent => held.push(stream),
                }
            }
        });
        UnixLineServer {
            path,
            _dir: dir,
            task,
        }
    }

    pub fn target(&self) -> String {
        self.path.display().to_string()
    }
}
