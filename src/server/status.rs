//! The status page at `/`: modules, recently probed targets (last result, failure reason, latency,
//! a sparkline of recent durations) and audited servers with their findings. One HTML string
//! built with `write!`, no JavaScript, no external assets; every string that came from a request
//! or the config is escaped.

use crate::app::App;
use crate::config::{Config, ProberKind};
use crate::history::{now_ms, Record, TargetHistory};
use crate::probe::recorder::Family;
use crate::probe::ProbeOutcome;
use std::fmt::Write as _;
use std::sync::Arc;

/// Rows of the targets table; the page stays small whatever the history holds.
const MAX_TARGET_ROWS: usize = 100;
/// Points of a sparkline.
const SPARK_POINTS: usize = 30;
const SPARK_W: usize = 120;
const SPARK_H: usize = 20;

/// The audit metric the findings table is read from (0 pass, 1 warn, 2 fail, 3 unknown).
const CHECK_STATUS: &str = "siembox_vps_audit_check_status";
/// Optional companion with the measured value of a check.
const CHECK_VALUE: &str = "siembox_vps_audit_check_value";

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.4em 0 .4em}\
table{border-collapse:collapse;margin-bottom:1em}th,td{border-bottom:1px solid #ddd;padding:3px 10px;text-align:left;vertical-align:middle}\
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#1a7f37;font-weight:600}.fail{color:#c62828;font-weight:600}.warn{color:#b26a00;font-weight:600}\
.unknown{color:#777;font-weight:600}.muted{color:#777}.target{font-family:monospace;word-break:break-all;max-width:36em}\
svg.spark{display:block}";

pub fn page(app: &App) -> String {
    let config = app.config();
    let mut out = String::with_capacity(16 * 1024);
    let now = now_ms();
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>siembox-exporter</title><style>",
    );
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n<h1>siembox-exporter</h1>\n");
    let _ = writeln!(
        out,
        "<p><a href=\"/metrics\">Metrics</a> · <a href=\"/config\">Configuration</a> · \
         <a href=\"/-/healthy\">Health</a> · version {}</p>",
        env!("CARGO_PKG_VERSION")
    );
    modules_table(&mut out, app, &config);
    targets_table(&mut out, app, now);
    servers_section(&mut out, app, &config, now);
    out.push_str("</body></html>\n");
    out
}

fn modules_table(out: &mut String, app: &App, config: &Config) {
    let stats = app.history.module_stats();
    out.push_str(
        "<h2 id=\"modules\">Modules</h2>\n<table id=\"modules-table\"><thead><tr><th>Module</th>\
         <th>Prober</th><th>Timeout</th><th>Targets</th><th>Failing</th></tr></thead><tbody>\n",
    );
    for (name, m) in &config.modules {
        let timeout = m
            .timeout
            .map(|t| t.to_string())
            .unwrap_or_else(|| "scrape timeout".into());
        let s = stats.get(name).copied().unwrap_or_default();
        out.push_str("<tr><td>");
        escape(out, name);
        let _ = write!(out, "</td><td>{}</td><td>", m.prober.as_str());
        escape(out, &timeout);
        let _ = write!(
            out,
            "</td><td class=\"num\">{}</td><td class=\"num\">",
            s.targets
        );
        if s.failing > 0 {
            let _ = write!(out, "<span class=\"fail\">{}</span>", s.failing);
        } else {
            out.push('0');
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

fn targets_table(out: &mut String, app: &App, now: u64) {
    let (mut rows, total) = app.history.recent(MAX_TARGET_ROWS);
    // Failing targets first, then the most recently probed.
    rows.sort_by_key(|h| h.last().is_some_and(|r| r.success));
    out.push_str("<h2 id=\"targets\">Recent targets</h2>\n");
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">No probes since the exporter started.</p>\n");
        return;
    }
    if total > rows.len() {
        let _ = writeln!(
            out,
            "<p class=\"muted\">Showing the {} most recently probed of {total} targets.</p>",
            rows.len()
        );
    }
    out.push_str(
        "<table id=\"targets-table\"><thead><tr><th>Module</th><th>Target</th><th>Last result</th>\
         <th>Failure reason</th><th>Latency</th><th>Last probe</th><th>Recent durations</th>\
         <th>Recent successes</th><th>Logs</th></tr></thead><tbody>\n",
    );
    for h in &rows {
        let Some(last) = h.last() else { continue };
        out.push_str("<tr><td>");
        escape(out, &h.module);
        out.push_str("</td><td class=\"target\">");
        escape(out, &h.target);
        out.push_str("</td><td>");
        result_badge(out, last);
        out.push_str("</td><td>");
        failure_cell(out, h, last, now);
        out.push_str("</td><td class=\"num\">");
        latency(out, last.duration_seconds());
        out.push_str("</td><td>");
        age(out, last.at_ms, now);
        out.push_str("</td><td>");
        sparkline(out, &h.records);
        let _ = write!(
            out,
            "</td><td class=\"num\">{}/{}</td><td><a href=\"",
            h.successes,
            h.successes + h.failures
        );
        logs_href(out, &h.module, &h.target);
        out.push_str("\">logs</a></td></tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

fn result_badge(out: &mut String, r: &Record) {
    out.push_str(if r.success {
        "<span class=\"ok\">success</span>"
    } else {
        "<span class=\"fail\">failure</span>"
    });
}

/// The reason of the last probe if it failed, else the last failure still in the history.
fn failure_cell(out: &mut String, h: &TargetHistory, last: &Record, now: u64) {
    if let Some(reason) = last.failure {
        let _ = write!(out, "<span class=\"fail\">{}</span>", reason.as_str());
        return;
    }
    if let Some(f) = h.records.iter().rev().find(|r| !r.success) {
        let reason = f.failure.map_or("other", |r| r.as_str());
        let _ = write!(out, "<span class=\"muted\">last: {reason}, ");
        age(out, f.at_ms, now);
        out.push_str("</span>");
    }
}

fn latency(out: &mut String, seconds: f64) {
    let ms = seconds * 1000.0;
    let _ = if ms < 10.0 {
        write!(out, "{ms:.2} ms")
    } else if ms < 10_000.0 {
        write!(out, "{ms:.0} ms")
    } else {
        write!(out, "{seconds:.1} s")
    };
}

/// "12s ago" with the UTC time as a tooltip.
fn age(out: &mut String, at_ms: u64, now: u64) {
    let secs = now.saturating_sub(at_ms) / 1000;
    let _ = write!(out, "<span title=\"{}\">", utc(at_ms));
    let _ = match secs {
        0..=59 => write!(out, "{secs}s ago"),
        60..=3599 => write!(out, "{}m ago", secs / 60),
        3600..=86_399 => write!(out, "{}h ago", secs / 3600),
        _ => write!(out, "{}d ago", secs / 86_400),
    };
    out.push_str("</span>");
}

/// An inline SVG line of the recent durations, failures as red dots.
fn sparkline(out: &mut String, records: &[Record]) {
    let recs = &records[records.len().saturating_sub(SPARK_POINTS)..];
    let max = recs.iter().map(|r| r.duration_us).max().unwrap_or(0).max(1) as f64;
    let _ = write!(
        out,
        "<svg class=\"spark\" width=\"{SPARK_W}\" height=\"{SPARK_H}\" viewBox=\"0 0 {SPARK_W} {SPARK_H}\" role=\"img\">\
         <title>max {:.2} ms over {} probes</title>",
        max / 1000.0,
        recs.len()
    );
    let step = if recs.len() > 1 {
        (SPARK_W - 4) as f64 / (recs.len() - 1) as f64
    } else {
        0.0
    };
    // Whole-pixel coordinates keep a row's SVG a few hundred bytes.
    let point = |i: usize, r: &Record| {
        let x = 2.0 + i as f64 * step;
        let y = (SPARK_H - 2) as f64 - (r.duration_us as f64 / max) * (SPARK_H - 4) as f64;
        (x.round() as u32, y.round() as u32)
    };
    out.push_str("<polyline fill=\"none\" stroke=\"#3367d6\" stroke-width=\"1.2\" points=\"");
    for (i, r) in recs.iter().enumerate() {
        let (x, y) = point(i, r);
        let _ = write!(out, "{x},{y} ");
    }
    out.push_str("\"/>");
    // Failures as red dots (zero-length round-capped strokes, one path for all); a lone success
    // as a blue dot, since a one-point line does not show.
    for (color, failed) in [("#c62828", true), ("#3367d6", false)] {
        let mut dots = recs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.success != failed && (failed || recs.len() == 1))
            .peekable();
        if dots.peek().is_none() {
            continue;
        }
        out.push_str("<path stroke-linecap=\"round\" stroke-width=\"4\" stroke=\"");
        out.push_str(color);
        out.push_str("\" d=\"");
        for (i, r) in dots {
            let (x, y) = point(i, r);
            let _ = write!(out, "M{x},{y}h0");
        }
        out.push_str("\"/>");
    }
    out.push_str("</svg>");
}

fn logs_href(out: &mut String, module: &str, target: &str) {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("module", module)
        .append_pair("target", target)
        .finish();
    out.push_str("/logs?");
    escape(out, &q);
}

fn servers_section(out: &mut String, app: &App, config: &Config, now: u64) {
    out.push_str("<h2 id=\"servers\">Audited servers</h2>\n");
    if config.servers.is_empty() {
        out.push_str("<p class=\"muted\">No servers configured.</p>\n");
        return;
    }
    let audit_modules: Vec<&String> = config
        .modules
        .iter()
        .filter(|(_, m)| m.prober == ProberKind::SshAudit)
        .map(|(n, _)| n)
        .collect();
    let mut findings = String::new();
    out.push_str(
        "<table id=\"servers-table\"><thead><tr><th>Server</th><th>Address</th><th>Labels</th>\
         <th>Module</th><th>Last audit</th><th>Result</th><th>Pass</th><th>Warn</th><th>Fail</th>\
         <th>Unknown</th></tr></thead><tbody>\n",
    );
    for server in &config.servers {
        let audited: Vec<(&String, TargetHistory)> = audit_modules
            .iter()
            .filter_map(|m| Some((*m, app.history.get(m, &server.name)?)))
            .collect();
        if audited.is_empty() {
            server_cells(out, server);
            out.push_str("<td class=\"muted\">-</td><td class=\"muted\">not audited yet</td><td></td><td></td><td></td><td></td><td></td></tr>\n");
            continue;
        }
        for (module, h) in &audited {
            server_cells(out, server);
            out.push_str("<td>");
            escape(out, module);
            out.push_str("</td><td>");
            let Some(last) = h.last() else {
                out.push_str("</td><td></td><td></td><td></td><td></td><td></td></tr>\n");
                continue;
            };
            age(out, last.at_ms, now);
            out.push_str("</td><td>");
            result_badge(out, last);
            if let Some(reason) = last.failure {
                let _ = write!(out, " <span class=\"muted\">({})</span>", reason.as_str());
            }
            out.push_str("</td>");
            // Findings of the newest audit that produced some (a failed connection has none).
            let checks = h
                .last_outcome()
                .map(|o| checks_of(o, &server.name))
                .filter(|c| !c.is_empty())
                .or_else(|| h.last_success_outcome().map(|o| checks_of(o, &server.name)))
                .unwrap_or_default();
            let mut counts = [0usize; 4];
            for c in &checks {
                counts[c.status.min(3) as usize] += 1;
                finding_row(&mut findings, &server.name, module, c);
            }
            for (i, n) in counts.iter().enumerate() {
                let class = if *n > 0 && i > 0 {
                    STATUS_CLASS[i]
                } else {
                    "num"
                };
                let _ = write!(out, "<td class=\"num {class}\">{n}</td>");
            }
            out.push_str("</tr>\n");
        }
    }
    out.push_str("</tbody></table>\n<h3 id=\"findings\">Audit findings</h3>\n");
    if findings.is_empty() {
        out.push_str("<p class=\"muted\">No findings recorded yet.</p>\n");
    } else {
        out.push_str(
            "<table id=\"findings-table\"><thead><tr><th>Server</th><th>Module</th><th>Check</th>\
             <th>Status</th><th>Value</th></tr></thead><tbody>\n",
        );
        out.push_str(&findings);
        out.push_str("</tbody></table>\n");
    }
}

fn server_cells(out: &mut String, server: &crate::config::Server) {
    out.push_str("<tr><td>");
    escape(out, &server.name);
    out.push_str("</td><td class=\"target\">");
    escape(out, &server.address);
    out.push_str("</td><td>");
    for (i, (k, v)) in server.labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        escape(out, k);
        out.push('=');
        escape(out, v);
    }
    out.push_str("</td>");
}

const STATUS_NAME: [&str; 4] = ["pass", "warn", "fail", "unknown"];
const STATUS_CLASS: [&str; 4] = ["ok", "warn", "fail", "unknown"];

/// One audit check read from the outcome's metric families.
#[derive(Debug)]
struct Check {
    name: String,
    status: u8,
    value: Option<f64>,
}

fn checks_of(outcome: &Arc<ProbeOutcome>, server: &str) -> Vec<Check> {
    let find = |name: &str| outcome.families.iter().find(|f| f.name == name);
    let Some(status) = find(CHECK_STATUS) else {
        return Vec::new();
    };
    let values = find(CHECK_VALUE);
    status
        .samples
        .iter()
        .filter(|s| label(&s.labels, "server").is_none_or(|v| v == server))
        .filter_map(|s| {
            let check = label(&s.labels, "check")?;
            let status = if s.value.is_finite() && (0.0..=3.0).contains(&s.value) {
                s.value as u8
            } else {
                3
            };
            Some(Check {
                name: check.to_string(),
                status,
                value: values.and_then(|f| value_of(f, server, check)),
            })
        })
        .collect()
}

fn value_of(f: &Family, server: &str, check: &str) -> Option<f64> {
    f.samples
        .iter()
        .find(|s| {
            label(&s.labels, "check") == Some(check)
                && label(&s.labels, "server").is_none_or(|v| v == server)
        })
        .map(|s| s.value)
}

fn label<'a>(labels: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

fn finding_row(out: &mut String, server: &str, module: &str, c: &Check) {
    let s = c.status as usize;
    out.push_str("<tr><td>");
    escape(out, server);
    out.push_str("</td><td>");
    escape(out, module);
    out.push_str("</td><td>");
    escape(out, &c.name);
    let _ = write!(
        out,
        "</td><td class=\"{}\">{}</td><td class=\"num\">",
        STATUS_CLASS[s], STATUS_NAME[s]
    );
    if let Some(v) = c.value {
        let _ = write!(out, "{v}");
    }
    out.push_str("</td></tr>\n");
}

/// Appends `s` with the HTML special characters escaped (text and attribute values).
pub(crate) fn escape(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// Milliseconds since the epoch as `2026-11-23T10:22:20.123Z`.
pub(crate) fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html_escape(s: &str) -> String {
        let mut out = String::new();
        escape(&mut out, s);
        out
    }

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            html_escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(html_escape("plain ü"), "plain ü");
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_795_429_340_123), "2026-11-23T10:22:20.123Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
