//! Recent probe outcomes per (module, target), in memory, for the status page and `/logs`.
//!
//! Bounded whatever is probed: per key a ring of the last successes and a longer ring of the last
//! failures (failures are what an operator comes looking for), and a global cap on keys, over
//! which the least recently updated keys are evicted. Recording is on the hot path of every
//! probe: in steady state it takes one short lock, two hash lookups and no allocation. Records are
//! compact; only the newest outcomes keep their `Arc<ProbeOutcome>` (log lines and metric
//! families), shared with the caller rather than copied.

use crate::probe::recorder::FailureReason;
use crate::probe::ProbeOutcome;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Size limits of the history.
#[derive(Clone, Copy, Debug)]
pub struct HistoryLimits {
    /// Successes kept per key.
    pub successes: usize,
    /// Failures kept per key.
    pub failures: usize,
    /// Newest failures per key that keep their full outcome (log lines); older ones keep only
    /// time, duration and reason.
    pub failure_logs: usize,
    /// (module, target) keys kept in all. 1 000 bounds the history near 7 MB (a key holding its
    /// newest outcomes costs about 7 KB); the status page shows the newest 100 anyway.
    pub max_keys: usize,
    /// Targets are stored (and looked up) cut to this many bytes.
    pub max_target_bytes: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            successes: 20,
            failures: 50,
            failure_logs: 3,
            max_keys: 1_000,
            max_target_bytes: 512,
        }
    }
}

/// One probe result. 24 bytes plus the optional shared outcome.
#[derive(Clone, Debug)]
pub struct Record {
    /// When the probe finished, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Probe duration in microseconds (saturating).
    pub duration_us: u32,
    pub success: bool,
    pub failure: Option<FailureReason>,
    /// The full outcome (log lines, metric families), kept only for the newest records.
    pub outcome: Option<Arc<ProbeOutcome>>,
}

impl Record {
    fn of(outcome: &Arc<ProbeOutcome>) -> Record {
        Record {
            at_ms: outcome
                .finished_at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            duration_us: outcome.duration.as_micros().min(u32::MAX as u128) as u32,
            success: outcome.success,
            failure: outcome.failure,
            outcome: Some(outcome.clone()),
        }
    }

    pub fn duration_seconds(&self) -> f64 {
        self.duration_us as f64 / 1e6
    }
}

/// The history of one (module, target).
#[derive(Debug, Default)]
struct Entry {
    successes: VecDeque<Record>,
    failures: VecDeque<Record>,
    /// Logical clock of the last update, for least-recently-updated eviction.
    touched: u64,
    /// Whether the newest record is a success (times can tie within a millisecond).
    last_ok: bool,
}

/// A copy of one key's history, taken under the lock and read without it.
#[derive(Clone, Debug)]
pub struct TargetHistory {
    pub module: String,
    pub target: String,
    /// Oldest first, successes and failures merged by time.
    pub records: Vec<Record>,
    pub successes: usize,
    pub failures: usize,
    /// The newest record (also the last of `records` unless times tie).
    pub last: Option<Record>,
}

impl TargetHistory {
    pub fn last(&self) -> Option<&Record> {
        self.last.as_ref()
    }

    /// The newest outcome that still carries its logs and metrics.
    pub fn last_outcome(&self) -> Option<&Arc<ProbeOutcome>> {
        self.records.iter().rev().find_map(|r| r.outcome.as_ref())
    }

    /// The newest successful outcome that still carries its logs and metrics.
    pub fn last_success_outcome(&self) -> Option<&Arc<ProbeOutcome>> {
        self.records
            .iter()
            .rev()
            .filter(|r| r.success)
            .find_map(|r| r.outcome.as_ref())
    }

    /// The newest failed outcome that still carries its logs.
    pub fn last_failure_outcome(&self) -> Option<&Arc<ProbeOutcome>> {
        self.records
            .iter()
            .rev()
            .filter(|r| !r.success)
            .find_map(|r| r.outcome.as_ref())
    }
}

/// Counts of one module's keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModuleStats {
    pub targets: usize,
    pub failing: usize,
}

#[derive(Default)]
struct Inner {
    /// module → target → history. Two levels so lookups by `&str` need no allocation.
    modules: HashMap<Box<str>, HashMap<Box<str>, Entry>>,
    keys: usize,
    clock: u64,
}

