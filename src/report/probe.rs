//! `siembox-exporter probe`: one probe of a configured module, run by the same prober code
//! `/probe` runs, printed as `/probe?debug=true` prints it (log, metrics, module with secrets
//! hidden) or as JSON.

use super::style::Style;
use crate::config::Config;
use crate::probe::recorder::{encode_families, Format};
use crate::probe::{ProbeEnv, ProbeOutcome, ProbeRequest};
use serde::Serialize;

/// Checks the module and target as `/probe` does (same messages), then runs the probe within
/// the module's timeout. `Err`: nothing was probed (a usage or configuration error).
pub async fn run(config: &Config, module_name: &str, target: &str) -> Result<ProbeOutcome, String> {
    if let Some(prober) = config.unknown_probers.get(module_name) {
        return Err(format!(
            "module {module_name:?} uses unknown prober {prober:?}"
        ));
    }
    let Some(module) = config.modules.get(module_name) else {
        let known: Vec<&str> = config.modules.keys().map(String::as_str).collect();
        return Err(format!(
            "no module {module_name:?} in the configuration (modules: {})",
            known.join(", ")
        ));
    };
    if target.is_empty() {
        return Err("the target is empty".into());
    }
    crate::probe::target::check(config, module.prober, target).map_err(|why| {
        format!(
            "invalid target {:?}: {why}",
            crate::probe::target::redacted(target)
        )
    })?;
    let env = ProbeEnv::new();
    env.auditor.apply_config(config);
    let timeout = super::timeout_of(module);
    let req = ProbeRequest {
        target,
        module_name,
        module,
        deadline: tokio::time::Instant::now() + timeout,
        timeout,
        config,
        hostname: None,
    };
    Ok(crate::probe::run_probe(&req, &env).await)
}

/// The exit status for this outcome.
pub fn exit_code(outcome: &ProbeOutcome) -> u8 {
    if outcome.success {
        super::exit::OK
    } else {
        super::exit::FAILED
    }
}

/// The debug output, then one verdict line (the reason when it failed).
pub fn render_text(
    outcome: &ProbeOutcome,
    module_name: &str,
    module: &crate::config::Module,
    target: &str,
    style: Style,
) -> String {
    let mut out = crate::probe::debug::debug_output(outcome, module_name, module);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    let target = crate::probe::target::redacted(target);
    out.push('\n');
    if outcome.success {
        out.push_str(&style.good(&format!(
            "probe_success 1: {module_name} {target} succeeded in {:.3} s",
            outcome.duration.as_secs_f64()
        )));
    } else {
        out.push_str(&style.bad(&format!(
            "probe_success 0: {module_name} {target} failed ({}): {}",
            outcome.failure.map_or("error", |r| r.as_str()),
            failure_message(outcome)
        )));
    }
    out.push('\n');
    out
}

/// The last error the prober logged: why the probe failed, in its own words.
fn failure_message(outcome: &ProbeOutcome) -> String {
    outcome
        .log
        .iter()
        .rev()
        .find(|l| l.level == "error")
        .map_or_else(String::new, |l| l.message.clone())
}

#[derive(Serialize)]
struct JsonProbe<'a> {
    schema_version: u32,
    module: &'a str,
    target: &'a str,
    success: bool,
    failure_reason: Option<&'static str>,
    error: Option<String>,
    duration_seconds: f64,
    log: Vec<JsonLogLine<'a>>,
    /// Prometheus text exposition, exactly what `/probe` would have returned.
    metrics: String,
    /// The module as YAML, secrets as `<secret>`.
    module_config: String,
}

#[derive(Serialize)]
struct JsonLogLine<'a> {
    at_ms: f64,
    level: &'a str,
    message: &'a str,
}

pub fn render_json(
    outcome: &ProbeOutcome,
    module_name: &str,
    module: &crate::config::Module,
    target: &str,
) -> String {
    let mut metrics = String::new();
    encode_families(&mut metrics, &outcome.families, &[], Format::Text);
    let report = JsonProbe {
        schema_version: 1,
        module: module_name,
        target: &crate::probe::target::redacted(target),
        success: outcome.success,
        failure_reason: outcome.failure.map(|r| r.as_str()),
        error: (!outcome.success).then(|| failure_message(outcome)),
        duration_seconds: outcome.duration.as_secs_f64(),
        log: outcome
            .log
            .iter()
            .map(|l| JsonLogLine {
                at_ms: l.at_ms,
                level: l.level,
                message: &l.message,
            })
            .collect(),
        metrics,
        module_config: crate::probe::debug::module_yaml(module),
    };
    let mut s = serde_json::to_string_pretty(&report).unwrap_or_default();
    s.push('\n');
    s
}
