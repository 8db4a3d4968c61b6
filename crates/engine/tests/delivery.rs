//! The runner's delivery guarantees, observed from the source's side: a record is reported done
//! only after every sink durably wrote it, it was filtered out, or it was dead-lettered.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use weir_core::config::{
    BatchOptions, ErrorBudget, OnError, PipelineSettings, RetryOptions, StageOptions,
};
use weir_core::{
    AckStatus, Flow, HumanDuration, Record, RecordOutcome, Sink, SinkError, Source, SourceContext,
    SourceError, Transform, TransformError,
};
use weir_engine::Pipeline;
use weir_engine::dead_letter::headers;

/// Sends the given records in batches, closes its output, then waits for every batch's outcome.
struct VecSource {
    batches: Vec<Vec<Record>>,
    statuses: Arc<Mutex<Vec<AckStatus>>>,
    in_flight_max: Arc<AtomicUsize>,
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::from_bytes(json!({"seq": i, "poison": i % 10 == 7}).to_string()))
        .collect()
}

impl VecSource {
    fn new(n: usize, batch: usize) -> (Self, Arc<Mutex<Vec<AckStatus>>>) {
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let mut all = records(n);
        let mut batches = Vec::new();
        while !all.is_empty() {
            let rest = all.split_off(batch.min(all.len()));
            batches.push(std::mem::replace(&mut all, rest));
        }
        (
            VecSource {
                batches,
                statuses: statuses.clone(),
                in_flight_max: Arc::new(AtomicUsize::new(0)),
            },
            statuses,
        )
    }
}

#[async_trait]
impl Source for VecSource {
    async fn run(self: Box<Self>, mut cx: SourceContext) -> Result<(), SourceError> {
        // Outcomes are collected by a detached task, so they are observed even when the runner
        // aborts this source at the shutdown deadline.
        let mut acks = cx.take_acks().expect("acks");
        let (sent_tx, mut sent_rx) = tokio::sync::watch::channel(usize::MAX);
        let done = Arc::new(Notify::new());
        let (statuses, done2, in_flight_max) = (
            self.statuses.clone(),
            done.clone(),
            self.in_flight_max.clone(),
        );
        let sent_records = Arc::new(AtomicUsize::new(0));
        let sent2 = sent_records.clone();
        tokio::spawn(async move {
            let mut reports = std::collections::BTreeMap::new();
            let mut done_records = 0;
            loop {
                let expected = *sent_rx.borrow_and_update();
                if reports.len() >= expected {
                    break;
                }
                tokio::select! {
                    a = acks.recv() => match a {
                        Some(a) => {
                            done_records += a.statuses.len();
                            in_flight_max.fetch_max(sent2.load(Ordering::SeqCst).saturating_sub(done_records), Ordering::Relaxed);
                            reports.insert(a.token, a.statuses);
                        }
                        None => break,
                    },
                    _ = sent_rx.changed() => {}
                }
                statuses
                    .lock()
                    .unwrap()
                    .clone_from(&reports.values().flatten().copied().collect());
            }
            statuses
                .lock()
                .unwrap()
                .clone_from(&reports.values().flatten().copied().collect());
            done2.notify_one();
        });
        let mut sent_batches = 0usize;
        for b in self.batches {
            let n = b.len();
            if cx.shutdown.is_cancelled() {
                break;
            }
            sent_records.fetch_add(n, Ordering::SeqCst);
            tokio::select! {
                r = cx.send(b) => { r.map_err(|_| SourceError::Closed)?; }
                _ = cx.shutdown.cancelled() => { sent_records.fetch_sub(n, Ordering::SeqCst); break }
            }
            sent_batches += 1;
        }
        cx.close_output();
        let _ = sent_tx.send(sent_batches);
        done.notified().await;
        Ok(())
    }
}

/// Stores what it is given; fails as configured.
#[derive(Default)]
struct TestSink {
    stored: Mutex<Vec<Record>>,
    batch_sizes: Mutex<Vec<usize>>,
    fail_first: AtomicUsize,
    fatal_poison: bool,
    fail_all_fatal: bool,
    delay: Option<Duration>,
    gate: Option<Arc<Notify>>,
    concurrent: AtomicUsize,
    max_concurrent: AtomicUsize,
    /// Sleep a random 0–3 ms per write, so concurrent writes finish out of order.
    random_delay: bool,
    /// The first record's `seq` of each write, in the order the writes started.
    started: Mutex<Vec<u64>>,
    /// Panic in `write`.
    panics: bool,
}

