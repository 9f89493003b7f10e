//! Checks that span fields: references between sections, required fields per prober.
//! All problems are collected, so an operator fixes a file in one pass.

use super::load::{line_of_field, line_of_key, ConfigProblem};
use super::{Config, ProberKind, ServerSelection};
use std::collections::HashSet;

/// The problems that reject the file, and the warnings it loads with.
pub(super) fn validate(config: &Config, text: &str) -> (Vec<ConfigProblem>, Vec<ConfigProblem>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for (name, module) in &config.modules {
        for f in super::blackbox_rules::module_findings(module) {
            let problem = ConfigProblem {
                line: line_of_field(text, name, &f.field),
                column: None,
                field: format!("modules.{name}.{}", f.field),
                message: f.message,
            };
            if f.fatal {
                problems.push(problem);
            } else {
                warnings.push(problem);
            }
        }
    }
    // Problems of a module's field, located at that field's line: (module, field, message, fatal).
    let mut located: Vec<(String, String, String, bool)> = Vec::new();
    let mut report = |key: &str, field: String, message: String| {
        problems.push(ConfigProblem {
            line: line_of_key(text, key),
            column: None,
            field,
            message,
        });
    };

    for (name, module) in &config.modules {
        let at = format!("modules.{name}");
        if module.prober == ProberKind::SshAudit && module.ssh_audit.is_none() {
            report(
                name,
                format!("{at}.ssh_audit"),
                "the ssh_audit prober needs an ssh_audit section (user, key, known_hosts)".into(),
            );
        }
        if module.prober == ProberKind::Dns {
            for (field, message) in super::probe_rules::dns_problems(&module.dns) {
                // blackbox rejects an unknown type or class at load, the rest only when probing.
                let fatal = matches!(field, "query_type" | "query_class");
                located.push((name.clone(), format!("dns.{field}"), message, fatal));
            }
        }
        if module.prober == ProberKind::Icmp {
            let timeout = module.timeout.map(|t| t.get());
            for (field, message) in module.icmp.train_problems(timeout) {
                located.push((name.clone(), format!("icmp.{field}"), message, true));
            }
        }
        if module.prober == ProberKind::Grpc {
            for (field, message) in super::probe_rules::grpc_problems(&module.grpc) {
                report(name, format!("{at}.grpc.{field}"), message);
            }
        }
        if module.prober == ProberKind::Websocket {
            for (field, message) in super::probe_rules::websocket_problems(&module.websocket) {
                located.push((name.clone(), format!("websocket.{field}"), message, true));
            }
        }
        if module.prober == ProberKind::Unix {
            let patterns = module
                .allowed_targets
                .as_deref()
                .unwrap_or(&config.web.allowed_targets);
            let has_paths = patterns
                .iter()
                .any(|p| matches!(p, super::AllowPattern::UnixPath(_)));
            if !patterns.is_empty() && !has_paths {
                let message = format!("module {name} probes unix sockets, but the allow-list that applies to it names no socket path: add the paths it may reach, as in unix:/run/app/*.sock");
                if module.allowed_targets.is_some() {
                    located.push((name.clone(), "allowed_targets".into(), message, true));
                } else {
                    report("allowed_targets", "web.allowed_targets".into(), message);
                }
            }
        }
        if let Some(mongo) = module.mongodb.as_ref() {
            if let Err(e) = mongo.command_document() {
                report(name, format!("{at}.mongodb.command"), e);
            }
        }
        let pools = [
            ("postgres", module.postgres.as_ref().map(|s| &s.pool)),
            ("mysql", module.mysql.as_ref().map(|s| &s.pool)),
            ("redis", module.redis.as_ref().map(|s| &s.pool)),
            ("mongodb", module.mongodb.as_ref().map(|s| &s.pool)),
        ];
        for (section, pool) in pools {
            let Some(pool) = pool else { continue };
            if pool.max_size == 0 {
                report(
                    name,
                    format!("{at}.{section}.pool.max_size"),
                    "max_size must be at least 1".into(),
                );
            } else if pool.min_idle > pool.max_size {
                report(
                    name,
                    format!("{at}.{section}.pool.min_idle"),
                    format!(
                        "min_idle {} is above max_size {}",
                        pool.min_idle, pool.max_size
                    ),
                );
            }
        }
        if let Some(t) = module.timeout {
            if t.get().is_zero() {
                report(
                    name,
                    format!("{at}.timeout"),
                    "timeout must be above 0".into(),
                );
            }
        }
    }

    let mut names = HashSet::new();
    for (i, server) in config.servers.iter().enumerate() {
        if server.name.is_empty() {
            report(
                "name",
                format!("servers[{i}].name"),
                "a server needs a name".into(),
            );
        } else if !names.insert(server.name.as_str()) {
            report(
                &server.name,
                format!("servers[{i}].name"),
                format!("server name {:?} is used twice", server.name),
            );
        }
    }

    // Every server must be auditable by every ssh_audit module: a credential and a way to
    // verify its host key (never trust on first use).
    for (name, module) in &config.modules {
        let Some(audit) = &module.ssh_audit else {
            continue;
        };
        for (i, server) in config.servers.iter().enumerate() {
            let at = format!("servers[{i}]");
            let has_credential = server.private_key_file.is_some()
                || audit.private_key_file.is_some()
                || audit.use_agent
                || server.password_file.is_some()
                || audit.password_file.is_some();
            if !has_credential {
                report(&server.name, format!("{at}.private_key_file"), format!("server {:?} has no credential for module {name}: set private_key_file, use_agent or password_file", server.name));
            }
            if server.host_key_fingerprint.is_none()
                && server.known_hosts_file.is_none()
                && audit.known_hosts_file.is_none()
            {
                report(&server.name, format!("{at}.known_hosts_file"), format!("server {:?} has no known_hosts_file or host_key_fingerprint for module {name}; host keys are never trusted on first use", server.name));
            }
            if server.user.is_none() && audit.user.is_none() {
                report(
                    &server.name,
                    format!("{at}.user"),
                    format!("server {:?} has no user for module {name}", server.name),
                );
            }
        }
    }

    for (i, job) in config.schedule.iter().enumerate() {
        let at = format!("schedule[{i}]");
        match config.modules.get(&job.module) {
            None => report(
                "module",
                format!("{at}.module"),
                format!("unknown module {:?}", job.module),
            ),
            Some(m) if m.prober == ProberKind::SshAudit => {
                if let Some(ServerSelection::Named(list)) = &job.servers {
                    for s in list {
                        if !names.contains(s.as_str()) {
                            report(
                                "servers",
                                format!("{at}.servers"),
                                format!("unknown server {s:?}"),
                            );
                        }
                    }
                }
                if let Some(ServerSelection::Keyword(k)) = &job.servers {
                    if k != "all" {
                        report(
                            "servers",
                            format!("{at}.servers"),
                            format!("expected `all` or a list of server names, got {k:?}"),
                        );
                    }
                }
            }
            Some(m)
                if matches!(
                    m.prober,
                    ProberKind::Postgres
                        | ProberKind::Mysql
                        | ProberKind::Redis
                        | ProberKind::Mongodb
                ) =>
            {
                // The target itself is not repeated: it holds a secret.
                for (j, t) in job.targets.iter().enumerate() {
                    if t.contains('@') {
                        report(
                            "targets",
                            format!("{at}.targets[{j}]"),
                            "a database target must not hold credentials (user:password@); put them in the module config (user, password_file, password_env)".into(),
                        );
                    }
                }
            }
            Some(_) => {}
        }
        if job.targets.is_empty() && job.file_sd.is_empty() && job.servers.is_none() {
            report(
                "module",
                at.clone(),
                "a schedule job needs targets, file_sd or servers".into(),
            );
        }
        for pattern in &job.file_sd {
            let dir = std::path::Path::new(pattern).parent();
            if dir.is_some_and(|d| d.to_string_lossy().contains(['*', '?'])) {
                report(
                    "file_sd",
                    format!("{at}.file_sd"),
                    format!("{pattern:?}: wildcards are only allowed in the file name"),
                );
            }
        }
        if job.interval.get().is_zero() {
            report(
                "interval",
                format!("{at}.interval"),
                "interval must be above 0".into(),
            );
        }
    }
    if config.limits.body_size_limit.0 == 0 {
        report(
            "body_size_limit",
            "limits.body_size_limit".into(),
            "body_size_limit must be above 0: an http body is never read without a bound".into(),
        );
    }
    for (module, field, message, fatal) in located {
        let problem = ConfigProblem {
            line: line_of_field(text, &module, &field),
            column: None,
            field: format!("modules.{module}.{field}"),
            message,
        };
        if fatal {
            problems.push(problem);
        } else {
            warnings.push(ConfigProblem {
                message: format!("{}: probes with this module will fail", problem.message),
                ..problem
            });
        }
    }
    (problems, warnings)
}
