//! A real HTTP(S) server in the test process, on a free loopback port, with routes that exercise
//! the http prober; it records every request it receives.
//!
//! Routes: `/` (200 "hello world\n"), `/status/<code>`, `/redirect/<n>` (302 to `/redirect/<n-1>`,
//! 200 at 0), `/goto/<host:port/path>` (302 to that http:// URL), `/login` (302 setting a cookie
//! that `/needs-cookie` requires), `/echo` (method, headers and body back as text), `/gzip` (gzip-encoded text), `/br` (the same text brotli-encoded),
//! `/big/<n>` (n bytes), `/headers` (X-Test, two X-Multi values, Last-Modified), `/token` (an OAuth2 token endpoint),
//! `/download` (a download page that allows cross-origin use from example.com, what blackbox's
//! `http_2xx_example` checks for), `/example.json` (the JSON body its `http_json_cel_match` expects).

use super::certs::Leaf;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub version: String,
    /// Lower-case names; with HTTP/2 the `:authority` shows as `host`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The text `/gzip` serves before compression (1,600 bytes).
pub const GZIP_TEXT: &str = "hello gzip world";
pub const GZIP_REPEAT: usize = 100;
/// `/headers` Last-Modified, and its unix time.
pub const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
pub const LAST_MODIFIED_UNIX: f64 = 1_445_412_480.0;

/// What `/token` expects and grants.
pub const OAUTH2_BASIC: &str = "Basic Y2xpZW50LWE6c2VjK3JldA==";
pub const OAUTH2_TOKEN: &str = "tok-oauth-xyz";

pub struct HttpServer {
    pub addr: SocketAddr,
    pub tls: bool,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpServer {
    /// Plain HTTP/1.1.
    pub async fn start() -> HttpServer {
        Self::spawn(None).await
    }

    /// HTTPS with `leaf`; ALPN offers h2 and http/1.1 when `h2`, else http/1.1 only.
    pub async fn start_tls(leaf: &Leaf, h2: bool) -> HttpServer {
        let alpn: &[&[u8]] = if h2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        Self::spawn(Some(leaf.acceptor(alpn))).await
    }

    async fn spawn(tls: Option<tokio_rustls::TlsAcceptor>) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let is_tls = tls.is_some();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let seen = seen.clone();
                        async move { Ok::<_, std::convert::Infallible>(route(req, &seen).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(s), service).await;
                            }
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        HttpServer {
            addr,
            tls: is_tls,
            requests,
            task,
        }
    }