#[async_trait]
impl Sink for TestSink {
    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let now = self.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_concurrent.fetch_max(now, Ordering::SeqCst);
        if let Some(first) = records.first() {
            let seq = first.value.decoded().unwrap()["seq"].as_u64().unwrap();
            self.started.lock().unwrap().push(seq);
        }
        assert!(!self.panics, "the test sink panics as asked");
        if self.random_delay {
            tokio::time::sleep(Duration::from_micros(fastrand::u64(0..3000))).await;
        }
        if let Some(g) = &self.gate {
            g.notified().await;
        }
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        self.concurrent.fetch_sub(1, Ordering::SeqCst);
        if self.fail_all_fatal {
            return Err(SinkError::Fatal("target rejects everything".into()));
        }
        if self.fail_first.load(Ordering::SeqCst) > 0 {
            self.fail_first.fetch_sub(1, Ordering::SeqCst);
            return Err(SinkError::retriable("temporarily unavailable"));
        }
        self.batch_sizes.lock().unwrap().push(records.len());
        if self.fatal_poison {
            let outcomes: Vec<RecordOutcome> = records
                .iter()
                .map(|r| {
                    if r.value.decoded().unwrap()["poison"] == true {
                        RecordOutcome::Fatal("400 poison".into())
                    } else {
                        RecordOutcome::Delivered
                    }
                })
                .collect();
            let mut stored = self.stored.lock().unwrap();
            for (r, o) in records.iter().zip(&outcomes) {
                if *o == RecordOutcome::Delivered {
                    stored.push(durable_copy(r));
                }
            }
            if outcomes.iter().any(|o| *o != RecordOutcome::Delivered) {
                return Err(SinkError::partial(outcomes));
            }
            return Ok(());
        }
        self.stored
            .lock()
            .unwrap()
            .extend(records.iter().map(durable_copy));
        Ok(())
    }
}

/// What a real sink keeps: the data, never the ack.
fn durable_copy(r: &Record) -> Record {
    Record {
        ack: weir_core::Ack::none(),
        ..r.clone()
    }
}

impl TestSink {
    fn seqs(&self) -> Vec<u64> {
        self.stored
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.value.decoded().unwrap()["seq"].as_u64().unwrap())
            .collect()
    }
}

fn fast_retry() -> StageOptions {
    StageOptions {
        retry: RetryOptions {
            max_attempts: -1,
            initial_backoff: HumanDuration::from_millis(1),
            max_backoff: HumanDuration::from_millis(5),
        },
        batch: BatchOptions {
            max_records: 50,
            max_bytes: 1 << 20,
            max_wait: HumanDuration::from_millis(5),
        },
        ..StageOptions::default()
    }
}

#[tokio::test]
async fn fan_out_delivers_everything_in_order_and_acks_only_when_every_sink_is_done() {
    let (source, statuses) = VecSource::new(1000, 100);
    let fast = Arc::new(TestSink::default());
    let slow = Arc::new(TestSink {
        delay: Some(Duration::from_millis(2)),
        ..Default::default()
    });
    let p = Pipeline::builder("fanout")
        .source("vec", source)
        .sink_with("fast", fast.clone(), fast_retry())
        .sink_with("slow", slow.clone(), fast_retry())
        .build()
        .unwrap();
    p.run(CancellationToken::new()).await.unwrap();
    let expected: Vec<u64> = (0..1000).collect();
    assert_eq!(fast.seqs(), expected);
    assert_eq!(slow.seqs(), expected);
    let st = statuses.lock().unwrap();
    assert_eq!(st.len(), 1000);
    assert!(st.iter().all(|s| *s == AckStatus::Delivered));
}

