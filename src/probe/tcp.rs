//! The tcp prober: connect (optionally TLS), then blackbox's `query_response` dialogue.

use super::connect::{dial_tcp, resolve_endpoint, Io};
use super::query_response::{self, Dialogue, Failed, StreamChannel};
use super::recorder::{FailureReason, ProbeRecorder};
use super::resolve::split_host_port;
use super::{ProbeEnv, ProbeRequest};
use crate::config::QueryResponse;

pub const REGEX_METRIC: &str = "probe_failed_due_to_regex";
pub const REGEX_HELP: &str = "Indicates if probe failed due to regex";
pub const BYTES_METRIC: &str = "probe_failed_due_to_bytes";
pub const BYTES_HELP: &str = "Indicates if probe failed due to bytes";

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let cfg = &req.module.tcp;
    // Present on every outcome, as blackbox registers them before probing.
    rec.gauge(REGEX_METRIC, REGEX_HELP, 0.0);
    rec.gauge(BYTES_METRIC, BYTES_HELP, 0.0);
    let Some(at) = resolve_endpoint(
        env,
        req.target,
        split_host_port,
        cfg.preferred_ip_protocol,
        cfg.ip_protocol_fallback,
        rec,
    )
    .await
    else {
        return false;
    };
    let Some(stream) = dial_tcp(at.addr, cfg.source_ip_address.as_deref(), rec).await else {
        return false;
    };
    // blackbox: `hostname=` is the TLS server name unless tls_config.server_name sets one.
    let host = req.hostname.filter(|h| !h.is_empty()).unwrap_or(at.host);
    talk(
        req,
        env,
        "tcp",
        Box::new(stream),
        host,
        cfg.tls,
        &cfg.tls_config,
        &cfg.query_response,
        rec,
    )
    .await
}

/// TLS if the module asks for it, then the dialogue over a connected stream, with blackbox's
/// `probe_failed_due_to_regex` / `_bytes` set from its outcome (tcp and unix share this).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn talk(
    req: &ProbeRequest<'_>,
    env: &ProbeEnv,
    purpose: &'static str,
    mut conn: Box<dyn Io>,
    host: &str,
    tls: bool,
    tls_config: &crate::config::TlsConfig,
    steps: &[QueryResponse],
    rec: &mut ProbeRecorder,
) -> bool {
    let client = || env.tls_client(req.module_name, purpose, tls_config, &[]);
    if tls {
        let client = match client() {
            Ok(c) => c,
            Err(e) => {
                rec.fail(FailureReason::Config, e);
                return false;
            }
        };
        match client.connect(conn, host, rec).await {
            Some(tls) => conn = Box::new(tls),
            None => return false,
        }
    }
    let dialogue = Dialogue {
        steps,
        max_label_len: req.config.cardinality.max_label_value_length,
        tls: &client,
        server_name: host,
    };
    let mut channel = StreamChannel::new(conn);
    match query_response::run(&dialogue, &mut channel, rec).await {
        Ok(()) => true,
        Err(Failed::Regex) => {
            rec.gauge(REGEX_METRIC, REGEX_HELP, 1.0);
            false
        }
        Err(Failed::Bytes) => {
            rec.gauge(BYTES_METRIC, BYTES_HELP, 1.0);
            false
        }
        Err(Failed::Other) => false,
    }
}
