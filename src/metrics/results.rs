//! The latest outcome of every scheduled target, exposed on `/metrics` with its labels, under a
//! series cap per metric family (SPEC §7): over the cap, new series are dropped and counted in
//! `siembox_cardinality_dropped_series_total{family}`, with one warning per family.
//!
//! A result is stored rendered, not as its `ProbeOutcome`: each admitted sample becomes the tail of
//! its exposition line (`,phase="connect"} 0.0012` after the target's own labels), so a target
//! costs about the size of its text (a tenth of the outcome with its log lines), and encoding
//! `/metrics` is copying. The metric name, the target's labels and the format's counter suffix
//! are added when encoding.

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

/// Name, help and type of a metric family, stored once for all targets.
#[derive(Clone, Copy)]
struct FamilyMeta {
    name: &'static str,
    help: &'static str,
    kind: MetricKind,
}

/// One family's admitted samples within a target's rendered text.
struct Span {
    /// Index into `Inner::families`.
    family: u16,
    /// Samples admitted (each one line of `Entry::lines`).
    admitted: u32,
    /// End of this family's lines in `Entry::lines`; the previous span's end is the start.
    end: u32,
}

struct Entry {
    labels: Arc<SeriesLabels>,
    /// Line tails of every admitted sample, family after family (see the module comment).
    lines: String,
    spans: Vec<Span>,
}

impl Entry {
    fn admitted(&self, family: u16) -> usize {
        self.spans
            .iter()
            .find(|s| s.family == family)
            .map_or(0, |s| s.admitted as usize)
    }

    /// Each span with its lines.
    fn spans(&self) -> impl Iterator<Item = (&Span, &str)> {
        let mut start = 0;
        self.spans.iter().map(move |s| {
            let text = &self.lines[start..s.end as usize];
            start = s.end as usize;
            (s, text)
        })
    }
}

#[derive(Default)]
struct Inner {
    /// Shared so that `encode` can copy the pointers and release the lock before the long part.
    entries: HashMap<String, Arc<Entry>>,
    /// Every family seen, and its index by name.
    families: Vec<FamilyMeta>,
    family_index: HashMap<&'static str, u16>,
    /// Series currently exposed per family (same index as `families`).
    series: Vec<usize>,
    max_series: usize,
    max_label_len: usize,
}

impl Inner {
    /// The index of `fam`, registering it on first sight. `None` past 65 535 distinct families
    /// (never reached: probers have a fixed set of a few dozen).
    fn family(&mut self, fam: &Family) -> Option<u16> {
        if let Some(i) = self.family_index.get(fam.name) {
            return Some(*i);
        }
        let i = u16::try_from(self.families.len()).ok()?;
        self.families.push(FamilyMeta {
            name: fam.name,
            help: fam.help,
            kind: fam.kind,
        });
        self.series.push(0);
        self.family_index.insert(fam.name, i);
        Some(i)
    }

