//! The http prober, blackbox-compatible: one fresh connection per hop (HTTP/1.1, or HTTP/2 when
//! TLS ALPN picks it, or HTTP/3 over QUIC with `enable_http3`), a timer per phase, redirects
//! followed like Go's client (at most 10), then blackbox's checks and metrics.

mod body;
mod cel;
mod checks;
mod connection;
mod cookies;
pub mod oauth2;
mod phases;
mod proxy;
mod quic;
mod request;

use super::allow;
use super::recorder::{FailureReason, ProbeRecorder};
use super::{ProbeEnv, ProbeRequest};
use connection::Endpoint;
use cookies::Cookies;
use hyper::header::{CONTENT_LENGTH, LAST_MODIFIED, LOCATION};
use phases::{add_phase, Phase};
use proxy::Proxy;
use request::{Hop, Template};
use tokio::time::Instant;
use url::Url;

/// Go's client stops after 10 redirects.
const MAX_REDIRECTS: u32 = 10;

const REGEX_FAILED: (&str, &str) = (
    "probe_failed_due_to_regex",
    "Indicates if probe failed due to regex",
);

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let cfg = &req.module.http;
    init_metrics(rec);
    self::cel::init(cfg, rec);
    let mut first_url = match parse_target(req.target) {
        Ok(u) => u,
        Err(e) => {
            rec.fail(FailureReason::Config, e);
            return false;
        }
    };
    if cfg.enable_http3 && first_url.scheme() == "http" {
        // As blackbox: HTTP/3 runs over TLS only, so an http:// target is probed as https://.
        let _ = first_url.set_scheme("https");
        rec.info("Converting HTTP to HTTPS for HTTP/3 compatibility");
    }
    let oauth2_token = match &cfg.oauth2 {
        Some(o) => match oauth2::token(env, req, cfg, o, rec).await {
            Some(t) => Some(t),
            None => return false,
        },
        None => None,
    };
    let tpl = match Template::build(req, cfg, &first_url, oauth2_token.as_deref()).await {
        Ok(t) => t,
        Err(e) => {
            rec.fail(FailureReason::Config, e);
            return false;
        }
    };
    if cfg.keep_alive {
        rec.debug("keep_alive is not implemented yet: using a fresh connection");
    }

    let mut hop = Hop::first(first_url.clone(), &tpl);
    let mut redirects: u32 = 0;
    let mut cookies = Cookies::default();
    let mut first = true;
    let (response, conn) = loop {
        let proxy = match Proxy::for_url(cfg, &hop.url) {
            // QUIC goes to the target directly; blackbox's HTTP/3 transport has no proxy either.
            Ok(Some(_)) if cfg.enable_http3 => {
                rec.info("HTTP/3 connects directly: the proxy settings are not used");
                None
            }
            Ok(p) => p,
            Err(e) => {
                rec.fail(FailureReason::Config, e);
                return false;
            }
        };
        rec.info(format!(
            "Making HTTP request url={} host={}",
            hop.url_for_log(),
            hop.host_header
        ));
        let endpoint = Endpoint {
            url: &hop.url,
            port: hop.port(),
            tls: hop.is_tls(),
            tls_name: hop.tls_name(),
            first,
            oauth2: false,
        };
        first = false;
        // Every hop is judged like the first target: a redirect leads nowhere the list forbids.
        let host = hop.url.host_str().unwrap_or_default();
        let access = allow::decide(req.allow_patterns(), host, Some(&hop.url));
        if matches!(access, allow::Access::Denied) {
            rec.fail(
                FailureReason::Denied,
                format!("{} is not in the allow-list", hop.url_for_log()),
            );
            return false;
        }
        let opening = connection::open(
            env,
            req.module_name,
            cfg,
            &endpoint,
            proxy.as_ref(),
            req.deadline,
            rec,
        );
        let Some(mut conn) = allow::ACCESS.scope(access, opening).await else {
            return false;
        };
        let request = match hop.request(&tpl, &conn, proxy.as_ref(), &cookies) {
            Ok(r) => r,
            Err(e) => {
                rec.fail(FailureReason::Config, e);
                return false;
            }
        };
        let started = Instant::now();
        let sent = tokio::time::timeout_at(req.deadline, conn.send(request)).await;
        add_phase(rec, Phase::Processing, started.elapsed());
        let response = match sent {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                rec.fail(
                    FailureReason::Connection,
                    format!("Error for HTTP request: {e}"),
                );
                return false;
            }
            Err(_) => {
                rec.fail(
                    FailureReason::Timeout,
                    "timed out waiting for the response headers",
                );
                return false;
            }
        };
        let status = response.status();
        rec.info(format!(
            "Received HTTP response status_code={}",
            status.as_u16()
        ));
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        match location {
            Some(loc) if is_redirect(status.as_u16()) => {
                // Counted like blackbox: every redirect response, also one not followed.
                redirects += 1;
                rec.info(format!("Received redirect location={loc}"));
                if !cfg.follows_redirects() || redirects > MAX_REDIRECTS {
                    rec.info("Not following redirect");
                    break (response, conn);
                }
                cookies.store(hop.url.host_str().unwrap_or_default(), response.headers());
                let next = match hop.redirected(status, &loc, &first_url, &tpl) {
                    Ok(n) => n,
                    Err(e) => {
                        rec.fail(FailureReason::Protocol, e);
                        return false;
                    }
                };
                let started = Instant::now();
                let drained =
                    tokio::time::timeout_at(req.deadline, body::drain(response.into_body())).await;
                add_phase(rec, Phase::Transfer, started.elapsed());
                if drained.is_err() {
                    rec.fail(
                        FailureReason::Timeout,
                        "timed out reading a redirect's body",
                    );
                    return false;
                }
                hop = next;
            }
            _ => break (response, conn),
        }
    };
    rec.gauge(
        "probe_http_redirects",
        "The number of redirects",
        f64::from(redirects),
    );
    evaluate(req, response, conn, &tpl, rec).await
}

