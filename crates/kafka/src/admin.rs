//! A consumer group's offsets, read and set through the Kafka protocol (Kafka Connect's KIP-875
//! semantics for a connector's offsets): per partition the committed offset, the log end offset
//! and the lag; setting partitions to offsets; resetting the group to where `start_from` says.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::client::client_config;
use crate::settings::ClientProperties;

/// One partition of a group's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPosition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The offset of the next record the group will read, when it has committed one.
    pub committed: Option<i64>,
    /// The partition's first offset still retained (low watermark).
    pub log_start: i64,
    /// The partition's log end offset (high watermark).
    pub log_end: i64,
    /// Records not yet consumed (`log_end - committed`), when there is a committed offset.
    pub lag: Option<i64>,
}

/// The brokers could not be asked or refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AdminError(String);

fn consumer(props: &ClientProperties, group: &str) -> Result<BaseConsumer, AdminError> {
    let mut c = client_config(props);
    c.set("group.id", group);
    c.set("enable.auto.commit", "false");
    c.create()
        .map_err(|e| AdminError(props.redact(&format!("cannot create a Kafka client: {e}"))))
}

/// The partitions of `topics` (or of every topic matching `pattern`) as the brokers know them.
fn partitions(
    consumer: &BaseConsumer,
    props: &ClientProperties,
    topics: &[String],
    pattern: Option<&regex::Regex>,
    timeout: Duration,
) -> Result<Vec<(String, i32)>, AdminError> {
    let md = consumer
        .fetch_metadata(None, timeout)
        .map_err(|e| AdminError(props.redact(&format!("cannot read the topics' metadata: {e}"))))?;
    let mut out = Vec::new();
    for t in md.topics() {
        let wanted =
            topics.iter().any(|n| n == t.name()) || pattern.is_some_and(|p| p.is_match(t.name()));
        if wanted {
            out.extend(t.partitions().iter().map(|p| (t.name().to_owned(), p.id())));
        }
    }
    for t in topics {
        if !out.iter().any(|(n, _)| n == t) {
            return Err(AdminError(format!("topic `{t}` does not exist")));
        }
    }
    out.sort();
    Ok(out)
}

/// Compiles a subscription pattern for matching topic names, as the source subscribes it.
pub fn topic_pattern(p: &str) -> Result<regex::Regex, AdminError> {
    crate::TopicPattern::new(p)
        .map(|t| t.regex)
        .map_err(|e| AdminError(format!("topic_pattern: {e}")))
}

/// The group's committed offsets, the log end offsets and the lag of every partition.
pub fn group_positions(
    props: &ClientProperties,
    group: &str,
    topics: &[String],
    pattern: Option<&str>,
    timeout: Duration,
) -> Result<Vec<PartitionPosition>, AdminError> {
    let c = consumer(props, group)?;
    let pattern = pattern.map(topic_pattern).transpose()?;
    let parts = partitions(&c, props, topics, pattern.as_ref(), timeout)?;
    let mut tpl = TopicPartitionList::new();
    for (t, p) in &parts {
        tpl.add_partition(t, *p);
    }
    let committed = c
        .committed_offsets(tpl, timeout)
        .map_err(|e| AdminError(props.redact(&format!("cannot read the group's offsets: {e}"))))?;
    let mut out = Vec::new();
    for (t, p) in parts {
        let (low, high) = c.fetch_watermarks(&t, p, timeout).map_err(|e| {
            AdminError(props.redact(&format!("cannot read {t}[{p}]'s offsets: {e}")))
        })?;
        let committed = committed
            .find_partition(&t, p)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        out.push(PartitionPosition {
            lag: committed.map(|c| (high - c).max(0)),
            topic: t,
            partition: p,
            committed,
            log_start: low,
            log_end: high,
        });
    }
    Ok(out)
}

/// Commits `offsets` (topic, partition, next offset to read) for the group. The group must
/// have no active members (its pipeline stopped), or the brokers refuse.
pub fn commit_offsets(
    props: &ClientProperties,
    group: &str,
    offsets: &[(String, i32, i64)],
    timeout: Duration,
) -> Result<(), AdminError> {
    let c = consumer(props, group)?;
    let topics: Vec<String> = offsets.iter().map(|(t, _, _)| t.clone()).collect();
    let known = partitions(&c, props, &topics, None, timeout)?;
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in offsets {
        if !known.iter().any(|(kt, kp)| kt == t && kp == p) {
            return Err(AdminError(format!("{t}[{p}] does not exist")));
        }
        if *o < 0 {
            return Err(AdminError(format!(
                "{t}[{p}]: offsets are not negative, got {o}"
            )));
        }
        tpl.add_partition_offset(t, *p, Offset::Offset(*o))
            .map_err(|e| AdminError(e.to_string()))?;
    }
    c.commit(&tpl, CommitMode::Sync)
        .map_err(|e| AdminError(props.redact(&format!("the brokers refused the offsets: {e}"))))
}

/// Moves the group to the start (`earliest`) or the end of every partition, as a group with no
/// committed offsets would start.
pub fn reset_offsets(
    props: &ClientProperties,
    group: &str,
    topics: &[String],
    pattern: Option<&str>,
    earliest: bool,
    timeout: Duration,
) -> Result<Vec<(String, i32, i64)>, AdminError> {
    let c = consumer(props, group)?;
    let pattern = pattern.map(topic_pattern).transpose()?;
    let parts = partitions(&c, props, topics, pattern.as_ref(), timeout)?;
    let mut to = Vec::new();
    for (t, p) in parts {
        let (low, high) = c.fetch_watermarks(&t, p, timeout).map_err(|e| {
            AdminError(props.redact(&format!("cannot read {t}[{p}]'s offsets: {e}")))
        })?;
        to.push((t, p, if earliest { low } else { high }));
    }
    drop(c);
    commit_offsets(props, group, &to, timeout)?;
    Ok(to)
}
