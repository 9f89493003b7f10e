//! The latest outcome of every scheduled target, exposed on `/metrics` with its labels, under a
//! series cap per metric family (SPEC §7): over the cap, new series are dropped and counted in
//! `siembox_cardinality_dropped_series_total{family}`, with one warning per family.

use crate::probe::recorder::{escape_label_value, write_value, Family, Format, MetricKind};
use crate::probe::ProbeOutcome;
use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as PromFamily;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use super::cardinality::cap_value;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FamilyLabel {
    pub family: String,
}

/// One target's series identity: a stable key and its rendered, escaped, length-capped label
/// set (`module="…",target="…",…`), built once when the target is scheduled.
#[derive(Debug)]
pub struct SeriesLabels {
    pub key: String,
    pub rendered: String,
    /// Cleared when the target leaves the schedule; a run finishing afterwards records nothing.
    pub alive: AtomicBool,
}

impl SeriesLabels {
    /// `pairs` are label names and raw values; values are capped at `max_len` here.
    pub fn new(key: String, pairs: &[(&str, &str)], max_len: usize) -> Self {
        let mut rendered = String::new();
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                rendered.push(',');
            }
            rendered.push_str(k);
            rendered.push_str("=\"");
            escape_label_value(&mut rendered, &cap_value(v, max_len));
            rendered.push('"');
        }
        SeriesLabels {
            key,
            rendered,
            alive: AtomicBool::new(true),
        }
    }
}

struct Entry {
    labels: Arc<SeriesLabels>,
    outcome: Arc<ProbeOutcome>,
    /// Samples admitted per family of `outcome` (same order as `outcome.families`).
    admitted: Vec<usize>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Series currently exposed per family name.
    series: HashMap<&'static str, usize>,
    max_series: usize,
    max_label_len: usize,
}

pub struct ScheduledResults {
    inner: RwLock<Inner>,
    dropped: PromFamily<FamilyLabel, Counter>,
    warned: Mutex<HashSet<&'static str>>,
    series_gauge: Gauge,
}

impl ScheduledResults {
    pub fn new(max_series: usize, max_label_len: usize, registry: &mut Registry) -> Self {
        let dropped = PromFamily::<FamilyLabel, Counter>::default();
        registry.register(
            "siembox_cardinality_dropped_series",
            "Series of scheduled results not exposed because their metric family reached cardinality.max_series_per_family (counted at each update)",
            dropped.clone(),
        );
        let series_gauge = Gauge::default();
        registry.register(
            "siembox_scheduled_series",
            "Series of scheduled results exposed on /metrics",
            series_gauge.clone(),
        );
        ScheduledResults {
            inner: RwLock::new(Inner {
                max_series,
                max_label_len,
                ..Inner::default()
            }),
            dropped,
            warned: Mutex::new(HashSet::new()),
            series_gauge,
        }
    }

    /// New caps (config reload). A lower cap applies to series added from now on.
    pub fn set_caps(&self, max_series: usize, max_label_len: usize) {
        let mut inner = self.inner.write();
        inner.max_series = max_series;
        inner.max_label_len = max_label_len;
    }

    pub fn max_label_len(&self) -> usize {
        self.inner.read().max_label_len
    }

    /// Stores the latest outcome of a target, admitting its series under the family caps.
    pub fn record(&self, labels: &Arc<SeriesLabels>, outcome: Arc<ProbeOutcome>) {
        let mut drops: Vec<(&'static str, usize)> = Vec::new();
        {
            let mut guard = self.inner.write();
            let inner = &mut *guard;
            if !labels.alive.load(Relaxed) {
                return;
            }
            let old = inner.entries.remove(&labels.key);
            let mut admitted = Vec::with_capacity(outcome.families.len());
            for fam in &outcome.families {
                let had = old
                    .as_ref()
                    .and_then(|e| admitted_in(e, fam.name))
                    .unwrap_or(0);
                // Our own families (e.g. an audit's siembox_vps_audit_*) are exposed by their
                // collectors already; repeating them here would duplicate the family on /metrics.
                let want = if fam.name.starts_with("siembox_") {
                    0
                } else {
                    fam.samples.len()
                };
                let count = inner.series.entry(fam.name).or_insert(0);
                *count -= had;
                let room = inner.max_series.saturating_sub(*count);
                // Series this target already had keep their place; only new ones need room.
                let take = want.min(had.max(room));
                *count += take;
                if take < want {
                    drops.push((fam.name, want - take));
                }
                admitted.push(take);
            }
            // Families the old outcome had and the new one lacks free their series.
            if let Some(old) = &old {
                for (fam, n) in old.outcome.families.iter().zip(&old.admitted) {
                    if !outcome.families.iter().any(|f| f.name == fam.name) {
                        release(&mut inner.series, fam.name, *n);
                    }
                }
            }
            if admitted.iter().any(|n| *n > 0) {
                inner.entries.insert(
                    labels.key.clone(),
                    Entry {
                        labels: labels.clone(),
                        outcome,
                        admitted,
                    },
                );
            }
            self.series_gauge
                .set(inner.series.values().sum::<usize>() as i64);
        }
        for (family, n) in drops {
            self.dropped
                .get_or_create(&FamilyLabel {
                    family: family.to_string(),
                })
                .inc_by(n as u64);
            if self.warned.lock().insert(family) {
                tracing::warn!(
                    family,
                    "metric family reached cardinality.max_series_per_family: new series of scheduled results are dropped (counted in siembox_cardinality_dropped_series_total; warned once per family)"
                );
            }
        }
    }

    /// Drops the series of every target `keep` rejects (targets that left the schedule).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut guard = self.inner.write();
        let inner = &mut *guard;
        let gone: Vec<String> = inner.entries.keys().filter(|k| !keep(k)).cloned().collect();
        for k in gone {
            if let Some(e) = inner.entries.remove(&k) {
                for (fam, n) in e.outcome.families.iter().zip(&e.admitted) {
                    release(&mut inner.series, fam.name, *n);
                }
            }
        }
        self.series_gauge
            .set(inner.series.values().sum::<usize>() as i64);
    }

