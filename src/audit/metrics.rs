//! The audit metrics on `/metrics` (prefix `siembox_vps_audit_`): a prometheus-client Collector
//! that reads the auditor's latest results and pool counters on every scrape, so series of
//! servers removed from the config disappear with them.

use super::Auditor;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabel {
    pub server: String,
}

/// Buckets up to 600s: an audit over a slow link with heavy checks can take minutes.
const DURATION_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0,
];

/// Metrics the auditor updates as audits finish (the rest is read from its state).
#[derive(Debug)]
pub struct AuditMetrics {
    duration: Family<ServerLabel, Histogram>,
    /// Servers with a duration series, so a reload can remove the ones no longer configured.
    servers: parking_lot::Mutex<HashSet<String>>,
}

impl Default for AuditMetrics {
    fn default() -> Self {
        AuditMetrics {
            duration: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
            servers: parking_lot::Mutex::new(HashSet::new()),
        }
    }
}

impl AuditMetrics {
    pub fn observe_duration(&self, server: &str, seconds: f64) {
        self.servers.lock().insert(server.to_string());
        self.duration
            .get_or_create(&ServerLabel {
                server: server.to_string(),
            })
            .observe(seconds);
    }

    /// Forgets servers that are no longer configured.
    pub fn retain_servers(&self, names: &HashSet<&str>) {
        self.servers.lock().retain(|s| {
            let keep = names.contains(s.as_str());
            if !keep {
                self.duration.remove(&ServerLabel { server: s.clone() });
            }
            keep
        });
    }
}

/// Adds the audit collector to a registry (called once in `App::new`).
pub fn register(registry: &mut Registry, auditor: Arc<Auditor>) {
    registry.register_collector(Box::new(AuditCollector { auditor }));
}

#[derive(Debug)]
struct AuditCollector {
    auditor: Arc<Auditor>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auditor")
    }
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for AuditCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let a = &self.auditor;
        let st = a.stats();
        gauge(
            &mut enc,
            "siembox_vps_audit_connection_pool_active",
            "SSH connections in use by a running audit",
            st.active.load(Ordering::Relaxed) as f64,
        )?;
        gauge(
            &mut enc,
            "siembox_vps_audit_connection_pool_open",
            "SSH connections open (in use or idle)",
            st.open.load(Ordering::Relaxed) as f64,
        )?;
        gauge(
            &mut enc,
            "siembox_vps_audit_connection_pool_max",
            "Most SSH connections the pools may open (sum of max_connections)",
            a.pool_max.load(Ordering::Relaxed) as f64,
        )?;
        gauge(
            &mut enc,
            "siembox_vps_audit_audit_queue_size",
            "Audits waiting for a free SSH connection slot",
            st.waiting.load(Ordering::Relaxed) as f64,
        )?;
        {
            let conn = ConstCounter::new(0u64);
            let mut fam = enc.encode_descriptor(
                "siembox_vps_audit_ssh_connections",
                "SSH connection attempts by result",
                None,
                conn.metric_type(),
            )?;
            for (status, v) in [
                ("success", &st.connect_success),
                ("failed", &st.connect_failed),
            ] {
                ConstCounter::new(v.load(Ordering::Relaxed))
                    .encode(fam.encode_family(&[("status", status)])?)?;
            }
        }
        {
            let c = ConstCounter::new(0u64);
            let mut fam = enc.encode_descriptor(
                "siembox_vps_audit_audits",
                "Audits run by result",
                None,
                c.metric_type(),
            )?;
            for (status, v) in [("success", &a.audits_success), ("error", &a.audits_error)] {
                ConstCounter::new(v.load(Ordering::Relaxed))
                    .encode(fam.encode_family(&[("status", status)])?)?;
            }
        }
        self.auditor.metrics.duration.encode(enc.encode_descriptor(
            "siembox_vps_audit_audit_duration_seconds",
            "Duration of audits by server",
            None,
            self.auditor.metrics.duration.metric_type(),
        )?)?;

        let mut latest = a.latest();
        // One series per server: the most recent audit of it, whichever module ran it.
        let mut seen = HashSet::new();
        latest.sort_by_key(|o| std::cmp::Reverse(o.finished_at));
        latest.retain(|o| seen.insert(o.server.clone()));
        latest.sort_by(|x, y| x.server.cmp(&y.server));

        let g = ConstGauge::new(0.0);
        {
            let mut fam = enc.encode_descriptor(
                "siembox_vps_audit_last_audit_timestamp_seconds",
                "When the last audit of a server finished",
                None,
                g.metric_type(),
            )?;
            for o in &latest {
                let t = o
                    .finished_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                ConstGauge::new(t).encode(fam.encode_family(&[("server", o.server.as_str())])?)?;
            }
        }
        {
            let mut fam = enc.encode_descriptor(
                "siembox_vps_audit_last_audit_success",
                "Whether the last audit of a server succeeded",
                None,
                g.metric_type(),
            )?;
            for o in &latest {
                ConstGauge::new(if o.success { 1.0 } else { 0.0 })
                    .encode(fam.encode_family(&[("server", o.server.as_str())])?)?;
            }
        }
        {
            let mut fam = enc.encode_descriptor(
                "siembox_vps_audit_check_status",
                "Audit check result: 0 pass, 1 warn, 2 fail, 3 unknown",
                None,
                g.metric_type(),
            )?;
            for o in latest.iter().filter(|o| o.success) {
                for f in &o.findings {
                    ConstGauge::new(f64::from(f.status as u8)).encode(
                        fam.encode_family(&[("server", o.server.as_str()), ("check", f.check)])?,
                    )?;
                }
            }
        }
        {
            let mut fam = enc.encode_descriptor(
                "siembox_vps_audit_check_value",
                "The value a check measured (percent, count, port, seconds)",
                None,
                g.metric_type(),
            )?;
            for o in latest.iter().filter(|o| o.success) {
                for f in &o.findings {
                    if let Some(v) = f.value {
                        ConstGauge::new(v).encode(fam.encode_family(&[
                            ("server", o.server.as_str()),
                            ("check", f.check),
                        ])?)?;
                    }
                }
            }
        }
        {
            let mut fam = enc.encode_descriptor(
                "siembox_vps_audit_disk_used_percent",
                "Used space per local mount in percent",
                None,
                g.metric_type(),
            )?;
            for o in latest.iter().filter(|o| o.success) {
                for (mount, pct) in &o.disks {
                    ConstGauge::new(*pct).encode(fam.encode_family(&[
                        ("server", o.server.as_str()),
                        ("mount", mount.as_str()),
                    ])?)?;
                }
            }
        }
        {
            let mut fam = enc.encode_descriptor(
                "siembox_vps_audit_server_info",
                "Static facts of an audited server",
                None,
                g.metric_type(),
            )?;
            for o in latest.iter().filter(|o| o.success) {
                ConstGauge::new(1.0).encode(fam.encode_family(&[
                    ("server", o.server.as_str()),
                    ("os", o.os.as_str()),
                    ("kernel", o.kernel.as_str()),
                ])?)?;
            }
        }
        Ok(())
    }
}
