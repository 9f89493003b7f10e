//! A gRPC health server for tests: hyper's HTTP/2 server answering `grpc.health.v1.Health/Check`
//! as grpc-go's health service does: the configured status of the asked service with
//! `grpc-status: 0` in the trailers, or a trailers-only `grpc-status: 5` (NOT_FOUND) for a
//! service it does not know. Plain h2c, or TLS with ALPN h2. Its protobuf handling is written
//! separately from the prober's on purpose, so one cannot hide a bug of the other.

use bytes::{Buf, Bytes};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

pub const SERVING: u8 = 1;
pub const NOT_SERVING: u8 = 2;

type Body = BoxBody<Bytes, Infallible>;

pub struct GrpcHealthServer {
    pub addr: SocketAddr,
    /// Request headers of every call received, in order.
    pub requests: Arc<Mutex<Vec<HeaderMap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GrpcHealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GrpcHealthServer {
    /// Serves h2c; `statuses` maps service names ("" is the whole server) to serving status.
    pub async fn start(statuses: &[(&str, u8)]) -> GrpcHealthServer {
        Self::start_with(statuses, None).await
    }

    /// Serves over TLS (ALPN h2) with the given acceptor.
    pub async fn start_tls(
        statuses: &[(&str, u8)],
        tls: tokio_rustls::TlsAcceptor,
    ) -> GrpcHealthServer {
        Self::start_with(statuses, Some(tls)).await
    }

    async fn start_with(
        statuses: &[(&str, u8)],
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> GrpcHealthServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let statuses: Arc<HashMap<String, u8>> = Arc::new(
            statuses
                .iter()
                .map(|(k, v)| ((*k).to_string(), *v))
                .collect(),
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let statuses = statuses.clone();
                let seen = seen.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let statuses = statuses.clone();
                        let seen = seen.clone();
                        async move { Ok::<_, Infallible>(answer(req, &statuses, &seen).await) }
                    });
                    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        GrpcHealthServer {
            addr,
            requests,
            task,
        }
    }

    pub fn target(&self) -> String {
        self.addr.to_string()
    }
}

async fn answer(
    req: Request<Incoming>,
    statuses: &HashMap<String, u8>,
    seen: &Mutex<Vec<HeaderMap>>,
) -> Response<Body> {
    seen.lock().unwrap().push(req.headers().clone());
    if req.uri().path() != "/grpc.health.v1.Health/Check" {
        return trailers_only(12, "unknown method");
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let Some(service) = request_service(body) else {
        return trailers_only(13, "malformed request");
    };
    let Some(status) = statuses.get(&service) else {
        return trailers_only(5, "unknown service");
    };
    // HealthCheckResponse { status = 1 (varint) }, framed.
    let message = Bytes::from(vec![0, 0, 0, 0, 2, 0x08, *status]);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let frames = vec![Ok(Frame::data(message)), Ok(Frame::trailers(trailers))];
    Response::builder()
        .header("content-type", "application/grpc")
        .body(StreamBody::new(futures::stream::iter(frames)).boxed())
        .unwrap()
}

fn trailers_only(code: u32, message: &str) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", code.to_string())
        .header("grpc-message", message.replace(' ', "%20"))
        // An empty body ends the stream on the HEADERS frame: a true trailers-only answer.
        .body(Empty::new().boxed())
        .unwrap()
}

/// The `service` field of a framed HealthCheckRequest ("" when absent).
fn request_service(mut body: Bytes) -> Option<String> {
    if body.len() < 5 || body.get_u8() != 0 {
        return None;
    }
    let len = body.get_u32() as usize;
    let msg = body.get(..len)?;
    if msg.is_empty() {
        return Some(String::new());
    }
    // Field 1, wire type 2, one-byte length: enough for the service names tests use.
    if msg[0] != 0x0a || msg.len() < 2 || msg[1] >= 0x80 {
        return None;
    }
    let n = usize::from(msg[1]);
    String::from_utf8(msg.get(2..2 + n)?.to_vec()).ok()
}
