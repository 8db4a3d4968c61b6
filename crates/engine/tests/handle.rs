//! A started pipeline's handle: phases as the engine observes them, pause and resume, a stop
//! that drains, failures classified, and pipelines that do not take each other down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use weir_core::config::{OnError, RetryOptions, StageOptions};
use weir_core::{BuildContext, HumanDuration, PluginConfig, Record, Sink, SinkError, Source};
use weir_engine::{FailureKind, Phase, Pipeline, PipelineHandle};

/// Counts what it writes; fails every write while `down` is set.
#[derive(Default)]
struct Counting {
    written: AtomicU64,
    down: AtomicBool,
    fatal: AtomicBool,
}

/// A sink over shared counters the test reads.
struct CountingSink(Arc<Counting>);

#[async_trait]
impl Sink for CountingSink {
    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        if self.0.fatal.load(Ordering::SeqCst) {
            return Err(SinkError::Fatal("HTTP 400: refused".into()));
        }
        if self.0.down.load(Ordering::SeqCst) {
            return Err(SinkError::retriable("HTTP 503: down"));
        }
        self.0
            .written
            .fetch_add(records.len() as u64, Ordering::SeqCst);
        Ok(())
    }
}

fn generator(rate: f64) -> Box<dyn Source> {
    weir_sources::generator::GeneratorSourceConfig {
        count: None,
        rate_per_sec: Some(rate),
        seed: Some(1),
        anomaly_rate: 0.0,
        max_batch: 50,
    }
    .build(&BuildContext::for_test("p", "g"))
    .unwrap()
}

struct Boxed(Box<dyn Source>);

#[async_trait]
impl Source for Boxed {
    async fn run(
        self: Box<Self>,
        cx: weir_core::SourceContext,
    ) -> Result<(), weir_core::SourceError> {
        self.0.run(cx).await
    }
}

fn start(name: &str, sink: Arc<Counting>, options: StageOptions) -> PipelineHandle {
    Pipeline::builder(name)
        .source("g", Boxed(generator(2000.0)))
        .sink_with("s", Arc::new(CountingSink(sink)), options)
        .build()
        .unwrap()
        .start()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_the_flow_resume_restarts_it_and_stop_drains() {
    let sink = Arc::new(Counting::default());
    let mut h = start("p", sink.clone(), StageOptions::default());
    until("running", || h.status().phase == Phase::Running).await;
    until("records flow", || sink.written.load(Ordering::SeqCst) > 100).await;
    h.pause();
    until("paused", || h.status().phase == Phase::Paused).await;
    // Whatever was in flight finishes; then nothing more arrives.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let at_pause = sink.written.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.written.load(Ordering::SeqCst),
        at_pause,
        "paused, yet records arrived"
    );
    h.resume();
    until("running again", || h.status().phase == Phase::Running).await;
    until("records flow again", || {
        sink.written.load(Ordering::SeqCst) > at_pause + 100
    })
    .await;
    h.stop();
    assert_eq!(h.wait().await, Ok(()));
    assert_eq!(h.status().phase, Phase::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_paused_still_drains_and_ends() {
    let sink = Arc::new(Counting::default());
    let mut h = start("p", sink.clone(), StageOptions::default());
    until("records flow", || sink.written.load(Ordering::SeqCst) > 0).await;
    h.pause();
    until("paused", || h.status().phase == Phase::Paused).await;
    h.stop();
    tokio::time::timeout(Duration::from_secs(10), h.wait())
        .await
        .expect("a paused pipeline stops")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_classified_and_one_pipeline_failing_leaves_the_other_running() {
    let options = StageOptions {
        retry: RetryOptions {
            max_attempts: 2,
            initial_backoff: HumanDuration::from_millis(10),
            max_backoff: HumanDuration::from_millis(10),
        },
        on_error: Some(OnError::Stop),
        ..Default::default()
    };
    let healthy = Arc::new(Counting::default());
    let mut other = start("other", healthy.clone(), StageOptions::default());
    // Retries that run out: may pass by itself.
    let down = Arc::new(Counting::default());
    down.down.store(true, Ordering::SeqCst);
    let mut a = start("a", down, options);
    let fa = a.wait().await.unwrap_err();
    assert_eq!(fa.kind, FailureKind::Transient, "{fa}");
    assert!(fa.reason.contains("HTTP 503"), "{fa}");
    assert_eq!(a.status().phase, Phase::Failed);
    // A record refused for good: needs an operator.
    let refused = Arc::new(Counting::default());
    refused.fatal.store(true, Ordering::SeqCst);
    let mut b = start("b", refused, options);
    let fb = b.wait().await.unwrap_err();
    assert_eq!(fb.kind, FailureKind::Fatal, "{fb}");
    // The other pipeline never noticed.
    let before = healthy.written.load(Ordering::SeqCst);
    until("the other keeps flowing", || {
        healthy.written.load(Ordering::SeqCst) > before + 100
    })
    .await;
    assert_eq!(other.status().phase, Phase::Running);
    other.stop();
    other.wait().await.unwrap();
}
