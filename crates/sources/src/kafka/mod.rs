//! `kafka`: a consumer-group source with at-least-once offsets, pause/resume backpressure and
//! draining rebalances.
//!
//! The consumer runs on its own thread (librdkafka's poll loop and rebalance callbacks are
//! blocking). Records are sent in batches; an offset is stored for commit only once the ack
//! receiver reports every record up to it done ([`weir_core::OffsetTracker`]). When the pipeline
//! is full the assigned partitions are paused but polling goes on, so the consumer stays in its
//! group however slow the sinks are. On revoke and shutdown, in-flight acks are drained (up to
//! `drain_timeout`) and the finished offsets committed synchronously.

pub mod config;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use weir_core::kafka::{
    ClientDiagnostics, ClientProperties, RESERVED_CONSUMER_OPTIONS, client_properties,
};
use weir_core::{
    AckReceiver, BuildContext, BuildError, Header, OffsetTracker, Origin, PluginConfig, Record,
    Source, SourceContext, SourceError,
};

pub use config::{KafkaSourceConfig, StartFrom};

type Tp = (Arc<str>, i32);

impl PluginConfig for KafkaSourceConfig {
    const TYPE: &'static str = "kafka";
    const SUMMARY: &'static str = "Consume Kafka topics in a consumer group, at least once";
    const EXAMPLE: &'static str = "type: kafka\nbootstrap_servers: \"${KAFKA:-127.0.0.1:9092}\"\ntopics: [orders]\ngroup_id: orders-pipeline\nstart_from: earliest\n";
    type Output = dyn Source;
    fn build(self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        match (self.topics.is_empty(), &self.topic_pattern) {
            (true, None) => {
                return Err(BuildError::at(
                    "topics",
                    "give `topics` (a list) or `topic_pattern` (a regular expression)",
                ));
            }
            (false, Some(_)) => {
                return Err(BuildError::at(
                    "topic_pattern",
                    "give either `topics` or `topic_pattern`, not both",
                ));
            }
            (_, Some(p)) => {
                if let Err(e) = regex::Regex::new(p) {
                    return Err(BuildError::at(
                        "topic_pattern",
                        format!("invalid regular expression: {e}"),
                    ));
                }
            }
            (false, None) => {
                if let Some(i) = self.topics.iter().position(|t| t.trim().is_empty()) {
                    return Err(BuildError::at(format!("topics[{i}]"), "empty topic name"));
                }
            }
        }
        if self.group_id.trim().is_empty() {
            return Err(BuildError::at("group_id", "must not be empty"));
        }
        if self.batch_records == 0 {
            return Err(BuildError::at("batch_records", "must be at least 1"));
        }
        for k in self.options.keys() {
            if RESERVED_CONSUMER_OPTIONS.contains(&k.as_str()) {
                return Err(BuildError::at(
                    format!("options.{k}"),
                    "is set by Weir for at-least-once delivery and cannot be overridden",
                ));
            }
        }
        let props = self.properties(cx).map_err(|e| BuildError::at("", e))?;
        // librdkafka checks every property name and value here, without connecting.
        if let Err(e) = to_client_config(&props).create_native_config() {
            return Err(BuildError::at("options", props.redact(&e.to_string())));
        }
        Ok(Box::new(KafkaSource {
            config: self,
            props,
        }))
    }
}

weir_core::register_plugin!(KafkaSourceConfig);

impl KafkaSourceConfig {
    fn properties(&self, cx: &BuildContext) -> Result<ClientProperties, String> {
        let mut p = client_properties(
            &self.bootstrap_servers,
            self.tls.as_ref(),
            self.sasl.as_ref(),
            &format!("weir-{}-{}", cx.pipeline, cx.component),
        )
        .map_err(|e| e.to_string())?;
        p.set("partition.assignment.strategy", "cooperative-sticky");
        p.set("enable.auto.commit", "true");
        p.set(
            "auto.commit.interval.ms",
            self.commit_interval.0.as_millis().max(1).to_string(),
        );
        p.set(
            "auto.offset.reset",
            match self.start_from {
                StartFrom::Latest => "latest",
                StartFrom::Earliest => "earliest",
            },
        );
        p.apply_options(&self.options);
        p.set("group.id", self.group_id.clone());
        p.set("enable.auto.offset.store", "false");
        p.set("enable.partition.eof", "false");
        Ok(p)
    }
}

