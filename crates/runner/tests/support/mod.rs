//! Helpers for the integration tests that talk to a real Kafka-protocol broker (Tansu, started by
//! `scripts/test.sh` or `scripts/dev-kafka.sh`), through an independent rdkafka client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// The broker's address, from `WEIR_TEST_KAFKA`. Fails loudly when it is not set or not listening.
pub fn bootstrap() -> String {
    let addr = std::env::var("WEIR_TEST_KAFKA").unwrap_or_else(|_| {
        panic!(
            "WEIR_TEST_KAFKA is not set: these tests need a Kafka-protocol broker. Run them through \
             scripts/test.sh, or start one with scripts/dev-kafka.sh and export \
             WEIR_TEST_KAFKA=127.0.0.1:19092"
        )
    });
    if let Err(e) = std::net::TcpStream::connect_timeout(
        &addr.parse().expect("WEIR_TEST_KAFKA is host:port"),
        Duration::from_secs(3),
    ) {
        panic!(
            "no broker listening at WEIR_TEST_KAFKA={addr}: {e}. Start it with scripts/dev-kafka.sh"
        );
    }
    addr
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000_000;
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// Creates topics through the Kafka admin API (Tansu does not auto-create them).
pub async fn create_topics(bootstrap: &str, names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create().unwrap();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .expect("create_topics request failed");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

/// A record to produce.
#[derive(Debug, Clone, Default)]
pub struct Msg {
    pub key: Option<String>,
    pub value: String,
    pub partition: Option<i32>,
    pub headers: Vec<(String, String)>,
}

impl Msg {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Msg {
            key: Some(key.into()),
            value: value.into(),
            ..Default::default()
        }
    }
}

/// Produces every message and waits until the broker acknowledged all of them.
pub async fn produce(bootstrap: &str, topic: &str, msgs: &[Msg], extra: &[(&str, &str)]) {
    let mut cfg = client_config(bootstrap);
    cfg.set("linger.ms", "5").set("enable.idempotence", "true");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let producer: FutureProducer = cfg.create().unwrap();
    let mut futures = Vec::with_capacity(msgs.len());
    for m in msgs {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &m.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_str()),
            });
        }
        let mut r = FutureRecord::to(topic).payload(&m.value).headers(headers);
        if let Some(k) = &m.key {
            r = r.key(k);
        }
        if let Some(p) = m.partition {
            r = r.partition(p);
        }
        loop {
            match producer.send_result(r) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err((_, back)) => {
                    r = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    for f in futures {
        f.await
            .expect("producer dropped")
            .unwrap_or_else(|(e, _)| panic!("test producer failed: {e}"));
    }
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
    pub headers: BTreeMap<String, String>,
}

/// Reads every partition of `topic` from the beginning (no consumer group) until `want` records
/// arrived and then `quiet` passed without more, or `timeout` ran out. Blocking.
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    quiet: Duration,
    timeout: Duration,
) -> Vec<Got> {
    let consumer: BaseConsumer = client_config(bootstrap)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut last = Instant::now();
    while start.elapsed() < timeout {
        if got.len() >= want && last.elapsed() >= quiet {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = Instant::now();
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                got.push(Got {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    headers,
                });
            }
            Some(Err(e)) => panic!("test consumer error: {e}"),
            None => {}
        }
    }
    got
}

/// The committed offsets of `group` for each partition of `topic` (None = nothing committed).
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = client_config(bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let c = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    (0..partitions)
        .map(|p| match c.find_partition(topic, p).unwrap().offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// Waits for a condition, polling; panics with `what` after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
