//! `/probe` (blackbox semantics: target, module, hostname, debug, scrape-timeout header) and
//! `/metrics`.

use super::respond::{plain, Reply};
use crate::app::App;
use crate::metrics::openmetrics_to_text;
use crate::probe::recorder::FailureReason;
use crate::probe::recorder::{encode_families, Format};
use hyper::header::ACCEPT;
use hyper::{Request, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// With no scrape-timeout header, blackbox assumes 120s.
const DEFAULT_SCRAPE_TIMEOUT_SECONDS: f64 = 120.0;
const MAX_QUERY_BYTES: usize = 8 * 1024;

pub async fn handle<B>(app: &Arc<App>, req: &Request<B>) -> Reply {
    let query = req.uri().query().unwrap_or("");
    if query.len() > MAX_QUERY_BYTES {
        return plain(
            StatusCode::URI_TOO_LONG,
            format!("query string longer than {MAX_QUERY_BYTES} bytes\n"),
        );
    }
    let params = super::query::parse(query);
    let get = |key| super::query::first(&params, key).map(str::to_string);
    let (target, module_name, hostname) = (get("target"), get("module"), get("hostname"));
    let debug = get("debug").as_deref() == Some("true");
    let module_name = module_name
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "http_2xx".to_string());
    let config = app.config();
    if let Some(prober) = config.unknown_probers.get(&module_name) {
        // blackbox's order: the target is checked before the prober.
        if target.as_deref().is_none_or(str::is_empty) {
            return plain(StatusCode::BAD_REQUEST, "Target parameter is missing\n");
        }
        return plain(
            StatusCode::BAD_REQUEST,
            format!("Unknown prober {:?}\n", one_line(prober)),
        );
    }
    let Some(module) = config.modules.get(&module_name) else {
        app.metrics.module_unknown.inc();
        return plain(
            StatusCode::BAD_REQUEST,
            format!("Unknown module {:?}\n", one_line(&module_name)),
        );
    };
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        return plain(StatusCode::BAD_REQUEST, "Target parameter is missing\n");
    };
    if let Some(why) = host_conflict(module, hostname.as_deref()) {
        return plain(StatusCode::BAD_REQUEST, format!("{}\n", one_line(&why)));
    }
    if let Err(why) = crate::probe::target::check(&config, module.prober, &target) {
        return plain(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid target {:?}: {why}\n",
                one_line(&crate::probe::target::redacted(&target))
            ),
        );
    }
    let timeout = match scrape_timeout(
        req,
        module.timeout.map(|t| t.get()),
        app.options.timeout_offset,
    ) {
        Ok(t) => t,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let outcome = app
        .probe_with(
            &config,
            &module_name,
            &target,
            hostname.as_deref(),
            timeout,
            crate::limits::Priority::OnScrape,
        )
        .await;
    if outcome.failure == Some(FailureReason::Denied) {
        let why = outcome
            .log
            .iter()
            .find(|l| l.level == "error")
            .map_or("target not allowed", |l| l.message.as_str());
        return plain(StatusCode::FORBIDDEN, format!("{why}\n"));
    }
    if debug {
        return plain(
            StatusCode::OK,
            crate::probe::debug::debug_output(&outcome, &module_name, module),
        );
    }
    let format = Format::from_accept(req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()));
    let mut body = String::with_capacity(1024);
    encode_families(&mut body, &outcome.families, &[], format);
    if format == Format::OpenMetrics {
        body.push_str("# EOF\n");
    }
    Reply::new(StatusCode::OK, format.content_type(), body)
}

/// blackbox refuses an http probe whose `hostname=` differs from a `Host` header the module sets.
fn host_conflict(module: &crate::config::Module, hostname: Option<&str>) -> Option<String> {
    let hostname = hostname.filter(|h| !h.is_empty())?;
    if module.prober != crate::config::ProberKind::Http {
        return None;
    }
    let (_, configured) =
        module.http.headers.iter().find(|(name, value)| {
            name.eq_ignore_ascii_case("host") && value.as_str() != hostname
        })?;
    Some(format!(
        "host header defined both in module configuration ({configured}) and with URL-parameter 'hostname' ({hostname})"
    ))
}

/// Blackbox's rule: the scrape timeout header minus the offset, capped by the module's timeout;
/// the module timeout alone if the offset would leave nothing.
pub fn scrape_timeout<B>(
    req: &Request<B>,
    module_timeout: Option<Duration>,
    offset: Duration,
) -> Result<Duration, String> {
    let header = req.headers().get("X-Prometheus-Scrape-Timeout-Seconds");
    let mut seconds = match header {
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| "X-Prometheus-Scrape-Timeout-Seconds is not text".to_string())?;
            let f: f64 = s.trim().parse().map_err(|_| {
                format!("X-Prometheus-Scrape-Timeout-Seconds {s:?} is not a number")
            })?;
            if !f.is_finite() || f < 0.0 {
                return Err(format!(
                    "X-Prometheus-Scrape-Timeout-Seconds {s:?} is not a positive number"
                ));
            }
            f
        }
        None => 0.0,
    };
    if seconds == 0.0 {
        seconds = DEFAULT_SCRAPE_TIMEOUT_SECONDS;
    }
    let max = seconds - offset.as_secs_f64();
    let module = module_timeout.map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let chosen = if (module > 0.0 && module < max) || max <= 0.0 {
        module
    } else {
        max
    };
    if chosen <= 0.0 {
        return Err("the scrape timeout leaves no time to probe (lower --timeout-offset or set a module timeout)".into());
    }
    Ok(Duration::from_secs_f64(chosen.min(86_400.0)))
}

pub fn metrics<B>(app: &Arc<App>, req: &Request<B>) -> Reply {
    let format = Format::from_accept(req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()));
    let mut om = String::with_capacity(16 * 1024);
    app.metrics.encode_openmetrics(&mut om);
    let mut body = match format {
        Format::OpenMetrics => om,
        Format::Text => openmetrics_to_text(&om),
    };
    // Scheduled results are encoded straight in the asked format (they can be large).
    app.scheduler.results.encode(&mut body, format);
    if format == Format::OpenMetrics {
        body.push_str("# EOF\n");
    }
    Reply::new(StatusCode::OK, format.content_type(), body)
}

/// Keeps a user-supplied value on one short line in error messages.
fn one_line(s: &str) -> String {
    let mut t: String = s.chars().filter(|c| !c.is_control()).take(200).collect();
    if s.chars().count() > 200 {
        t.push('…');
    }
    t
}
