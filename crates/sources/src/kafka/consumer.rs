//! The consumer's shared state and its librdkafka context: offsets tracked to their acks,
//! batches by token, partition generations, and the rebalance callbacks that drain in-flight
//! records and commit before partitions move.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use weir_core::telemetry::ComponentTelemetry;
use weir_core::{AckReceiver, OffsetTracker};
use weir_kafka::ClientDiagnostics;

/// A topic-partition.
pub(super) type Tp = (Arc<str>, i32);

/// What the source thread and the rebalance callbacks share.
pub(super) struct ConsumerState {
    pub(super) tracker: OffsetTracker<Tp>,
    /// Sent batches by token: partition, its generation at send time, offset.
    pub(super) batches: HashMap<u64, Vec<(Tp, u32, i64)>>,
    /// Bumped on every assignment of a partition, so acks from an earlier assignment are ignored.
    pub(super) generations: HashMap<Tp, u32>,
    pub(super) acks: AckReceiver,
    pub(super) paused: bool,
}

impl ConsumerState {
    pub(super) fn generation(&self, tp: &Tp) -> u32 {
        self.generations.get(tp).copied().unwrap_or(0)
    }

    /// Applies every completed batch that is ready; returns the partitions whose commit point moved.
    pub(super) fn take_ready_acks(&mut self) -> Vec<Tp> {
        let mut moved = Vec::new();
        while let Some(done) = self.acks.try_recv() {
            self.apply(done, &mut moved);
        }
        moved
    }

    pub(super) fn apply(&mut self, done: weir_core::BatchAck, moved: &mut Vec<Tp>) {
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

    pub(super) fn in_flight(&self, scope: &[Tp]) -> usize {
        self.tracker
            .partitions()
            .filter(|(tp, _)| scope.contains(tp))
            .filter(|(_, p)| !p.is_blocked())
            .map(|(_, p)| p.in_flight())
            .sum()
    }

    pub(super) fn offsets(&self, tps: &[Tp]) -> TopicPartitionList {
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

pub(super) struct SourceClient {
    pub(super) shared: Mutex<ConsumerState>,
    pub(super) handle: tokio::runtime::Handle,
    pub(super) drain_timeout: Duration,
    pub(super) name: String,
    pub(super) diagnostics: ClientDiagnostics,
    /// The source's metrics and health.
    pub(super) telemetry: ComponentTelemetry,
}

impl SourceClient {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, ConsumerState> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits (up to the drain timeout) for the records in flight of `scope` to finish, then
    /// commits the finished offsets synchronously.
    pub(super) fn drain_and_commit(
        &self,
        consumer: &BaseConsumer<SourceClient>,
        scope: &[Tp],
        why: &str,
    ) {
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
            // librdkafka's own commit on revoke and close sends the stored offsets: store these
            // too, or it would commit the older ones over them (a commit point moved back).
            if let Err(e) = consumer.store_offsets(&tpl) {
                tracing::debug!(source = %self.name, "{why}: cannot store {tpl:?}: {e}");
            }
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
        let message = format!("{error}: {reason}");
        self.telemetry.health.degraded(format!(
            "Kafka client error: {}",
            self.diagnostics.redact(&message)
        ));
        self.diagnostics.error(&message);
    }

    /// librdkafka's statistics (every `statistics.interval.ms`): the consumer lag of each
    /// assigned partition, as a gauge.
    fn stats(&self, stats: rdkafka::Statistics) {
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                self.telemetry
                    .pipeline_gauge(
                        "weir_kafka_consumer_lag_messages",
                        "Records not yet consumed per topic-partition (log end minus committed offset).",
                        &[("topic", topic), ("partition", &partition.to_string())],
                    )
                    .set(p.consumer_lag);
            }
        }
    }
}

pub(super) fn tps_of(tpl: &TopicPartitionList) -> Vec<Tp> {
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
