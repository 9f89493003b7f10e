//! Checks that span fields: references between sections, required fields per prober.
//! All problems are collected, so an operator fixes a file in one pass.

use super::load::{line_of_key, ConfigProblem};
use super::{Config, ProberKind, ServerSelection};
use std::collections::HashSet;

pub(super) fn validate(config: &Config, text: &str) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
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
        match module.prober {
            ProberKind::Dns if module.dns.query_name.is_empty() => report(
                name,
                format!("{at}.dns.query_name"),
                "the dns prober needs a query_name".into(),
            ),
            ProberKind::SshAudit if module.ssh_audit.is_none() => report(
                name,
                format!("{at}.ssh_audit"),
                "the ssh_audit prober needs an ssh_audit section (user, key, known_hosts)".into(),
            ),
            _ => {}
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
        if let Some(b) = &module.http.body {
            if module.http.body_file.is_some() && !b.is_empty() {
                report(
                    name,
                    format!("{at}.http.body"),
                    "body and body_file are mutually exclusive".into(),
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
    problems
}
