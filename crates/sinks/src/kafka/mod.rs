//! `kafka`: an idempotent producer whose writes finish on delivery reports.
//!
//! A write enqueues every record of the batch at once and then waits for all delivery reports, so
//! librdkafka batches and pipelines freely while the runner's ack still means "the broker has it".
//! Errors are classified here (fatal codes listed in [`is_fatal`]); retries beyond librdkafka's
//! own belong to the runner.

pub mod config;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use weir_core::template::{Template, TemplateContext};
use weir_core::{BuildContext, BuildError, PluginConfig, Record, RecordOutcome, Sink, SinkError};
use weir_kafka::{ClientDiagnostics, ClientProperties, client_properties};

pub use config::{Compression, KafkaSinkConfig};

impl PluginConfig for KafkaSinkConfig {
    const TYPE: &'static str = "kafka";
    const SUMMARY: &'static str = "Produce to Kafka (idempotent, acks=all), acked on delivery";
    const EXAMPLE: &'static str = "type: kafka\nbootstrap_servers: \"${KAFKA:-127.0.0.1:9092}\"\ntopic: alerts-<$.value.country>\nkey: <$.value.customer_id>\ncompression: lz4\nheaders:\n  x-pipeline: <weir.pipeline>\n";
    type Output = dyn Sink;
    fn build(self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let compile = |path: String, text: &str| {
            Template::compile(text).map_err(|e| BuildError::at(path, e.to_string()))
        };
        if self.topic.trim().is_empty() {
            return Err(BuildError::at("topic", "must not be empty"));
        }
        weir_kafka::check_reserved(&self.options, weir_kafka::RESERVED_PRODUCER_OPTIONS)
            .map_err(|(at, message)| BuildError::at(at, message))?;
        let topic = compile("topic".into(), &self.topic)?;
        let key = match &self.key {
            Some(k) => Some(compile("key".into(), k)?),
            None => None,
        };
        let partition = match &self.partition {
            Some(p) => Some(compile("partition".into(), p)?),
            None => None,
        };
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            headers.push((name.clone(), compile(format!("headers.{name}"), value)?));
        }
        let props = self.properties(cx).map_err(|e| BuildError::at("", e))?;
        let diagnostics = Arc::new(ClientDiagnostics::new(
            format!("{}/{}", cx.pipeline, cx.component),
            props.secrets.clone(),
        ));
        // librdkafka checks every property name and value here; the producer (which connects)
        // is created on first use, so `weir validate` stays offline.
        let client_config = weir_kafka::client_config(&props);
        client_config
            .create_native_config()
            .map_err(|e| BuildError::at("options", props.redact(&e.to_string())))?;
        let static_topic = topic.is_static().then(|| self.topic.clone());
        Ok(Box::new(KafkaSink {
            producer: Mutex::new(None),
            enqueue_turn: tokio::sync::Mutex::new(()),
            client_config,
            topic,
            static_topic,
            key,
            partition,
            headers,
            pipeline: cx.pipeline.clone(),
            bootstrap: self.bootstrap_servers,
            diagnostics,
        }))
    }
}

weir_core::register_plugin!(KafkaSinkConfig);

impl KafkaSinkConfig {
    fn properties(&self, cx: &BuildContext) -> Result<ClientProperties, String> {
        let mut p = client_properties(
            &self.bootstrap_servers,
            self.tls.as_ref(),
            self.sasl.as_ref(),
            &format!("weir-{}-{}", cx.pipeline, cx.component),
        )
        .map_err(|e| e.to_string())?;
        p.set("enable.idempotence", "true");
        p.set("acks", "all");
        // The Java client's partitioner, so keys land where Kafka Connect and Streams put them.
        p.set("partitioner", "murmur2_random");
        p.set("compression.codec", self.compression.as_str());
        p.set("linger.ms", self.linger.0.as_millis().to_string());
        p.set("batch.size", self.batch_bytes.to_string());
        p.set(
            "message.timeout.ms",
            self.message_timeout.0.as_millis().max(1).to_string(),
        );
        p.apply_options(&self.options);
        Ok(p)
    }
}

/// Client callbacks: librdkafka logs into `tracing`, secrets redacted.
struct SinkClient(Arc<ClientDiagnostics>);

impl ClientContext for SinkClient {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.0.log(level as i32, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(&format!("{error}: {reason}"));
    }
}

/// The running sink.
pub struct KafkaSink {
    /// Created on first use, and again after a fatal error (see [`KafkaSink::replace_if_fatal`]).
    producer: Mutex<Option<FutureProducer<SinkClient>>>,
    /// Held while a write enqueues; fair, so concurrent writes enqueue in the order they started.
    enqueue_turn: tokio::sync::Mutex<()>,
    client_config: ClientConfig,
    topic: Template,
    static_topic: Option<String>,
    key: Option<Template>,
    partition: Option<Template>,
    headers: Vec<(String, Template)>,
    pipeline: Arc<str>,
    bootstrap: String,
    diagnostics: Arc<ClientDiagnostics>,
}

