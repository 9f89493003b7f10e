//! The configuration: plain serde types, loaded from one YAML file with errors that name the file,
//! line and field, validated all at once. A blackbox_exporter file is the `modules:` section alone.

mod blackbox_rules;
pub mod bounded_read;
mod cel;
pub mod dns_names;
mod duration;
mod load;
mod module;
mod probe_rules;
mod services;
mod types;
mod validate;

pub use self::cel::{CelExpression, CEL_BODY_VARIABLE};
pub use duration::{parse_duration, PromDuration};
pub use load::{
    format_warnings, parse_yaml, read_config_text, read_yaml_file, source_checksum, ConfigError,
    ConfigProblem, MAX_CONFIG_BYTES,
};
pub use module::*;
pub use services::*;
pub use types::*;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub cardinality: Cardinality,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub modules: BTreeMap<String, Module>,
    #[serde(default)]
    pub servers: Vec<Server>,
    #[serde(default)]
    pub schedule: Vec<ScheduleJob>,
    /// Problems that do not stop the config from loading (files that cannot be read yet,
    /// values blackbox too only rejects when probing).
    #[serde(skip)]
    pub warnings: Vec<ConfigProblem>,
    /// The files among `warnings` that cannot be read: `--config.check` fails on them (a
    /// key or password file a probe will need), not on the other warnings.
    #[serde(skip)]
    pub unreadable_files: Vec<String>,
    /// Modules whose `prober` this build does not know, by module name: blackbox loads them and
    /// answers `/probe` for them with 400 "Unknown prober"; so do we. They are not in `modules`.
    #[serde(skip)]
    pub unknown_probers: BTreeMap<String, String>,
    /// SHA-256 of the text this config was parsed from: a reload of the same bytes changes
    /// nothing (blackbox 0.28, config/reload.go `GenerateChecksum`).
    #[serde(skip)]
    pub source_checksum: Option<[u8; 32]>,
}

/// Concurrency, queue and rate limits (SPEC §6).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "Limits::d_max_concurrent")]
    pub max_concurrent: usize,
    #[serde(default)]
    pub per_type: BTreeMap<ProberKind, usize>,
    #[serde(default = "Limits::d_queue_size")]
    pub queue_size: usize,
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// How far an http probe reads a body when its module sets no `body_size_limit` (after
    /// decompression), and so what its body checks hold at most. Never unbounded.
    #[serde(default = "Limits::d_body_size_limit")]
    pub body_size_limit: ByteSize,
}

impl Limits {
    fn d_max_concurrent() -> usize {
        512
    }
    fn d_queue_size() -> usize {
        4096
    }
    /// Web pages and API answers fit; a gzip bomb or an endless body stops here.
    pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 4 << 20;
    fn d_body_size_limit() -> ByteSize {
        ByteSize(Self::DEFAULT_BODY_SIZE_LIMIT)
    }
    /// The per-type limit in force: configured, or a default sized for that prober's cost.
    pub fn for_type(&self, kind: ProberKind) -> usize {
        if let Some(n) = self.per_type.get(&kind) {
            return *n;
        }
        match kind {
            ProberKind::Http | ProberKind::Tcp | ProberKind::Unix => 256,
            ProberKind::Websocket => 128,
            ProberKind::Dns | ProberKind::Icmp => 128,
            ProberKind::Redis => 64,
            ProberKind::Grpc => 64,
            ProberKind::SshAudit => 50,
            ProberKind::Ssh | ProberKind::Postgres | ProberKind::Mysql | ProberKind::Mongodb => 32,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent: Self::d_max_concurrent(),
            per_type: BTreeMap::new(),
            queue_size: Self::d_queue_size(),
            rate_limits: RateLimits::default(),
            body_size_limit: Self::d_body_size_limit(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_target_host: Option<Rate>,
    #[serde(default)]
    pub per_type: BTreeMap<ProberKind, Rate>,
}

/// A rate like `20/s`, `100/m`, `5/h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: std::time::Duration,
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let err =
            || serde::de::Error::custom(format!("invalid rate {s:?}: expected N/s, N/m or N/h"));
        let (n, unit) = s.split_once('/').ok_or_else(err)?;
        let count: u32 = n.trim().parse().map_err(|_| err())?;
        let per = match unit.trim() {
            "s" => std::time::Duration::from_secs(1),
            "m" => std::time::Duration::from_secs(60),
            "h" => std::time::Duration::from_secs(3600),
            _ => return Err(err()),
        };
        if count == 0 {
            return Err(serde::de::Error::custom(format!(
                "invalid rate {s:?}: must be above 0"
            )));
        }
        Ok(Rate { count, per })
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let unit = match self.per.as_secs() {
            60 => "m",
            3600 => "h",
            _ => "s",
        };
        s.collect_str(&format_args!("{}/{}", self.count, unit))
    }
}

/// Cardinality control (SPEC §7).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cardinality {
    #[serde(default = "Cardinality::d_max_series")]
    pub max_series_per_family: usize,
    #[serde(default = "Cardinality::d_max_label_len")]
    pub max_label_value_length: usize,
}

impl Cardinality {
    fn d_max_series() -> usize {
        50_000
    }
    fn d_max_label_len() -> usize {
        128
    }
}

impl Default for Cardinality {
    fn default() -> Self {
        Cardinality {
            max_series_per_family: Self::d_max_series(),
            max_label_value_length: Self::d_max_label_len(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Hosts, CIDRs and URL patterns `/probe` may reach; empty allows all (blackbox behaviour).
    #[serde(default)]
    pub allowed_targets: Vec<AllowPattern>,
}

/// Which servers a scheduled audit job covers: `all`, or a list of names.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ServerSelection {
    Named(Vec<String>),
    Keyword(String),
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleJob {
    pub module: String,
    pub interval: PromDuration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<PromDuration>,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub file_sd: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<ServerSelection>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Config {
    /// The config used when no file is given: blackbox's stock modules, so the exporter runs
    /// anywhere and can probe itself.
    pub fn builtin() -> Config {
        Config::from_yaml_str(BUILTIN_YAML, "<built-in>").expect("the built-in config is valid")
    }

    /// The running config as YAML with every secret replaced by `<secret>`.
    pub fn redacted_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

pub const BUILTIN_YAML: &str = "\
modules:
  http_2xx:
    prober: http
    timeout: 5s
  http_post_2xx:
    prober: http
    timeout: 5s
    http:
      method: POST
  tcp_connect:
    prober: tcp
    timeout: 5s
  icmp:
    prober: icmp
    timeout: 5s
  ssh_banner:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: \"^SSH-2.0-\"
        - send: \"SSH-2.0-siembox-ssh-check\"
";
