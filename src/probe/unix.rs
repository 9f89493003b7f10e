//! The unix prober (blackbox 0.28 `prober/unix.go`): connect to the unix domain socket the
//! target names by path, optionally TLS over it, then the `query_response` dialogue shared
//! with tcp; the same metrics as blackbox's (`probe_failed_due_to_regex` / `_bytes`, the TLS
//! series, `probe_expect_info`).

use super::recorder::{FailureReason, ProbeRecorder};
use super::{ProbeEnv, ProbeRequest};
use tokio::net::UnixStream;
use tokio::time::timeout_at;

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let cfg = &req.module.unix;
    let path = req.target;
    use super::tcp::{BYTES_HELP, BYTES_METRIC, REGEX_HELP, REGEX_METRIC};
    rec.gauge(REGEX_METRIC, REGEX_HELP, 0.0);
    rec.gauge(BYTES_METRIC, BYTES_HELP, 0.0);
    rec.debug(format!("Dialing unix socket {path}"));
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e) => {
            let reason = match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    format!("permission denied connecting to unix socket {path}: {e}")
                }
                std::io::ErrorKind::NotFound => format!("unix socket {path} does not exist: {e}"),
                _ => format!("Error dialing unix socket {path}: {e}"),
            };
            rec.fail(FailureReason::from_io(&e), reason);
            return false;
        }
    };
    rec.debug("Successfully dialed");
    // A path is no TLS server name: blackbox (Go) verifies the certificate against the path
    // itself, which no certificate carries, so without `server_name` only an unverified
    // session can work; any name serves as SNI for it.
    let host = match (
        &cfg.tls_config.server_name,
        cfg.tls_config.insecure_skip_verify,
    ) {
        (Some(name), _) => name.as_str(),
        (None, true) => "localhost",
        (None, false) if cfg.tls => {
            rec.fail(
                FailureReason::Tls,
                format!("TLS over unix socket {path}: the certificate cannot be verified against a path; set tls_config.server_name to the name it carries (or insecure_skip_verify)"),
            );
            return false;
        }
        (None, false) => "localhost",
    };
    let talk = super::tcp::talk(
        req,
        env,
        "unix",
        Box::new(stream),
        host,
        cfg.tls,
        &cfg.tls_config,
        &cfg.query_response,
        rec,
    );
    match timeout_at(req.deadline, talk).await {
        Ok(ok) => ok,
        Err(_) => {
            rec.fail(
                FailureReason::Timeout,
                format!("unix socket {path} did not answer as expected before the probe timeout"),
            );
            false
        }
    }
}
