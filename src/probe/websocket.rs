//! The websocket prober (blackbox's `prober/websocket.go`, on its master branch): resolve the
//! `ws://` / `wss://` target the blackbox way, connect, TLS for wss (the module's TLS client, so
//! the TLS series are the same as every prober's), the HTTP upgrade with `http_config`
//! credentials and `headers`, then the `query_response` dialogue shared with tcp and unix, one
//! websocket message per `expect`. blackbox's metric names:
//! `probe_websocket_status_code`, `probe_websocket_connection_upgraded`,
//! `probe_websocket_failed_due_to_regex`, `probe_websocket_duration_seconds{phase}`.

use super::connect::{dial_tcp, resolve_endpoint, Io};
use super::query_response::{self, captures, Channel, Dialogue};
use super::recorder::{FailureReason, ProbeRecorder};
use super::tls::TlsClient;
use super::{credentials, ProbeEnv, ProbeRequest};
use crate::config::{Regexp, WebsocketProbe};
use futures::{SinkExt, StreamExt};
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Request};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use url::Url;

const PHASE: &str = "probe_websocket_duration_seconds";
const PHASE_HELP: &str = "Duration of websocket request by phase";
const STATUS: &str = "probe_websocket_status_code";
const STATUS_HELP: &str = "Response HTTP status code";
const UPGRADED: &str = "probe_websocket_connection_upgraded";
const UPGRADED_HELP: &str = "Indicates if the websocket connection was successfully upgraded";
const REGEX: &str = "probe_websocket_failed_due_to_regex";
const REGEX_HELP: &str = "Indicates if probe failed due to regex";
/// The largest message an `expect` reads; a monitoring answer is far smaller.
const MAX_MESSAGE: usize = 1 << 20;

/// A `ws://` or `wss://` URL with a host.
pub fn parse_target(target: &str) -> Result<Url, String> {
    let url = Url::parse(target).map_err(|e| format!("target {target:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(format!("target {target:?} is not a ws:// or wss:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("target {target:?} has no host"));
    }
    Ok(url)
}

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let cfg = &req.module.websocket;
    rec.gauge(STATUS, STATUS_HELP, 0.0);
    rec.gauge(UPGRADED, UPGRADED_HELP, 0.0);
    rec.gauge(REGEX, REGEX_HELP, 0.0);
    let url = match parse_target(req.target) {
        Ok(u) => u,
        Err(e) => {
            rec.fail(FailureReason::Config, e);
            return false;
        }
    };
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let Some(at) = resolve_endpoint(
        env,
        host,
        |h| Ok((h, port)),
        cfg.preferred_ip_protocol,
        cfg.ip_protocol_fallback,
        rec,
    )
    .await
    else {
        return false;
    };
    let lookup = rec.value("probe_dns_lookup_time_seconds").unwrap_or(0.0);
    phase(rec, "resolve", lookup);

    let request = match upgrade_request(req.target, cfg).await {
        Ok(r) => r,
        Err(e) => {
            rec.fail(FailureReason::Config, e);
            return false;
        }
    };
    let tls = if url.scheme() == "wss" {
        match env.tls_client(
            req.module_name,
            "websocket",
            &cfg.http_config.tls_config,
            &[b"http/1.1"],
        ) {
            Ok(c) => Some(c),
            Err(e) => {
                rec.fail(FailureReason::Config, e);
                return false;
            }
        }
    } else {
        None
    };

    let connect_start = Instant::now();
    let Some(stream) = dial_tcp(at.addr, None, rec).await else {
        return false;
    };
    phase(rec, "connect", connect_start.elapsed().as_secs_f64());

    // blackbox's "processing": the TLS handshake and the HTTP upgrade.
    let processing_start = Instant::now();
    let upgrade = timeout_at(
        req.deadline,
        handshake(Box::new(stream), tls.as_deref(), at.host, request, rec),
    )
    .await;
    phase(rec, "processing", processing_start.elapsed().as_secs_f64());
    let ws = match upgrade {
        Ok(Some(ws)) => ws,
        Ok(None) => return false,
        Err(_) => {
            rec.fail(
                FailureReason::Timeout,
                format!(
                    "{} did not answer the upgrade request before the probe timeout",
                    url.as_str()
                ),
            );
            return false;
        }
    };
    rec.gauge(UPGRADED, UPGRADED_HELP, 1.0);
    if cfg.query_response.is_empty() {
        return true;
    }

    let transfer_start = Instant::now();
    let no_starttls = || -> Result<std::sync::Arc<TlsClient>, String> {
        Err("starttls cannot upgrade a websocket connection".into())
    };
    let dialogue = Dialogue {
        steps: &cfg.query_response,
        max_label_len: req.config.cardinality.max_label_value_length,
        tls: &no_starttls,
        server_name: at.host,
    };
    let mut channel = MessageChannel {
        ws,
        pending: Vec::new(),
    };
    let talked = timeout_at(
        req.deadline,
        query_response::run(&dialogue, &mut channel, rec),
    )
    .await;
    phase(rec, "transfer", transfer_start.elapsed().as_secs_f64());
    let ok = match talked {
        Ok(result) => result.is_ok(),
        Err(_) => {
            rec.fail(
                FailureReason::Timeout,
                format!(
                    "{} did not answer as expected before the probe timeout",
                    url.as_str()
                ),
            );
            false
        }
    };
    // blackbox sets it for any failed step, a read error or timeout included.
    rec.gauge(REGEX, REGEX_HELP, if ok { 0.0 } else { 1.0 });
    let _ = channel.ws.close(None).await;
    ok
}

