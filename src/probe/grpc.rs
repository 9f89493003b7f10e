//! The grpc prober (blackbox `prober/grpc.go` semantics): the standard health check
//! `grpc.health.v1.Health/Check` over HTTP/2 (h2c, or TLS with ALPN h2); success when the call
//! returns OK with status SERVING.
//!
//! No tonic/prost: the two messages are one field each (`HealthCheckRequest{string service = 1}`,
//! `HealthCheckResponse{ServingStatus status = 1}`), so they are encoded by hand below, and the
//! call is one POST on a hyper HTTP/2 client connection with gRPC's 5-byte message framing.

use super::connect::{dial_tcp, resolve_endpoint, Io};
use super::recorder::{FailureReason, ProbeRecorder};
use super::{ProbeEnv, ProbeRequest};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use tokio::time::{timeout_at, Instant};

const PHASE_HELP: &str = "Duration of gRPC request by phase";
const METHOD_PATH: &str = "/grpc.health.v1.Health/Check";
/// `HealthCheckResponse.ServingStatus` names, by enum value.
const SERVING_STATUSES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
/// A health response is a few bytes; anything past this is not a health service.
const MAX_RESPONSE: usize = 64 * 1024;

// gRPC status codes we produce ourselves (the others come from the server).
const UNKNOWN: u32 = 2;
const DEADLINE_EXCEEDED: u32 = 4;
const UNIMPLEMENTED: u32 = 12;
const INTERNAL: u32 = 13;
const UNAVAILABLE: u32 = 14;

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let cfg = &req.module.grpc;
    rec.gauge_with(
        "probe_grpc_duration_seconds",
        PHASE_HELP,
        &[("phase", "resolve")],
        0.0,
    );
    rec.gauge(
        "probe_grpc_ssl",
        "Indicates if SSL was used for the connection",
        0.0,
    );
    for name in SERVING_STATUSES {
        set_serving(rec, name, 0.0);
    }
    let Some(at) = resolve_endpoint(
        env,
        req.target,
        |t| split_target(t, cfg.tls),
        cfg.preferred_ip_protocol,
        cfg.ip_protocol_fallback,
        rec,
    )
    .await
    else {
        return false;
    };
    let lookup = rec.value("probe_dns_lookup_time_seconds").unwrap_or(0.0);
    rec.gauge_with(
        "probe_grpc_duration_seconds",
        PHASE_HELP,
        &[("phase", "resolve")],
        lookup,
    );

    let check_start = Instant::now();
    let outcome = timeout_at(req.deadline, check(req, env, at.host, at.addr, rec)).await;
    rec.gauge_with(
        "probe_grpc_duration_seconds",
        PHASE_HELP,
        &[("phase", "check")],
        check_start.elapsed().as_secs_f64(),
    );
    let (code, serving) = match outcome {
        Ok(o) => o,
        Err(_) => {
            rec.fail(
                FailureReason::Timeout,
                "health check timed out: deadline reached",
            );
            (DEADLINE_EXCEEDED, None)
        }
    };
    rec.gauge(
        "probe_grpc_status_code",
        "Response gRPC status code",
        f64::from(code),
    );
    if let Some(status) = serving {
        match SERVING_STATUSES.get(status as usize) {
            Some(name) => set_serving(rec, name, 1.0),
            None => rec.debug(format!("server sent unknown serving status {status}")),
        }
    }
    match (code, serving) {
        (0, Some(1)) => {
            rec.info("Health check answered SERVING");
            true
        }
        (0, status) => {
            let name = status
                .and_then(|s| SERVING_STATUSES.get(s as usize).copied())
                .unwrap_or("UNKNOWN");
            rec.fail(
                FailureReason::Status,
                format!("Health check answered {name}, not SERVING"),
            );
            false
        }
        // The failure was recorded where it happened.
        _ => false,
    }
}

fn set_serving(rec: &mut ProbeRecorder, name: &str, value: f64) {
    rec.gauge_with(
        "probe_grpc_healthcheck_response",
        "Response HealthCheck response",
        &[("serving_status", name)],
        value,
    );
}

