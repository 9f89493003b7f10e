//! One SSH connection to a configured server: TCP, key exchange, host-key verification against
//! known_hosts or a pinned SHA256 fingerprint, then authentication (key file, agent, password
//! file). No credential is sent before the host key is accepted: russh calls
//! `check_server_key` during the key exchange, before any authentication request.

use crate::config::{Server, SshAuditProbe, SshPoolConfig};
use crate::probe::recorder::FailureReason;
use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a server's host key is checked.
#[derive(Clone, Debug, PartialEq)]
pub enum HostKeyPolicy {
    KnownHosts(PathBuf),
    Fingerprint(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    /// A private key file; the passphrase file, if any, decrypts it.
    KeyFile {
        key: PathBuf,
        passphrase: Option<PathBuf>,
    },
    /// Keys held by the ssh-agent at `$SSH_AUTH_SOCK`.
    Agent,
    /// A password read from a file: the last resort.
    PasswordFile(PathBuf),
}

/// Everything needed to open a connection to one server; built from the server entry and the
/// module's defaults. Holds paths, never secrets.
#[derive(Clone, Debug, PartialEq)]
pub struct SshTarget {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: Auth,
    pub host_key: HostKeyPolicy,
}

impl SshTarget {
    /// Combines a server entry with the module section; the error names the missing field.
    pub fn build(server: &Server, module: &SshAuditProbe) -> Result<SshTarget, String> {
        let (host, port) = split_address(&server.address)
            .map_err(|e| format!("server {:?}: address: {e}", server.name))?;
        let user = server
            .user
            .clone()
            .or_else(|| module.user.clone())
            .ok_or_else(|| {
                format!(
                    "server {:?}: no user (servers[].user or ssh_audit.user)",
                    server.name
                )
            })?;
        let key = server
            .private_key_file
            .as_ref()
            .or(module.private_key_file.as_ref());
        let passphrase = server
            .passphrase_file
            .as_ref()
            .or(module.passphrase_file.as_ref());
        let password = server
            .password_file
            .as_ref()
            .or(module.password_file.as_ref());
        let auth = if let Some(k) = key {
            Auth::KeyFile {
                key: k.0.clone(),
                passphrase: passphrase.map(|p| p.0.clone()),
            }
        } else if module.use_agent {
            Auth::Agent
        } else if let Some(p) = password {
            Auth::PasswordFile(p.0.clone())
        } else {
            return Err(format!(
                "server {:?}: no credential (private_key_file, use_agent or password_file)",
                server.name
            ));
        };
        let host_key = if let Some(fp) = &server.host_key_fingerprint {
            HostKeyPolicy::Fingerprint(fp.trim().to_string())
        } else if let Some(f) = server
            .known_hosts_file
            .as_ref()
            .or(module.known_hosts_file.as_ref())
        {
            HostKeyPolicy::KnownHosts(f.0.clone())
        } else {
            return Err(format!(
                "server {:?}: no known_hosts_file or host_key_fingerprint; host keys are never trusted on first use",
                server.name
            ));
        };
        Ok(SshTarget {
            name: server.name.clone(),
            host,
            port,
            user,
            auth,
            host_key,
        })
    }
}

impl SshTarget {
    /// The pool key: connections are shared by targets that differ only in their name.
    pub fn endpoint(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }

    pub fn same_endpoint(&self, other: &SshTarget) -> bool {
        self.host == other.host
            && self.port == other.port
            && self.user == other.user
            && self.auth == other.auth
            && self.host_key == other.host_key
    }
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address; port 22 by default.
pub fn split_address(address: &str) -> Result<(String, u16), String> {
    let a = address.trim();
    if a.is_empty() {
        return Err("empty".into());
    }
    if let Some(rest) = a.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("missing ']'")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
            None if after.is_empty() => 22,
            None => return Err(format!("unexpected {after:?} after ']'")),
        };
        return Ok((host.to_string(), port));
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Ok((
            h.to_string(),
            p.parse().map_err(|_| format!("bad port {p:?}"))?,
        )),
        _ => Ok((a.to_string(), 22)),
    }
}

/// Why a connection could not be made; the message never holds a secret.
#[derive(Debug)]
pub struct ConnectError {
    pub reason: FailureReason,
    pub message: String,
}

impl ConnectError {
    fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        ConnectError {
            reason,
            message: message.into(),
        }
    }
    /// Host-key and credential problems do not go away by retrying.
    pub fn retryable(&self) -> bool {
        !matches!(
            self.reason,
            FailureReason::HostKey | FailureReason::Auth | FailureReason::Config
        )
    }
}