fn phase(rec: &mut ProbeRecorder, name: &'static str, seconds: f64) {
    rec.gauge_with(PHASE, PHASE_HELP, &[("phase", name)], seconds);
}

/// The upgrade request: the target URL, `http_config` credentials, then `headers`.
async fn upgrade_request(target: &str, cfg: &WebsocketProbe) -> Result<Request<()>, String> {
    let mut request = target
        .into_client_request()
        .map_err(|e| format!("cannot make an upgrade request for {target:?}: {e}"))?;
    let auth = &cfg.http_config;
    let authorization = match (&auth.basic_auth, &auth.authorization) {
        (Some(b), _) => Some(credentials::basic_auth(b)?),
        (None, Some(a)) => Some(credentials::authorization(a)?),
        (None, None) => None,
    };
    let headers = request.headers_mut();
    if let Some(text) = authorization {
        let mut v = HeaderValue::from_str(&text).map_err(|_| {
            "the configured credentials contain characters not allowed in an HTTP header"
                .to_string()
        })?;
        v.set_sensitive(true);
        headers.append(http::header::AUTHORIZATION, v);
    }
    for (name, sources) in &cfg.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("websocket.headers: {name:?} is not a valid header name"))?;
        for value in credentials::header_source_values("websocket.headers", name, sources).await? {
            // Deliberately without the value: it may be a secret.
            let mut v = HeaderValue::from_str(&value)
                .map_err(|_| format!("websocket.headers: a value of {name} is not valid"))?;
            v.set_sensitive(!sources.secrets.is_empty() || !sources.files.is_empty());
            headers.append(header.clone(), v);
        }
    }
    Ok(request)
}

/// TLS when the target is wss, then the HTTP upgrade; records the status the server answered.
async fn handshake(
    mut io: Box<dyn Io>,
    tls: Option<&TlsClient>,
    host: &str,
    request: Request<()>,
    rec: &mut ProbeRecorder,
) -> Option<WebSocketStream<Box<dyn Io>>> {
    if let Some(client) = tls {
        io = Box::new(client.connect(io, host, rec).await?);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    match tokio_tungstenite::client_async_with_config(request, io, Some(config)).await {
        Ok((ws, response)) => {
            rec.gauge(STATUS, STATUS_HELP, f64::from(response.status().as_u16()));
            rec.debug("Websocket connection upgraded");
            Some(ws)
        }
        Err(WsError::Http(response)) => {
            let status = response.status();
            rec.gauge(STATUS, STATUS_HELP, f64::from(status.as_u16()));
            rec.fail(
                FailureReason::Status,
                format!("the server answered the upgrade request with {status}, not 101 Switching Protocols"),
            );
            None
        }
        Err(e) => {
            rec.fail(
                FailureReason::Protocol,
                format!("websocket upgrade failed: {e}"),
            );
            None
        }
    }
}

/// Websocket messages as the dialogue's units: an `expect` reads one message (as blackbox),
/// `expect_bytes` the bytes of the messages that follow, a `send` is one message (text when
/// it is UTF-8, else binary).
struct MessageChannel {
    ws: WebSocketStream<Box<dyn Io>>,
    pending: Vec<u8>,
}

impl MessageChannel {
    /// The next data message; `None` when the peer closed.
    async fn next_data(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Text(t))) => return Ok(Some(t.as_bytes().to_vec())),
                Some(Ok(Message::Binary(b))) => return Ok(Some(b.to_vec())),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
    }
}

impl Channel for MessageChannel {
    fn unit(&self) -> &'static str {
        "the message received"
    }

    async fn expect(&mut self, re: &Regexp) -> std::io::Result<Option<Vec<String>>> {
        self.pending.clear();
        let Some(message) = self.next_data().await? else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the websocket before sending a message",
            ));
        };
        Ok(captures(re, &String::from_utf8_lossy(&message)))
    }

    async fn read_bytes(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.pending.len() < n {
            match self.next_data().await? {
                Some(m) => self.pending.extend_from_slice(&m),
                None => break,
            }
        }
        let take = n.min(self.pending.len());
        Ok(self.pending.drain(..take).collect())
    }

    async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        let message = match std::str::from_utf8(data) {
            Ok(text) => Message::text(text),
            Err(_) => Message::binary(data.to_vec()),
        };
        self.ws.send(message).await.map_err(std::io::Error::other)
    }

    async fn start_tls(
        &mut self,
        _client: &TlsClient,
        _host: &str,
        rec: &mut ProbeRecorder,
    ) -> bool {
        // Refused at load (config/probe_rules.rs); kept as a failure, never a silent no-op.
        rec.fail(
            FailureReason::Config,
            "starttls cannot upgrade a websocket connection",
        );
        false
    }
}
