//! Per-component counters with standard names, held as handles (never looked up per record).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Mutex;

/// Counters of one component. Names follow `weir_component_<name>_total`.
#[derive(Debug, Default)]
pub struct ComponentMetrics {
    /// Records that entered the component.
    pub received_records: AtomicU64,
    /// Records the component passed on (or wrote, for sinks).
    pub sent_records: AtomicU64,
    /// Records filtered out or dropped by `on_error: drop`.
    pub discarded_records: AtomicU64,
    /// Records that failed (after retries) at this component.
    pub errors: AtomicU64,
    /// Records sent to the dead-letter queue from this component.
    pub dead_lettered_records: AtomicU64,
    /// Retry attempts.
    pub retries: AtomicU64,
    /// Bytes written (sinks).
    pub sent_bytes: AtomicU64,
}

impl ComponentMetrics {
    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A snapshot row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsRow {
    /// Pipeline.
    pub pipeline: String,
    /// Component.
    pub component: String,
    /// `source`, `transform`, `sink` or `dlq`.
    pub kind: &'static str,
    /// Counter values in the order of [`COUNTER_NAMES`].
    pub values: [u64; 7],
}

/// Standard counter names, in snapshot order.
pub const COUNTER_NAMES: [&str; 7] = [
    "weir_component_received_records_total",
    "weir_component_sent_records_total",
    "weir_component_discarded_records_total",
    "weir_component_errors_total",
    "weir_component_dead_lettered_records_total",
    "weir_component_retries_total",
    "weir_component_sent_bytes_total",
];

#[derive(Debug)]
struct Entry {
    pipeline: String,
    component: String,
    kind: &'static str,
    metrics: Arc<ComponentMetrics>,
}

/// Every component's counters.
#[derive(Debug, Default, Clone)]
pub struct MetricsRegistry {
    inner: Arc<Mutex<Vec<Entry>>>,
}

impl MetricsRegistry {
    /// Registers a component and returns its handle (once, at build time).
    pub fn component(
        &self,
        pipeline: &str,
        component: &str,
        kind: &'static str,
    ) -> Arc<ComponentMetrics> {
        let m = Arc::new(ComponentMetrics::default());
        let entry = Entry {
            pipeline: pipeline.into(),
            component: component.into(),
            kind,
            metrics: m.clone(),
        };
        self.inner.lock().expect("metrics lock").push(entry);
        m
    }

    /// Current values.
    pub fn snapshot(&self) -> Vec<MetricsRow> {
        self.inner
            .lock()
            .expect("metrics lock")
            .iter()
            .map(
                |Entry {
                     pipeline,
                     component,
                     kind,
                     metrics: m,
                 }| MetricsRow {
                    pipeline: pipeline.clone(),
                    component: component.clone(),
                    kind,
                    values: [
                        &m.received_records,
                        &m.sent_records,
                        &m.discarded_records,
                        &m.errors,
                        &m.dead_lettered_records,
                        &m.retries,
                        &m.sent_bytes,
                    ]
                    .map(|a| a.load(Ordering::Relaxed)),
                },
            )
            .collect()
    }

    /// Prometheus text exposition of every counter.
    pub fn render_prometheus(&self) -> String {
        let rows = self.snapshot();
        let mut out = String::new();
        for (i, name) in COUNTER_NAMES.iter().enumerate() {
            out.push_str(&format!("# TYPE {name} counter\n"));
            for r in &rows {
                out.push_str(&format!(
                    "{name}{{pipeline=\"{}\",component=\"{}\",component_kind=\"{}\"}} {}\n",
                    r.pipeline, r.component, r.kind, r.values[i]
                ));
            }
        }
        out
    }
}