#[tokio::test]
async fn no_ack_before_the_sink_write_returns() {
    let gate = Arc::new(Notify::new());
    let (source, statuses) = VecSource::new(10, 10);
    let sink = Arc::new(TestSink {
        gate: Some(gate.clone()),
        ..Default::default()
    });
    let p = Pipeline::builder("gate")
        .source("vec", source)
        .sink_with("gated", sink.clone(), fast_retry())
        .build()
        .unwrap();
    let run = tokio::spawn(p.run(CancellationToken::new()));
    // Wait until the write is blocked inside the sink.
    for _ in 0..200 {
        if sink.concurrent.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        sink.concurrent.load(Ordering::SeqCst),
        1,
        "write should be in progress"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        statuses.lock().unwrap().is_empty(),
        "nothing may be acknowledged while the write is in progress"
    );
    gate.notify_one();
    run.await.unwrap().unwrap();
    assert_eq!(statuses.lock().unwrap().len(), 10);
}

#[tokio::test]
async fn retriable_failures_are_retried_until_delivered() {
    let (source, statuses) = VecSource::new(200, 50);
    let sink = Arc::new(TestSink {
        fail_first: AtomicUsize::new(3),
        ..Default::default()
    });
    let metrics = weir_engine::MetricsRegistry::default();
    let p = Pipeline::builder("retry")
        .metrics(metrics.clone())
        .source("vec", source)
        .sink_with("flaky", sink.clone(), fast_retry())
        .build()
        .unwrap();
    p.run(CancellationToken::new()).await.unwrap();
    assert_eq!(
        sink.seqs(),
        (0..200).collect::<Vec<_>>(),
        "nothing lost, order kept"
    );
    assert!(
        statuses
            .lock()
            .unwrap()
            .iter()
            .all(|s| *s == AckStatus::Delivered)
    );
    let row = metrics
        .snapshot()
        .into_iter()
        .find(|r| r.component == "flaky")
        .unwrap();
    assert_eq!(row.retries, 3, "three retries counted");
}

#[tokio::test]
async fn exhausted_retries_follow_on_error() {
    let (source, statuses) = VecSource::new(20, 20);
    let sink = Arc::new(TestSink {
        fail_first: AtomicUsize::new(100),
        ..Default::default()
    });
    let mut opts = fast_retry();
    opts.retry.max_attempts = 3;
    opts.on_error = Some(OnError::Stop);
    let p = Pipeline::builder("exhaust")
        .source("vec", source)
        .sink_with("down", sink, opts)
        .build()
        .unwrap();
    let err = p.run(CancellationToken::new()).await.unwrap_err();
    assert!(err.reason.contains("after 3 attempt(s)"), "{}", err.reason);
    let st = statuses.lock().unwrap();
    assert_eq!(st.len(), 20);
    assert!(
        st.iter().all(|s| *s == AckStatus::Errored),
        "nothing committed: {st:?}"
    );
}

#[tokio::test]
async fn poison_records_go_to_the_dlq_with_error_headers_and_the_rest_flows() {
    let (source, statuses) = VecSource::new(100, 25);
    let sink = Arc::new(TestSink {
        fatal_poison: true,
        ..Default::default()
    });
    let dlq = Arc::new(TestSink::default());
    let p = Pipeline::builder("dlq")
        .source("vec", source)
        .sink_with("webhook", sink.clone(), fast_retry())
        .dlq("dead", dlq.clone(), fast_retry())
        .build()
        .unwrap();
    p.run(CancellationToken::new()).await.unwrap();
    let poison: Vec<u64> = (0..100).filter(|i| i % 10 == 7).collect();
    let good: Vec<u64> = (0..100).filter(|i| i % 10 != 7).collect();
    assert_eq!(sink.seqs(), good);
    let mut dead = dlq.seqs();
    dead.sort();
    assert_eq!(dead, poison);
    let letter = dlq.stored.lock().unwrap()[0].clone();
    assert_eq!(letter.header(headers::STAGE), Some(&b"sink"[..]));
    assert_eq!(letter.header(headers::COMPONENT), Some(&b"webhook"[..]));
    assert_eq!(letter.header(headers::MESSAGE), Some(&b"400 poison"[..]));
    assert_eq!(letter.header(headers::CLASS), Some(&b"weir.sink.Fatal"[..]));
    assert_eq!(letter.header(headers::PIPELINE), Some(&b"dlq"[..]));
    assert!(
        statuses
            .lock()
            .unwrap()
            .iter()
            .all(|s| *s == AckStatus::Delivered),
        "dead-lettered counts as done"
    );
}

