//! A Kafka pipeline's consumer-group offsets, read, set and reset through the brokers (Kafka
//! Connect's KIP-875): changes only while the pipeline is stopped, so no member of the group
//! commits over them.

#[cfg(feature = "kafka")]
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
#[cfg(feature = "kafka")]
use weir_core::config::from_node;

#[cfg(feature = "kafka")]
use super::State;
use super::{Supervisor, SupervisorError};

/// One partition of a pipeline's consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartitionOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The offset of the next record the group reads, when it has committed one.
    pub committed: Option<i64>,
    /// The partition's log end offset.
    pub log_end: i64,
    /// Records not yet consumed.
    pub lag: Option<i64>,
}

/// A partition to move, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetChange {
    /// Topic.
    #[schema(min_length = 1)]
    pub topic: String,
    /// Partition.
    #[schema(minimum = 0)]
    pub partition: i32,
    /// The offset of the next record to read.
    #[schema(minimum = 0)]
    pub offset: i64,
}

#[cfg(feature = "kafka")]
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the brokers need to know about a pipeline's group.
#[cfg(feature = "kafka")]
struct Group {
    props: weir_kafka::ClientProperties,
    group: String,
    topics: Vec<String>,
    pattern: Option<String>,
    earliest: bool,
}

#[cfg(feature = "kafka")]
impl Supervisor {
    fn group(&self, name: &str) -> Result<(Group, State), SupervisorError> {
        let (spec, state) = self.spec(name)?;
        if spec.source.type_name != "kafka" {
            return Err(SupervisorError::NoOffsets(name.to_owned()));
        }
        let cfg: weir_sources::kafka::KafkaSourceConfig =
            from_node(&spec.source.config, &spec.source.path)
                .map_err(|e| SupervisorError::Kafka(e.message))?;
        let props = cfg.admin_properties(name).map_err(SupervisorError::Kafka)?;
        Ok((
            Group {
                props,
                group: cfg.group_id.clone(),
                topics: cfg.topics.clone(),
                pattern: cfg.topic_pattern.clone(),
                earliest: cfg.start_from == weir_sources::kafka::StartFrom::Earliest,
            },
            state,
        ))
    }

    pub(crate) fn must_be_stopped(name: &str, state: State) -> Result<(), SupervisorError> {
        if matches!(state, State::Stopped | State::Failed) {
            return Ok(());
        }
        Err(SupervisorError::WrongState(format!(
            "pipeline `{name}` is {}: offsets change only while it is stopped (POST /v1/pipelines/{name}/stop first)",
            state.as_str()
        )))
    }

    /// Per partition: the committed offset, the log end offset and the lag.
    pub async fn offsets(&self, name: &str) -> Result<Vec<PartitionOffset>, SupervisorError> {
        let (g, _) = self.group(name)?;
        tokio::task::spawn_blocking(move || {
            weir_kafka::admin::group_positions(
                &g.props,
                &g.group,
                &g.topics,
                g.pattern.as_deref(),
                TIMEOUT,
            )
        })
        .await
        .map_err(|e| SupervisorError::Kafka(e.to_string()))?
        .map(|v| {
            v.into_iter()
                .map(|p| PartitionOffset {
                    topic: p.topic,
                    partition: p.partition,
                    committed: p.committed,
                    log_end: p.log_end,
                    lag: p.lag,
                })
                .collect()
        })
        .map_err(|e| SupervisorError::Kafka(e.to_string()))
    }

    /// Sets partitions to offsets; only while the pipeline is stopped.
    pub async fn set_offsets(
        &self,
        name: &str,
        changes: Vec<OffsetChange>,
    ) -> Result<Vec<PartitionOffset>, SupervisorError> {
        let (g, state) = self.group(name)?;
        Self::must_be_stopped(name, state)?;
        let to: Vec<(String, i32, i64)> = changes
            .into_iter()
            .map(|c| (c.topic, c.partition, c.offset))
            .collect();
        tokio::task::spawn_blocking(move || {
            weir_kafka::admin::commit_offsets(&g.props, &g.group, &to, TIMEOUT)
        })
        .await
        .map_err(|e| SupervisorError::Kafka(e.to_string()))?
        .map_err(|e| SupervisorError::Kafka(e.to_string()))?;
        self.offsets(name).await
    }

    /// Moves the group back to where its `start_from` says a new group starts; only while the
    /// pipeline is stopped.
    pub async fn reset_offsets(&self, name: &str) -> Result<Vec<PartitionOffset>, SupervisorError> {
        let (g, state) = self.group(name)?;
        Self::must_be_stopped(name, state)?;
        tokio::task::spawn_blocking(move || {
            weir_kafka::admin::reset_offsets(
                &g.props,
                &g.group,
                &g.topics,
                g.pattern.as_deref(),
                g.earliest,
                TIMEOUT,
            )
        })
        .await
        .map_err(|e| SupervisorError::Kafka(e.to_string()))?
        .map_err(|e| SupervisorError::Kafka(e.to_string()))?;
        self.offsets(name).await
    }
}

/// Without Kafka support no pipeline has consumer-group offsets.
#[cfg(not(feature = "kafka"))]
impl Supervisor {
    /// Per partition: the committed offset, the log end offset and the lag.
    pub async fn offsets(&self, name: &str) -> Result<Vec<PartitionOffset>, SupervisorError> {
        self.status(name)?;
        Err(SupervisorError::NoOffsets(name.to_owned()))
    }
    /// Sets partitions to offsets.
    pub async fn set_offsets(
        &self,
        name: &str,
        _changes: Vec<OffsetChange>,
    ) -> Result<Vec<PartitionOffset>, SupervisorError> {
        self.offsets(name).await
    }
    /// Moves the group back to its `start_from`.
    pub async fn reset_offsets(&self, name: &str) -> Result<Vec<PartitionOffset>, SupervisorError> {
        self.offsets(name).await
    }
}