/// Connects and makes the call; returns the gRPC status code and the serving status received.
async fn check(
    req: &ProbeRequest<'_>,
    env: &ProbeEnv,
    host: &str,
    addr: SocketAddr,
    rec: &mut ProbeRecorder,
) -> (u32, Option<u32>) {
    let cfg = &req.module.grpc;
    let Some(stream) = dial_tcp(addr, None, rec).await else {
        return (UNAVAILABLE, None);
    };
    let mut io: Box<dyn Io> = Box::new(stream);
    if cfg.tls {
        let client = match env.tls_client(req.module_name, "grpc", &cfg.tls_config, &[b"h2"]) {
            Ok(c) => c,
            Err(e) => {
                rec.fail(FailureReason::Config, e);
                return (UNAVAILABLE, None);
            }
        };
        match client.connect(io, host, rec).await {
            Some(tls) => io = Box::new(tls),
            None => return (UNAVAILABLE, None),
        }
        rec.gauge(
            "probe_grpc_ssl",
            "Indicates if SSL was used for the connection",
            1.0,
        );
    }
    let (mut sender, conn) = match hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Full<Bytes>>(TokioIo::new(io))
        .await
    {
        Ok(pair) => pair,
        Err(e) => {
            rec.fail(
                FailureReason::Protocol,
                format!("HTTP/2 handshake failed: {e}"),
            );
            return (UNAVAILABLE, None);
        }
    };
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));

    let request = match build_request(req, host, addr.port()) {
        Ok(r) => r,
        Err(e) => {
            rec.fail(FailureReason::Config, e);
            return (INTERNAL, None);
        }
    };
    rec.info(format!(
        "Calling {METHOD_PATH} service={:?} on {host}:{}",
        cfg.service,
        addr.port()
    ));
    let response = match sender.send_request(request).await {
        Ok(r) => r,
        Err(e) => {
            rec.fail(FailureReason::Connection, format!("gRPC call failed: {e}"));
            return (UNAVAILABLE, None);
        }
    };
    let (parts, body) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        let code = code_for_http_status(parts.status.as_u16());
        rec.fail(
            FailureReason::Status,
            format!("server answered HTTP {} (gRPC status {code})", parts.status),
        );
        return (code, None);
    }
    // A "trailers-only" answer carries the status in the headers and has no body.
    if let Some(code) = grpc_status(&parts.headers) {
        if code != 0 {
            fail_with_status(rec, code, &parts.headers);
            return (code, None);
        }
    }
    let collected = match http_body_util::Limited::new(body, MAX_RESPONSE)
        .collect()
        .await
    {
        Ok(c) => c,
        Err(e) => {
            rec.fail(
                FailureReason::Protocol,
                format!("error reading the gRPC response: {e}"),
            );
            return (UNAVAILABLE, None);
        }
    };
    drop(driver);
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let code = grpc_status(&trailers)
        .or_else(|| grpc_status(&parts.headers))
        .unwrap_or(UNKNOWN);
    if code != 0 {
        fail_with_status(rec, code, &trailers);
        return (code, None);
    }
    match first_message(collected.to_bytes()).and_then(|m| decode_status(&m)) {
        Ok(status) => (0, Some(status)),
        Err(e) => {
            rec.fail(
                FailureReason::Protocol,
                format!("malformed HealthCheckResponse: {e}"),
            );
            (INTERNAL, None)
        }
    }
}

fn build_request(
    req: &ProbeRequest<'_>,
    host: &str,
    port: u16,
) -> Result<Request<Full<Bytes>>, String> {
    let cfg = &req.module.grpc;
    let scheme = if cfg.tls { "https" } else { "http" };
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut builder = Request::post(format!("{scheme}://{authority}{METHOD_PATH}"))
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(
            "user-agent",
            concat!("siembox-exporter/", env!("CARGO_PKG_VERSION")),
        );
    let remaining = req.deadline.saturating_duration_since(Instant::now());
    builder = builder.header("grpc-timeout", format!("{}m", remaining.as_millis().max(1)));
    for (name, values) in &cfg.metadata {
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("grpc.metadata: {name:?} is not a valid metadata key"))?;
        for v in values {
            let value = HeaderValue::from_str(v).map_err(|_| {
                format!("grpc.metadata: a value of {name} has characters a header cannot carry")
            })?;
            builder = builder.header(name.clone(), value);
        }
    }
    builder
        .body(Full::new(frame(&encode_request(&cfg.service))))
        .map_err(|e| format!("cannot build the gRPC request: {e}"))
}

fn fail_with_status(rec: &mut ProbeRecorder, code: u32, headers: &HeaderMap) {
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(|m| {
            percent_encoding::percent_decode_str(m)
                .decode_utf8_lossy()
                .chars()
                .take(200)
                .collect::<String>()
        })
        .unwrap_or_default();
    rec.fail(
        FailureReason::Status,
        format!("gRPC status {code} ({}): {message}", code_name(code)),
    );
}

fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// gRPC's table for HTTP answers that are not gRPC answers.
fn code_for_http_status(status: u16) -> u32 {
    match status {
        400 => INTERNAL,
        401 => 16,
        403 => 7,
        404 => UNIMPLEMENTED,
        429 | 502..=504 => UNAVAILABLE,
        _ => UNKNOWN,
    }
}

