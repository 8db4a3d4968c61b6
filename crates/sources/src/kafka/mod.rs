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
mod consumer;
mod poll;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use weir_core::{BuildContext, BuildError, PluginConfig, Source, SourceContext, SourceError};
use weir_kafka::{ClientProperties, RESERVED_CONSUMER_OPTIONS, client_properties};

pub use config::{KafkaSourceConfig, StartFrom};

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
                // Checked and translated as librdkafka will run it (POSIX, not Rust syntax).
                if let Err(e) = weir_kafka::TopicPattern::new(p) {
                    return Err(BuildError::at("topic_pattern", e.to_string()));
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
        weir_kafka::check_reserved(&self.options, RESERVED_CONSUMER_OPTIONS)
            .map_err(|(at, message)| BuildError::at(at, message))?;
        let props = self.properties(cx).map_err(|e| BuildError::at("", e))?;
        // librdkafka checks every property name and value here, without connecting.
        if let Err(e) = weir_kafka::client_config(&props).create_native_config() {
            return Err(BuildError::at("options", props.redact(&e.to_string())));
        }
        Ok(Box::new(KafkaSource {
            config: self,
            props,
            telemetry: cx.telemetry.clone(),
        }))
    }
}

weir_core::register_plugin!(KafkaSourceConfig);

impl KafkaSourceConfig {
    /// The client properties for reading and setting this source's group offsets from outside
    /// the pipeline (the operations API): brokers, TLS, SASL and options.
    pub fn admin_properties(&self, pipeline: &str) -> Result<ClientProperties, String> {
        let mut p = client_properties(
            &self.bootstrap_servers,
            self.tls.as_ref(),
            self.sasl.as_ref(),
            &format!("weir-{pipeline}-admin"),
        )
        .map_err(|e| e.to_string())?;
        p.apply_options(&self.options);
        Ok(p)
    }

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
        if p.get("statistics.interval.ms").is_none() {
            // The consumer lag gauge comes from librdkafka's statistics.
            p.set("statistics.interval.ms", "5000");
        }
        Ok(p)
    }
}

/// The running source.
pub struct KafkaSource {
    config: KafkaSourceConfig,
    props: ClientProperties,
    telemetry: weir_core::telemetry::ComponentTelemetry,
}

#[async_trait]
impl Source for KafkaSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), SourceError> {
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || poll::consume(*self, cx, handle))
            .await
            .map_err(|e| SourceError::Other(format!("kafka consumer thread failed: {e}")))?
    }
}