    fn release(&mut self, entry: &Entry) {
        for s in &entry.spans {
            let c = &mut self.series[s.family as usize];
            *c = c.saturating_sub(s.admitted as usize);
        }
    }
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
            // The old result gives its series back first; those it had keep their place below.
            let old = inner.entries.remove(&labels.key);
            if let Some(old) = &old {
                inner.release(old);
            }
            let (max_series, max_len) = (inner.max_series, inner.max_label_len);
            let mut lines = String::with_capacity(old.as_ref().map_or(512, |o| o.lines.len()));
            let mut spans = Vec::with_capacity(outcome.families.len());
            for fam in &outcome.families {
                // Our own families (e.g. an audit's siembox_vps_audit_*) are exposed by their
                // collectors already; repeating them here would duplicate the family on /metrics.
                if fam.name.starts_with("siembox_") || fam.samples.is_empty() {
                    continue;
                }
                let Some(family) = inner.family(fam) else {
                    continue;
                };
                let had = old.as_ref().map_or(0, |e| e.admitted(family));
                let want = fam.samples.len();
                let count = &mut inner.series[family as usize];
                let take = want.min(had.max(max_series.saturating_sub(*count)));
                *count += take;
                if take < want {
                    drops.push((fam.name, want - take));
                }
                if take == 0 {
                    continue;
                }
                for s in &fam.samples[..take] {
                    for (k, v) in &s.labels {
                        lines.push(',');
                        lines.push_str(k);
                        lines.push_str("=\"");
                        escape_label_value(&mut lines, &cap_value(v, max_len));
                        lines.push('"');
                    }
                    lines.push_str("} ");
                    write_value(&mut lines, s.value);
                    lines.push('\n');
                }
                spans.push(Span {
                    family,
                    admitted: take as u32,
                    end: u32::try_from(lines.len()).unwrap_or(u32::MAX),
                });
            }
            if !spans.is_empty() {
                lines.shrink_to_fit();
                spans.shrink_to_fit();
                let entry = Arc::new(Entry {
                    labels: labels.clone(),
                    lines,
                    spans,
                });
                inner.entries.insert(labels.key.clone(), entry);
            }
            self.series_gauge
                .set(inner.series.iter().sum::<usize>() as i64);
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
                inner.release(&e);
            }
        }
        self.series_gauge
            .set(inner.series.iter().sum::<usize>() as i64);
    }

    /// Targets with a stored result.
    pub fn len(&self) -> usize {
        self.inner.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a target (by key) has series on `/metrics`.
    pub fn contains(&self, key: &str) -> bool {
        self.inner.read().entries.contains_key(key)
    }

    /// Appends every family of scheduled results, HELP and TYPE once per family, in `format`
    /// (without OpenMetrics' closing `# EOF`).
    pub fn encode(&self, out: &mut String, format: Format) {
        self.encode_split_from(out, format, PARALLEL_MIN_BYTES);
    }

    /// `encode`, on two threads when the lines take `parallel_min_bytes` or more.
    fn encode_split_from(&self, out: &mut String, format: Format, parallel_min_bytes: usize) {
        // A snapshot, so that `record` (on a runtime worker) never waits out a whole encode.
        let (entries, families, series) = {
            let inner = self.inner.read();
            let entries: Vec<Arc<Entry>> = inner.entries.values().cloned().collect();
            (entries, inner.families.clone(), inner.series.clone())
        };
        // Each family's share of every target: (target labels, line tails), and the bytes its
        // lines will take, so each buffer grows once.
        let mut groups: Vec<FamilyLines> = families
            .iter()
            .zip(&series)
            .map(|(meta, n)| FamilyLines {
                meta: *meta,
                members: Vec::with_capacity((*n).min(entries.len())),
                bytes: 128 + meta.help.len(),
            })
            .collect();
        for e in &entries {
            let rendered = e.labels.rendered.as_str();
            for (span, text) in e.spans() {
                let group = &mut groups[span.family as usize];
                group.bytes += text.len()
                    + span.admitted as usize * (group.meta.name.len() + 7 + rendered.len());
                group.members.push((rendered, text));
            }
        }
        groups.retain(|g| !g.members.is_empty());
        groups.sort_unstable_by_key(|g| g.meta.name);
        let total: usize = groups.iter().map(|g| g.bytes).sum();
        if total < parallel_min_bytes {
            reserve(out, total);
            groups.iter().for_each(|g| g.encode(out, format));
            return;
        }
        // Two halves by size, the second encoded on its own thread, then appended: copying
        // half the body costs far less than encoding it (SPEC §11: 220k series in < 20 ms).
        let mut first_bytes = 0;
        let split = groups
            .iter()
            .position(|g| {
                first_bytes += g.bytes;
                first_bytes >= total / 2
            })
            .map_or(groups.len(), |i| i + 1);
        let (first, second) = groups.split_at(split);
        let second_bytes = second.iter().map(|g| g.bytes).sum();
        std::thread::scope(|scope| {
            let tail = scope.spawn(|| {
                let mut tail = String::new();
                reserve(&mut tail, second_bytes);
                second.iter().for_each(|g| g.encode(&mut tail, format));
                tail
            });
            reserve(out, total);
            first.iter().for_each(|g| g.encode(out, format));
            match tail.join() {
                Ok(tail) => out.push_str(&tail),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        });
    }
}

/// Bodies at least this large are encoded on two threads.
const PARALLEL_MIN_BYTES: usize = 2 << 20;

/// Grows `out` by `additional` bytes at once, on huge pages when that large: a fresh 18 MB
/// buffer otherwise takes 4 500 page faults per scrape, a third of the encoding time.
fn reserve(out: &mut String, additional: usize) {
    out.reserve(additional);
    crate::alloc::advise_huge_pages(out);
}

/// One family's lines from every target, ready to encode.
struct FamilyLines<'a> {
    meta: FamilyMeta,
    members: Vec<(&'a str, &'a str)>,
    /// About the bytes `encode` writes (a slight overestimate).
    bytes: usize,
}

