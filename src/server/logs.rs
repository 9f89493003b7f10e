//! `/logs?target=T[&module=M]`: the probe logs of one target from the probe history, in
//! blackbox's query form and answers (0.28 main.go's `/logs` handler): the newest probe's debug
//! output (what `/probe?…&debug=true` showed), then what our history keeps besides.

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
    // Read as Go reads it (`Query().Get`), as /probe does.
    let params = super::query::parse(query);
    let get = |key| super::query::first(&params, key).map(str::to_string);
    let (id, module, target) = (get("id"), get("module"), get("target"));
    let (module, target) = (module.unwrap_or_default(), target.unwrap_or_default());
    // blackbox reads an id that does not parse, and -1, as no id.
    let id = id.and_then(|i| i.parse::<i64>().ok()).filter(|&i| i != -1);
    // blackbox's checks, in its order and with its words.
    if id.is_some() && !target.is_empty() {
        return plain(
            StatusCode::BAD_REQUEST,
            "Probe id and target can't be defined at the same time\n",
        );
    }
    if id.is_none() && target.is_empty() {
        return plain(
            StatusCode::BAD_REQUEST,
            "Probe id or target must be defined as http query parameters\n",
        );
    }
    if target.is_empty() && !module.is_empty() {
        return plain(
            StatusCode::BAD_REQUEST,
            "Probe module filter only works in conjunction with target parameter\n",
        );
    }
    if id.is_some() {
        // blackbox numbers every probe for its status page's links; ours links by target.
        return plain(
            StatusCode::BAD_REQUEST,
            "Probe ids are not kept by this exporter; ask by target: /logs?target=T&module=M\n",
        );
    }
    match app.history.find(&module, &target) {
        Some(h) => plain(StatusCode::OK, render(app, &h)),
        None => plain(StatusCode::NOT_FOUND, "Probe target not found\n"),
    }
}

fn render(app: &App, h: &TargetHistory) -> String {
    let mut out = String::with_capacity(4096);
    let last = h.last_outcome();
    if let Some(o) = last {
        let config = app.config();
        match config.modules.get(&h.module) {
            Some(module) => out.push_str(&crate::probe::debug::debug_output(o, &h.module, module)),
            None => outcome_logs(&mut out, "Last probe", o),
        }
    }
    // The newest failure too, when the last probe succeeded: it is what one comes looking for.
    if let Some(f) = h.last_failure_outcome() {
        if last.is_none_or(|l| !Arc::ptr_eq(l, f)) {
            outcome_logs(&mut out, "\n\nLast failed probe", f);
        }
    }
    let _ = writeln!(
        out,
        "\n\n\nRecent outcomes of module {} for this target, newest first ({} successes and {} failures kept):",
        h.module, h.successes, h.failures
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
