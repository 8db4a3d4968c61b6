//! The consumer's poll loop on its own thread: poll, hand batches to the pipeline, store the
//! offsets the acks finished, pause the partitions while the pipeline is full, and drain and
//! commit at shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use weir_core::{Header, OffsetTracker, Origin, Record, SourceContext, SourceError};
use weir_kafka::ClientDiagnostics;

use super::KafkaSource;
use super::consumer::{ConsumerState, SourceClient, Tp, tps_of};

/// Records polled but not yet sent, with their partition, generation and offset.
#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    positions: Vec<(Tp, u32, i64)>,
}

fn to_record(m: &BorrowedMessage<'_>, topic: Arc<str>) -> Record {
    let mut r = Record::from_bytes(Bytes::copy_from_slice(m.payload().unwrap_or_default()));
    r.key = m.key().map(Bytes::copy_from_slice);
    if let Some(hs) = m.headers() {
        r.headers = hs
            .iter()
            .map(|h| Header {
                name: h.key.to_owned(),
                value: h.value.map(Bytes::copy_from_slice),
            })
            .collect();
    }
    r.timestamp = m.timestamp().to_millis();
    r.meta.origin = Some(Origin {
        topic,
        partition: m.partition(),
        offset: m.offset(),
    });
    r
}

pub(super) fn consume(
    source: KafkaSource,
    mut cx: SourceContext,
    handle: tokio::runtime::Handle,
) -> Result<(), SourceError> {
    let name = format!("{}/{}", cx.id.pipeline, cx.id.component);
    let acks = cx
        .take_acks()
        .ok_or_else(|| SourceError::Other("the ack receiver was already taken".into()))?;
    let client = SourceClient {
        shared: Mutex::new(ConsumerState {
            tracker: OffsetTracker::default(),
            batches: HashMap::new(),
            generations: HashMap::new(),
            acks,
            paused: false,
        }),
        handle: handle.clone(),
        drain_timeout: source.config.drain_timeout.0,
        name: name.clone(),
        diagnostics: ClientDiagnostics::new(name.clone(), source.props.secrets.clone()),
        telemetry: source.telemetry.clone(),
    };
    let consumer: BaseConsumer<SourceClient> = weir_kafka::client_config(&source.props)
        .create_with_context(client)
        .map_err(|e| SourceError::Read(source.props.redact(&e.to_string())))?;

    // Fail fast and clearly when the brokers cannot be reached (wrong address, TLS, credentials).
    if let Err(e) = consumer.fetch_metadata(None, source.config.connect_timeout.0) {
        // Serve queued client events so the error callback records the cause (TLS, auth...).
        for _ in 0..5 {
            let _ = consumer.poll(Duration::from_millis(20));
        }
        let diagnostics = &consumer.context().diagnostics;
        let detail = diagnostics.summary().unwrap_or_default();
        return Err(SourceError::Read(format!(
            "cannot reach the Kafka brokers at {} within {}{}: {e}{}{detail}",
            source.config.bootstrap_servers,
            source.config.connect_timeout,
            diagnostics
                .explain()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default(),
            if detail.is_empty() {
                ""
            } else {
                "; last client error: "
            }
        )));
    }

    let subscription: Vec<String> = match &source.config.topic_pattern {
        // Rust syntax as configured, POSIX for librdkafka (checked when the source was built).
        Some(p) => vec![
            weir_kafka::TopicPattern::new(p)
                .map_err(|e| SourceError::Other(format!("topic_pattern: {e}")))?
                .subscription,
        ],
        None => source.config.topics.clone(),
    };
    let refs: Vec<&str> = subscription.iter().map(String::as_str).collect();
    consumer
        .subscribe(&refs)
        .map_err(|e| SourceError::Read(format!("cannot subscribe to {subscription:?}: {e}")))?;
    tracing::info!(source = %name, group = %source.config.group_id, "subscribed to {subscription:?}");

    let batch_records = source.config.batch_records;
    // Waiting for room must stay well inside max.poll.interval.ms (librdkafka's default 300s).
    let max_poll = source
        .props
        .get("max.poll.interval.ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(300_000);
    let pause_after = Duration::from_millis((max_poll / 4).min(1000));
    let mut pending = Pending::default();
    let mut topics: Vec<Arc<str>> = Vec::new();
    let mut result = Ok(());
    'run: while !cx.shutdown.is_cancelled() {
        // 1. Acks: store what finished for the next commit.
        store_finished(&consumer);

        // 2. Hand over what was polled, or pause while the pipeline is full.
        if !pending.records.is_empty() {
            // A full pipeline usually frees a slot within milliseconds: wait a little before
            // pausing, since pausing drops librdkafka's prefetched messages and resuming costs a
            // fetch round trip. Only a pipeline that stays full gets its partitions paused.
            let paused = consumer.context().lock().paused;
            let room = cx.has_capacity()
                || (!paused
                    && handle
                        .block_on(cx.wait_for_capacity(pause_after))
                        .unwrap_or(false));
            if room {
                let batch = std::mem::take(&mut pending);
                if let Err(e) = send(&consumer, &cx, &handle, batch) {
                    result = Err(e);
                    break 'run;
                }
                set_paused(&consumer, false);
            } else {
                set_paused(&consumer, true);
            }
        }

        // 3. Poll: wait briefly when idle or paused, otherwise take what is already fetched.
        let wait = if pending.records.is_empty() || consumer.context().lock().paused {
            Duration::from_millis(10)
        } else {
            Duration::ZERO
        };
        let mut next = consumer.poll(wait);
        while let Some(polled) = next {
            match polled {
                Ok(m) => {
                    let topic = match topics.iter().find(|t| ***t == *m.topic()) {
                        Some(t) => t.clone(),
                        None => {
                            let t: Arc<str> = Arc::from(m.topic());
                            topics.push(t.clone());
                            t
                        }
                    };
                    let tp = (topic.clone(), m.partition());
                    let generation = consumer.context().lock().generation(&tp);
                    pending.positions.push((tp, generation, m.offset()));
                    pending.records.push(to_record(&m, topic));
                }
                Err(e) => {
                    consumer
                        .context()
                        .diagnostics
                        .problem("kafka consume error", &e.to_string());
                    break;
                }
            }
            if pending.records.len() >= batch_records {
                break;
            }
            next = consumer.poll(Duration::ZERO);
        }
    }

    // Shutdown: stop sending, wait for what is in flight, commit, leave the group.
    drop(pending);
    cx.close_output();
    let assigned = consumer
        .assignment()
        .map(|tpl| tps_of(&tpl))
        .unwrap_or_default();
    consumer
        .context()
        .drain_and_commit(&consumer, &assigned, "shutdown");
    consumer.unsubscribe();
    drop(consumer);
    tracing::info!(source = %name, "kafka source stopped");
    result
}