impl FamilyLines<'_> {
    fn encode(&self, out: &mut String, format: Format) {
        let meta = &self.meta;
        let kind = match meta.kind {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter => "counter",
        };
        let _ = writeln!(out, "# HELP {} {}", meta.name, meta.help.replace('\n', " "));
        let _ = writeln!(out, "# TYPE {} {}", meta.name, kind);
        let suffix = if meta.kind == MetricKind::Counter
            && format == Format::OpenMetrics
            && !meta.name.ends_with("_total")
        {
            "_total"
        } else {
            ""
        };
        for (rendered, text) in &self.members {
            for tail in text.split_inclusive('\n') {
                out.push_str(meta.name);
                out.push_str(suffix);
                out.push('{');
                out.push_str(rendered);
                // A tail starts with its own labels' comma; without target labels, no comma.
                out.push_str(if rendered.is_empty() {
                    tail.strip_prefix(',').unwrap_or(tail)
                } else {
                    tail
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::recorder::{FailureReason, Sample};

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
            .filter(|k| r.contains(k))
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

    fn family(name: &'static str, kind: MetricKind, samples: &[(&str, f64)]) -> Family {
        Family {
            name,
            help: "help\ntext",
            kind,
            samples: samples
                .iter()
                .map(|(phase, value)| Sample {
                    labels: if phase.is_empty() {
                        Vec::new()
                    } else {
                        vec![("phase", phase.to_string())]
                    },
                    value: *value,
                })
                .collect(),
        }
    }

    fn with_families(families: Vec<Family>) -> Arc<ProbeOutcome> {
        let mut o = crate::probe::refused(FailureReason::Other, "x".into());
        o.families = families;
        Arc::new(o)
    }

    #[test]
    fn lines_carry_target_and_sample_labels_in_both_formats() {
        let mut reg = Registry::default();
        let r = ScheduledResults::new(100, 8, &mut reg);
        let outcome = with_families(vec![
            family(
                "probe_http_duration_seconds",
                MetricKind::Gauge,
                &[("connect", 0.25), ("a-phase-longer-than-8", 1.0)],
            ),
            family("probe_success", MetricKind::Gauge, &[("", 1.0)]),
            family("probe_things", MetricKind::Counter, &[("", 3.0)]),
        ]);
        r.record(&labels(1), outcome);
        let mut text = String::new();
        r.encode(&mut text, Format::Text);
        let expected = [
            "# HELP probe_http_duration_seconds help text",
            "# TYPE probe_http_duration_seconds gauge",
            "probe_http_duration_seconds{module=\"m\",target=\"t1\",phase=\"connect\"} 0.25",
            "probe_http_duration_seconds{module=\"m\",target=\"t1\",phase=\"a-phase…\"} 1",
            "# HELP probe_success help text",
            "# TYPE probe_success gauge",
            "probe_success{module=\"m\",target=\"t1\"} 1",
            "# HELP probe_things help text",
            "# TYPE probe_things counter",
            "probe_things{module=\"m\",target=\"t1\"} 3",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");
        let mut om = String::new();
        r.encode(&mut om, Format::OpenMetrics);
        assert!(
            om.contains("\nprobe_things_total{module=\"m\",target=\"t1\"} 3\n"),
            "{om}"
        );
    }

    #[test]
    fn a_family_missing_from_the_new_result_frees_its_series() {
        let mut reg = Registry::default();
        let r = ScheduledResults::new(1, 64, &mut reg);
        let both = || {
            with_families(vec![
                family("probe_a", MetricKind::Gauge, &[("", 1.0)]),
                family("probe_b", MetricKind::Gauge, &[("", 2.0)]),
            ])
        };
        r.record(&labels(1), both());
        r.record(
            &labels(1),
            with_families(vec![family("probe_a", MetricKind::Gauge, &[("", 1.0)])]),
        );
        // Target 2 finds probe_a full (target 1 keeps it) and probe_b free again.
        r.record(&labels(2), both());
        let mut out = String::new();
        r.encode(&mut out, Format::Text);
        assert!(
            out.contains("probe_a{module=\"m\",target=\"t1\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("probe_b{module=\"m\",target=\"t2\"} 2\n"),
            "{out}"
        );
        assert!(
            !out.contains("probe_a{module=\"m\",target=\"t2\"}"),
            "{out}"
        );
        assert!(
            !out.contains("probe_b{module=\"m\",target=\"t1\"}"),
            "{out}"
        );
    }

    #[test]
    fn two_threads_write_exactly_what_one_writes() {
        let mut reg = Registry::default();
        let r = ScheduledResults::new(usize::MAX, 64, &mut reg);
        let outcome = with_families(vec![
            family(
                "probe_b",
                MetricKind::Gauge,
                &[("connect", 0.5), ("tls", 2.0)],
            ),
            family("probe_a", MetricKind::Counter, &[("", 1.0)]),
            family("probe_c", MetricKind::Gauge, &[("", 3.0)]),
            family("probe_d", MetricKind::Gauge, &[("x", 4.0)]),
        ]);
        for i in 0..50 {
            r.record(&labels(i), outcome.clone());
        }
        for format in [Format::Text, Format::OpenMetrics] {
            let mut one = String::from("# before\n");
            r.encode_split_from(&mut one, format, usize::MAX);
            let mut two = String::from("# before\n");
            r.encode_split_from(&mut two, format, 0);
            assert_eq!(one, two);
            assert_eq!(one.matches("# TYPE ").count(), 4, "{one}");
        }
        let empty = ScheduledResults::new(10, 64, &mut Registry::default());
        let mut out = String::new();
        empty.encode_split_from(&mut out, Format::Text, 0);
        assert_eq!(out, "");
    }
}
