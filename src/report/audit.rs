//! `siembox-exporter audit`: audits named servers once through the same [`Auditor`] the server
//! uses, then prints a verdict table per server (or JSON) and says by the exit status whether
//! any check failed.

use super::style::Style;
use crate::audit::{AuditOutcome, Auditor};
use crate::audit::{CheckStatus, Finding};
use crate::config::Config;
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::Arc;

/// The least severe verdict that makes the exit status non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    /// Only failed checks (and servers that could not be audited).
    #[default]
    Fail,
    /// Failed or warning checks.
    Warn,
    /// Anything that did not pass, unknown included.
    Unknown,
}

impl FailOn {
    fn counts(self, status: CheckStatus) -> bool {
        match self {
            FailOn::Fail => status == CheckStatus::Fail,
            FailOn::Warn => matches!(status, CheckStatus::Fail | CheckStatus::Warn),
            FailOn::Unknown => status != CheckStatus::Pass,
        }
    }
}

/// The `ssh_audit` module to use: the named one, or the only one the config has.
pub fn pick_module(config: &Config, wanted: Option<&str>) -> Result<String, String> {
    let audit_modules: Vec<&String> = config
        .modules
        .iter()
        .filter(|(_, m)| m.ssh_audit.is_some())
        .map(|(n, _)| n)
        .collect();
    match wanted {
        Some(name) => match config.modules.get(name) {
            Some(m) if m.ssh_audit.is_some() => Ok(name.to_string()),
            Some(m) => Err(format!(
                "module {name:?} is a {} module, not ssh_audit",
                m.prober.as_str()
            )),
            None => Err(format!(
                "no module {name:?} in the configuration (ssh_audit modules: {})",
                list(&audit_modules)
            )),
        },
        None => match audit_modules.as_slice() {
            [only] => Ok(only.to_string()),
            [] => Err("the configuration has no ssh_audit module".into()),
            many => Err(format!(
                "the configuration has {} ssh_audit modules ({}): choose one with --module",
                many.len(),
                list(many)
            )),
        },
    }
}

/// Every name must be a configured server: credentials only go to servers the config lists.
pub fn check_servers(config: &Config, names: &[String]) -> Result<(), String> {
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !config.servers.iter().any(|s| &s.name == *n))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let known: Vec<&String> = config.servers.iter().map(|s| &s.name).collect();
    Err(format!(
        "not a configured server: {} (servers: {})",
        list(&unknown),
        list(&known)
    ))
}

fn list(names: &[&String]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Audits every server at once (the module's pool bounds the connections), each within the
/// module's timeout; outcomes in the order the servers were named.
pub async fn run(config: &Config, module: &str, servers: &[String]) -> Vec<Arc<AuditOutcome>> {
    let auditor = Auditor::new();
    auditor.apply_config(config);
    let timeout = config
        .modules
        .get(module)
        .map(super::timeout_of)
        .unwrap_or_default();
    let deadline = tokio::time::Instant::now() + timeout;
    futures::future::join_all(
        servers
            .iter()
            .map(|s| auditor.audit(config, module, s, deadline)),
    )
    .await
}

/// The exit status for these outcomes.
pub fn exit_code(outcomes: &[Arc<AuditOutcome>], fail_on: FailOn) -> u8 {
    let bad = outcomes
        .iter()
        .any(|o| !o.success || o.findings.iter().any(|f| fail_on.counts(f.status)));
    if bad {
        super::exit::FAILED
    } else {
        super::exit::OK
    }
}

#[derive(Default, Serialize, PartialEq, Debug)]
struct Summary {
    pass: usize,
    warn: usize,
    fail: usize,
    unknown: usize,
}

fn summary(findings: &[Finding]) -> Summary {
    let mut s = Summary::default();
    for f in findings {
        match f.status {
            CheckStatus::Pass => s.pass += 1,
            CheckStatus::Warn => s.warn += 1,
            CheckStatus::Fail => s.fail += 1,
            CheckStatus::Unknown => s.unknown += 1,
        }
    }
    s
}

/// A measured value as a person reads it: whole numbers without decimals.
fn value_text(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The readable report: per server a header line, then one row per check.
pub fn render_text(module: &str, outcomes: &[Arc<AuditOutcome>], style: Style) -> String {
    let mut out = String::new();
    for (i, o) in outcomes.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{} {}",
            style.bold(&format!("Server {}", o.server)),
            style.dim(&format!(
                "(module {module}, {:.2} s)",
                o.duration.as_secs_f64()
            ))
        );
        if !o.success {
            let reason = o.failure.map_or("error", |r| r.as_str());
            let _ = writeln!(
                out,
                "  {} ({reason}): {}",
                style.bad("AUDIT FAILED"),
                one_line(&o.message)
            );
            continue;
        }
        let _ = writeln!(out, "  {} / kernel {}", o.os, o.kernel);
        let name_width = o
            .findings
            .iter()
            .map(|f| f.check.len())
            .max()
            .unwrap_or(5)
            .max("CHECK".len());
        let value_width = o
            .findings
            .iter()
            .map(|f| value_text(f.value).len())
            .max()
            .unwrap_or(1)
            .max("VALUE".len());
        let _ = writeln!(
            out,
            "  {:<name_width$}  {:<7}  {:<value_width$}  REASON",
            "CHECK", "VERDICT", "VALUE"
        );
        for f in &o.findings {
            let _ = writeln!(
                out,
                "  {:<name_width$}  {}  {:<value_width$}  {}",
                f.check,
                style.verdict(f.status, 7),
                value_text(f.value),
                one_line(&f.detail)
            );
        }
        let s = summary(&o.findings);
        let line = format!(
            "{} pass, {} warn, {} fail, {} unknown",
            s.pass, s.warn, s.fail, s.unknown
        );
        let _ = writeln!(
            out,
            "  {}",
            if s.fail > 0 {
                style.bad(&line)
            } else {
                style.good(&line)
            }
        );
    }
    out
}

/// The JSON report (`--output json`); its fields are part of the interface (README).
#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    module: &'a str,
    fail_on: FailOn,
    exit_code: u8,
    servers: Vec<JsonServer<'a>>,
}