/// Checks the final response and records its metrics.
async fn evaluate(
    req: &ProbeRequest<'_>,
    response: hyper::Response<connection::ResponseBody>,
    conn: connection::Connection,
    tpl: &Template,
    rec: &mut ProbeRecorder,
) -> bool {
    let cfg = &req.module.http;
    let over_tls = conn.tls;
    connection::replay(rec, &conn.tls_metrics);
    let (parts, incoming) = response.into_parts();
    let status = parts.status.as_u16();
    rec.gauge(
        "probe_http_status_code",
        "Response HTTP status code",
        f64::from(status),
    );
    let content_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(-1.0);
    rec.gauge(
        "probe_http_content_length",
        "Length of http content response",
        content_length,
    );
    let (version_name, version_number) = checks::version_of(parts.version);
    rec.gauge(
        "probe_http_version",
        "Returns the version of HTTP of the probe response",
        version_number,
    );
    rec.gauge(
        "probe_http_ssl",
        "Indicates if SSL was used for the final redirect",
        if over_tls { 1.0 } else { 0.0 },
    );

    let mut success = checks::status_ok(status, cfg, rec);
    let header_checks =
        !cfg.fail_if_header_matches.is_empty() || !cfg.fail_if_header_not_matches.is_empty();
    if success && header_checks {
        success = checks::headers_ok(&parts.headers, cfg, rec);
        rec.gauge(
            REGEX_FAILED.0,
            REGEX_FAILED.1,
            if success { 0.0 } else { 1.0 },
        );
    }

    let regexp_checks = !cfg.fail_if_body_matches_regexp.is_empty()
        || !cfg.fail_if_body_not_matches_regexp.is_empty();
    let cel_checks = self::cel::configured(cfg);
    let body_checks = regexp_checks || cel_checks;
    let started = Instant::now();
    let read = tokio::time::timeout_at(
        req.deadline,
        body::read(
            incoming,
            success && body_checks,
            tpl.compression,
            body_limit(req),
        ),
    )
    .await;
    add_phase(rec, Phase::Transfer, started.elapsed());
    drop(conn);
    let (body, body_error) = match read {
        Ok(r) => r,
        Err(_) => {
            rec.fail(
                FailureReason::Timeout,
                "timed out reading the response body",
            );
            return false;
        }
    };
    rec.gauge(
        "probe_http_uncompressed_body_length",
        "Length of uncompressed response body",
        body.uncompressed_len as f64,
    );
    if let Some(e) = body_error {
        if success {
            let reason = match e {
                body::BodyError::Read(_) => FailureReason::Connection,
                _ => FailureReason::Protocol,
            };
            rec.fail(reason, e.to_string());
            if regexp_checks {
                // blackbox's regexps read the body themselves: a body they cannot read whole
                // fails them (prober/http.go matchRegularExpressions), before CEL is reached.
                rec.gauge(REGEX_FAILED.0, REGEX_FAILED.1, 1.0);
            } else if cel_checks {
                self::cel::unreadable(rec);
            }
        }
        success = false;
    } else if success && body_checks {
        let bytes = body.bytes.unwrap_or_default();
        if regexp_checks {
            success = checks::body_ok(&bytes, cfg, rec);
            rec.gauge(
                REGEX_FAILED.0,
                REGEX_FAILED.1,
                if success { 0.0 } else { 1.0 },
            );
        }
        if success && cel_checks {
            success = self::cel::body_ok(bytes, cfg, req.deadline, rec).await;
        }
    }

    if let Some(t) = parts
        .headers
        .get(LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as f64)
            .unwrap_or(0.0);
        rec.gauge(
            "probe_http_last_modified_timestamp_seconds",
            "Returns the Last-Modified HTTP response header in unixtime",
            secs,
        );
    }
    if !checks::version_ok(version_name, cfg, rec) {
        success = false;
    }
    if over_tls && cfg.fail_if_ssl {
        rec.fail(FailureReason::Tls, "Final request was over SSL");
        success = false;
    } else if !over_tls && cfg.fail_if_not_ssl && success {
        rec.fail(FailureReason::Tls, "Final request was not over SSL");
        success = false;
    }
    success
}