fn code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("UNKNOWN")
}

/// `host:port`, `[v6]:port`, or a bare host, optionally behind `http://`/`https://` as blackbox
/// allows; the port defaults to 80, or 443 with TLS.
pub(crate) fn split_target(target: &str, tls: bool) -> Result<(&str, u16), String> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .unwrap_or(target);
    let rest = rest.split('/').next().unwrap_or(rest);
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("target {target:?} has an unclosed '['"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, p),
            None if after.is_empty() => (h, ""),
            None => return Err(format!("target {target:?} is not host:port")),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p),
            Some(_) => {
                return Err(format!(
                    "IPv6 target {target:?} needs brackets, as in [::1]:50051"
                ))
            }
            None => (rest, ""),
        }
    };
    if host.is_empty() {
        return Err(format!("target {target:?} has no host"));
    }
    let port = if port.is_empty() {
        default_port
    } else {
        port.parse()
            .map_err(|_| format!("target {target:?} has an invalid port"))?
    };
    Ok((host, port))
}

/// gRPC length-prefixed message: uncompressed flag, 4-byte big-endian length, message.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// The first message of a gRPC response body.
fn first_message(mut body: Bytes) -> Result<Bytes, String> {
    if body.len() < 5 {
        return Err("response has no message".into());
    }
    if body.get_u8() != 0 {
        return Err("response message is compressed, which we did not offer".into());
    }
    let len = body.get_u32() as usize;
    if body.len() < len {
        return Err("response message is cut short".into());
    }
    Ok(body.split_to(len))
}

/// `HealthCheckRequest { string service = 1; }` in protobuf wire format.
fn encode_request(service: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        out.push(0x0a); // field 1, wire type 2 (length-delimited)
        put_varint(&mut out, service.len() as u64);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

/// `HealthCheckResponse.status` (field 1, varint); absent means 0 (UNKNOWN), unknown fields skipped.
fn decode_status(mut msg: &[u8]) -> Result<u32, String> {
    let mut status = 0u32;
    while !msg.is_empty() {
        let key = get_varint(&mut msg)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let v = get_varint(&mut msg)?;
                if field == 1 {
                    status = v as u32;
                }
            }
            1 => msg = msg.get(8..).ok_or("truncated fixed64")?,
            2 => {
                let len = get_varint(&mut msg)? as usize;
                msg = msg.get(len..).ok_or("truncated length-delimited field")?;
            }
            5 => msg = msg.get(4..).ok_or("truncated fixed32")?,
            w => return Err(format!("unsupported wire type {w}")),
        }
    }
    Ok(status)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// Stops the connection task when the probe ends, whichever way it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encodes_the_service_field() {
        assert_eq!(encode_request(""), Vec::<u8>::new());
        assert_eq!(encode_request("ab"), vec![0x0a, 2, b'a', b'b']);
        let long = "x".repeat(200);
        assert_eq!(&encode_request(&long)[..3], &[0x0a, 0xc8, 0x01]);
    }

    #[test]
    fn response_status_decodes_and_skips_unknown_fields() {
        assert_eq!(decode_status(&[0x08, 0x01]).unwrap(), 1);
        assert_eq!(decode_status(&[]).unwrap(), 0);
        // field 2 (string "hi") before field 1 = 2
        assert_eq!(
            decode_status(&[0x12, 2, b'h', b'i', 0x08, 0x02]).unwrap(),
            2
        );
        assert!(decode_status(&[0x08]).is_err());
        assert!(decode_status(&[0x0b]).is_err());
    }

    #[test]
    fn frames_round_trip() {
        let f = frame(&[0x08, 0x01]);
        assert_eq!(&f[..], &[0, 0, 0, 0, 2, 0x08, 0x01]);
        assert_eq!(&first_message(f).unwrap()[..], &[0x08, 0x01]);
        assert!(first_message(Bytes::from_static(&[0, 0, 0, 0, 9, 1])).is_err());
    }

    #[test]
    fn targets_split_like_blackbox() {
        assert_eq!(
            split_target("localhost:50051", false).unwrap(),
            ("localhost", 50051)
        );
        assert_eq!(split_target("[::1]:50051", false).unwrap(), ("::1", 50051));
        assert_eq!(
            split_target("https://svc.example", true).unwrap(),
            ("svc.example", 443)
        );
        assert_eq!(
            split_target("svc.example", false).unwrap(),
            ("svc.example", 80)
        );
        assert!(split_target("::1:50051", false).is_err());
        assert!(split_target("svc:port", false).is_err());
    }
}
