//! Command-line flags, Prometheus style (`--web.listen-address`, `--config.file`, …).

use crate::report::audit::FailOn;
use crate::report::style::ColorChoice;
use crate::report::OutputFormat;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// `--version`: the crate version with the git revision and compiler it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("SIEMBOX_GIT_REVISION"),
    ", rustc ",
    env!("SIEMBOX_RUSTC_VERSION"),
    ")"
);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Parser)]
#[command(
    name = "siembox-exporter",
    version = VERSION,
    about = "Prometheus exporter: blackbox-compatible probes, database probes and SSH audits of servers",
    long_about = "Prometheus exporter: blackbox-compatible probes, database probes and SSH audits of servers.\n\n\
                  Without a command it serves /probe and /metrics. `audit` and `probe` run once and print a report."
)]
pub struct Cli {
    /// Run once and print a report instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Configuration file (blackbox_exporter's format works as is). Without it, a built-in
    /// config with blackbox's stock modules is used.
    #[arg(long = "config.file", value_name = "FILE", global = true)]
    pub config_file: Option<PathBuf>,

    /// Validate the configuration file and exit (non-zero on any error).
    #[arg(long = "config.check")]
    pub config_check: bool,

    /// Check the configuration file every --config.auto-reload-interval and reload it when its
    /// content changed (a ConfigMap's symlink swap included).
    #[arg(long = "config.enable-auto-reload")]
    pub config_enable_auto_reload: bool,

    /// How often --config.enable-auto-reload checks the file: a duration like 30s or 500ms, or
    /// whole seconds as blackbox_exporter takes it (30).
    #[arg(long = "config.auto-reload-interval", value_name = "DURATION", default_value = "30s", value_parser = parse_reload_interval)]
    pub config_auto_reload_interval: std::time::Duration,

    /// Address to listen on for /probe, /metrics and the rest.
    #[arg(long = "web.listen-address", value_name = "ADDR", default_value = ":9847", value_parser = parse_listen_address)]
    pub listen_address: SocketAddr,

    /// On SIGTERM or Ctrl-C: stop accepting, let requests in flight finish for at most this
    /// long (a duration like 10s), then cancel the rest and exit.
    #[arg(long = "web.shutdown-timeout", value_name = "DURATION", default_value = "10s", value_parser = parse_shutdown_timeout)]
    pub shutdown_timeout: std::time::Duration,

    /// Open connections the listener keeps; past it a new connection closes the oldest one with
    /// no request in flight (or is refused when all are busy).
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Web config file (Prometheus exporter-toolkit format): TLS and basic auth for every endpoint.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Seconds subtracted from Prometheus' scrape timeout to leave time to answer.
    #[arg(long = "timeout-offset", value_name = "SECONDS", default_value = "0.5", value_parser = parse_timeout_offset)]
    pub timeout_offset: Duration,

    /// Run only this replica's share of the scheduled targets: replica i (0-based) of n, by a
    /// stable hash of module and target, so n replicas cover every target exactly once.
    #[arg(long = "schedule.shard", value_name = "I/N", default_value = "0/1")]
    pub schedule_shard: crate::schedule::Shard,

    /// Only log messages with the given severity or above: debug, info, warn, error.
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info", value_parser = ["debug", "info", "warn", "error"])]
    pub log_level: String,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,

    /// Print a shell completion script and exit.
    #[arg(long = "completions", value_enum, value_name = "SHELL")]
    pub completions: Option<Shell>,

    /// Print the man page (roff) and exit.
    #[arg(long = "man")]
    pub man: bool,
}

/// Exit statuses of `audit` and `probe`, shown in their help and the man page.
const REPORT_EXIT_STATUS: &str = "Exit status: 0 all checks passed (warn and unknown count as passed unless \
--fail-on says otherwise) or the probe succeeded; 1 a check failed, a server could not be audited, or \
probe_success is 0; 2 usage or configuration error (unknown server, module or prober, invalid \
configuration file).";

/// One-shot commands; without one, the exporter serves.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit configured servers once over SSH and print check, verdict, value and reason.
    #[command(after_help = REPORT_EXIT_STATUS)]
    Audit(AuditArgs),
    /// Run one probe once and print what /probe?debug=true shows (log, metrics, module).
    #[command(after_help = REPORT_EXIT_STATUS)]
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The ssh_audit module whose settings (user, key, checks) to use; needed only when the
    /// configuration has more than one.
    #[arg(long, value_name = "MODULE")]
    pub module: Option<String>,

    /// Report format: readable text, or JSON (schema in README).
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,

    /// The least severe verdict that makes the exit status 1.
    #[arg(long = "fail-on", value_enum, default_value = "fail")]
    pub fail_on: FailOn,

    /// Colour the text report: auto is on a terminal only, and never when NO_COLOR is set.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,

    /// Server names as listed under `servers:` in the configuration file.
    #[arg(value_name = "SERVER", required = true)]
    pub servers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The module to probe with.
    #[arg(long, value_name = "MODULE")]
    pub module: String,

    /// Report format: the debug output as text, or JSON (schema in README).
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,

    /// Colour the verdict line: auto is on a terminal only, and never when NO_COLOR is set.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,

    /// What to probe, as /probe's `target=` (a URL, host:port, server name…).
    #[arg(value_name = "TARGET")]
    pub target: String,
}

