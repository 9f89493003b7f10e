//! Side-by-side comparison with real blackbox_exporter releases: the same modules against the
//! same targets, on ours and on blackbox; ours must agree on `probe_success`, emit every metric
//! name blackbox emits, and report the same values for the series that are facts of the target.

use super::blackbox::{Blackbox, Version};
use super::{metric_names, metric_value, request, Exporter};

/// Metrics blackbox emits that we leave out on purpose, by prober module prefix, with the reason
/// (also in README.md, "Differences from blackbox_exporter").
const DELIBERATE_OMISSIONS: &[(&str, &str, &str)] = &[(
    "grpc_",
    "probe_ssl_earliest_cert_expiry",
    "blackbox reports 0 for plaintext gRPC, which fires certificate-expiry alerts",
)];

/// Values we report differently on purpose, by module prefix, with the reason (also in
/// README.md, "Differences from blackbox_exporter"): the series is still compared by name.
const DELIBERATE_VALUE_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "https_insecure",
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        "no chain is verified: blackbox reports Go's zero time, we the sent chain's expiry",
    ),
    (
        "rabbitmq_insecure",
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        "the same, for blackbox's example module with insecure_skip_verify",
    ),
];

pub struct Case {
    pub module: &'static str,
    pub target: String,
}

/// Runs every case on ours and on each blackbox release in `versions` (all started on `config`).
pub async fn compare(config: &std::path::Path, versions: &[Version], cases: &[Case]) {
    let ours = Exporter::start_file(config.to_path_buf()).await;
    let mut problems = Vec::new();
    for &v in versions {
        let bb = Blackbox::start_version(v, config).await;
        problems.extend(differences(&ours, &bb, cases).await);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

async fn differences(ours: &Exporter, bb: &Blackbox, cases: &[Case]) -> Vec<String> {
    let version = bb.version;
    let mut problems = Vec::new();
    for c in cases {
        let theirs = bb.probe(c.module, &c.target).await;
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("module", c.module)
            .append_pair("target", &c.target)
            .finish();
        let mine = request(
            "GET",
            &ours.url(&format!("/probe?{q}")),
            &[("X-Prometheus-Scrape-Timeout-Seconds", "5")],
        )
        .await
        .body;
        let (s_theirs, s_mine) = (
            metric_value(&theirs, "probe_success"),
            metric_value(&mine, "probe_success"),
        );
        if s_theirs.is_none() || s_theirs != s_mine {
            problems.push(format!("{} {}: probe_success blackbox {version:?}={s_theirs:?} ours={s_mine:?}\n--- blackbox:\n{theirs}\n--- ours:\n{mine}", c.module, c.target));
        }
        let omitted = |series: &str| {
            let name = series.split('{').next().unwrap_or_default();
            DELIBERATE_OMISSIONS
                .iter()
                .any(|(prefix, n, _)| c.module.starts_with(prefix) && name == *n)
        };
        let missing: Vec<_> = metric_names(&theirs)
            .difference(&metric_names(&mine))
            .filter(|m| !omitted(m))
            .cloned()
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{} {}: metrics blackbox {version:?} emits and we do not: {missing:?}",
                c.module, c.target
            ));
        }
        let body_lengths = BODY_LENGTH_MODULES.iter().any(|p| c.module.starts_with(p));
        let (want, got) = (
            key_samples(&theirs, body_lengths),
            key_samples(&mine, body_lengths),
        );
        let value_differs_on_purpose = |series: &str| {
            let name = series.split('{').next().unwrap_or_default();
            DELIBERATE_VALUE_DIFFERENCES
                .iter()
                .any(|(prefix, n, _)| c.module.starts_with(prefix) && name == *n)
        };
        let differing: Vec<String> = want
            .iter()
            .filter(|(series, _)| !omitted(series) && !value_differs_on_purpose(series))
            .filter(|(series, _)| !got.contains_key(*series) || got[*series] != want[*series])
            .map(|(series, value)| format!("{series} blackbox={value} ours={:?}", got.get(series)))
            .collect();
        if !differing.is_empty() {
            problems.push(format!(
                "{} {}: values that differ from blackbox {version:?}: {differing:?}",
                c.module, c.target
            ));
        }
    }
    problems
}

/// Series whose values are facts of the target, not timings, so both exporters must report
/// the same (labels included): what dashboards and alerts compare against thresholds.
const KEY_VALUES: &[&str] = &[
    "probe_http_status_code",
    "probe_http_redirects",
    "probe_http_ssl",
    "probe_http_version",
    "probe_http_last_modified_timestamp_seconds",
    "probe_failed_due_to_regex",
    "probe_failed_due_to_cel",
    "probe_failed_due_to_bytes",
    "probe_ip_protocol",
    "probe_ssl_earliest_cert_expiry",
    "probe_tls_version_info",
    "probe_dns_answer_rrs",
    "probe_dns_authority_rrs",
    "probe_dns_additional_rrs",
    "probe_dns_query_succeeded",
    "probe_dns_serial",
    "probe_grpc_status_code",
    "probe_grpc_healthcheck_response",
    "probe_grpc_ssl",
    "probe_icmp_reply_hop_limit",
    "probe_ssl_last_chain_expiry_timestamp_seconds",
];

/// Modules (by name prefix) whose body sizes are compared too: their targets serve the same
/// bytes to both exporters (the `/echo` cases do not: it echoes each one's User-Agent).
const BODY_LENGTH_MODULES: &[&str] = &["body_", "gzip"];
const BODY_LENGTHS: &[&str] = &[
    "probe_http_content_length",
    "probe_http_uncompressed_body_length",
];

/// `name{labels}` → value for the KEY_VALUES samples of an exposition (numbers compared as
/// numbers: `1` and `1.0` are the same value), and the body sizes when `body_lengths`.
fn key_samples(body: &str, body_lengths: bool) -> std::collections::BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let name = series.split('{').next().unwrap_or_default();
            KEY_VALUES.contains(&name) || (body_lengths && BODY_LENGTHS.contains(&name))
        })
        .filter_map(|(series, value)| Some((series.to_string(), value.parse().ok()?)))
        .collect()
}

pub fn write_config(yaml: &str) -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("modules.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}