#[tokio::test]
async fn a_failed_dlq_write_leaves_the_record_uncommitted_and_stops() {
    let (source, statuses) = VecSource::new(10, 10);
    let sink = Arc::new(TestSink {
        fatal_poison: true,
        ..Default::default()
    });
    let dlq = Arc::new(TestSink {
        fail_all_fatal: true,
        ..Default::default()
    });
    let p = Pipeline::builder("dlqfail")
        .source("vec", source)
        .sink_with("webhook", sink, fast_retry())
        .dlq("dead", dlq, fast_retry())
        .build()
        .unwrap();
    let err = p.run(CancellationToken::new()).await.unwrap_err();
    assert!(
        err.reason.contains("dead-letter sink `dead`"),
        "{}",
        err.reason
    );
    let st = statuses.lock().unwrap();
    assert_eq!(
        st[7],
        AckStatus::Errored,
        "the poison record must not be committed"
    );
    assert_eq!(st.iter().filter(|s| **s == AckStatus::Delivered).count(), 9);
}

#[tokio::test]
async fn on_error_drop_counts_as_done() {
    let (source, statuses) = VecSource::new(30, 30);
    let sink = Arc::new(TestSink {
        fatal_poison: true,
        ..Default::default()
    });
    let mut opts = fast_retry();
    opts.on_error = Some(OnError::Drop);
    let metrics = weir_engine::MetricsRegistry::default();
    let p = Pipeline::builder("drop")
        .metrics(metrics.clone())
        .source("vec", source)
        .sink_with("s", sink.clone(), opts)
        .build()
        .unwrap();
    p.run(CancellationToken::new()).await.unwrap();
    assert_eq!(sink.seqs().len(), 27);
    assert!(
        statuses
            .lock()
            .unwrap()
            .iter()
            .all(|s| *s == AckStatus::Delivered)
    );
    let row = metrics
        .snapshot()
        .into_iter()
        .find(|r| r.component == "s")
        .unwrap();
    assert_eq!((row.discarded, row.errors), (3, 3), "3 discarded, 3 errors");
}

struct FailOnPoison;
impl Transform for FailOnPoison {
    fn apply(&self, r: &mut Record) -> Result<Flow, TransformError> {
        let poison = r.value.json()?["poison"] == true;
        if poison {
            r.value.json_mut()?["touched"] = json!(true);
            return Err(TransformError::Fatal(
                "cannot enrich a poison record".into(),
            ));
        }
        Ok(Flow::Keep)
    }
}

#[tokio::test]
async fn transform_failures_are_dead_lettered_with_the_original_bytes() {
    let (source, statuses) = VecSource::new(20, 20);
    let sink = Arc::new(TestSink::default());
    let dlq = Arc::new(TestSink::default());
    let p = Pipeline::builder("tdlq")
        .source("vec", source)
        .transform("enrich", FailOnPoison)
        .sink_with("out", sink.clone(), fast_retry())
        .dlq("dead", dlq.clone(), fast_retry())
        .build()
        .unwrap();
    p.run(CancellationToken::new()).await.unwrap();
    assert_eq!(sink.seqs().len(), 18);
    let letters = dlq.stored.lock().unwrap();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].header(headers::STAGE), Some(&b"transform"[..]));
    assert_eq!(letters[0].header(headers::COMPONENT), Some(&b"enrich"[..]));
    let v = letters[0].value.decoded().unwrap();
    assert!(
        v.get("touched").is_none(),
        "the DLQ gets the original bytes, not a half-modified value: {v}"
    );
    assert!(
        statuses
            .lock()
            .unwrap()
            .iter()
            .all(|s| *s == AckStatus::Delivered)
    );
}