/// Where and how one record is produced.
struct Destination {
    topic: String,
    key: Option<Vec<u8>>,
    partition: Option<i32>,
    extra_headers: Vec<(String, String)>,
}

/// Error codes that retrying cannot fix: the record goes to `on_error` at once.
pub fn is_fatal(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::InvalidRequiredAcks
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::InvalidArgument
    )
}

/// Error codes after which librdkafka's idempotent producer cannot produce any more (its
/// producer id was fenced or lost, or it raised a fatal error): the producer is replaced and
/// the records retried, since the records themselves are fine.
pub fn needs_new_producer(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fatal
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::OutOfOrderSequenceNumber
    )
}

fn outcome(error: &KafkaError, topic: &str, diagnostics: &ClientDiagnostics) -> RecordOutcome {
    let mut message = format!("producing to topic {topic:?} failed: {error}");
    let code = error.rdkafka_error_code();
    // A timeout hides why nothing was delivered (refused credentials, TLS, unreachable brokers):
    // the client's last problems say it.
    if code == Some(RDKafkaErrorCode::MessageTimedOut)
        && let Some(detail) = diagnostics.summary()
    {
        if let Some(hint) = diagnostics.explain() {
            message.push_str(&format!(" ({hint})"));
        }
        message.push_str(&format!("; last client error: {detail}"));
    }
    match code {
        Some(RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition) => {
            RecordOutcome::Fatal(format!(
                "{message} (the topic does not exist; Weir does not create topics)"
            ))
        }
        Some(code) if needs_new_producer(code) => RecordOutcome::Retriable(format!(
            "{message} (the producer cannot go on; it is replaced and the record retried)"
        )),
        Some(code) if is_fatal(code) => RecordOutcome::Fatal(message),
        _ => RecordOutcome::Retriable(message),
    }
}

impl KafkaSink {
    /// The producer, created on first use.
    fn producer(&self) -> Result<FutureProducer<SinkClient>, SinkError> {
        let mut slot = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let producer: FutureProducer<SinkClient> = self
            .client_config
            .create_with_context(SinkClient(self.diagnostics.clone()))
            .map_err(|e| {
                SinkError::Fatal(format!(
                    "cannot start the Kafka producer: {}",
                    self.diagnostics.redact(&e.to_string())
                ))
            })?;
        *slot = Some(producer.clone());
        Ok(producer)
    }

    /// A producer whose id was fenced or lost, or that raised a fatal error, delivers nothing
    /// more (librdkafka: the application must create a new one; a fenced idempotent producer is
    /// not even reported as fatal, it fails every record). Seen after an outage longer than
    /// `message_timeout` against brokers that refuse the epoch bump librdkafka then asks for:
    /// every later record failed, and went to the DLQ. The next write creates a new producer
    /// (a new producer id); writes still holding the old one fail and are retried.
    fn replace(&self, used: &FutureProducer<SinkClient>) {
        let mut slot = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        let same = slot
            .as_ref()
            .is_some_and(|p| std::ptr::eq(p.client().native_ptr(), used.client().native_ptr()));
        if !same {
            return; // another write replaced it already
        }
        let why = used
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{code:?}: {}", self.diagnostics.redact(&reason)))
            .unwrap_or_else(|| "its producer id was fenced or lost".into());
        tracing::warn!(
            component = %self.diagnostics.name(),
            "the Kafka producer cannot produce any more ({why}); replacing it with a new one and \
             retrying the records it could not deliver"
        );
        if let Some(old) = slot.take() {
            // Destroying a client waits for its threads: not on the runtime's.
            tokio::task::spawn_blocking(move || drop(old));
        }
    }

    fn destination(&self, record: &Record) -> Result<Destination, String> {
        let cx = TemplateContext {
            pipeline: &self.pipeline,
        };
        let dynamic = self.static_topic.is_none()
            || self.key.is_some()
            || self.partition.is_some()
            || !self.headers.is_empty();
        // Templates may decode the value; do it on a view so the batch stays shared.
        let mut view = dynamic.then(|| record.clone());
        let mut render = |t: &Template, what: &str| -> Result<String, String> {
            let view = view.as_mut().expect("dynamic templates have a view");
            t.render_text(view, &cx)
                .map_err(|e| format!("cannot render the {what} template: {e}"))
        };
        let topic = match &self.static_topic {
            Some(t) => t.clone(),
            None => render(&self.topic, "topic")?,
        };
        if topic.is_empty() {
            return Err("the topic template rendered an empty topic name".into());
        }
        let key = match &self.key {
            Some(k) => Some(render(k, "key")?.into_bytes()),
            None => None,
        };
        let partition = match &self.partition {
            Some(p) => {
                let text = render(p, "partition")?;
                Some(text.trim().parse::<i32>().map_err(|_| {
                    format!("the partition template rendered {text:?}, not a partition number")
                })?)
            }
            None => None,
        };
        let mut extra_headers = Vec::with_capacity(self.headers.len());
        for (name, t) in &self.headers {
            extra_headers.push((name.clone(), render(t, &format!("header {name}"))?));
        }
        Ok(Destination {
            topic,
            key,
            partition,
            extra_headers,
        })
    }
}