#[derive(Serialize)]
struct JsonServer<'a> {
    server: &'a str,
    audited: bool,
    failure_reason: Option<&'static str>,
    error: Option<&'a str>,
    os: Option<&'a str>,
    kernel: Option<&'a str>,
    duration_seconds: f64,
    summary: Summary,
    checks: Vec<JsonCheck<'a>>,
}

#[derive(Serialize)]
struct JsonCheck<'a> {
    check: &'a str,
    verdict: &'static str,
    value: Option<f64>,
    reason: &'a str,
}

pub fn render_json(module: &str, outcomes: &[Arc<AuditOutcome>], fail_on: FailOn) -> String {
    let report = JsonReport {
        schema_version: 1,
        module,
        fail_on,
        exit_code: exit_code(outcomes, fail_on),
        servers: outcomes
            .iter()
            .map(|o| JsonServer {
                server: &o.server,
                audited: o.success,
                failure_reason: o.failure.map(|r| r.as_str()),
                error: (!o.success).then_some(o.message.as_str()),
                os: o.success.then_some(o.os.as_str()),
                kernel: o.success.then_some(o.kernel.as_str()),
                duration_seconds: o.duration.as_secs_f64(),
                summary: summary(&o.findings),
                checks: o
                    .findings
                    .iter()
                    .map(|f| JsonCheck {
                        check: f.check,
                        verdict: f.status.as_str(),
                        value: f.value.filter(|v| v.is_finite()),
                        reason: &f.detail,
                    })
                    .collect(),
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&report).unwrap_or_default();
    s.push('\n');
    s
}

/// Server-given text on one line: a report row never breaks, and no escape code of the
/// server's reaches the terminal.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn outcome(statuses: &[CheckStatus]) -> Arc<AuditOutcome> {
        Arc::new(AuditOutcome {
            server: "web-1".into(),
            module: "vps_audit".into(),
            success: true,
            failure: None,
            message: String::new(),
            findings: statuses
                .iter()
                .zip(["ssh_root_login", "firewall", "disk_usage"])
                .map(|(s, c)| Finding {
                    check: c,
                    status: *s,
                    value: Some(42.5),
                    detail: "why\x1b[31m\nnext".into(),
                })
                .collect(),
            os: "Debian".into(),
            kernel: "6.1".into(),
            disks: Vec::new(),
            duration: Duration::from_millis(10),
            finished_at: SystemTime::now(),
            reused_connection: false,
        })
    }

    #[test]
    fn exit_status_follows_fail_on() {
        use CheckStatus::*;
        let warn = [outcome(&[Pass, Warn, Unknown])];
        assert_eq!(exit_code(&warn, FailOn::Fail), 0);
        assert_eq!(exit_code(&warn, FailOn::Warn), 1);
        let unknown = [outcome(&[Pass, Unknown])];
        assert_eq!(exit_code(&unknown, FailOn::Warn), 0);
        assert_eq!(exit_code(&unknown, FailOn::Unknown), 1);
        assert_eq!(exit_code(&[outcome(&[Pass, Fail])], FailOn::Fail), 1);
        assert_eq!(exit_code(&[outcome(&[Pass, Pass])], FailOn::Unknown), 0);
    }

    #[test]
    fn server_text_cannot_break_rows_or_reach_the_terminal_raw() {
        let text = render_text(
            "vps_audit",
            &[outcome(&[CheckStatus::Fail])],
            Style { color: false },
        );
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.contains("ssh_root_login  FAIL     42.50  why [31m next"),
            "{text}"
        );
    }
}
