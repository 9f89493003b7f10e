//! The debug output of one probe (blackbox's `debug=true`): its log, the metrics it would have
//! returned and its module with secrets hidden. `/probe`, `/logs` and `siembox-exporter probe`
//! all print this one text.

use super::recorder::{encode_families, Format};
use super::ProbeOutcome;

/// What `debug=true` answers (blackbox prober/handler.go `DebugOutput`); `/logs` shows it too.
pub fn debug_output(
    outcome: &ProbeOutcome,
    module_name: &str,
    module: &crate::config::Module,
) -> String {
    let mut out = String::from("Logs for the probe:\n");
    for l in &outcome.log {
        out.push_str(&format!(
            "ts=+{:.3}ms level={} msg={:?}\n",
            l.at_ms, l.level, l.message
        ));
    }
    if let Some(reason) = outcome.failure {
        out.push_str(&format!("failure_reason={}\n", reason.as_str()));
    }
    out.push_str("\n\n\nMetrics that would have been returned:\n");
    encode_families(&mut out, &outcome.families, &[], Format::Text);
    out.push_str(&format!("\n\n\nModule configuration ({module_name}):\n"));
    out.push_str(&module_yaml(module));
    out
}

/// The module as YAML with only its own prober's section (the others are defaults, noise here).
pub fn module_yaml(module: &crate::config::Module) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::to_value(module) else {
        return String::new();
    };
    let keep = ["prober", "timeout", "cache_for", module.prober.as_str()];
    map.retain(|k, _| keep.contains(&k.as_str()));
    serde_saphyr::to_string(&map).unwrap_or_default()
}
