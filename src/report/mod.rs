//! Terminal reports: `siembox-exporter audit` and `siembox-exporter probe` run the same audit and
//! probe code the server runs, once, and print the result for a person (colour on a terminal)
//! or a program (`--output json`). Nothing here knows about HTTP.

pub mod audit;
pub mod probe;
pub mod style;

/// Exit statuses of the report commands (documented in README and `--help`).
pub mod exit {
    /// Every check passed (warn/unknown too, unless `--fail-on` says otherwise); the probe succeeded.
    pub const OK: u8 = 0;
    /// A check failed, a server could not be audited, or the probe failed.
    pub const FAILED: u8 = 1;
    /// Bad usage or configuration: unknown server, module or prober, unreadable config file.
    pub const USAGE: u8 = 2;
}

/// Output format of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Readable text: colour on a terminal unless NO_COLOR is set.
    Text,
    /// One JSON document (schema in README, "Terminal reports").
    Json,
}

/// The timeout of a report run: the module's own, else what blackbox assumes for a scrape.
pub fn timeout_of(module: &crate::config::Module) -> std::time::Duration {
    module
        .timeout
        .map(|t| t.get())
        .unwrap_or(std::time::Duration::from_secs(120))
}
