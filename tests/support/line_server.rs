//! A TCP server for `query_response` dialogues: greets every connection with a fixed banner, then
//! answers each line it receives with `GOT <hex of the line's bytes>`, so a test sees exactly
//! which bytes a prober sent.

use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
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
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    if write.write_all(banner).await.is_err() {
                        return;
                    }
                    let mut lines = BufReader::new(read);
                    let mut line = Vec::new();
                    while matches!(lines.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
                        let body = line.strip_suffix(b"\n").unwrap_or(&line);
                        let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
                        if write
                            .write_all(format!("GOT {hex}\n").as_bytes())
                            .await
                            .is_err()
                        {
                            return;
                        }
                        line.clear();
                    }
                });
            }
        });
        LineServer { addr, task }
    }

    pub fn target(&self) -> String {
        self.addr.to_string()
    }
}