    /// `http://127.0.0.1:port/path` (https:// for a TLS server).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
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

async fn route(req: Request<Incoming>, seen: &Mutex<Vec<Recorded>>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    respond(Request::from_parts(parts, body), seen)
}

/// Records `req` and answers it by its path (the routes above); the HTTP/3 server shares them.
pub fn respond(req: Request<Bytes>, seen: &Mutex<Vec<Recorded>>) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let version = format!("{:?}", req.version());
    let mut headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if let Some(a) = req.uri().authority() {
        if !headers.iter().any(|(k, _)| k == "host") {
            headers.push(("host".into(), a.to_string()));
        }
    }
    let body = req.into_body().to_vec();
    let rec = Recorded {
        method,
        path: path.clone(),
        version,
        headers,
        body,
    };
    seen.lock().push(rec.clone());

    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [""] => text(200, "hello world\n"),
        ["status", code] => {
            let code: u16 = code.parse().unwrap_or(500);
            text(code, &format!("status {code}\n"))
        }
        ["redirect", n] => {
            let n: u32 = n.parse().unwrap_or(0);
            if n == 0 {
                text(200, "redirected home\n")
            } else {
                Response::builder()
                    .status(302)
                    .header("Location", format!("/redirect/{}", n - 1))
                    .body(Full::new(Bytes::from_static(b"moving\n")))
                    .unwrap()
            }
        }
        ["goto", rest @ ..] => Response::builder()
            .status(302)
            .header("Location", format!("http://{}", rest.join("/")))
            .body(Full::new(Bytes::from_static(b"elsewhere\n")))
            .unwrap(),
        ["login"] => Response::builder()
            .status(302)
            .header("Location", "/needs-cookie")
            .header("Set-Cookie", "session=s1; Path=/; HttpOnly")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        ["needs-cookie"] => match rec.header("cookie") {
            Some("session=s1") => text(200, "welcome back\n"),
            _ => text(403, "no session\n"),
        },
        ["echo"] => {
            let mut out = format!(
                "method={}\nbody={}\n",
                rec.method,
                String::from_utf8_lossy(&rec.body)
            );
            for (k, v) in &rec.headers {
                out.push_str(&format!("{k}: {v}\n"));
            }
            text(200, &out)
        }
        ["gzip"] => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(GZIP_TEXT.repeat(GZIP_REPEAT).as_bytes())
                .unwrap();
            let gz = e.finish().unwrap();
            Response::builder()
                .header("Content-Encoding", "gzip")
                .header("Content-Length", gz.len())
                .body(Full::new(Bytes::from(gz)))
                .unwrap()
        }
        ["br"] => {
            let br = brotli_stored(GZIP_TEXT.repeat(GZIP_REPEAT).as_bytes());
            Response::builder()
                .header("Content-Encoding", "br")
                .header("Content-Length", br.len())
                .body(Full::new(Bytes::from(br)))
                .unwrap()
        }
        ["json", "health"] => json(HEALTHY_JSON.to_string()),
        ["json", "degraded"] => json(DEGRADED_JSON.to_string()),
        ["json", "not-json"] => text(200, "<html>ok</html>\n"),
        ["json", "items", n] => json(json_items(n.parse().unwrap_or(0))),
        ["big", n] => {
            let n: usize = n.parse().unwrap_or(0);
            text(200, &"x".repeat(n))
        }
        ["token"] => {
            // OAuth2 client credentials for client "client-a" with secret "sec ret".
            let form = String::from_utf8_lossy(&rec.body).into_owned();
            let auth_ok = rec.header("authorization") == Some(OAUTH2_BASIC);
            if auth_ok && form.contains("grant_type=client_credentials") {
                Response::builder()
                    .header("Content-Type", "application/json")
                    .body(Full::new(Bytes::from(format!(
                        "{{\"access_token\":\"{OAUTH2_TOKEN}\",\"token_type\":\"Bearer\",\"expires_in\":3600}}"
                    ))))
                    .unwrap()
            } else {
                text(401, "{\"error\":\"invalid_client\"}")
            }
        }
        ["example.json"] => Response::builder()
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{ "foo": "bar", "baz": "qux" }"#,
            )))
            .unwrap(),
        ["download"] => Response::builder()
            .header("Access-Control-Allow-Origin", "example.com")
            .body(Full::new(Bytes::from_static(
                b"Download the latest version here\n",
            )))
            .unwrap(),
        ["headers"] => Response::builder()
            .header("X-Test", "alpha")
            .header("X-Multi", "one")
            .header("X-Multi", "two")
            .header("Last-Modified", LAST_MODIFIED)
            .body(Full::new(Bytes::from_static(b"headers\n")))
            .unwrap(),
        _ => text(404, "not found\n"),
    }
}

/// `/json/health`: a health document whose checks are all up.
pub const HEALTHY_JSON: &str =
    r#"{"status":"ok","version":3,"checks":[{"name":"db","up":true},{"name":"cache","up":true}]}"#;
/// `/json/degraded`: the same document with one check down.
pub const DEGRADED_JSON: &str = r#"{"status":"degraded","version":3,"checks":[{"name":"db","up":true},{"name":"cache","up":false}]}"#;

/// `/json/items/N`: `{"count":N,"items":[{"id":0,"up":true},…]}`, N items (a large body for big N).
pub fn json_items(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"id":{i},"up":true,"name":"item-{i}"}}"#))
        .collect();
    format!(r#"{{"count":{n},"items":[{}]}}"#, items.join(","))
}

