//! The HTTP listener: routing to the endpoint handlers, response compression, graceful shutdown.

pub mod basic_auth;
pub mod connections;
pub mod gzip;
mod logs;
mod probe;
mod query;
mod respond;
mod status;

pub use status::page as status_page;
pub mod web_config;

use crate::app::App;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use respond::{plain, Reply};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use web_config::WebSecurity;

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// HTTP/2 connections are pinged this often, and closed when a ping goes unanswered this long.
const HTTP2_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
const HTTP2_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub type Body = Full<Bytes>;

/// Serves plain HTTP without authentication until `shutdown` resolves.
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    serve_with(app, listener, None, shutdown).await
}

/// Serves until `shutdown` resolves, then lets requests in flight finish for at most
/// `app.options.shutdown_timeout` and cancels the rest; `web` adds TLS, basic auth and extra
/// headers.
pub async fn serve_with(
    app: Arc<App>,
    listener: TcpListener,
    web: Option<Arc<WebSecurity>>,
    shutdown: impl Future<Output = ()>,
) {
    let tls = web
        .as_ref()
        .and_then(|w| w.tls.clone())
        .map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without a timer hyper runs no timeouts at all: set one, so a client that never finishes
    // its headers (or idles between keep-alive requests) is closed after header_read_timeout.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(app.options.header_read_timeout)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(HTTP2_PING_INTERVAL))
        .keep_alive_timeout(HTTP2_PING_TIMEOUT);
    let open = connections::Connections::new(app.options.max_connections);
    // hyper's header timer starts only once the auto builder has sniffed the protocol (and
    // after the TLS handshake): a client silent from the start is bounded here instead.
    let first_request_timeout = match &tls {
        None => app.options.header_read_timeout,
        Some(_) => app.options.header_read_timeout + TLS_HANDSHAKE_TIMEOUT,
    };
    if web.as_ref().is_some_and(|w| !w.http2) {
        builder = builder.http1_only();
    }
    // Every connection task, so the ones still running after the grace period can be cancelled.
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            // Reap finished connections as they go, so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(admitted) = open.admit() else {
                    // Every open connection is serving a request: refuse rather than queue.
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let web = web.clone();
                let requests = admitted.requests();
                let service = hyper::service::service_fn(move |req| {
                    let busy = requests.start();
                    let (app, web) = (app.clone(), web.clone());
                    async move {
                        let response = handle(app, web, req).await;
                        drop(busy);
                        response
                    }
                });
                match &tls {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                        let conn = graceful.watch(conn);
                        connections.spawn(async move {
                            tokio::select! {
                                _ = conn => {}
                                _ = admitted.shed() => {}
                                _ = admitted.no_request_within(first_request_timeout) => {}
                            }
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        let builder = builder.clone();
                        let watcher = graceful.watcher();
                        connections.spawn(async move {
                            let serving = async {
                                let Ok(Ok(stream)) = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
                                    return;
                                };
                                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                                let _ = watcher.watch(conn).await;
                            };
                            tokio::select! {
                                _ = serving => {}
                                _ = admitted.shed() => {}
                                _ = admitted.no_request_within(first_request_timeout) => {}
                            }
                        });
                    }
                }
            }
            _ = &mut shutdown => break,
        }
    }
    // New connections are refused at once rather than left waiting in the backlog.
    drop(listener);
    let grace = app.options.shutdown_timeout;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?grace,
            "requests still running after the shutdown grace period are cancelled"
        );
    }
    connections.shutdown().await;
}

async fn handle(
    app: Arc<App>,
    web: Option<Arc<WebSecurity>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let Some(web) = web else {
        return Ok(route(&app, &req).await.into_response(&req));
    };
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut resp = if web.authorized(auth).await {
        route(&app, &req).await.into_response(&req)
    } else {
        let mut r = plain(StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response(&req);
        let basic = hyper::header::HeaderValue::from_static("Basic");
        r.headers_mut()
            .insert(hyper::header::WWW_AUTHENTICATE, basic);
        r
    };
    for (k, v) in &web.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    Ok(resp)
}

/// The `/probe` endpoint without the listener: the probe path as benches measure it.
pub async fn probe_response<B>(app: &Arc<App>, req: &Request<B>) -> Response<Body> {
    probe::handle(app, req).await.into_response(req)
}

async fn route(app: &Arc<App>, req: &Request<Incoming>) -> Reply {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET | &Method::HEAD, "/probe") => probe::handle(app, req).await,
        (&Method::GET | &Method::HEAD, "/metrics") => {
            respond::blocking(|| probe::metrics(app, req))
        }
        (&Method::GET | &Method::HEAD, "/-/healthy") => plain(StatusCode::OK, "Healthy\n"),
        (&Method::GET | &Method::HEAD, "/-/ready") => plain(StatusCode::OK, "Ready\n"),
        (&Method::POST | &Method::PUT, "/-/reload") => match app.reload_shared().await {
            Ok(crate::app::Reloaded::Applied) => plain(StatusCode::OK, "config reloaded\n"),
            Ok(crate::app::Reloaded::Unchanged) => {
                plain(StatusCode::OK, "config unchanged, nothing reloaded\n")
            }
            Err(e) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to reload config: {e}\n"),
            ),
        },
        (_, "/-/reload") => plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "This endpoint requires a POST request.\n",
        ),
        (&Method::GET | &Method::HEAD, "/config") => Reply::new(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            app.config().redacted_yaml(),
        ),
        (&Method::GET | &Method::HEAD, "/logs") => logs::handle(app, req),
        (&Method::GET | &Method::HEAD, "/") => Reply::new(
            StatusCode::OK,
            "text/html; charset=utf-8",
            status::page(app),
        ),
        (_, "/probe" | "/metrics" | "/-/healthy" | "/-/ready" | "/config" | "/logs" | "/") => {
            plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}