#[tokio::test]
async fn transform_failure_with_stop_leaves_it_uncommitted() {
    let (source, statuses) = VecSource::new(10, 10);
    let p = Pipeline::builder("tstop")
        .source("vec", source)
        .transform("enrich", FailOnPoison)
        .sink_with("out", Arc::new(TestSink::default()), fast_retry())
        .build()
        .unwrap();
    let err = p.run(CancellationToken::new()).await.unwrap_err();
    assert!(err.reason.contains("transform `enrich`"), "{}", err.reason);
    assert_eq!(statuses.lock().unwrap()[7], AckStatus::Errored);
}

#[tokio::test]
async fn the_error_budget_stops_a_failing_pipeline() {
    let (source, _statuses) = VecSource::new(2000, 100);
    let sink = Arc::new(TestSink {
        fatal_poison: true,
        ..Default::default()
    });
    let mut opts = fast_retry();
    opts.on_error = Some(OnError::Drop);
    let p = Pipeline::builder("budget")
        .source("vec", source)
        .sink_with("s", sink, opts)
        .error_budget(ErrorBudget {
            max_failed_ratio: 0.05,
            window: HumanDuration::from_secs(60),
            min_records: 50,
        })
        .build()
        .unwrap();
    let err = p.run(CancellationToken::new()).await.unwrap_err();
    assert!(
        err.reason.contains("error budget exceeded"),
        "{}",
        err.reason
    );
}

