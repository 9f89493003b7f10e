//! `fail_if_body_json_matches_cel` / `fail_if_body_json_not_matches_cel` (blackbox 0.27+): the
//! body the prober already read is parsed as JSON, bound to `body`, and each expression must
//! give a boolean. Texts and `probe_failed_due_to_cel` follow blackbox's `matchCELExpressions`.

use crate::config::{CelExpression, HttpProbe, CEL_BODY_VARIABLE};
use crate::probe::recorder::{FailureReason, ProbeRecorder};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;

const CEL_FAILED: (&str, &str) = (
    "probe_failed_due_to_cel",
    "Indicates if probe failed due to CEL expression not matching",
);

/// Whether the module has an expression; blackbox exposes `probe_failed_due_to_cel` only then.
pub(super) fn configured(cfg: &HttpProbe) -> bool {
    cfg.fail_if_body_json_matches_cel.is_some() || cfg.fail_if_body_json_not_matches_cel.is_some()
}

/// `probe_failed_due_to_cel 0` for a module with an expression: its value until a check fails.
pub(super) fn init(cfg: &HttpProbe, rec: &mut ProbeRecorder) {
    if configured(cfg) {
        rec.gauge(CEL_FAILED.0, CEL_FAILED.1, 0.0);
    }
}

/// A body that could not be read whole fails the CEL check, as blackbox's does (its reader
/// errors, so `probe_failed_due_to_cel` is 1).
pub(super) fn unreadable(rec: &mut ProbeRecorder) {
    rec.gauge(CEL_FAILED.0, CEL_FAILED.1, 1.0);
}

/// Checks `body` against the module's expressions and sets `probe_failed_due_to_cel`. Parsing
/// and evaluation run off the async workers (a large body or a comprehension over a long list
/// is CPU work); the probe gives up at `deadline`.
pub(super) async fn body_ok(
    body: Vec<u8>,
    cfg: &HttpProbe,
    deadline: Instant,
    rec: &mut ProbeRecorder,
) -> bool {
    let matches = cfg.fail_if_body_json_matches_cel.clone();
    let not_matches = cfg.fail_if_body_json_not_matches_cel.clone();
    let work = tokio::task::spawn_blocking(move || judge(&body, matches, not_matches));
    let verdict = match tokio::time::timeout_at(deadline, work).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => Err((FailureReason::Other, format!("CEL evaluation stopped: {e}"))),
        Err(_) => Err((
            FailureReason::Timeout,
            "timed out evaluating the CEL expression".to_string(),
        )),
    };
    let ok = match verdict {
        Ok(()) => true,
        Err((reason, message)) => {
            rec.fail(reason, message);
            false
        }
    };
    rec.gauge(CEL_FAILED.0, CEL_FAILED.1, if ok { 0.0 } else { 1.0 });
    ok
}

type Verdict = Result<(), (FailureReason, String)>;

fn judge(
    body: &[u8],
    matches: Option<CelExpression>,
    not_matches: Option<CelExpression>,
) -> Verdict {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        (
            FailureReason::Protocol,
            format!("Error unmarshalling HTTP body to JSON: {e}"),
        )
    })?;
    let mut context = cel::Context::with_env(std_env());
    context.add_variable_from_value(CEL_BODY_VARIABLE, to_cel(json));
    if let Some(expr) = matches {
        if evaluate(&expr, &context)? {
            return Err((
                FailureReason::Cel,
                format!("Body matched CEL expression {:?}", expr.as_str()),
            ));
        }
    }
    if let Some(expr) = not_matches {
        if !evaluate(&expr, &context)? {
            return Err((
                FailureReason::Cel,
                format!("Body did not match CEL expression {:?}", expr.as_str()),
            ));
        }
    }
    Ok(())
}

fn evaluate(expr: &CelExpression, context: &cel::Context) -> Result<bool, (FailureReason, String)> {
    match expr.program().execute(context) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err((
            FailureReason::Cel,
            format!(
                "CEL evaluation result is not a boolean: expression {:?} gave a {:?}",
                expr.as_str(),
                other.type_of()
            ),
        )),
        Err(e) => Err((
            FailureReason::Cel,
            format!("Error evaluating CEL expression {:?}: {e}", expr.as_str()),
        )),
    }
}

/// The standard CEL environment, built once (it registers every standard function).
fn std_env() -> Arc<cel::Env> {
    static ENV: std::sync::OnceLock<Arc<cel::Env>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| Arc::new(cel::Env::stdlib())).clone()
}

/// JSON as blackbox hands it to CEL: Go decodes every JSON number to a float64, so numbers are
/// doubles here too (`body.n == 3` still holds: CEL compares numbers across types).
fn to_cel(json: serde_json::Value) -> cel::Value {
    match json {
        serde_json::Value::Null => cel::Value::Null,
        serde_json::Value::Bool(b) => cel::Value::Bool(b),
        serde_json::Value::Number(n) => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => cel::Value::from(s),
        serde_json::Value::Array(items) => {
            cel::Value::List(Arc::new(items.into_iter().map(to_cel).collect()))
        }
        serde_json::Value::Object(map) => {
            let map: HashMap<String, cel::Value> =
                map.into_iter().map(|(k, v)| (k, to_cel(v))).collect();
            cel::Value::from(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(s: &str) -> Option<CelExpression> {
        Some(CelExpression::compile(s).unwrap())
    }

    #[test]
    fn verdicts_follow_blackbox() {
        let body = br#"{"status":"ok","n":3,"items":[{"up":true},{"up":false}]}"#;
        assert!(judge(body, expr("body.status == 'down'"), None).is_ok());
        assert!(judge(body, None, expr("body.status == 'ok' && body.n == 3")).is_ok());
        assert!(judge(body, None, expr("body.items.exists(i, !i.up)")).is_ok());
        let (reason, msg) = judge(body, expr("body.n > 2"), None).unwrap_err();
        assert_eq!(reason, FailureReason::Cel);
        assert!(msg.starts_with("Body matched CEL expression"), "{msg}");
        let (_, msg) = judge(body, None, expr("body.items.all(i, i.up)")).unwrap_err();
        assert!(
            msg.starts_with("Body did not match CEL expression"),
            "{msg}"
        );
        let (_, msg) = judge(body, None, expr("body.n")).unwrap_err();
        assert!(msg.contains("not a boolean"), "{msg}");
        let (_, msg) = judge(body, None, expr("body.missing == 1")).unwrap_err();
        assert!(msg.starts_with("Error evaluating CEL expression"), "{msg}");
        let (reason, msg) = judge(b"<html>", None, expr("true")).unwrap_err();
        assert_eq!(reason, FailureReason::Protocol);
        assert!(
            msg.starts_with("Error unmarshalling HTTP body to JSON"),
            "{msg}"
        );
    }
}
