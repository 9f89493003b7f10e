//! The ssh_audit prober: asks the auditor (pool, caches) to audit the configured server named by
//! the target and turns the outcome into this probe's metrics, blackbox style.

use super::recorder::ProbeRecorder;
use super::{ProbeEnv, ProbeRequest};

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let outcome = env
        .auditor
        .audit(req.config, req.module_name, req.target, req.deadline)
        .await;
    outcome.record(rec);
    if let Some(reason) = outcome.failure {
        rec.fail(reason, outcome.message.clone());
    }
    outcome.success
}