#[async_trait]
impl Sink for KafkaSink {
    /// Writes enqueue in the order they start and the idempotent producer keeps that order per
    /// partition, so several batches in flight keep per-partition order (until a runner retry).
    fn default_max_in_flight(&self) -> usize {
        4
    }

    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let producer = self.producer()?;
        // Taken on the write's first poll (the runner polls writes once in batch order) and held
        // across waits for queue room, so batches enter librdkafka's queue in order.
        let turn = self.enqueue_turn.lock().await;
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; records.len()];
        let mut deliveries = Vec::with_capacity(records.len());
        // Whether an error said this producer cannot go on (fenced, lost id, fatal).
        let mut replace = false;
        for (i, record) in records.iter().enumerate() {
            let dest = match self.destination(record) {
                Ok(d) => d,
                Err(e) => {
                    outcomes[i] = Some(RecordOutcome::Fatal(e));
                    continue;
                }
            };
            let payload = record.value.to_bytes();
            let mut headers =
                OwnedHeaders::new_with_capacity(record.headers.len() + dest.extra_headers.len());
            for h in &record.headers {
                headers = headers.insert(KHeader {
                    key: &h.name,
                    value: h.value.as_deref(),
                });
            }
            for (name, value) in &dest.extra_headers {
                headers = headers.insert(KHeader {
                    key: name,
                    value: Some(value.as_bytes()),
                });
            }
            let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&dest.topic)
                .payload(&payload[..])
                .headers(headers);
            let key = dest.key.as_deref().or(record.key.as_deref());
            if let Some(k) = key {
                fr = fr.key(k);
            }
            if let Some(p) = dest.partition {
                fr = fr.partition(p);
            }
            if let Some(ts) = record.timestamp {
                fr = fr.timestamp(ts);
            }
            // Enqueue; when librdkafka's local queue is full, wait for deliveries to make room.
            let mut waited = Duration::ZERO;
            loop {
                match producer.send_result(fr) {
                    Ok(f) => {
                        deliveries.push((i, f));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if waited < Duration::from_secs(60) =>
                    {
                        fr = back;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        waited += Duration::from_millis(2);
                    }
                    Err((e, _)) => {
                        replace |= e.rdkafka_error_code().is_some_and(needs_new_producer);
                        outcomes[i] = Some(outcome(&e, &dest.topic, &self.diagnostics));
                        break;
                    }
                }
            }
        }
        drop(turn);
        for (i, f) in deliveries {
            outcomes[i] = Some(match f.await {
                Ok(Ok(_)) => RecordOutcome::Delivered,
                Ok(Err((e, m))) => {
                    replace |= e.rdkafka_error_code().is_some_and(needs_new_producer);
                    outcome(&e, rdkafka::Message::topic(&m), &self.diagnostics)
                }
                Err(_) => {
                    RecordOutcome::Retriable("the producer was closed before delivery".into())
                }
            });
        }
        let outcomes: Vec<RecordOutcome> = outcomes
            .into_iter()
            .map(|o| o.expect("every record has an outcome"))
            .collect();
        if outcomes.contains(&RecordOutcome::Delivered) {
            self.diagnostics.connected();
        }
        // A fatal error fails records with `Fatal`, one of those codes: no separate check.
        if replace {
            self.replace(&producer);
        }
        if outcomes.iter().all(|o| *o == RecordOutcome::Delivered) {
            Ok(())
        } else {
            Err(SinkError::partial(outcomes))
        }
    }

    async fn healthcheck(&self) -> Result<(), SinkError> {
        let producer = self.producer()?;
        let bootstrap = self.bootstrap.clone();
        let topic = self.static_topic.clone();
        let diagnostics = self.diagnostics.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(topic.as_deref(), Duration::from_secs(10))
                .map_err(|e| {
                    let detail = diagnostics.summary();
                    SinkError::retriable(format!(
                        "cannot reach the Kafka brokers at {bootstrap}{}: {e}{}",
                        diagnostics
                            .explain()
                            .map(|h| format!(" ({h})"))
                            .unwrap_or_default(),
                        detail.map(|d| format!("; last client error: {d}")).unwrap_or_default()
                    ))
                })
                .and_then(|md| match (topic, md.topics().first()) {
                    (Some(t), Some(mt)) if mt.error().is_some() || mt.partitions().is_empty() => {
                        Err(SinkError::Fatal(format!(
                            "topic {t:?} does not exist on {bootstrap}; create it (Weir does not create topics)"
                        )))
                    }
                    _ => Ok(()),
                })
        })
        .await
        .map_err(|e| SinkError::Fatal(e.to_string()))?
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let Some(producer) = self
            .producer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return Ok(()); // never used
        };
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await
            .map_err(|e| SinkError::Fatal(e.to_string()))?
            .map_err(|e| SinkError::retriable(format!("producer flush failed: {e}")))
    }
}