/// The module's `body_size_limit`, else the exporter-wide default (blackbox has none; we do not
/// read without end).
fn body_limit(req: &ProbeRequest<'_>) -> body::BodyLimit {
    match req.module.http.body_size_limit.0 {
        0 => body::BodyLimit {
            bytes: req.config.limits.body_size_limit.0,
            setting: "limits.body_size_limit",
        },
        n => body::BodyLimit {
            bytes: n,
            setting: "body_size_limit",
        },
    }
}

/// Every family blackbox always exposes, at its "nothing happened" value; later steps overwrite.
fn init_metrics(rec: &mut ProbeRecorder) {
    phases::init(rec);
    rec.gauge(
        "probe_http_content_length",
        "Length of http content response",
        0.0,
    );
    rec.gauge(
        "probe_http_uncompressed_body_length",
        "Length of uncompressed response body",
        0.0,
    );
    rec.gauge("probe_http_redirects", "The number of redirects", 0.0);
    rec.gauge(
        "probe_http_ssl",
        "Indicates if SSL was used for the final redirect",
        0.0,
    );
    rec.gauge("probe_http_status_code", "Response HTTP status code", 0.0);
    rec.gauge(
        "probe_http_version",
        "Returns the version of HTTP of the probe response",
        0.0,
    );
    rec.gauge(REGEX_FAILED.0, REGEX_FAILED.1, 0.0);
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// `http://` is assumed when the target has no scheme, as blackbox does.
pub(crate) fn parse_target(target: &str) -> Result<Url, String> {
    let with_scheme;
    // Schemes are case-insensitive (RFC 3986 §3.1): `HTTPS://host` is https. A `://` later in
    // the target (in a query) is no scheme.
    let scheme = target.split_once("://").map(|(s, _)| s).filter(|s| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let text = match scheme.map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") => target,
        Some(_) => {
            return Err(format!(
                "target {target:?}: only http:// and https:// URLs can be probed"
            ))
        }
        None => {
            with_scheme = format!("http://{target}");
            &with_scheme
        }
    };
    let url = Url::parse(text).map_err(|e| format!("target {target:?} is not a valid URL: {e}"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("target {target:?} has no host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::parse_target;

    #[test]
    fn targets_default_to_http() {
        assert_eq!(
            parse_target("example.org:8080/x?y=1").unwrap().as_str(),
            "http://example.org:8080/x?y=1"
        );
        assert_eq!(
            parse_target("https://[::1]/").unwrap().host_str(),
            Some("[::1]")
        );
        assert!(parse_target("ftp://example.org/").is_err());
        assert_eq!(
            parse_target("HTTPS://Example.org/A").unwrap().as_str(),
            "https://example.org/A"
        );
        assert_eq!(
            parse_target("example.org/?next=http://x").unwrap().as_str(),
            "http://example.org/?next=http://x"
        );
        assert!(parse_target("http://").is_err());
    }
}
