//! The kafka source against a real broker (Tansu): the core conformance checks, including the
//! replay of what was not delivered. Pipelines through it are tested in weir-runtime and weir.

use std::time::Duration;

use serde_json::json;
use weir_core::testing::{source_conformance, source_replay_conformance};
use weir_core::{BuildContext, PluginConfig, Source};
use weir_testkit::{Broker, Msg, create_topics, produce, unique};

use super::KafkaSourceConfig;

fn source(broker: &Broker, topic: &str, group: &str) -> Box<dyn Source> {
    let config: KafkaSourceConfig = serde_json::from_value(json!({
        "bootstrap_servers": broker.addr(),
        "topics": [topic],
        "group_id": group,
        "start_from": "earliest",
        "commit_interval": "100ms",
        "options": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    }))
    .unwrap();
    config.build(&BuildContext::for_test("p", "kafka")).unwrap()
}

async fn topic_with(broker: &Broker, n: usize) -> String {
    let topic = unique("conformance");
    create_topics(&broker.addr(), &[&topic], 1).await;
    let msgs: Vec<Msg> = (0..n)
        .map(|i| Msg::new(format!("k{i}"), json!({"seq": i}).to_string()))
        .collect();
    produce(&broker.addr(), &topic, &msgs, &[]).await;
    topic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_source_conformance() {
    let broker = Broker::start();
    let topic = topic_with(&broker, 20).await;
    let run = source_conformance(source(&broker, &topic, &unique("g")), 20, true)
        .await
        .unwrap();
    assert_eq!(run.records[0].key.as_deref(), Some(&b"k0"[..]));
    assert_eq!(run.records[19].meta.origin.as_ref().unwrap().offset, 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_records_whose_acks_failed() {
    let broker = Broker::start();
    let topic = topic_with(&broker, 20).await;
    let group = unique("g");
    let b = &broker;
    let make = || source(b, &topic, &group);
    let again = source_replay_conformance(&make, 20, Duration::from_secs(20))
        .await
        .unwrap();
    // Delivered records were committed: the second run starts at the first failed one.
    assert_eq!(again[0].meta.origin.as_ref().unwrap().offset, 10);
}