/// Stores the offsets whose commit point moved, for the next automatic commit.
fn store_finished(consumer: &BaseConsumer<SourceClient>) {
    let tpl = {
        let mut sh = consumer.context().lock();
        let moved = sh.take_ready_acks();
        if moved.is_empty() {
            return;
        }
        sh.offsets(&moved)
    };
    if let Err(e) = consumer.store_offsets(&tpl) {
        // A partition revoked meanwhile cannot be stored; its new owner replays from the last commit.
        tracing::debug!("cannot store offsets {tpl:?}: {e}");
    }
}

fn send(
    consumer: &BaseConsumer<SourceClient>,
    cx: &SourceContext,
    handle: &tokio::runtime::Handle,
    batch: Pending,
) -> Result<(), SourceError> {
    let mut records = Vec::with_capacity(batch.records.len());
    let mut positions = Vec::with_capacity(batch.positions.len());
    let mut sh = consumer.context().lock();
    for (r, pos) in batch.records.into_iter().zip(batch.positions) {
        // Skip records of partitions revoked (or revoked and reassigned) since they were polled.
        if sh.generation(&pos.0) != pos.1 {
            continue;
        }
        if let Err(e) = sh.tracker.track(&pos.0, pos.2) {
            tracing::warn!("offset tracking: {e}; record skipped and will be redelivered");
            continue;
        }
        records.push(r);
        positions.push(pos);
    }
    if records.is_empty() {
        return Ok(());
    }
    // The pipeline has room (checked by the caller, and only this thread sends), so this does
    // not wait; the lock keeps the ack of a very fast pipeline from arriving before the batch is
    // registered.
    let token = handle
        .block_on(cx.send(records))
        .map_err(|_| SourceError::Closed)?;
    sh.batches.insert(token, positions);
    drop(sh);
    // Records flow: whatever the client complained about is over.
    consumer.context().telemetry.health.ok();
    consumer.context().diagnostics.connected();
    Ok(())
}

fn set_paused(consumer: &BaseConsumer<SourceClient>, pause: bool) {
    let mut sh = consumer.context().lock();
    if sh.paused == pause {
        return;
    }
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let r = if pause {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    match r {
        Ok(()) => {
            sh.paused = pause;
            let source = &consumer.context().name;
            if pause {
                tracing::debug!(%source, "the pipeline is full: paused {} partitions, polling goes on", assignment.count());
            } else {
                tracing::debug!(%source, "the pipeline has room: resumed {} partitions", assignment.count());
            }
        }
        Err(e) => {
            tracing::warn!(source = %consumer.context().name, "cannot pause/resume partitions: {e}")
        }
    }
}
