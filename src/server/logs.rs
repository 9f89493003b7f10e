//! `/logs?module=M&target=T`: the recent log lines and outcomes of one (module, target) from the
//! probe history, as text.

use super::respond::{plain, Reply};
use super::status::utc;
use crate::app::App;
use crate::history::TargetHistory;
use crate::probe::ProbeOutcome;
use hyper::{Request, StatusCode};
use std::fmt::Write as _;
use std::sync::Arc;

const MAX_QUERY_BYTES: usize = 8 * 1024;

pub fn handle<B>(app: &App, req: &Request<B>) -> Reply {
    let query = req.uri().query().unwrap_or("");
    if query.len() > MAX_QUERY_BYTES {
        return plain(
            StatusCode::URI_TOO_LONG,
            format!("query string longer than {MAX_QUERY_BYTES} bytes\n"),
        );
    }
    let (mut module, mut target) = (None, None);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "module" => module = Some(v.into_owned()),
            "target" => target = Some(v.into_owned()),
            _ => {}
        }
    }
    let (Some(module), Some(target)) = (
        module.filter(|m| !m.is_empty()),
        target.filter(|t| !t.is_empty()),
    ) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "both the module and target parameters are required: /logs?module=M&target=T\n",
        );
    };
    match app.history.get(&module, &target) {
        Some(h) => plain(StatusCode::OK, render(&h)),
        None => plain(
            StatusCode::NOT_FOUND,
            format!(
                "no probe history for module {:?} and target {:?}: it has not been probed since the \
                 exporter started, or its history was evicted or dropped by a reload\n",
                one_line(&module),
                one_line(&crate::probe::target::redacted(&target))
            ),
        ),
    }
}

fn render(h: &TargetHistory) -> String {
    let mut out = String::with_capacity(2048);
    let _ = writeln!(out, "module={} target={}", h.module, one_line(&h.target));
    let last = h.last_outcome();
    if let Some(o) = last {
        outcome_logs(&mut out, "Last probe", o);
    }
    // The newest failure too, when the last probe succeeded: it is what one comes looking for.
    if let Some(f) = h.last_failure_outcome() {
        if last.is_none_or(|l| !Arc::ptr_eq(l, f)) {
            outcome_logs(&mut out, "Last failed probe", f);
        }
    }
    let _ = writeln!(
        out,
        "\nRecent outcomes, newest first ({} successes and {} failures kept):",
        h.successes, h.failures
    );
    for r in h.records.iter().rev() {
        let _ = write!(
            out,
            "{} {} duration_seconds={:.6}",
            utc(r.at_ms),
            if r.success { "success" } else { "failure" },
            r.duration_seconds()
        );
        if let Some(reason) = r.failure {
            let _ = write!(out, " failure_reason={}", reason.as_str());
        }
        out.push('\n');
    }
    out
}

fn outcome_logs(out: &mut String, title: &str, o: &ProbeOutcome) {
    let at = o
        .finished_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let _ = write!(
        out,
        "\n{title}: {} at {} duration_seconds={:.6}",
        if o.success { "success" } else { "failure" },
        utc(at),
        o.duration.as_secs_f64()
    );
    if let Some(reason) = o.failure {
        let _ = write!(out, " failure_reason={}", reason.as_str());
    }
    out.push('\n');
    for l in &o.log {
        let _ = writeln!(
            out,
            "ts=+{:.3}ms level={} msg={:?}",
            l.at_ms, l.level, l.message
        );
    }
}

/// Keeps a user-supplied value on one short line.
fn one_line(s: &str) -> String {
    let mut t: String = s.chars().filter(|c| !c.is_control()).take(200).collect();
    if s.chars().count() > 200 {
        t.push('…');
    }
    t
}
