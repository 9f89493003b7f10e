//! The HTTP listener: routing to the endpoint handlers, response compression, graceful shutdown.

mod probe;
mod respond;

use crate::app::App;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use respond::{plain, Reply};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

pub type Body = Full<Bytes>;

/// Serves until `shutdown` resolves, then lets in-flight requests finish (bounded by the caller).
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(64 * 1024).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
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
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = hyper::service::service_fn(move |req| handle(app.clone(), req));
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    graceful.shutdown().await;
}

async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let reply = route(&app, &req).await;
    Ok(reply.into_response(&req))
}

async fn route(app: &Arc<App>, req: &Request<Incoming>) -> Reply {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET | &Method::HEAD, "/probe") => probe::handle(app, req).await,
        (&Method::GET | &Method::HEAD, "/metrics") => probe::metrics(app, req),
        (&Method::GET | &Method::HEAD, "/-/healthy") => plain(StatusCode::OK, "Healthy\n"),
        (&Method::GET | &Method::HEAD, "/-/ready") => plain(StatusCode::OK, "Ready\n"),
        (&Method::POST | &Method::PUT, "/-/reload") => match app.reload() {
            Ok(()) => plain(StatusCode::OK, "config reloaded\n"),
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
        (&Method::GET | &Method::HEAD, "/") => {
            Reply::new(StatusCode::OK, "text/html; charset=utf-8", status_page(app))
        }
        (_, "/probe" | "/metrics" | "/-/healthy" | "/-/ready" | "/config" | "/") => {
            plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn status_page(app: &App) -> String {
    let config = app.config();
    let mut modules = String::new();
    for (name, m) in &config.modules {
        let timeout = m
            .timeout
            .map(|t| t.to_string())
            .unwrap_or_else(|| "scrape timeout".into());
        modules.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            html_escape(name),
            m.prober.as_str(),
            html_escape(&timeout)
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>siembox-exporter</title></head><body>\n\
         <h1>siembox-exporter</h1>\n<p><a href=\"/metrics\">Metrics</a> · <a href=\"/config\">Configuration</a> · \
         <a href=\"/probe?target=localhost:9847&amp;module=tcp_connect&amp;debug=true\">Example probe</a></p>\n\
         <h2>Modules</h2>\n<table><tr><th>module</th><th>prober</th><th>timeout</th></tr>\n{modules}</table>\n</body></html>\n"
    )
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[allow(dead_code)]
fn _assert_send(
    app: Arc<App>,
    req: Request<Incoming>,
) -> impl Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send {
    handle(app, req)
}