fn to_client_config(props: &ClientProperties) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in &props.properties {
        c.set(k, v);
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// The running source.
pub struct KafkaSource {
    config: KafkaSourceConfig,
    props: ClientProperties,
}

#[async_trait]
impl Source for KafkaSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), SourceError> {
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || consume(*self, cx, handle))
            .await
            .map_err(|e| SourceError::Other(format!("kafka consumer thread failed: {e}")))?
    }
}

/// What the source thread and the rebalance callbacks share.
struct Shared {
    tracker: OffsetTracker<Tp>,
    /// Sent batches by token: partition, its generation at send time, offset.
    batches: HashMap<u64, Vec<(Tp, u32, i64)>>,
    /// Bumped on every assignment of a partition, so acks from an earlier assignment are ignored.
    generations: HashMap<Tp, u32>,
    acks: AckReceiver,
    paused: bool,
}

impl Shared {
    fn generation(&self, tp: &Tp) -> u32 {
        self.generations.get(tp).copied().unwrap_or(0)
    }

    /// Applies every completed batch that is ready; returns the partitions whose commit point moved.
    fn take_ready_acks(&mut self) -> Vec<Tp> {
        let mut moved = Vec::new();
        while let Some(done) = self.acks.try_recv() {
            self.apply(done, &mut moved);
        }
        moved
    }

    fn apply(&mut self, done: weir_core::BatchAck, moved: &mut Vec<Tp>) {
        let Some(entries) = self.batches.remove(&done.token) else {
            return;
        };
        for ((tp, generation, offset), status) in entries.into_iter().zip(done.statuses) {
            if self.generation(&tp) != generation {
                continue; // from an earlier assignment of this partition
            }
            let before = self.tracker.committable(&tp);
            if self.tracker.ack(&tp, offset, status.is_done()).is_ok()
                && self.tracker.committable(&tp) != before
                && !moved.contains(&tp)
            {
                moved.push(tp);
            }
        }
    }

    fn in_flight(&self, scope: &[Tp]) -> usize {
        self.tracker
            .partitions()
            .filter(|(tp, _)| scope.contains(tp))
            .filter(|(_, p)| !p.is_blocked())
            .map(|(_, p)| p.in_flight())
            .sum()
    }

    fn offsets(&self, tps: &[Tp]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for tp in tps {
            if let Some(o) = self.tracker.committable(tp) {
                // librdkafka stores and commits the offset of the *next* record to read.
                let _ = tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(o + 1));
            }
        }
        tpl
    }
}

struct SourceClient {
    shared: Mutex<Shared>,
    handle: tokio::runtime::Handle,
    drain_timeout: Duration,
    name: String,
    diagnostics: ClientDiagnostics,
}

impl SourceClient {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits (up to the drain timeout) for the records in flight of `scope` to finish, then
    /// commits the finished offsets synchronously.
    fn drain_and_commit(&self, consumer: &BaseConsumer<SourceClient>, scope: &[Tp], why: &str) {
        let deadline = Instant::now() + self.drain_timeout;
        let mut sh = self.lock();
        sh.take_ready_acks();
        loop {
            let waiting = sh.in_flight(scope);
            if waiting == 0 {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    source = %self.name,
                    "{why}: {waiting} records still in flight after {:?}; they will be redelivered",
                    self.drain_timeout
                );
                break;
            }
            let wait = deadline - now;
            match self
                .handle
                .block_on(async { tokio::time::timeout(wait, sh.acks.recv()).await })
            {
                Ok(Some(done)) => {
                    let mut moved = Vec::new();
                    sh.apply(done, &mut moved);
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(
                        source = %self.name,
                        "{why}: {waiting} records in flight will not finish; they will be redelivered"
                    );
                    break;
                }
            }
        }
        let tpl = sh.offsets(scope);
        drop(sh);
        if tpl.count() > 0 {
            match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => tracing::debug!(source = %self.name, "{why}: committed {tpl:?}"),
                Err(e) => tracing::warn!(source = %self.name, "{why}: commit failed: {e}"),
            }
        }
    }
}

