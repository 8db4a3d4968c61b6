//! Metrics with labels, as handles registered once and updated without any lookup (per batch,
//! never a map per record), rendered in the Prometheus text exposition format; and each
//! component's health (what it is struggling with right now), so status is derived from what
//! the components observe.
//!
//! One [`Telemetry`] registry serves a process. Registering the same name with the same labels
//! again returns the same handle, so a pipeline replaced by a new generation keeps counting on
//! the same series, and the engine and a plugin naming the same component share it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Label names and values of one series, in registration order.
pub type Labels = Vec<(&'static str, String)>;

/// A monotonically increasing count.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `n`.
    pub fn inc(&self, n: u64) {
        if n > 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Raises the count to `total` when something else keeps the total (never lowers it).
    pub fn advance_to(&self, total: u64) {
        self.0.fetch_max(total, Ordering::Relaxed);
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct HistogramState {
    bounds: Vec<f64>,
    /// One count per bound (not cumulative), then the count above the last bound.
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

/// A distribution of durations in seconds, in fixed buckets.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramState>);

/// Buckets for request latencies, in seconds (1 ms to 30 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Histogram(Arc::new(HistogramState {
            bounds: bounds.to_vec(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }))
    }

    /// Records one duration.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .0
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.0.bounds.len());
        self.0.counts[i].fetch_add(1, Ordering::Relaxed);
        self.0.sum_nanos.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

#[derive(Debug, Clone)]
enum Metric {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: &'static str,
    series: Vec<(Labels, Metric)>,
}

/// What a component is struggling with right now: a sink whose writes are being retried, a
/// source that cannot reach its brokers. Cleared when it recovers.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<Option<(String, SystemTime)>>>);

impl Health {
    /// Marks the component degraded (the first reason and its time are kept until it clears).
    pub fn degraded(&self, reason: impl Into<String>) {
        let mut h = self.0.lock().expect("health lock");
        match &mut *h {
            Some((r, _)) => *r = reason.into(),
            None => *h = Some((reason.into(), SystemTime::now())),
        }
    }
    /// The component works again.
    pub fn ok(&self) {
        let mut h = self.0.lock().expect("health lock");
        if h.is_some() {
            *h = None;
        }
    }
    /// The current problem and since when, if any.
    pub fn current(&self) -> Option<(String, SystemTime)> {
        self.0.lock().expect("health lock").clone()
    }
}

#[derive(Debug, Default)]
struct Registry {
    families: BTreeMap<&'static str, Family>,
    health: BTreeMap<(String, String), Health>,
}

/// A process's metrics and component health.
#[derive(Debug, Clone, Default)]
pub struct Telemetry(Arc<Mutex<Registry>>);

impl Telemetry {
    fn metric(
        &self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: Labels,
        make: impl FnOnce() -> Metric,
    ) -> Metric {
        let mut r = self.0.lock().expect("telemetry lock");
        let family = r.families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            series: Vec::new(),
        });
        if let Some((_, m)) = family.series.iter().find(|(l, _)| *l == labels) {
            return m.clone();
        }
        let m = make();
        family.series.push((labels, m.clone()));
        m
    }

    /// The counter `name{labels}` (registered on first use).
    pub fn counter(&self, name: &'static str, help: &'static str, labels: Labels) -> Counter {
        match self.metric(name, help, "counter", labels, || {
            Metric::Counter(Counter::default())
        }) {
            Metric::Counter(c) => c,
            _ => panic!("metric {name} is registered with another type"),
        }
    }

    /// The gauge `name{labels}` (registered on first use).
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: Labels) -> Gauge {
        match self.metric(name, help, "gauge", labels, || {
            Metric::Gauge(Gauge::default())
        }) {
            Metric::Gauge(g) => g,
            _ => panic!("metric {name} is registered with another type"),
        }
    }

    /// The histogram `name{labels}` with `buckets` in seconds (registered on first use).
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: Labels,
        buckets: &[f64],
    ) -> Histogram {
        match self.metric(name, help, "histogram", labels, || {
            Metric::Histogram(Histogram::new(buckets))
        }) {
            Metric::Histogram(h) => h,
            _ => panic!("metric {name} is registered with another type"),
        }
    }

    /// The health of one component of one pipeline (shared by everyone who asks).
    pub fn health(&self, pipeline: &str, component: &str) -> Health {
        self.0
            .lock()
            .expect("telemetry lock")
            .health
            .entry((pipeline.to_owned(), component.to_owned()))
            .or_default()
            .clone()
    }

    /// The health of every component of a pipeline, by component name.
    pub fn pipeline_health(&self, pipeline: &str) -> Vec<(String, Health)> {
        self.0
            .lock()
            .expect("telemetry lock")
            .health
            .iter()
            .filter(|((p, _), _)| p == pipeline)
            .map(|((_, c), h)| (c.clone(), h.clone()))
            .collect()
    }

    /// Forgets every series and health of a pipeline (it was deleted).
    pub fn remove_pipeline(&self, pipeline: &str) {
        let mut r = self.0.lock().expect("telemetry lock");
        for f in r.families.values_mut() {
            f.series
                .retain(|(l, _)| !l.iter().any(|(k, v)| *k == "pipeline" && v == pipeline));
        }
        r.health.retain(|(p, _), _| p != pipeline);
    }

    /// The value of a counter or gauge series, if registered (tests, status).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<i64> {
        let r = self.0.lock().expect("telemetry lock");
        let f = r.families.get(name)?;
        f.series.iter().find_map(|(l, m)| {
            let same = l.len() == labels.len()
                && l.iter()
                    .zip(labels)
                    .all(|((k, v), (k2, v2))| k == k2 && v == v2);
            match (same, m) {
                (true, Metric::Counter(c)) => Some(c.get() as i64),
                (true, Metric::Gauge(g)) => Some(g.get()),
                _ => None,
            }
        })
    }

    /// Every series in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let r = self.0.lock().expect("telemetry lock");
        let mut out = String::with_capacity(4096);
        for (name, f) in &r.families {
            if f.series.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {}", f.kind);
            for (labels, m) in &f.series {
                match m {
                    Metric::Counter(c) => sample(&mut out, name, "", labels, None, c.get() as f64),
                    Metric::Gauge(g) => sample(&mut out, name, "", labels, None, g.get() as f64),
                    Metric::Histogram(h) => {
                        let mut cumulative = 0u64;
                        for (i, b) in h.0.bounds.iter().enumerate() {
                            cumulative += h.0.counts[i].load(Ordering::Relaxed);
                            sample(
                                &mut out,
                                name,
                                "_bucket",
                                labels,
                                Some(&format_float(*b)),
                                cumulative as f64,
                            );
                        }
                        cumulative += h.0.counts[h.0.bounds.len()].load(Ordering::Relaxed);
                        sample(
                            &mut out,
                            name,
                            "_bucket",
                            labels,
                            Some("+Inf"),
                            cumulative as f64,
                        );
                        let sum = h.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                        sample(&mut out, name, "_sum", labels, None, sum);
                        sample(&mut out, name, "_count", labels, None, cumulative as f64);
                    }
                }
            }
        }
        out
    }
}

