//! `probe_http_duration_seconds{phase}`: all five phases always present, each the sum over every
//! hop of the probe (the first request and each redirect followed).
//!
//! Every hop adds its own resolve, connect, tls, processing and transfer time, measured back to
//! back on one clock, so phases never overlap and their sum stays below `probe_duration_seconds`.
//! blackbox (#485, #896) gets redirects wrong: older versions measured tls from the end of DNS,
//! overlapping connect, and a redirect hop never gets an end time, so its transfer is lost. Here
//! tls is the handshake alone, and a redirect's body, drained before following it, is transfer
//! time of that hop.

use crate::probe::recorder::ProbeRecorder;
use std::time::Duration;

pub(super) const NAME: &str = "probe_http_duration_seconds";
const HELP: &str = "Duration of http request by phase, summed over all redirects";

#[derive(Clone, Copy, Debug)]
pub(super) enum Phase {
    Resolve,
    Connect,
    Tls,
    Processing,
    Transfer,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::Resolve,
        Phase::Connect,
        Phase::Tls,
        Phase::Processing,
        Phase::Transfer,
    ];

    fn label(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Processing => "processing",
            Phase::Transfer => "transfer",
        }
    }
}

/// Registers every phase at 0, so a probe that stops early still exposes all five.
pub(super) fn init(rec: &mut ProbeRecorder) {
    for p in Phase::ALL {
        rec.add_with(NAME, HELP, &[("phase", p.label())], 0.0);
    }
}

pub(super) fn add_phase(rec: &mut ProbeRecorder, phase: Phase, took: Duration) {
    rec.add_with(NAME, HELP, &[("phase", phase.label())], took.as_secs_f64());
}