/// The probe history shared by the app.
pub struct ProbeHistory {
    limits: HistoryLimits,
    inner: Mutex<Inner>,
}

impl Default for ProbeHistory {
    fn default() -> Self {
        Self::new(HistoryLimits::default())
    }
}

impl ProbeHistory {
    pub fn new(limits: HistoryLimits) -> Self {
        let limits = HistoryLimits {
            successes: limits.successes.max(1),
            failures: limits.failures.max(1),
            failure_logs: limits.failure_logs.max(1),
            max_keys: limits.max_keys.max(1),
            max_target_bytes: limits.max_target_bytes.max(16),
        };
        ProbeHistory {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn limits(&self) -> HistoryLimits {
        self.limits
    }

    /// Records one finished probe.
    pub fn record(&self, module: &str, target: &str, outcome: &Arc<ProbeOutcome>) {
        // Kept (and shown on the status page and /logs) without any credentials it holds.
        let target = crate::probe::target::redacted(target);
        let target = cut(&target, self.limits.max_target_bytes);
        let record = Record::of(outcome);
        // Whatever leaves the history is dropped after the lock is released.
        let mut dropped: Option<Record> = None;
        let mut stripped: Option<Arc<ProbeOutcome>> = None;
        let mut evicted: Vec<Entry> = Vec::new();
        {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            inner.clock += 1;
            let clock = inner.clock;
            let exists = inner
                .modules
                .get(module)
                .is_some_and(|t| t.contains_key(target));
            if !exists {
                if inner.keys >= self.limits.max_keys {
                    evicted = inner.evict_oldest(self.limits.max_keys);
                }
                inner.keys += 1;
                // Allocates only for a key not seen before.
                inner
                    .modules
                    .entry(module.into())
                    .or_default()
                    .insert(target.into(), Entry::default());
            }
            let Some(entry) = inner
                .modules
                .get_mut(module)
                .and_then(|t| t.get_mut(target))
            else {
                return;
            };
            entry.touched = clock;
            entry.last_ok = record.success;
            let (ring, cap, keep_logs) = if record.success {
                (&mut entry.successes, self.limits.successes, 1)
            } else {
                (
                    &mut entry.failures,
                    self.limits.failures,
                    self.limits.failure_logs,
                )
            };
            if ring.len() >= cap {
                dropped = ring.pop_front();
            }
            ring.push_back(record);
            if ring.len() > keep_logs {
                let older = ring.len() - 1 - keep_logs;
                stripped = ring[older].outcome.take();
            }
        }
        drop((dropped, stripped, evicted));
    }

    /// The history of one key, if it has one.
    pub fn get(&self, module: &str, target: &str) -> Option<TargetHistory> {
        let target = crate::probe::target::redacted(target);
        let target = cut(&target, self.limits.max_target_bytes);
        let inner = self.inner.lock();
        let entry = inner.modules.get(module)?.get(target)?;
        Some(snapshot(module, target, entry))
    }

    /// `target`'s history under `module`, or with `module` empty under whichever module probed it
    /// last (blackbox's `/logs?target=T` filter, main.go).
    pub fn find(&self, module: &str, target: &str) -> Option<TargetHistory> {
        if !module.is_empty() {
            return self.get(module, target);
        }
        let target = cut(target, self.limits.max_target_bytes);
        let inner = self.inner.lock();
        let (m, e) = inner
            .modules
            .iter()
            .filter_map(|(m, targets)| Some((m, targets.get(target)?)))
            .max_by_key(|(_, e)| e.touched)?;
        Some(snapshot(m, target, e))
    }

    /// The most recently updated keys, newest first, at most `limit`, and the number of keys.
    pub fn recent(&self, limit: usize) -> (Vec<TargetHistory>, usize) {
        let inner = self.inner.lock();
        let mut all: Vec<(u64, &str, &str, &Entry)> = Vec::with_capacity(inner.keys);
        for (m, targets) in &inner.modules {
            for (t, e) in targets {
                all.push((e.touched, m, t, e));
            }
        }
        let total = all.len();
        if all.len() > limit {
            all.select_nth_unstable_by(limit, |a, b| b.0.cmp(&a.0));
            all.truncate(limit);
        }
        all.sort_unstable_by_key(|a| std::cmp::Reverse(a.0));
        let out = all
            .into_iter()
            .map(|(_, m, t, e)| snapshot(m, t, e))
            .collect();
        (out, total)
    }

    /// Per module: targets held and how many of them failed their last probe. Counted under the
    /// lock without copying records.
    pub fn module_stats(&self) -> HashMap<String, ModuleStats> {
        let inner = self.inner.lock();
        inner
            .modules
            .iter()
            .map(|(m, targets)| {
                let failing = targets.values().filter(|e| !e.last_ok).count();
                (
                    m.to_string(),
                    ModuleStats {
                        targets: targets.len(),
                        failing,
                    },
                )
            })
            .collect()
    }

    /// Number of (module, target) keys held.
    pub fn len(&self) -> usize {
        self.inner.lock().keys
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records held in all (for tests and self-checks of the bounds).
    pub fn record_count(&self) -> usize {
        let inner = self.inner.lock();
        inner
            .modules
            .values()
            .flat_map(|t| t.values())
            .map(|e| e.successes.len() + e.failures.len())
            .sum()
    }

    /// Forgets modules the config no longer has (after a reload).
    pub fn retain_modules(&self, keep: impl Fn(&str) -> bool) {
        let removed: Vec<HashMap<Box<str>, Entry>> = {
            let mut inner = self.inner.lock();
            let gone: Vec<Box<str>> = inner.modules.keys().filter(|m| !keep(m)).cloned().collect();
            let removed: Vec<_> = gone
                .iter()
                .filter_map(|m| inner.modules.remove(m))
                .collect();
            inner.keys -= removed.iter().map(|t| t.len()).sum::<usize>();
            removed
        };
        drop(removed);
    }
}

impl Inner {
    /// Evicts the least recently updated tenth of the keys (at least one) at once, so that a
    /// stream of new targets costs one scan per `max_keys / 10` insertions, not one per probe.
    fn evict_oldest(&mut self, max_keys: usize) -> Vec<Entry> {
        let n = (max_keys / 10).max(1).min(self.keys);
        if n == 0 {
            return Vec::new();
        }
        let mut ticks: Vec<u64> = self
            .modules
            .values()
            .flat_map(|t| t.values().map(|e| e.touched))
            .collect();
        let (_, nth, _) = ticks.select_nth_unstable(n - 1);
        let threshold = *nth;
        let mut evicted = Vec::with_capacity(n);
        for targets in self.modules.values_mut() {
            let old: Vec<Box<str>> = targets
                .iter()
                .filter(|(_, e)| e.touched <= threshold)
                .map(|(k, _)| k.clone())
                .collect();
            for k in old {
                if let Some(e) = targets.remove(&k) {
                    evicted.push(e);
                }
            }
        }
        self.modules.retain(|_, t| !t.is_empty());
        self.keys -= evicted.len();
        evicted
    }
}

fn snapshot(module: &str, target: &str, e: &Entry) -> TargetHistory {
    let mut records = Vec::with_capacity(e.successes.len() + e.failures.len());
    // Both rings are in time order: merge them.
    let (mut s, mut f) = (e.successes.iter().peekable(), e.failures.iter().peekable());
    loop {
        let take_s = match (s.peek(), f.peek()) {
            (Some(a), Some(b)) => a.at_ms <= b.at_ms,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_s { s.next() } else { f.next() };
        records.extend(next.cloned());
    }
    let last = if e.last_ok {
        e.successes.back()
    } else {
        e.failures.back()
    };
    TargetHistory {
        last: last.cloned(),
        module: module.to_string(),
        target: target.to_string(),
        records,
        successes: e.successes.len(),
        failures: e.failures.len(),
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::refused;

    #[test]
    fn records_are_small() {
        assert!(std::mem::size_of::<Record>() <= 32);
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("ééé", 3), "é");
        assert_eq!(cut("abc", 10), "abc");
    }

    #[test]
    fn old_failures_lose_their_logs_but_keep_their_reason() {
        let h = ProbeHistory::new(HistoryLimits {
            failure_logs: 2,
            ..HistoryLimits::default()
        });
        for _ in 0..5 {
            let o = Arc::new(refused(FailureReason::Dns, "x".into()));
            h.record("m", "t", &o);
        }
        let t = h.get("m", "t").unwrap();
        assert_eq!(t.records.len(), 5);
        let with_logs = t.records.iter().filter(|r| r.outcome.is_some()).count();
        assert_eq!(with_logs, 2);
        assert!(t
            .records
            .iter()
            .all(|r| r.failure == Some(FailureReason::Dns)));
    }
}
