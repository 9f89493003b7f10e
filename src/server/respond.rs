//! Building responses: content type, gzip when the client accepts it.

use super::{gzip, Body};
use bytes::Bytes;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::{Request, Response, StatusCode};

/// Bodies smaller than this are not worth compressing.
const GZIP_MIN_BYTES: usize = 512;
/// Compressing a body this large takes milliseconds: long enough to hand the runtime worker's
/// other tasks to another thread meanwhile.
const GZIP_BLOCKING_BYTES: usize = 1 << 20;

pub struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: String,
}

impl Reply {
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
        }
    }

    pub fn into_response<B>(self, req: &Request<B>) -> Response<Body> {
        let gzip = self.body.len() >= GZIP_MIN_BYTES && accepts_gzip(req);
        let compress = || gzip::compress(self.body.as_bytes()).ok();
        let compressed = match gzip {
            false => None,
            true if self.body.len() >= GZIP_BLOCKING_BYTES => blocking(compress),
            true => compress(),
        };
        let is_gzip = compressed.is_some();
        let mut resp = Response::new(Body::new(match compressed {
            Some(b) => Bytes::from(b),
            None => Bytes::from(self.body),
        }));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        if is_gzip {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        resp
    }
}

pub fn plain(status: StatusCode, body: impl Into<String>) -> Reply {
    Reply::new(status, "text/plain; charset=utf-8", body)
}

fn accepts_gzip<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.trim().split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !q_zero
        })
}

/// Runs `work` that holds the thread for milliseconds (a large `/metrics`, its gzip): on the
/// multi-thread runtime the worker's queued tasks move to another thread first, so probes and
/// schedules keep running; elsewhere (a current-thread runtime, no runtime) it just runs.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