fn format_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn sample(out: &mut String, name: &str, suffix: &str, labels: &Labels, le: Option<&str>, v: f64) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (k, val) in labels {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape(val, out);
            out.push('"');
        }
        if let Some(le) = le {
            if !first {
                out.push(',');
            }
            out.push_str("le=\"");
            out.push_str(le);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", format_float(v).trim_end_matches(".0"));
}

/// One component's view of the registry: its labels (`pipeline`, `component`, `component_kind`,
/// `component_type`) and its health, for the engine's standard counters and for metrics a
/// plugin adds (request latency, consumer lag).
#[derive(Debug, Clone)]
pub struct ComponentTelemetry {
    telemetry: Telemetry,
    labels: Labels,
    /// What the component is struggling with now.
    pub health: Health,
}

impl ComponentTelemetry {
    /// The telemetry of a component.
    pub fn new(
        telemetry: &Telemetry,
        pipeline: &str,
        component: &str,
        kind: &str,
        type_name: &str,
    ) -> Self {
        ComponentTelemetry {
            health: telemetry.health(pipeline, component),
            telemetry: telemetry.clone(),
            labels: vec![
                ("pipeline", pipeline.to_owned()),
                ("component", component.to_owned()),
                ("component_kind", kind.to_owned()),
                ("component_type", type_name.to_owned()),
            ],
        }
    }

    /// A component not registered anywhere (tests, embedders who do not scrape).
    pub fn detached() -> Self {
        ComponentTelemetry::new(&Telemetry::default(), "", "", "", "")
    }

    fn with(&self, extra: &[(&'static str, &str)]) -> Labels {
        let mut l = self.labels.clone();
        l.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        l
    }

    /// The pipeline's name.
    pub fn pipeline(&self) -> &str {
        &self.labels[0].1
    }

    /// A counter of this component, with extra labels.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        extra: &[(&'static str, &str)],
    ) -> Counter {
        self.telemetry.counter(name, help, self.with(extra))
    }

    /// A gauge of this component, with extra labels.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        extra: &[(&'static str, &str)],
    ) -> Gauge {
        self.telemetry.gauge(name, help, self.with(extra))
    }

    /// A gauge labelled only by pipeline and `extra` (consumer lag is the pipeline's, per
    /// topic-partition).
    pub fn pipeline_gauge(
        &self,
        name: &'static str,
        help: &'static str,
        extra: &[(&'static str, &str)],
    ) -> Gauge {
        let mut l: Labels = vec![("pipeline", self.pipeline().to_owned())];
        l.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        self.telemetry.gauge(name, help, l)
    }

    /// A latency histogram of this component.
    pub fn histogram(&self, name: &'static str, help: &'static str, buckets: &[f64]) -> Histogram {
        self.telemetry
            .histogram(name, help, self.labels.clone(), buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_same_series_is_one_handle_and_renders_in_the_exposition_format() {
        let t = Telemetry::default();
        let a = t.counter("weir_x_total", "Xs.", vec![("pipeline", "p\"1".into())]);
        let b = t.counter("weir_x_total", "Xs.", vec![("pipeline", "p\"1".into())]);
        a.inc(2);
        b.inc(3);
        assert_eq!(a.get(), 5);
        let h = t.histogram("weir_d_seconds", "Ds.", vec![], &[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(5));
        let text = t.render();
        assert!(
            text.contains("# TYPE weir_x_total counter\nweir_x_total{pipeline=\"p\\\"1\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("weir_d_seconds_bucket{le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("weir_d_seconds_bucket{le=\"1.0\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("weir_d_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("weir_d_seconds_count 3\n"), "{text}");
        assert!(text.contains("weir_d_seconds_sum 5.55\n"), "{text}");
        t.remove_pipeline("p\"1");
        assert!(!t.render().contains("weir_x_total"));
    }

    #[test]
    fn health_keeps_the_first_time_until_it_clears() {
        let t = Telemetry::default();
        let h = t.health("p", "s");
        h.degraded("HTTP 503");
        let since = h.current().unwrap().1;
        t.health("p", "s").degraded("HTTP 502");
        assert_eq!(h.current().unwrap(), ("HTTP 502".to_owned(), since));
        h.ok();
        assert!(t.health("p", "s").current().is_none());
    }
}
