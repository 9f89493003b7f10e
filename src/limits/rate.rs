//! Optional rate limits (governor): per target host, and per prober type. Built from config and
//! replaced whole on reload (a quota cannot change in place; a reload restarts the buckets).

use crate::config::{ProberKind, Rate, RateLimits};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct RateLimiters {
    per_host: Option<DefaultKeyedRateLimiter<String>>,
    per_type: [Option<DefaultDirectRateLimiter>; ProberKind::ALL.len()],
    clock: DefaultClock,
}

fn quota(r: Rate) -> Quota {
    let burst = NonZeroU32::new(r.count).unwrap_or(NonZeroU32::MIN);
    let period = (r.per / burst.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .expect("period is above zero")
        .allow_burst(burst)
}

impl RateLimiters {
    pub fn new(cfg: &RateLimits) -> Self {
        let mut per_type: [Option<DefaultDirectRateLimiter>; ProberKind::ALL.len()] =
            Default::default();
        for (kind, rate) in &cfg.per_type {
            per_type[*kind as usize] = Some(governor::RateLimiter::direct(quota(*rate)));
        }
        RateLimiters {
            per_host: cfg
                .per_target_host
                .map(|r| governor::RateLimiter::keyed(quota(r))),
            per_type,
            clock: DefaultClock::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.per_host.is_none() && self.per_type.iter().all(Option::is_none)
    }

    /// Takes one cell from every limit that applies, or says how long until one is free.
    /// (A cell taken from the type bucket is not returned when the host bucket refuses: a
    /// refused probe still counts against its type, which errs on the side of less load.)
    pub fn check(&self, kind: ProberKind, target: &str) -> Result<(), Duration> {
        if let Some(l) = &self.per_type[kind as usize] {
            l.check()
                .map_err(|nu| nu.wait_time_from(self.clock.now()))?;
        }
        if let Some(l) = &self.per_host {
            l.check_key(&target_host(kind, target))
                .map_err(|nu| nu.wait_time_from(self.clock.now()))?;
        }
        Ok(())
    }

    /// Forgets hosts whose buckets are full again, so a stream of distinct hosts cannot grow
    /// memory (called periodically).
    pub fn forget_idle_hosts(&self) {
        if let Some(l) = &self.per_host {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    pub fn hosts_tracked(&self) -> usize {
        self.per_host.as_ref().map_or(0, |l| l.len())
    }
}

/// The host a probe of `kind` connects to for `target`, read by that prober's own parser as the
/// allow-list reads it ([`crate::probe::target::endpoint`]): a target written to look like
/// another host (`http://a\\@b/` connects to `a`) cannot draw on another host's bucket. A target
/// the prober refuses anyway is keyed on its text.
pub fn target_host(kind: ProberKind, target: &str) -> String {
    let host = crate::probe::target::endpoint(kind, target)
        .map_or_else(|| target.to_string(), |(host, _)| host);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_every_target_form_as_its_prober_reads_it() {
        use ProberKind::*;
        assert_eq!(
            target_host(Http, "https://u:p@Example.org:8443/x?y"),
            "example.org"
        );
        // The url parser reads `\\` as `/`: the probe connects to `a.example`, not `b.example`.
        assert_eq!(
            target_host(Http, "http://a.example\\@b.example/"),
            "a.example"
        );
        assert_eq!(target_host(Http, "a.example/?x=@b.example"), "a.example");
        assert_eq!(target_host(Tcp, "example.org:22"), "example.org");
        assert_eq!(target_host(Postgres, "[::1]:5432"), "::1");
        assert_eq!(target_host(Icmp, "10.0.0.1"), "10.0.0.1");
        assert_eq!(target_host(Dns, "Web-1"), "web-1");
        assert_eq!(
            target_host(Grpc, "localhost:9000"),
            target_host(Http, "http://LOCALHOST:80/")
        );
    }

    #[test]
    fn a_disguised_target_draws_on_the_host_it_reaches() {
        let cfg: RateLimits = serde_json::from_str(r#"{"per_target_host": "1/m"}"#).unwrap();
        let r = RateLimiters::new(&cfg);
        assert!(r.check(ProberKind::Http, "http://a.example/").is_ok());
        assert!(r
            .check(ProberKind::Http, "http://a.example\\@b.example/")
            .is_err());
        assert!(r.check(ProberKind::Http, "http://b.example/").is_ok());
    }

    #[test]
    fn per_host_and_per_type_limits_refuse_with_a_wait() {
        let cfg: RateLimits =
            serde_json::from_str(r#"{"per_target_host": "2/s", "per_type": {"ssh_audit": "1/m"}}"#)
                .unwrap();
        let r = RateLimiters::new(&cfg);
        assert!(r.check(ProberKind::Tcp, "a:1").is_ok());
        assert!(r.check(ProberKind::Tcp, "a:2").is_ok());
        let wait = r.check(ProberKind::Tcp, "a:3").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(r.check(ProberKind::Tcp, "b:1").is_ok());
        assert!(r.check(ProberKind::SshAudit, "c").is_ok());
        assert!(r.check(ProberKind::SshAudit, "d").unwrap_err() > Duration::from_secs(50));
        assert_eq!(r.hosts_tracked(), 3);
    }
}
