//! Config sections of our own probers: databases, caches, SSH and SSH audits.
//! Field names follow the SPEC appendix; every credential comes from a file, env or an inline secret.

use super::duration::PromDuration;
use super::module::TlsConfig;
use super::types::{ExistingFile, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn is_false(b: &bool) -> bool {
    !*b
}

/// Pool sizes of a database or cache prober, one pool per (module, target).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    #[serde(default = "PoolConfig::default_max_size")]
    pub max_size: usize,
    #[serde(default)]
    pub min_idle: usize,
    #[serde(default = "PoolConfig::default_idle_timeout")]
    pub idle_timeout: PromDuration,
    #[serde(default = "PoolConfig::default_max_lifetime")]
    pub max_lifetime: PromDuration,
    #[serde(default = "PoolConfig::default_acquire_timeout")]
    pub acquire_timeout: PromDuration,
}

impl PoolConfig {
    fn default_max_size() -> usize {
        4
    }
    fn default_idle_timeout() -> PromDuration {
        PromDuration::from_secs(300)
    }
    fn default_max_lifetime() -> PromDuration {
        PromDuration::from_secs(1800)
    }
    fn default_acquire_timeout() -> PromDuration {
        PromDuration::from_secs(2)
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_size: Self::default_max_size(),
            min_idle: 0,
            idle_timeout: Self::default_idle_timeout(),
            max_lifetime: Self::default_max_lifetime(),
            acquire_timeout: Self::default_acquire_timeout(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresProbe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub pool: PoolConfig,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlProbe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub pool: PoolConfig,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisProbe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_result: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub pool: PoolConfig,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MongoProbe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_source: Option<String>,
    /// `SCRAM-SHA-256`, `SCRAM-SHA-1` or `PLAIN` (LDAP and proxies); negotiated when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mechanism: Option<MongoAuthMechanism>,
    /// A command name run as `{name: 1}` (default `ping`), or a whole command document in
    /// extended JSON (`{"dbStats": 1, "scale": 1024}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The database the command runs against (default `admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Compared, as text, with the reply's `result_field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_result: Option<String>,
    /// Dotted path of the reply field `expected_result` is compared with (default `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_field: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub pool: PoolConfig,
}

/// The password mechanisms a module may name (the driver's names, as in `authMechanism=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum MongoAuthMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-1")]
    ScramSha1,
    #[serde(rename = "PLAIN")]
    Plain,
}

impl MongoProbe {
    /// The command to run: `{name: 1}` for a bare name (default `ping`), or the extended-JSON
    /// document as written. Checked at load, so a probe never meets a malformed one.
    pub fn command_document(&self) -> Result<mongodb::bson::Document, String> {
        use mongodb::bson::{doc, Bson};
        let text = self.command.as_deref().unwrap_or("ping").trim();
        if text.is_empty() {
            return Err("command is empty".into());
        }
        if !text.starts_with('{') {
            return Ok(doc! { text: 1 });
        }
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("command is not a JSON document: {e}"))?;
        match Bson::try_from(json) {
            Ok(Bson::Document(d)) if !d.is_empty() => Ok(d),
            Ok(_) => Err("command document names no command".into()),
            Err(e) => Err(format!("command is not valid extended JSON: {e}")),
        }
    }
}

/// `ssh` prober: banner, key exchange, optional host-key check.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshProbe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key_fingerprint: Option<String>,
}

/// The SSH connection pool knobs of the design notes, with their defaults.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshPoolConfig {
    #[serde(default = "SshPoolConfig::d_max")]
    pub max_connections: usize,
    #[serde(default = "SshPoolConfig::d_min")]
    pub min_connections: usize,
    #[serde(default = "SshPoolConfig::d_idle")]
    pub max_idle_time: PromDuration,
    #[serde(default = "SshPoolConfig::d_conn_timeout")]
    pub connection_timeout: PromDuration,
    #[serde(default = "SshPoolConfig::d_retry_limit")]
    pub retry_limit: u32,
    #[serde(default = "SshPoolConfig::d_retry_delay")]
    pub retry_delay: PromDuration,
    #[serde(default = "SshPoolConfig::d_health")]
    pub health_check_interval: PromDuration,
    #[serde(default = "SshPoolConfig::d_keepalive")]
    pub keepalive: PromDuration,
    #[serde(default = "SshPoolConfig::d_compression")]
    pub compression: bool,
}

impl SshPoolConfig {
    fn d_max() -> usize {
        50
    }
    fn d_min() -> usize {
        5
    }
    fn d_idle() -> PromDuration {
        PromDuration::from_secs(300)
    }
    fn d_conn_timeout() -> PromDuration {
        PromDuration::from_secs(30)
    }
    fn d_retry_limit() -> u32 {
        3
    }
    fn d_retry_delay() -> PromDuration {
        PromDuration::from_secs(5)
    }
    fn d_health() -> PromDuration {
        PromDuration::from_secs(60)
    }
    fn d_keepalive() -> PromDuration {
        PromDuration::from_secs(15)
    }
    fn d_compression() -> bool {
        true
    }
}

impl Default for SshPoolConfig {
    fn default() -> Self {
        SshPoolConfig {
            max_connections: Self::d_max(),
            min_connections: Self::d_min(),
            max_idle_time: Self::d_idle(),
            connection_timeout: Self::d_conn_timeout(),
            retry_limit: Self::d_retry_limit(),
            retry_delay: Self::d_retry_delay(),
            health_check_interval: Self::d_health(),
            keepalive: Self::d_keepalive(),
            compression: Self::d_compression(),
        }
    }
}

/// One check's switch, thresholds and interval; which fields mean what depends on the check.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<PromDuration>,
    /// Values that are expected (ports, SUID paths); anything else is a finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshAuditProbe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_agent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_file: Option<ExistingFile>,
    #[serde(default)]
    pub pool: SshPoolConfig,
    #[serde(default)]
    pub checks: BTreeMap<String, CheckConfig>,
    /// The servers have examples/sudoers-siembox-audit installed: the audit runs its read-only
    /// root commands with `sudo -n` (never otherwise: a refused sudo is logged on the server).
    #[serde(default, skip_serializing_if = "is_false")]
    pub sudo: bool,
}

/// A server that SSH audits may connect to. The only targets `ssh_audit` accepts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key_fingerprint: Option<String>,
}