    /// Targets with a stored result.
    pub fn len(&self) -> usize {
        self.inner.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The latest outcome of a target by key (status page, tests).
    pub fn get(&self, key: &str) -> Option<Arc<ProbeOutcome>> {
        self.inner
            .read()
            .entries
            .get(key)
            .map(|e| e.outcome.clone())
    }

    /// Appends every family of scheduled results, HELP and TYPE once per family, in `format`
    /// (without OpenMetrics' closing `# EOF`).
    pub fn encode(&self, out: &mut String, format: Format) {
        let inner = self.inner.read();
        // Group the samples of all targets by family, families in name order.
        let mut index: HashMap<&'static str, usize> = HashMap::new();
        let mut groups: Vec<(&Family, Vec<Member>)> = Vec::new();
        for e in inner.entries.values() {
            for (fam, n) in e.outcome.families.iter().zip(&e.admitted) {
                if *n == 0 {
                    continue;
                }
                let i = *index.entry(fam.name).or_insert_with(|| {
                    groups.push((fam, Vec::new()));
                    groups.len() - 1
                });
                groups[i].1.push((e.labels.rendered.as_str(), fam, *n));
            }
        }
        groups.sort_unstable_by_key(|g| g.0.name);
        let max_len = inner.max_label_len;
        for (head, members) in groups {
            let kind = match head.kind {
                MetricKind::Gauge => "gauge",
                MetricKind::Counter => "counter",
            };
            let _ = writeln!(out, "# HELP {} {}", head.name, head.help.replace('\n', " "));
            let _ = writeln!(out, "# TYPE {} {}", head.name, kind);
            let suffix = if head.kind == MetricKind::Counter
                && format == Format::OpenMetrics
                && !head.name.ends_with("_total")
            {
                "_total"
            } else {
                ""
            };
            for (rendered, fam, n) in members {
                for s in &fam.samples[..n] {
                    out.push_str(fam.name);
                    out.push_str(suffix);
                    out.push('{');
                    out.push_str(rendered);
                    for (k, v) in &s.labels {
                        out.push(',');
                        out.push_str(k);
                        out.push_str("=\"");
                        escape_label_value(out, &cap_value(v, max_len));
                        out.push('"');
                    }
                    out.push_str("} ");
                    write_value(out, s.value);
                    out.push('\n');
                }
            }
        }
    }
}

/// One target's share of a family: its rendered labels, its samples, how many are admitted.
type Member<'a> = (&'a str, &'a Family, usize);

fn admitted_in(e: &Entry, family: &str) -> Option<usize> {
    e.outcome
        .families
        .iter()
        .zip(&e.admitted)
        .find(|(f, _)| f.name == family)
        .map(|(_, n)| *n)
}

fn release(series: &mut HashMap<&'static str, usize>, family: &'static str, n: usize) {
    if let Some(c) = series.get_mut(family) {
        *c = c.saturating_sub(n);
        if *c == 0 {
            series.remove(family);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::recorder::FailureReason;

    fn outcome() -> Arc<ProbeOutcome> {
        Arc::new(crate::probe::refused(FailureReason::Other, "x".into()))
    }

    fn labels(i: usize) -> Arc<SeriesLabels> {
        Arc::new(SeriesLabels::new(
            format!("k{i}"),
            &[("module", "m"), ("target", &format!("t{i}"))],
            64,
        ))
    }

    #[test]
    fn families_stop_at_the_cap_and_free_room_when_targets_leave() {
        let mut reg = Registry::default();
        let r = ScheduledResults::new(3, 64, &mut reg);
        for i in 0..5 {
            r.record(&labels(i), outcome());
        }
        let mut out = String::new();
        r.encode(&mut out, Format::Text);
        assert_eq!(out.matches("probe_success{").count(), 3, "{out}");
        assert_eq!(out.matches("# TYPE probe_success gauge").count(), 1);
        // Re-recording an admitted target keeps its place.
        let kept: Vec<String> = (0..5)
            .map(|i| format!("k{i}"))
            .filter(|k| r.get(k).is_some())
            .collect();
        assert_eq!(kept.len(), 3);
        r.retain(|k| k != kept[0]);
        r.record(&labels(4), outcome());
        let mut out = String::new();
        r.encode(&mut out, Format::Text);
        assert_eq!(out.matches("probe_success{").count(), 3, "{out}");
        let mut m = String::new();
        prometheus_client::encoding::text::encode(&mut m, &reg).unwrap();
        assert!(
            m.contains("siembox_cardinality_dropped_series_total{family=\"probe_success\"}"),
            "{m}"
        );
    }

    #[test]
    fn a_target_that_left_records_nothing() {
        let mut reg = Registry::default();
        let r = ScheduledResults::new(10, 64, &mut reg);
        let l = labels(1);
        l.alive.store(false, Relaxed);
        r.record(&l, outcome());
        assert!(r.is_empty());
    }
}