#[tokio::test]
async fn batches_respect_max_records_and_max_in_flight() {
    let (source, _) = VecSource::new(1000, 100);
    let sink = Arc::new(TestSink {
        delay: Some(Duration::from_millis(3)),
        ..Default::default()
    });
    let mut opts = fast_retry();
    opts.batch.max_records = 30;
    opts.max_in_flight = Some(4);
    let p = Pipeline::builder("limits")
        .source("vec", source)
        .sink_with("s", sink.clone(), opts)
        .build()
        .unwrap();
    p.run(CancellationToken::new()).await.unwrap();
    let sizes = sink.batch_sizes.lock().unwrap();
    assert!(sizes.iter().all(|n| *n <= 30), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 1000);
    assert_eq!(
        sink.max_concurrent.load(Ordering::SeqCst),
        4,
        "concurrency reaches but never exceeds max_in_flight"
    );
    let seqs: HashSet<u64> = sink.seqs().into_iter().collect();
    assert_eq!(seqs.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_start_in_batch_order() {
    let (source, _) = VecSource::new(2000, 100);
    let sink = Arc::new(TestSink {
        random_delay: true,
        ..Default::default()
    });
    let mut opts = fast_retry();
    opts.batch.max_records = 10;
    opts.max_in_flight = Some(4);
    let p = Pipeline::builder("order")
        .source("vec", source)
        .sink_with("s", sink.clone(), opts)
        .build()
        .unwrap();
    p.run(CancellationToken::new()).await.unwrap();
    let started = sink.started.lock().unwrap().clone();
    assert_eq!(started.len(), 200, "2000 records in batches of 10");
    let expected: Vec<u64> = (0..200).map(|b| b * 10).collect();
    assert_eq!(started, expected, "writes start in batch order");
    assert!(
        sink.max_concurrent.load(Ordering::SeqCst) > 1,
        "writes did overlap"
    );
    let mut seqs = sink.seqs();
    assert_ne!(
        seqs,
        (0..2000).collect::<Vec<u64>>(),
        "writes finished out of order"
    );
    seqs.sort_unstable();
    assert_eq!(seqs, (0..2000).collect::<Vec<u64>>());
}

#[tokio::test]
async fn a_panicking_sink_stops_the_pipeline_with_its_message() {
    let (source, statuses) = VecSource::new(20, 10);
    let sink = Arc::new(TestSink {
        panics: true,
        ..Default::default()
    });
    let p = Pipeline::builder("panics")
        .source("vec", source)
        .sink_with("s", sink, fast_retry())
        .build()
        .unwrap();
    let err = p.run(CancellationToken::new()).await.unwrap_err();
    assert!(err.reason.contains("sink `s` crashed"), "{}", err.reason);
    assert!(
        err.reason.contains("the test sink panics as asked"),
        "{}",
        err.reason
    );
    assert!(
        !statuses.lock().unwrap().contains(&AckStatus::Delivered),
        "nothing is acked as delivered"
    );
}

#[tokio::test]
async fn a_slow_sink_bounds_what_is_in_flight() {
    let (source, statuses) = VecSource::new(3000, 10);
    let in_flight = source.in_flight_max.clone();
    let sink = Arc::new(TestSink {
        delay: Some(Duration::from_millis(1)),
        ..Default::default()
    });
    let mut opts = fast_retry();
    opts.batch.max_records = 10;
    let settings = PipelineSettings {
        buffer_batches: 2,
        ..PipelineSettings::default()
    };
    let p = Pipeline::builder("bp")
        .settings(settings)
        .source("vec", source)
        .sink_with("slow", sink, opts)
        .build()
        .unwrap();
    p.run(CancellationToken::new()).await.unwrap();
    assert_eq!(statuses.lock().unwrap().len(), 3000);
    // The bound docs/concepts.md promises for exactly this configuration (buffer_batches 2,
    // batches of 10, one write in flight): at most 80 records read and not yet done.
    let bound = 80;
    let seen = in_flight.load(Ordering::Relaxed);
    assert!(seen <= bound, "{seen} records in flight, bound {bound}");
}

#[tokio::test]
async fn shutdown_drains_in_flight_work_and_then_stops() {
    let (source, statuses) = VecSource::new(20_000, 100);
    let sink = Arc::new(TestSink {
        delay: Some(Duration::from_millis(1)),
        ..Default::default()
    });
    let p = Pipeline::builder("stop")
        .source("vec", source)
        .sink_with("s", sink.clone(), fast_retry())
        .build()
        .unwrap();
    let token = CancellationToken::new();
    let run = tokio::spawn(p.run(token.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops promptly")
        .unwrap()
        .unwrap();
    let st = statuses.lock().unwrap();
    assert!(
        !st.is_empty() && st.len() < 20_000,
        "stopped part-way: {}",
        st.len()
    );
    assert!(
        st.iter().all(|s| *s == AckStatus::Delivered),
        "everything sent before the stop was delivered"
    );
    assert_eq!(sink.seqs().len(), st.len());
}

#[tokio::test]
async fn the_shutdown_deadline_abandons_work_uncommitted() {
    let (source, statuses) = VecSource::new(10, 10);
    let gate = Arc::new(Notify::new());
    let sink = Arc::new(TestSink {
        gate: Some(gate),
        ..Default::default()
    });
    let settings = PipelineSettings {
        shutdown_timeout: HumanDuration::from_millis(200),
        ..PipelineSettings::default()
    };
    let p = Pipeline::builder("deadline")
        .settings(settings)
        .source("vec", source)
        .sink_with("stuck", sink, fast_retry())
        .build()
        .unwrap();
    let token = CancellationToken::new();
    let run = tokio::spawn(p.run(token.clone()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    token.cancel();
    let err = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("deadline enforced")
        .unwrap()
        .unwrap_err();
    assert!(
        err.reason.contains("did not finish within"),
        "{}",
        err.reason
    );
    // The stuck batch was abandoned: the source hears it as errored and never commits it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let st = statuses.lock().unwrap();
    assert_eq!(st.len(), 10, "every abandoned record reported");
    assert!(st.iter().all(|s| *s == AckStatus::Errored), "{st:?}");
}

struct Splitter;
impl Transform for Splitter {
    fn apply(&self, r: &mut Record) -> Result<Flow, TransformError> {
        let seq = r.value.json()?["seq"].clone();
        if seq.as_u64().unwrap() % 2 == 0 {
            return Ok(Flow::Drop);
        }
        Ok(Flow::Split(vec![
            r.derive(json!({"seq": seq, "part": 1})),
            r.derive(json!({"seq": seq, "part": 2})),
        ]))
    }
}

#[tokio::test]
async fn filtered_and_split_records_resolve_their_source_ack() {
    let (source, statuses) = VecSource::new(10, 5);
    let gate = Arc::new(Notify::new());
    let sink = Arc::new(TestSink {
        gate: Some(gate.clone()),
        ..Default::default()
    });
    let mut opts = fast_retry();
    opts.batch.max_records = 1;
    let p = Pipeline::builder("split")
        .source("vec", source)
        .transform("split", Splitter)
        .sink_with("s", sink.clone(), opts)
        .build()
        .unwrap();
    let run = tokio::spawn(p.run(CancellationToken::new()));
    // Release writes one at a time: an odd record is done only after both halves are written.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.notify_one();
    }
    run.await.unwrap().unwrap();
    assert_eq!(sink.seqs().len(), 10, "5 odd records, split in two");
    assert!(
        statuses
            .lock()
            .unwrap()
            .iter()
            .all(|s| *s == AckStatus::Delivered)
    );
}

/// Fails its health check, then writes fine.
struct Unhealthy {
    checked: AtomicUsize,
    inner: TestSink,
}

#[async_trait]
impl Sink for Unhealthy {
    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        self.inner.write(records).await
    }
    async fn healthcheck(&self) -> Result<(), SinkError> {
        self.checked.fetch_add(1, Ordering::SeqCst);
        Err(SinkError::retriable("connection refused"))
    }
}

#[tokio::test]
async fn health_checks_run_at_start_and_a_failure_does_not_stop_the_pipeline() {
    let (source, statuses) = VecSource::new(10, 10);
    let sink = Arc::new(Unhealthy {
        checked: AtomicUsize::new(0),
        inner: TestSink::default(),
    });
    let p = Pipeline::builder("health")
        .source("vec", source)
        .sink_with("u", sink.clone(), fast_retry())
        .build()
        .unwrap();
    p.run(CancellationToken::new()).await.unwrap();
    assert_eq!(sink.checked.load(Ordering::SeqCst), 1);
    assert_eq!(sink.inner.seqs().len(), 10);
    assert_eq!(statuses.lock().unwrap().len(), 10);

    let (source, _) = VecSource::new(1, 1);
    let sink = Arc::new(Unhealthy {
        checked: AtomicUsize::new(0),
        inner: TestSink::default(),
    });
    let settings = PipelineSettings {
        healthcheck: false,
        ..PipelineSettings::default()
    };
    let p = Pipeline::builder("nohealth")
        .settings(settings)
        .source("vec", source)
        .sink_with("u", sink.clone(), fast_retry())
        .build()
        .unwrap();
    p.run(CancellationToken::new()).await.unwrap();
    assert_eq!(
        sink.checked.load(Ordering::SeqCst),
        0,
        "healthcheck: false skips it"
    );
}

/// Drops, fails and (once) splits records by their `seq`, so one batch mixes every outcome.
struct Mixed;
impl Transform for Mixed {
    fn apply(&self, r: &mut Record) -> Result<Flow, TransformError> {
        let seq = r.value.json()?["seq"].as_u64().unwrap();
        match seq {
            14 => Ok(Flow::Split(vec![
                r.derive(json!({"seq": seq, "part": 1})),
                r.derive(json!({"seq": seq, "part": 2})),
            ])),
            s if s % 5 == 1 => Ok(Flow::Drop),
            s if s % 5 == 3 => Err(TransformError::Fatal("refused".into())),
            _ => Ok(Flow::Keep),
        }
    }
}

#[tokio::test]
async fn kept_dropped_failed_and_split_records_leave_a_stage_in_their_order() {
    // Batches of ten: the first has no split (records stay in place), the second splits its
    // fifth record with drops and failures before and after it.
    let (source, statuses) = VecSource::new(20, 10);
    let sink = Arc::new(TestSink::default());
    let dlq = Arc::new(TestSink::default());
    let p = Pipeline::builder("mixed")
        .source("vec", source)
        .transform("mixed", Mixed)
        .sink_with("out", sink.clone(), fast_retry())
        .dlq("dead", dlq.clone(), fast_retry())
        .build()
        .unwrap();
    p.run(CancellationToken::new()).await.unwrap();
    let mut want = Vec::new();
    for seq in 0..20u64 {
        match seq {
            14 => want.extend([14, 14]),
            s if s % 5 == 1 || s % 5 == 3 => {}
            s => want.push(s),
        }
    }
    assert_eq!(sink.seqs(), want);
    assert_eq!(dlq.seqs(), vec![3, 8, 13, 18]);
    let st = statuses.lock().unwrap();
    assert_eq!(st.len(), 20);
    assert!(st.iter().all(|s| *s == AckStatus::Delivered), "{st:?}");
}