/// The russh handler: verifies the host key and remembers why it refused one.
pub struct Verifier {
    host: String,
    port: u16,
    policy: HostKeyPolicy,
}

#[derive(Debug)]
pub enum HandlerError {
    HostKey(String),
    Ssh(russh::Error),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}

/// Checks `key` against the policy; `Err` says why it is not trusted.
pub fn verify_host_key(
    host: &str,
    port: u16,
    policy: &HostKeyPolicy,
    key: &PublicKey,
) -> Result<(), String> {
    let fp = key.fingerprint(HashAlg::Sha256).to_string();
    match policy {
        HostKeyPolicy::Fingerprint(want) => {
            let want = want
                .strip_prefix("SHA256:")
                .unwrap_or(want)
                .trim_end_matches('=');
            let got = fp
                .strip_prefix("SHA256:")
                .unwrap_or(&fp)
                .trim_end_matches('=');
            if want == got {
                Ok(())
            } else {
                Err(format!(
                    "host key {fp} does not match the pinned fingerprint"
                ))
            }
        }
        HostKeyPolicy::KnownHosts(path) => {
            match russh::keys::check_known_hosts_path(host, port, key, path) {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!(
                    "host key {fp} ({}) of {host}:{port} is not in {}",
                    key.algorithm(),
                    path.display()
                )),
                Err(russh::keys::Error::KeyChanged { line }) => Err(format!(
                    "host key {fp} of {host}:{port} does not match {} line {line}: possible man-in-the-middle",
                    path.display()
                )),
                Err(e) => Err(format!("cannot check {}: {e}", path.display())),
            }
        }
    }
}

impl client::Handler for Verifier {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Err(HandlerError::HostKey(
                "the server sent a host certificate; only plain host keys are supported".into(),
            ));
        };
        verify_host_key(&self.host, self.port, &self.policy, key)
            .map(|()| true)
            .map_err(HandlerError::HostKey)
    }
}

pub type Session = client::Handle<Verifier>;

/// The russh client config of a pool: keep-alive and compression as configured.
pub fn client_config(pool: &SshPoolConfig) -> Arc<client::Config> {
    let mut preferred = russh::Preferred::default();
    if pool.compression {
        preferred.compression = std::borrow::Cow::Borrowed(&[
            russh::compression::ZLIB_LEGACY,
            russh::compression::ZLIB,
            russh::compression::NONE,
        ]);
    } else {
        preferred.compression = std::borrow::Cow::Borrowed(&[russh::compression::NONE]);
    }
    let keepalive = pool.keepalive.get();
    Arc::new(client::Config {
        client_id: russh::SshId::Standard(std::borrow::Cow::Borrowed(concat!(
            "SSH-2.0-siembox_exporter_",
            env!("CARGO_PKG_VERSION")
        ))),
        keepalive_interval: (!keepalive.is_zero()).then_some(keepalive),
        keepalive_max: 3,
        nodelay: true,
        preferred,
        ..Default::default()
    })
}

/// Opens and authenticates one connection. The caller bounds it with its timeout.
pub async fn connect(
    target: &SshTarget,
    config: Arc<client::Config>,
) -> Result<Session, ConnectError> {
    let verifier = Verifier {
        host: target.host.clone(),
        port: target.port,
        policy: target.host_key.clone(),
    };
    let mut session = client::connect(config, (target.host.as_str(), target.port), verifier)
        .await
        .map_err(|e| match e {
            HandlerError::HostKey(m) => ConnectError::new(FailureReason::HostKey, m),
            HandlerError::Ssh(russh::Error::IO(io)) => ConnectError::new(
                FailureReason::from_io(&io),
                format!("cannot connect to {}:{}: {io}", target.host, target.port),
            ),
            HandlerError::Ssh(e) => ConnectError::new(
                FailureReason::Protocol,
                format!(
                    "SSH handshake with {}:{} failed: {e}",
                    target.host, target.port
                ),
            ),
        })?;
    authenticate(&mut session, target).await?;
    Ok(session)
}