fn json(body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn text(status: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("Content-Type", "text/plain")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// A listener that accepts connections and never answers (held open until the test ends).
pub async fn start_silent() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

/// A minimal forward proxy: CONNECT tunnels, and absolute-form plain requests forwarded as they
/// came. It records each request line (and Proxy-Authorization) it receives.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProxy {
    pub async fn start() -> TestProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let line = text.lines().next().unwrap_or("").to_string();
                    let mut entry = line.clone();
                    if let Some(a) = text
                        .lines()
                        .find(|l| l.to_ascii_lowercase().starts_with("proxy-authorization:"))
                    {
                        entry.push_str(" | ");
                        entry.push_str(a);
                    }
                    log.lock().push(entry);
                    let mut words = line.split(' ');
                    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    let authority = if method == "CONNECT" {
                        target.to_string()
                    } else {
                        let rest = target.trim_start_matches("http://");
                        rest.split('/').next().unwrap_or("").to_string()
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(&authority).await else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    if method == "CONNECT" {
                        let _ = client
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .await;
                    } else if upstream.write_all(&head).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        TestProxy { addr, seen, task }
    }
}

/// `data` as a brotli stream (RFC 7932) of uncompressed meta-blocks: a valid stream any decoder
/// reads, made without a brotli encoder. Bits are packed least significant first.
fn brotli_stored(data: &[u8]) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u64, width: u32) {
            self.acc |= value << self.n;
            self.n += width;
        }
        /// Pads to a byte boundary with zero bits and flushes.
        fn align(&mut self) {
            let bytes = self.n.div_ceil(8) as usize;
            self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
            self.acc = 0;
            self.n = 0;
        }
    }
    let mut b = Bits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    b.put(0, 1); // WBITS = 16
    for chunk in data.chunks(1 << 16) {
        b.put(0, 1); // ISLAST = 0
        b.put(0, 2); // MNIBBLES = 4
        b.put(chunk.len() as u64 - 1, 16); // MLEN - 1
        b.put(1, 1); // ISUNCOMPRESSED
        b.align();
        b.out.extend_from_slice(chunk);
    }
    b.put(1, 1); // ISLAST
    b.put(1, 1); // ISLASTEMPTY
    b.align();
    b.out
}

/// A plain HTTP/1.1 server on std threads that answers with bodies no prober should hold:
/// `/bomb` (256 MiB of zeros gzip-compressed to about 256 KiB, `Content-Encoding: gzip`),
/// `/endless` (a chunked body of `x` that never ends; it stops when the client goes away) and
/// `/small` ("hello\n"). It counts the bytes it sent.
pub struct HostileServer {
    pub addr: SocketAddr,
    pub bomb_len: usize,
    pub sent: Arc<std::sync::atomic::AtomicU64>,
}

/// What `/bomb` decodes to.
pub const BOMB_DECODED: usize = 256 << 20;

impl HostileServer {
    pub fn start() -> HostileServer {
        use std::io::{BufRead, BufReader};
        use std::sync::atomic::Ordering::Relaxed;
        let bomb = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..BOMB_DECODED >> 20 {
                e.write_all(&zeros).unwrap();
            }
            Arc::new(e.finish().unwrap())
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (counter, body) = (sent.clone(), bomb.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let (sent, bomb) = (counter.clone(), body.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    let mut send = |data: &[u8]| {
                        sent.fetch_add(data.len() as u64, Relaxed);
                        stream.write_all(data)
                    };
                    let _ = match path.as_str() {
                        "/bomb" => send(
                            format!("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", bomb.len())
                                .as_bytes(),
                        )
                        .and_then(|_| send(&bomb)),
                        "/endless" => send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                            .and_then(|_| {
                                let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                                loop {
                                    send(chunk.as_bytes())?;
                                }
                            }),
                        _ => send(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"),
                    };
                });
            }
        });
        HostileServer {
            addr,
            bomb_len: bomb.len(),
            sent,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}
