//! A slow TCP target of the tests' own: it accepts, waits `delay`, writes `READY\n` and then
//! waits for the client to close. It counts connections, and the connections in their slow
//! phase (accept → READY) at once: a probe holds its limit slot over that whole phase, so the
//! concurrency seen here can never exceed the limit.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Default)]
pub struct Counts {
    pub accepted: AtomicUsize,
    pub active: AtomicUsize,
    pub max_active: AtomicUsize,
}

pub struct SlowServer {
    pub addr: std::net::SocketAddr,
    pub counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SlowServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SlowServer {
    pub async fn start(delay: Duration) -> SlowServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    continue;
                };
                c.accepted.fetch_add(1, SeqCst);
                let now = c.active.fetch_add(1, SeqCst) + 1;
                c.max_active.fetch_max(now, SeqCst);
                let c = c.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    c.active.fetch_sub(1, SeqCst);
                    let _ = sock.write_all(b"READY\n").await;
                    let mut buf = [0u8; 64];
                    let _ =
                        tokio::time::timeout(Duration::from_secs(30), sock.read(&mut buf)).await;
                });
            }
        });
        SlowServer { addr, counts, task }
    }

    pub fn target(&self) -> String {
        self.addr.to_string()
    }
    pub fn accepted(&self) -> usize {
        self.counts.accepted.load(SeqCst)
    }
    pub fn max_active(&self) -> usize {
        self.counts.max_active.load(SeqCst)
    }
}

/// The resident set size of this process in bytes, from /proc/self/status.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}