impl ClientContext for SourceClient {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.diagnostics.log(level as i32, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.diagnostics.error(&format!("{error}: {reason}"));
    }
}

fn tps_of(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements()
        .iter()
        .map(|e| (Arc::from(e.topic()), e.partition()))
        .collect()
}

impl ConsumerContext for SourceClient {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let scope = tps_of(tpl);
            tracing::info!(source = %self.name, "partitions revoked: {}", describe(&scope));
            self.drain_and_commit(consumer, &scope, "revoke");
            let mut sh = self.lock();
            for tp in &scope {
                sh.tracker.remove(tp);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let scope = tps_of(tpl);
                tracing::info!(source = %self.name, "partitions assigned: {}", describe(&scope));
                let mut sh = self.lock();
                for tp in &scope {
                    sh.tracker.remove(tp);
                    *sh.generations.entry(tp.clone()).or_default() += 1;
                }
                if sh.paused
                    && let Err(e) = consumer.pause(tpl)
                {
                    tracing::warn!(source = %self.name, "cannot pause new partitions: {e}");
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(source = %self.name, "rebalance failed: {e}");
            }
        }
    }
}

fn describe(tps: &[Tp]) -> String {
    let mut v: Vec<String> = tps.iter().map(|(t, p)| format!("{t}[{p}]")).collect();
    v.sort();
    v.join(", ")
}

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

fn consume(
    source: KafkaSource,
    mut cx: SourceContext,
    handle: tokio::runtime::Handle,
) -> Result<(), SourceError> {
    let name = format!("{}/{}", cx.id.pipeline, cx.id.component);
    let acks = cx
        .take_acks()
        .ok_or_else(|| SourceError::Other("the ack receiver was already taken".into()))?;
    let client = SourceClient {
        shared: Mutex::new(Shared {
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
    };
    let consumer: BaseConsumer<SourceClient> = to_client_config(&source.props)
        .create_with_context(client)
        .map_err(|e| SourceError::Read(source.props.redact(&e.to_string())))?;

    // Fail fast and clearly when the brokers cannot be reached (wrong address, TLS, credentials).
    if let Err(e) = consumer.fetch_metadata(None, source.config.connect_timeout.0) {
        // Serve queued client events so the error callback records the cause (TLS, auth...).
        for _ in 0..5 {
            let _ = consumer.poll(Duration::from_millis(20));
        }
        let detail = consumer.context().diagnostics.summary().unwrap_or_default();
        return Err(SourceError::Read(format!(
            "cannot reach the Kafka brokers at {} within {}: {e}{}{detail}",
            source.config.bootstrap_servers,
            source.config.connect_timeout,
            if detail.is_empty() {
                ""
            } else {
                "; last client error: "
            }
        )));
    }

    let subscription: Vec<String> = match &source.config.topic_pattern {
        Some(p) if p.starts_with('^') => vec![p.clone()],
        Some(p) => vec![format!("^{p}")],
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
                    tracing::warn!(source = %name, "kafka consume error: {}", source.props.redact(&e.to_string()));
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
            tracing::debug!(
                "{} {} partitions",
                if pause { "paused" } else { "resumed" },
                assignment.count()
            );
        }
        Err(e) => tracing::warn!("cannot pause/resume partitions: {e}"),
    }
}
