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
            l.check_key(&target_host(target).to_ascii_lowercase())
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

/// The host part of a target in any prober's form: `https://h:443/p`, `h:22`, `[::1]:5432`, `h`.
pub fn target_host(target: &str) -> &str {
    let rest = target.split_once("://").map_or(target, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match authority.split_once(':') {
        Some((h, port)) if !port.contains(':') => h,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_every_target_form() {
        assert_eq!(
            target_host("https://u:p@Example.org:8443/x?y"),
            "Example.org"
        );
        assert_eq!(target_host("example.org:22"), "example.org");
        assert_eq!(target_host("[::1]:5432"), "::1");
        assert_eq!(target_host("::1"), "::1");
        assert_eq!(target_host("10.0.0.1"), "10.0.0.1");
        assert_eq!(target_host("web-1"), "web-1");
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