/// Writes the completion script for `shell`.
pub fn write_completions(shell: Shell, out: &mut dyn std::io::Write) {
    let mut cmd = Cli::command();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut cmd, "siembox-exporter", out);
}

/// Writes the man page: the flags, then a section per command with its arguments.
pub fn write_man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let cmd = Cli::command();
    clap_mangen::Man::new(cmd.clone()).render(out)?;
    for sub in cmd.get_subcommands() {
        let mut sub = sub
            .clone()
            .bin_name(format!("siembox-exporter {}", sub.get_name()));
        writeln!(
            out,
            ".SH \"COMMAND {}\"",
            roff(sub.get_name()).to_uppercase()
        )?;
        writeln!(
            out,
            ".B {}",
            roff(&sub.render_usage().to_string().replace("Usage: ", ""))
        )?;
        if let Some(about) = sub.get_about() {
            writeln!(out, ".PP\n{}", roff(&about.to_string()))?;
        }
        for arg in sub.get_arguments().filter(|a| !a.is_global_set()) {
            let name = match arg.get_long() {
                Some(long) => format!("\\-\\-{}", roff(long)),
                None => arg
                    .get_value_names()
                    .and_then(|v| v.first())
                    .map_or_else(|| arg.get_id().to_string(), |v| format!("<{v}>")),
            };
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            writeln!(out, ".TP\n{name}\n{}", roff(&help))?;
        }
        if let Some(after) = sub.get_after_help() {
            writeln!(out, ".PP\n{}", roff(&after.to_string()))?;
        }
    }
    Ok(())
}

/// Text safe inside a roff line: backslashes and leading dots or quotes escaped.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// A positive duration (`30s`, `500ms`) or, as blackbox 0.28 reads this flag, whole seconds (`30`).
pub fn parse_reload_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s
            .parse()
            .map_err(|_| format!("{s:?} is too many seconds"))?;
        std::time::Duration::from_secs(secs)
    } else {
        crate::config::parse_duration(s)?
    };
    if d.is_zero() {
        return Err("the interval must be more than zero (like 30s or 500ms)".into());
    }
    Ok(d)
}

/// Accepts `:9847` (all interfaces, as Go programs do), `host:port` and `[v6]:port`.
pub fn parse_listen_address(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    if let Ok(a) = full.parse::<SocketAddr>() {
        return Ok(a);
    }
    use std::net::ToSocketAddrs;
    full.to_socket_addrs()
        .map_err(|e| format!("invalid listen address {s:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("listen address {s:?} resolves to nothing"))
}

/// The largest `--timeout-offset`: more than any scrape timeout, so larger values mean nothing.
const MAX_TIMEOUT_OFFSET_SECONDS: f64 = 3600.0;
/// The longest `--web.shutdown-timeout`: a day; past that a supervisor has long given up.
const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Seconds as a number from 0 to an hour; `inf`, NaN, negative and huge values are errors
/// (they would make every probe time out at once, or overflow a `Duration`).
pub fn parse_timeout_offset(s: &str) -> Result<Duration, String> {
    let seconds: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !seconds.is_finite() || !(0.0..=MAX_TIMEOUT_OFFSET_SECONDS).contains(&seconds) {
        return Err(format!(
            "{s:?} is not between 0 and {MAX_TIMEOUT_OFFSET_SECONDS} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A duration (`10s`) of at most a day.
pub fn parse_shutdown_timeout(s: &str) -> Result<Duration, String> {
    let d = crate::config::parse_duration(s)?;
    if d > MAX_SHUTDOWN_TIMEOUT {
        return Err(format!("{s:?} is longer than 24h"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_forms() {
        assert_eq!(parse_listen_address(":9847").unwrap().port(), 9847);
        assert_eq!(
            parse_listen_address("127.0.0.1:1").unwrap().to_string(),
            "127.0.0.1:1"
        );
        assert!(parse_listen_address("[::1]:80").unwrap().is_ipv6());
        assert!(parse_listen_address("nonsense").is_err());
    }

    #[test]
    fn reload_interval_forms() {
        use std::time::Duration;
        assert_eq!(parse_reload_interval("30"), Ok(Duration::from_secs(30)));
        assert_eq!(
            parse_reload_interval("200ms"),
            Ok(Duration::from_millis(200))
        );
        assert_eq!(parse_reload_interval("1m30s"), Ok(Duration::from_secs(90)));
        for bad in [
            "0",
            "0s",
            "-5s",
            "-5",
            "soon",
            "",
            "5x",
            "99999999999999999999999",
        ] {
            assert!(parse_reload_interval(bad).is_err(), "{bad:?} accepted");
        }
    }
}
