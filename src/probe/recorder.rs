//! What one probe records: its metrics (blackbox names, gauges) and its log lines.
//! One recorder per probe, as blackbox has one registry per probe; encoding is a separate step.

use std::fmt::Write as _;
use std::time::Instant;

/// Why a probe failed, short and bounded, for the debug output, status page and a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureReason {
    Timeout,
    ConnectionRefused,
    Connection,
    Dns,
    Tls,
    Status,
    Regexp,
    /// A CEL expression on the JSON body failed the probe.
    Cel,
    Protocol,
    Auth,
    HostKey,
    PoolExhausted,
    RejectedByLimit,
    /// The target is outside the configured allow-list.
    Denied,
    Config,
    Other,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::ConnectionRefused => "connection_refused",
            FailureReason::Connection => "connection",
            FailureReason::Dns => "dns",
            FailureReason::Tls => "tls",
            FailureReason::Status => "status",
            FailureReason::Regexp => "regexp",
            FailureReason::Cel => "cel",
            FailureReason::Protocol => "protocol",
            FailureReason::Auth => "auth",
            FailureReason::HostKey => "host_key",
            FailureReason::PoolExhausted => "pool_exhausted",
            FailureReason::RejectedByLimit => "rejected_by_limit",
            FailureReason::Denied => "denied",
            FailureReason::Config => "config",
            FailureReason::Other => "other",
        }
    }

    /// Classifies an I/O error from connecting or reading.
    pub fn from_io(e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::ConnectionRefused => FailureReason::ConnectionRefused,
            std::io::ErrorKind::TimedOut => FailureReason::Timeout,
            _ => FailureReason::Connection,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Counter,
}

#[derive(Clone, Debug)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

#[derive(Clone, Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug)]
pub struct LogLine {
    pub at_ms: f64,
    pub level: &'static str,
    pub message: String,
}

/// Metrics and log lines of one probe.
#[derive(Debug)]
pub struct ProbeRecorder {
    families: Vec<Family>,
    log: Vec<LogLine>,
    started: Instant,
    failure: Option<FailureReason>,
}

impl Default for ProbeRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl ProbeRecorder {
    pub fn new() -> Self {
        ProbeRecorder {
            families: Vec::with_capacity(16),
            log: Vec::new(),
            started: Instant::now(),
            failure: None,
        }
    }

    /// Sets a label-less gauge, replacing an earlier value.
    pub fn gauge(&mut self, name: &'static str, help: &'static str, value: f64) {
        let fam = self.family(name, help, MetricKind::Gauge);
        fam.samples.clear();
        fam.samples.push(Sample {
            labels: Vec::new(),
            value,
        });
    }

    /// Sets one labelled sample of a gauge family, replacing the sample with the same labels.
    pub fn gauge_with(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        self.set_sample(name, help, MetricKind::Gauge, labels, value);
    }

    /// Adds to a labelled gauge sample (e.g. phase durations summed over redirects).
    pub fn add_with(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        delta: f64,
    ) {
        let fam = self.family(name, help, MetricKind::Gauge);
        match fam
            .samples
            .iter_mut()
            .find(|s| same_labels(&s.labels, labels))
        {
            Some(s) => s.value += delta,
            None => fam.samples.push(Sample {
                labels: owned(labels),
                value: delta,
            }),
        }
    }

    pub fn counter_with(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        self.set_sample(name, help, MetricKind::Counter, labels, value);
    }

    fn set_sample(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: MetricKind,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        let fam = self.family(name, help, kind);
        match fam
            .samples
            .iter_mut()
            .find(|s| same_labels(&s.labels, labels))
        {
            Some(s) => s.value = value,
            None => fam.samples.push(Sample {
                labels: owned(labels),
                value,
            }),
        }
    }

    fn family(&mut self, name: &'static str, help: &'static str, kind: MetricKind) -> &mut Family {
        let idx = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name,
                    help,
                    kind,
                    samples: Vec::with_capacity(1),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[idx]
    }

