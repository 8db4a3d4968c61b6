//! The Kafka source and sink against a real Kafka-protocol broker (Tansu): filtering end to end,
//! resuming, consumer groups, backpressure and dead letters. Each test starts its own
//! broker (`WEIR_TANSU`, installed by `scripts/test.sh`).

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Value as Json, json};
use support::*;
use tokio_util::sync::CancellationToken;
use weir_runner::Runtime;
use weir_runner::runtime::builtin_registry;

/// librdkafka options every test client of Weir uses: Tansu holds a new group's JoinGroup for
/// half the session timeout, so keep it short.
const FAST_GROUP: &str = "\"session.timeout.ms\": 6000\n        \"heartbeat.interval.ms\": 500";

fn pipeline(bootstrap: &str, input: &str, group: &str, transforms: &str, sinks: &str) -> String {
    format!(
        r#"pipelines:
  relay:
    source:
      type: kafka
      bootstrap_servers: "{bootstrap}"
      topics: [{input}]
      group_id: {group}
      start_from: earliest
      drain_timeout: 10s
      options:
        {FAST_GROUP}
    transforms: {transforms}
    sinks:
{sinks}
"#
    )
}

fn kafka_sink(bootstrap: &str, topic: &str) -> String {
    format!(
        "      - {{ type: kafka, bootstrap_servers: \"{bootstrap}\", topic: {topic}, max_in_flight: 1 }}\n"
    )
}

fn start(yaml: &str) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let registry = builtin_registry().unwrap();
    let rt = Runtime::from_yaml_str("test.yaml", yaml, &registry)
        .unwrap_or_else(|e| panic!("pipeline does not build: {e}"));
    let token = CancellationToken::new();
    let t = token.clone();
    let handle = tokio::spawn(async move {
        rt.run(t).await.expect("pipeline failed");
    });
    (token, handle)
}

async fn stop(token: CancellationToken, handle: tokio::task::JoinHandle<()>) {
    token.cancel();
    tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("pipeline did not stop within 60s")
        .expect("pipeline task panicked");
}

/// `n` transactions with keys k0..k29, spread by key over the partitions.
fn transactions(from: usize, n: usize) -> Vec<Msg> {
    (from..from + n)
        .map(|i| {
            Msg::new(
                format!("k{}", i % 30),
                json!({"seq": i, "amount": (i * 37) % 1000, "country": if i % 4 == 0 { "NL" } else { "US" }}).to_string(),
            )
        })
        .collect()
}

fn seq(g: &Got) -> u64 {
    let v: Json = serde_json::from_str(&g.value).unwrap();
    v["seq"].as_u64().unwrap()
}

/// For every key, the sequence numbers arrive in increasing order (a key maps to one partition).
fn assert_ordered_per_key(got: &[Got]) {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut sorted = got.to_vec();
    sorted.sort_by_key(|g| (g.partition, g.offset));
    for g in &sorted {
        let k = g.key.clone().unwrap_or_default();
        let s = seq(g);
        if let Some(prev) = last.insert(k.clone(), s) {
            assert!(prev < s, "key {k}: seq {s} after {prev}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_filter_kafka_delivers_exactly_the_matching_records_in_order() {
    let broker = Broker::start();
    let b = broker.addr();
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    create_topics(&b, &[&input, &output], 3).await;
    produce(&b, &input, &transactions(0, 3000), &[]).await;

    let filter = "[ { type: filter, patterns: [ { value: { country: [NL] } } ] } ]";
    let (token, handle) = start(&pipeline(
        &b,
        &input,
        &group,
        filter,
        &kafka_sink(&b, &output),
    ));
    let expected: HashSet<u64> = (0..3000u64).filter(|i| i % 4 == 0).collect();
    let got = tokio::task::spawn_blocking({
        let (b, output) = (b.clone(), output.clone());
        move || {
            consume_all(
                &b,
                &output,
                3,
                750,
                Duration::from_secs(2),
                Duration::from_secs(90),
            )
        }
    })
    .await
    .unwrap();
    stop(token, handle).await;

    let seqs: Vec<u64> = got.iter().map(seq).collect();
    let unique_seqs: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(seqs.len(), unique_seqs.len(), "duplicates in the output");
    assert_eq!(unique_seqs, expected);
    assert_ordered_per_key(&got);
    // Keys and values pass through untouched.
    for g in &got {
        let s = seq(g);
        assert_eq!(g.key.as_deref(), Some(format!("k{}", s % 30).as_str()));
    }
    // After a clean stop, everything read is committed: 3000 records over 3 partitions.
    let committed: i64 = committed(&b, &group, &input, 3)
        .into_iter()
        .map(|o| o.unwrap_or(0))
        .sum();
    assert_eq!(committed, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_resumes_where_it_stopped_without_duplicates() {
    let broker = Broker::start();
    let b = broker.addr();
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    create_topics(&b, &[&input, &output], 2).await;
    produce(&b, &input, &transactions(0, 500), &[]).await;
    let yaml = pipeline(&b, &input, &group, "[]", &kafka_sink(&b, &output));

    let (token, handle) = start(&yaml);
    let first = tokio::task::spawn_blocking({
        let (b, output) = (b.clone(), output.clone());
        move || {
            consume_all(
                &b,
                &output,
                2,
                500,
                Duration::from_millis(500),
                Duration::from_secs(90),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(first.len(), 500);
    stop(token, handle).await;

    produce(&b, &input, &transactions(500, 500), &[]).await;
    let (token, handle) = start(&yaml);
    let all = tokio::task::spawn_blocking({
        let (b, output) = (b.clone(), output.clone());
        move || {
            consume_all(
                &b,
                &output,
                2,
                1000,
                Duration::from_secs(3),
                Duration::from_secs(90),
            )
        }
    })
    .await
    .unwrap();
    stop(token, handle).await;

    let seqs: Vec<u64> = all.iter().map(seq).collect();
    let set: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(set, (0..1000).collect::<HashSet<u64>>());
    assert_eq!(
        seqs.len(),
        1000,
        "a clean restart must not redeliver anything"
    );
}
