//! Each component's standard counters, with Vector's names under a `weir_` prefix, held as
//! handles taken once at build time and updated per batch (never looked up per record).

use std::sync::{Arc, Mutex};

use weir_core::telemetry::{ComponentTelemetry, Counter, Health, Telemetry};

/// The standard counters and health of one component.
#[derive(Debug)]
pub struct ComponentMetrics {
    /// Records that entered the component.
    pub received_events: Counter,
    /// Their approximate bytes (value, key, headers).
    pub received_bytes: Counter,
    /// Records the component passed on (or wrote, for sinks).
    pub sent_events: Counter,
    /// Their approximate bytes.
    pub sent_bytes: Counter,
    /// Records filtered out (intentional).
    pub discarded_filtered: Counter,
    /// Records dropped by `on_error: drop` (not intentional).
    pub discarded_dropped: Counter,
    /// Records that failed for good (`error_type="fatal"`).
    pub errors_fatal: Counter,
    /// Records whose retries ran out (`error_type="retries_exhausted"`).
    pub errors_exhausted: Counter,
    /// Records sent to the dead-letter queue from this component.
    pub dead_letters: Counter,
    /// Retry attempts.
    pub retries: Counter,
    /// What the component struggles with now (a sink being retried).
    pub health: Health,
}

impl ComponentMetrics {
    /// The counters of a component (shared with anything else registered under its labels).
    pub fn new(t: &ComponentTelemetry, stage: &str) -> Self {
        let s = [("stage", stage)];
        ComponentMetrics {
            received_events: t.counter(
                "weir_component_received_events_total",
                "Records a component received.",
                &[],
            ),
            received_bytes: t.counter(
                "weir_component_received_bytes_total",
                "Approximate bytes (value, key, headers) a component received.",
                &[],
            ),
            sent_events: t.counter(
                "weir_component_sent_events_total",
                "Records a component passed on, or a sink wrote.",
                &[],
            ),
            sent_bytes: t.counter(
                "weir_component_sent_bytes_total",
                "Approximate bytes a component passed on or wrote.",
                &[],
            ),
            discarded_filtered: t.counter(
                "weir_component_discarded_events_total",
                "Records a component discarded: filtered out (intentional) or dropped by on_error: drop.",
                &[("intentional", "true")],
            ),
            discarded_dropped: t.counter(
                "weir_component_discarded_events_total",
                "Records a component discarded: filtered out (intentional) or dropped by on_error: drop.",
                &[("intentional", "false")],
            ),
            errors_fatal: t.counter(
                "weir_component_errors_total",
                "Records that failed at a component, by stage and error type.",
                &[s[0], ("error_type", "fatal")],
            ),
            errors_exhausted: t.counter(
                "weir_component_errors_total",
                "Records that failed at a component, by stage and error type.",
                &[s[0], ("error_type", "retries_exhausted")],
            ),
            dead_letters: t.counter(
                "weir_dead_letters_total",
                "Records a component sent to the dead-letter queue.",
                &[],
            ),
            retries: t.counter(
                "weir_retries_total",
                "Retries of failed writes or transform calls.",
                &[],
            ),
            health: t.health.clone(),
        }
    }

    /// Counts `n` records that failed with a failure of class `class` (`weir.sink.Fatal`, …).
    pub fn failed(&self, class: &str, n: u64) {
        if class.ends_with("RetriesExhausted") {
            self.errors_exhausted.inc(n);
        } else {
            self.errors_fatal.inc(n);
        }
    }

    /// Every record that failed here.
    pub fn errors(&self) -> u64 {
        self.errors_fatal.get() + self.errors_exhausted.get()
    }
}

/// Vector's stage label for a component kind.
fn stage_of(kind: &str) -> &'static str {
    match kind {
        "source" => "receiving",
        "transform" => "processing",
        _ => "sending",
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
    /// Records received.
    pub received: u64,
    /// Records passed on or written.
    pub sent: u64,
    /// Records filtered out or dropped.
    pub discarded: u64,
    /// Records that failed here.
    pub errors: u64,
    /// Records dead-lettered from here.
    pub dead_lettered: u64,
    /// Retries.
    pub retries: u64,
}

#[derive(Debug)]
struct Entry {
    pipeline: String,
    component: String,
    kind: &'static str,
    metrics: Arc<ComponentMetrics>,
}

/// Every component's counters, on a process-wide [`Telemetry`].
#[derive(Debug, Default, Clone)]
pub struct MetricsRegistry {
    telemetry: Telemetry,
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl MetricsRegistry {
    /// A registry on an existing telemetry (the process's).
    pub fn on(telemetry: Telemetry) -> Self {
        MetricsRegistry {
            telemetry,
            entries: Arc::default(),
        }
    }

    /// The telemetry it registers in.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Registers a component and returns its handle (once, at build time). Registering the
    /// same component again (a new generation of its pipeline) returns the same counters.
    pub fn component(
        &self,
        pipeline: &str,
        component: &str,
        kind: &'static str,
        type_name: &str,
    ) -> Arc<ComponentMetrics> {
        let t = ComponentTelemetry::new(&self.telemetry, pipeline, component, kind, type_name);
        let m = Arc::new(ComponentMetrics::new(&t, stage_of(kind)));
        let mut entries = self.entries.lock().expect("metrics lock");
        entries.retain(|e| !(e.pipeline == pipeline && e.component == component));
        entries.push(Entry {
            pipeline: pipeline.into(),
            component: component.into(),
            kind,
            metrics: m.clone(),
        });
        m
    }

    /// Forgets a pipeline's components (it was deleted).
    pub fn remove_pipeline(&self, pipeline: &str) {
        self.entries
            .lock()
            .expect("metrics lock")
            .retain(|e| e.pipeline != pipeline);
        self.telemetry.remove_pipeline(pipeline);
    }

    /// Current values, in registration order.
    pub fn snapshot(&self) -> Vec<MetricsRow> {
        self.entries
            .lock()
            .expect("metrics lock")
            .iter()
            .map(|e| {
                let m = &e.metrics;
                MetricsRow {
                    pipeline: e.pipeline.clone(),
                    component: e.component.clone(),
                    kind: e.kind,
                    received: m.received_events.get(),
                    sent: m.sent_events.get(),
                    discarded: m.discarded_filtered.get() + m.discarded_dropped.get(),
                    errors: m.errors(),
                    dead_lettered: m.dead_letters.get(),
                    retries: m.retries.get(),
                }
            })
            .collect()
    }

    /// Prometheus text exposition of everything registered in the telemetry.
    pub fn render_prometheus(&self) -> String {
        self.telemetry.render()
    }
}