    pub fn value(&self, name: &str) -> Option<f64> {
        self.families
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.samples.first())
            .map(|s| s.value)
    }

    pub fn families(&self) -> &[Family] {
        &self.families
    }

    pub fn into_families(self) -> Vec<Family> {
        self.families
    }

    pub fn info(&mut self, message: impl Into<String>) {
        self.push_log("info", message.into());
    }

    pub fn debug(&mut self, message: impl Into<String>) {
        self.push_log("debug", message.into());
    }

    /// Records why the probe failed; the first reason wins, later ones are only logged.
    pub fn fail(&mut self, reason: FailureReason, message: impl Into<String>) {
        if self.failure.is_none() {
            self.failure = Some(reason);
        }
        self.push_log("error", message.into());
    }

    pub fn failure(&self) -> Option<FailureReason> {
        self.failure
    }

    pub fn log_lines(&self) -> &[LogLine] {
        &self.log
    }

    pub fn take_log(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.log)
    }

    fn push_log(&mut self, level: &'static str, message: String) {
        let at_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        // Bounded: a misbehaving prober cannot grow one probe's log without limit.
        if self.log.len() < 256 {
            self.log.push(LogLine {
                at_ms,
                level,
                message,
            });
        }
    }
}

fn same_labels(have: &[(&'static str, String)], want: &[(&'static str, &str)]) -> bool {
    have.len() == want.len()
        && have
            .iter()
            .zip(want)
            .all(|((hk, hv), (wk, wv))| hk == wk && hv == wv)
}

fn owned(labels: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

/// Exposition format of a response, chosen from the `Accept` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Writes families in the Prometheus text format (or OpenMetrics, without the `# EOF` line,
/// so callers can append more families). `extra` labels go first on every sample.
pub fn encode_families(
    out: &mut String,
    families: &[Family],
    extra: &[(&str, &str)],
    format: Format,
) {
    for fam in families {
        encode_family(out, fam, extra, format);
    }
}

pub fn encode_family(out: &mut String, fam: &Family, extra: &[(&str, &str)], format: Format) {
    let (type_name, sample_suffix) = match (fam.kind, format) {
        (MetricKind::Gauge, _) => ("gauge", ""),
        (MetricKind::Counter, Format::Text) => ("counter", ""),
        // OpenMetrics counters are named without `_total` in TYPE and with it on samples.
        (MetricKind::Counter, Format::OpenMetrics) => ("counter", ""),
    };
    let _ = writeln!(out, "# HELP {} {}", fam.name, escape_help(fam.help));
    let _ = writeln!(out, "# TYPE {} {}", fam.name, type_name);
    for s in &fam.samples {
        out.push_str(fam.name);
        out.push_str(sample_suffix);
        write_labels(
            out,
            extra
                .iter()
                .copied()
                .chain(s.labels.iter().map(|(k, v)| (*k, v.as_str()))),
        );
        out.push(' ');
        write_value(out, s.value);
        out.push('\n');
    }
}

pub fn write_labels<'a>(out: &mut String, labels: impl Iterator<Item = (&'a str, &'a str)>) {
    let mut first = true;
    for (k, v) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(out, v);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
}

pub fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(h: &str) -> String {
    h.replace('\\', "\\\\").replace('\n', "\\n")
}

pub fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_gauges_with_escaped_labels() {
        let mut r = ProbeRecorder::new();
        r.gauge(
            "probe_success",
            "Displays whether or not the probe was a success",
            1.0,
        );
        r.add_with(
            "probe_http_duration_seconds",
            "Duration of http request by phase",
            &[("phase", "connect")],
            0.25,
        );
        r.add_with(
            "probe_http_duration_seconds",
            "Duration of http request by phase",
            &[("phase", "connect")],
            0.5,
        );
        r.gauge_with(
            "probe_tls_version_info",
            "TLS version",
            &[("version", "a\"b\\c\n")],
            1.0,
        );
        let mut out = String::new();
        encode_families(&mut out, r.families(), &[], Format::Text);
        assert!(
            out.contains("# TYPE probe_success gauge\nprobe_success 1\n"),
            "{out}"
        );
        assert!(
            out.contains("probe_http_duration_seconds{phase=\"connect\"} 0.75\n"),
            "{out}"
        );
        assert!(out.contains("version=\"a\\\"b\\\\c\\n\""), "{out}");
    }

    #[test]
    fn first_failure_reason_wins() {
        let mut r = ProbeRecorder::new();
        r.fail(FailureReason::Dns, "no such host");
        r.fail(FailureReason::Timeout, "later");
        assert_eq!(r.failure(), Some(FailureReason::Dns));
        assert_eq!(r.log_lines().len(), 2);
    }

    #[test]
    fn values_format_like_prometheus() {
        let mut s = String::new();
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            3.0,
            0.125,
            1.7e9,
        ] {
            write_value(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "NaN +Inf -Inf 3 0.125 1700000000 ");
    }
}