async fn authenticate(session: &mut Session, target: &SshTarget) -> Result<(), ConnectError> {
    let proto = |e: russh::Error| {
        ConnectError::new(
            FailureReason::Protocol,
            format!("authentication exchange failed: {e}"),
        )
    };
    let result = match &target.auth {
        Auth::KeyFile { key, passphrase } => {
            let pass = match passphrase {
                Some(p) => Some(
                    crate::config::ExistingFile(p.clone())
                        .read_secret()
                        .map_err(|e| {
                            ConnectError::new(
                                FailureReason::Config,
                                format!("cannot read passphrase_file {}: {e}", p.display()),
                            )
                        })?,
                ),
                None => None,
            };
            let private = russh::keys::load_secret_key(key, pass.as_ref().map(|s| s.expose()))
                // The key error names the file, not its content.
                .map_err(|e| {
                    ConnectError::new(
                        FailureReason::Config,
                        format!(
                            "cannot load private_key_file {}: {}",
                            key.display(),
                            key_error(&e)
                        ),
                    )
                })?;
            let hash = session
                .best_supported_rsa_hash()
                .await
                .map_err(proto)?
                .flatten();
            session
                .authenticate_publickey(
                    &target.user,
                    PrivateKeyWithHashAlg::new(Arc::new(private), hash),
                )
                .await
                .map_err(proto)?
        }
        Auth::Agent => {
            let mut agent = russh::keys::agent::client::AgentClient::connect_env()
                .await
                .map_err(|e| {
                    ConnectError::new(
                        FailureReason::Config,
                        format!("cannot reach ssh-agent (SSH_AUTH_SOCK): {e}"),
                    )
                })?;
            let identities = agent
                .request_identities()
                .await
                .map_err(|e| ConnectError::new(FailureReason::Auth, format!("ssh-agent: {e}")))?;
            let hash = session
                .best_supported_rsa_hash()
                .await
                .map_err(proto)?
                .flatten();
            let mut result = None;
            for id in identities {
                let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = id else {
                    continue;
                };
                match session
                    .authenticate_publickey_with(&target.user, key, hash, &mut agent)
                    .await
                {
                    Ok(r) if r.success() => {
                        result = Some(r);
                        break;
                    }
                    Ok(r) => result = Some(r),
                    Err(e) => {
                        return Err(ConnectError::new(
                            FailureReason::Auth,
                            format!("ssh-agent signing failed: {e}"),
                        ))
                    }
                }
            }
            result
                .ok_or_else(|| ConnectError::new(FailureReason::Auth, "ssh-agent holds no keys"))?
        }
        Auth::PasswordFile(path) => {
            let password = crate::config::ExistingFile(path.clone())
                .read_secret()
                .map_err(|e| {
                    ConnectError::new(
                        FailureReason::Config,
                        format!("cannot read password_file {}: {e}", path.display()),
                    )
                })?;
            session
                .authenticate_password(&target.user, password.expose())
                .await
                .map_err(proto)?
        }
    };
    if result.success() {
        Ok(())
    } else {
        Err(ConnectError::new(
            FailureReason::Auth,
            format!(
                "server {:?} rejected the credentials of user {:?}",
                target.name, target.user
            ),
        ))
    }
}

/// A key loading error without anything from the key itself.
fn key_error(e: &russh::keys::Error) -> &'static str {
    match e {
        russh::keys::Error::KeyIsEncrypted => {
            "the key is encrypted and no passphrase_file was given"
        }
        russh::keys::Error::IO(_) => "cannot read the file",
        _ => "not a usable private key, or a wrong passphrase",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_port_22() {
        assert_eq!(split_address("web-1").unwrap(), ("web-1".into(), 22));
        assert_eq!(
            split_address("10.0.0.1:2222").unwrap(),
            ("10.0.0.1".into(), 2222)
        );
        assert_eq!(split_address("[::1]:22").unwrap(), ("::1".into(), 22));
        assert_eq!(split_address("::1").unwrap(), ("::1".into(), 22));
        assert!(split_address("host:x").is_err());
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::Config;

    #[test]
    fn servers_without_host_key_source_or_credential_are_rejected_at_load() {
        let yaml = "modules:\n  a: {prober: ssh_audit, ssh_audit: {user: audit}}\nservers:\n  - {name: web-1, address: 10.0.0.1}\n";
        let e = Config::from_yaml_str(yaml, "<test>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("servers[0].known_hosts_file"), "{e}");
        assert!(e.contains("servers[0].private_key_file"), "{e}");
        let ok = "modules:\n  a: {prober: ssh_audit, ssh_audit: {user: audit, use_agent: true}}\nservers:\n  - {name: web-1, address: 10.0.0.1, host_key_fingerprint: \"SHA256:abc\"}\n";
        assert!(Config::from_yaml_str(ok, "<test>").is_ok());
    }
}
