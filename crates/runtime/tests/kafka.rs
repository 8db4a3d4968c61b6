//! The Kafka source and sink against a real Kafka-protocol broker (Tansu): filtering end to end,
//! resuming, consumer groups, backpressure and dead letters. Each test starts its own
//! broker (`WEIR_TANSU`, installed by `scripts/test.sh`).

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Value as Json, json};
use support::pipelines::*;
use support::*;

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
    format!("      - {{ type: kafka, bootstrap_servers: \"{bootstrap}\", topic: {topic} }}\n")
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
    let got = read_topic(
        &b,
        &output,
        3,
        750,
        Duration::from_secs(2),
        Duration::from_secs(90),
    )
    .await;
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
    let first = read_topic(
        &b,
        &output,
        2,
        500,
        Duration::from_millis(500),
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(first.len(), 500);
    stop(token, handle).await;

    produce(&b, &input, &transactions(500, 500), &[]).await;
    let (token, handle) = start(&yaml);
    let all = read_topic(
        &b,
        &output,
        2,
        1000,
        Duration::from_secs(3),
        Duration::from_secs(90),
    )
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_goes_to_the_kafka_dlq_with_error_headers_and_the_rest_flow() {
    let broker = Broker::start();
    let b = broker.addr();
    let (input, output, dlq, group) = (unique("in"), unique("out"), unique("dlq"), unique("g"));
    create_topics(&b, &[&input, &output, &dlq], 1).await;
    let mut msgs = transactions(0, 40);
    let poison = Msg {
        key: Some("poison-key".into()),
        value: b"{not json".to_vec(),
        partition: None,
        headers: vec![("trace-id".into(), "abc123".into())],
    };
    msgs.insert(20, poison);
    produce(&b, &input, &msgs, &[]).await;

    let filter = "[ { type: filter, name: only-nl, patterns: [ { value: { country: [NL] } } ] } ]";
    let mut yaml = pipeline(&b, &input, &group, filter, &kafka_sink(&b, &output));
    yaml.push_str(&format!(
        "    dlq: {{ type: kafka, bootstrap_servers: \"{b}\", topic: {dlq} }}\n"
    ));
    let (token, handle) = start(&yaml);
    let dead = read_topic(
        &b,
        &dlq,
        1,
        1,
        Duration::from_secs(1),
        Duration::from_secs(60),
    )
    .await;
    let good = read_topic(
        &b,
        &output,
        1,
        10,
        Duration::from_secs(1),
        Duration::from_secs(60),
    )
    .await;
    stop(token, handle).await;

    assert_eq!(dead.len(), 1, "exactly the poison record is dead-lettered");
    let d = &dead[0];
    assert_eq!(d.key.as_deref(), Some("poison-key"));
    assert_eq!(d.value, "{not json", "the original bytes are kept");
    let h = &d.headers;
    assert_eq!(h.get("trace-id").map(String::as_str), Some("abc123"));
    assert_eq!(h.get("__connect.errors.topic"), Some(&input));
    assert_eq!(
        h.get("__connect.errors.partition").map(String::as_str),
        Some("0")
    );
    assert_eq!(
        h.get("__connect.errors.offset").map(String::as_str),
        Some("20")
    );
    assert_eq!(
        h.get("__connect.errors.stage").map(String::as_str),
        Some("transform")
    );
    assert_eq!(
        h.get("__connect.errors.connector.name").map(String::as_str),
        Some("relay")
    );
    assert_eq!(
        h.get("weir.errors.component").map(String::as_str),
        Some("only-nl")
    );
    assert!(h.contains_key("__connect.errors.class.name"), "{h:?}");
    assert!(
        h.get("__connect.errors.exception.message")
            .is_some_and(|m| !m.is_empty()),
        "{h:?}"
    );
    // The good records after the poison one flowed too (seq 0, 4, ... 36: 10 records).
    let seqs: HashSet<u64> = good.iter().map(seq).collect();
    assert_eq!(seqs, (0..40).filter(|i| i % 4 == 0).collect());
    // Everything, the poison record included, is committed.
    assert_eq!(committed(&b, &group, &input, 1), vec![Some(41)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dlq_write_stops_the_pipeline_and_leaves_the_offset_uncommitted() {
    let broker = Broker::start();
    let b = broker.addr();
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    create_topics(&b, &[&input, &output], 1).await;
    let mut msgs = transactions(0, 10);
    msgs.insert(5, Msg::new("poison", "{not json"));
    produce(&b, &input, &msgs, &[]).await;

    let filter = "[ { type: filter, patterns: [ { value: { country: [NL] } } ] } ]";
    let mut yaml = pipeline(&b, &input, &group, filter, &kafka_sink(&b, &output));
    // The DLQ topic does not exist; fail fast instead of waiting for it to appear.
    yaml.push_str(&format!(
        "    dlq: {{ type: kafka, bootstrap_servers: \"{b}\", topic: {}, message_timeout: 3s, options: {{ \"topic.metadata.propagation.max.ms\": 1000 }} }}\n",
        unique("missing-dlq")
    ));
    let rt = build(&yaml);
    let result = tokio::time::timeout(Duration::from_secs(90), rt.run(Default::default()))
        .await
        .expect("the pipeline must stop by itself when the DLQ cannot take a record");
    let err = result.expect_err("a DLQ that cannot take a record fails the pipeline");
    assert!(err.to_string().contains("relay"), "{err}");
    // Records before the poison one (offsets 0..4) may be committed; the poison record (offset 5)
    // and everything after it must not be.
    let c = committed(&b, &group, &input, 1)[0];
    assert!(
        c.is_none_or(|o| o <= 5),
        "committed {c:?} past the record the DLQ lost"
    );
}

/// Dead letters that compress well (so librdkafka, which sends a batch uncompressed when that is
/// smaller, has a reason to compress them).
fn compressible_poison(n: usize) -> Vec<Msg> {
    (0..n)
        .map(|i| {
            Msg::new(
                format!("poison-{i}"),
                format!("{{not json {i} {}", "x".repeat(600)),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_input_of_every_codec_is_read_and_written_back_compressed() {
    use weir_testkit::batches::{Codec, partition_batches};
    // Snappy needs the memory engine (see `Broker::start_in_memory`); every reader here starts at
    // offset 0 of a 200-record topic, which that engine serves correctly.
    let broker = Broker::start_in_memory();
    let b = broker.addr();
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    let mut yaml = String::from("pipelines:\n");
    let mut topics = Vec::new();
    for codec in codecs {
        let (input, output, dlq) = (
            unique(&format!("in-{codec}")),
            unique(&format!("out-{codec}")),
            unique(&format!("dlq-{codec}")),
        );
        create_topics(&b, &[&input, &output, &dlq], 1).await;
        let mut msgs = transactions(0, 200);
        msgs.extend(compressible_poison(20));
        produce(&b, &input, &msgs, &[("compression.codec", codec)]).await;

        yaml.push_str(&format!(
            r#"  relay-{codec}:
    source:
      type: kafka
      bootstrap_servers: "{b}"
      topics: [{input}]
      group_id: {group}
      start_from: earliest
      options:
        {FAST_GROUP}
    transforms: [ {{ type: filter, patterns: [ {{ value: {{ seq: [ {{ exists: true }} ] }} }} ] }} ]
    sinks:
      - {{ type: kafka, bootstrap_servers: "{b}", topic: {output}, compression: {codec} }}
    dlq: {{ type: kafka, bootstrap_servers: "{b}", topic: {dlq}, compression: {codec} }}
"#,
            group = unique("g")
        ));
        topics.push((codec, input, output, dlq));
    }
    let (token, handle) = start(&yaml);
    for (codec, input, output, dlq) in &topics {
        let got = read_topic(
            &b,
            output,
            1,
            200,
            Duration::from_millis(500),
            Duration::from_secs(60),
        )
        .await;
        let expected: Vec<Vec<u8>> = transactions(0, 200).into_iter().map(|m| m.value).collect();
        let values: Vec<Vec<u8>> = got.into_iter().map(|g| g.raw).collect();
        assert_eq!(values, expected, "{codec}: records differ");
        let dead = read_topic(
            &b,
            dlq,
            1,
            20,
            Duration::from_millis(500),
            Duration::from_secs(60),
        )
        .await;
        let expected: Vec<Vec<u8>> = compressible_poison(20)
            .into_iter()
            .map(|m| m.value)
            .collect();
        let values: Vec<Vec<u8>> = dead.into_iter().map(|g| g.raw).collect();
        assert_eq!(values, expected, "{codec}: dead letters differ");
        // What the broker holds, read with a raw Fetch: every batch compressed with the codec,
        // the input's (the test producer's) as well as what Weir wrote.
        for (topic, records) in [(input, 220), (output, 200), (dlq, 20)] {
            let (bb, t) = (b.clone(), topic.clone());
            let batches = tokio::task::spawn_blocking(move || {
                partition_batches(&bb, &t, 0, Duration::from_secs(30))
            })
            .await
            .unwrap();
            assert_eq!(
                batches.iter().map(|h| h.records as usize).sum::<usize>(),
                records,
                "{topic}: {batches:?}"
            );
            for h in &batches {
                assert_eq!(h.magic, 2, "{topic}: {h:?}");
                assert_eq!(
                    h.codec,
                    Codec::named(codec),
                    "{topic}: a batch is not {codec}-compressed: {h:?}"
                );
            }
        }
    }
    stop(token, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_to_kafka_example_routes_keys_headers_and_dead_letters() {
    let broker = Broker::start();
    let b = broker.addr();
    create_topics(&b, &["orders", "alerts", "orders-dlq"], 3).await;
    let mut orders: Vec<Msg> = (0..30)
        .map(|i| {
            let status = if i % 2 == 0 { "paid" } else { "open" };
            Msg::new(
                format!("o{i}"),
                json!({"id": i, "status": status, "amount": i * 10, "customer": {"id": format!("c-{}", i % 3)}})
                    .to_string(),
            )
        })
        .collect();
    orders.push(Msg::new("bad", "not json at all"));
    produce(&b, "orders", &orders, &[]).await;

    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kafka-to-kafka.yaml");
    let yaml = std::fs::read_to_string(path)
        .unwrap()
        .replace("${KAFKA:-127.0.0.1:9092}", &b)
        .replace(
            "start_from: earliest",
            &format!("start_from: earliest\n      options:\n        {FAST_GROUP}"),
        );
    let (token, handle) = start(&yaml);
    // Paid orders over 100: even i with i * 10 > 100, i.e. 12, 14, ..., 28.
    let expected: HashSet<u64> = (0..30u64).filter(|i| i % 2 == 0 && i * 10 > 100).collect();
    let alerts = read_topic(
        &b,
        "alerts",
        3,
        expected.len(),
        Duration::from_secs(1),
        Duration::from_secs(60),
    )
    .await;
    let dead = read_topic(
        &b,
        "orders-dlq",
        3,
        1,
        Duration::from_millis(500),
        Duration::from_secs(60),
    )
    .await;
    stop(token, handle).await;

    let ids: HashSet<u64> = alerts
        .iter()
        .map(|g| {
            serde_json::from_str::<Json>(&g.value).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ids,
        (0..30u64).filter(|i| i % 2 == 0 && i * 10 > 100).collect()
    );
    for g in &alerts {
        let v: Json = serde_json::from_str(&g.value).unwrap();
        assert_eq!(
            g.key.as_deref(),
            v["customer"]["id"].as_str(),
            "key from the template"
        );
        assert_eq!(
            g.headers.get("x-weir-pipeline").map(String::as_str),
            Some("order-alerts")
        );
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value, "not json at all");
    assert_eq!(dead[0].key.as_deref(), Some("bad"));
}

/// A pipeline's source with `extra` lines instead of `topics` and `start_from`.
fn source_with(b: &str, group: &str, extra: &str, out: &str) -> String {
    format!(
        r#"pipelines:
  relay:
    source:
      type: kafka
      bootstrap_servers: "{b}"
      group_id: {group}
      drain_timeout: 10s
{extra}
      options:
        {FAST_GROUP}
        "topic.metadata.refresh.interval.ms": 1000
    sinks:
{}"#,
        kafka_sink(b, out)
    )
}

/// Produces a probe, then looks for it in `out` for 3 s, until one arrived: the consumer then has its partitions.
async fn wait_until_consuming(b: &str, input: &str, out: &str) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut probes = 0;
    loop {
        produce(
            b,
            input,
            &[Msg::new("probe", json!({"probe": probes}).to_string())],
            &[],
        )
        .await;
        probes += 1;
        let got = read_topic(
            b,
            out,
            1,
            1,
            Duration::from_millis(100),
            Duration::from_secs(3),
        )
        .await;
        if !got.is_empty() {
            return probes;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pipeline never consumed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_from_latest_skips_what_came_before_a_new_group_and_delivers_everything_after() {
    let broker = Broker::start();
    let b = broker.addr();
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    create_topics(&b, &[&input], 1).await;
    create_topics(&b, &[&output], 1).await;
    produce(&b, &input, &transactions(0, 200), &[]).await;
    let yaml = source_with(
        &b,
        &group,
        &format!("      topics: [{input}]\n      start_from: latest"),
        &output,
    );
    let (token, handle) = start(&yaml);
    wait_until_consuming(&b, &input, &output).await;
    produce(&b, &input, &transactions(1000, 300), &[]).await;
    let got = read_topic(
        &b,
        &output,
        1,
        301,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    stop(token, handle).await;
    let seqs: Vec<u64> = got
        .iter()
        .filter_map(|g| serde_json::from_str::<Json>(&g.value).unwrap()["seq"].as_u64())
        .collect();
    assert!(
        seqs.iter().all(|s| *s >= 1000),
        "records from before the start were delivered: {seqs:?}"
    );
    assert_eq!(
        seqs,
        (1000..1300).collect::<Vec<_>>(),
        "every record after the start, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_matching_the_pattern_created_later_is_read_from_its_beginning() {
    let broker = Broker::start();
    let b = broker.addr();
    let prefix = unique("tp");
    let (first, later, output, group) = (
        format!("{prefix}-a"),
        format!("{prefix}-b"),
        unique("out"),
        unique("g"),
    );
    create_topics(&b, &[&first, &output], 1).await;
    let yaml = source_with(
        &b,
        &group,
        &format!("      topic_pattern: \"^{prefix}-.*\"\n      start_from: earliest"),
        &output,
    );
    let (token, handle) = start(&yaml);
    let probes = wait_until_consuming(&b, &first, &output).await;
    // Created after the pipeline started, with records already in it before it is noticed.
    create_topics(&b, &[&later], 1).await;
    produce(&b, &later, &transactions(0, 100), &[]).await;
    let got = read_topic(
        &b,
        &output,
        1,
        probes + 100,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    stop(token, handle).await;
    let seqs: Vec<u64> = got
        .iter()
        .filter_map(|g| serde_json::from_str::<Json>(&g.value).unwrap()["seq"].as_u64())
        .collect();
    assert_eq!(
        seqs,
        (0..100).collect::<Vec<_>>(),
        "the new topic, from its first record"
    );
}

/// `topic_pattern` is Rust regex syntax, and librdkafka subscribes with POSIX regex.h, where `\d`
/// is the letter `d`: passed through as written, `-\d$` would read `…-d` and miss `…-1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_pattern_escapes_mean_what_rust_regex_syntax_says() {
    let broker = Broker::start();
    let b = broker.addr();
    let prefix = unique("tp");
    let (digit, letter, output, group) = (
        format!("{prefix}-1"),
        format!("{prefix}-d"),
        unique("out"),
        unique("g"),
    );
    create_topics(&b, &[&digit, &letter, &output], 1).await;
    produce(&b, &digit, &transactions(0, 50), &[]).await;
    produce(&b, &letter, &transactions(1000, 50), &[]).await;
    let yaml = source_with(
        &b,
        &group,
        &format!("      topic_pattern: '{prefix}-\\d$'\n      start_from: earliest"),
        &output,
    );
    let (token, handle) = start(&yaml);
    // Until both topics' records could have arrived: 50 wanted, then 3 s with nothing more.
    let got = read_topic(
        &b,
        &output,
        1,
        50,
        Duration::from_secs(3),
        Duration::from_secs(60),
    )
    .await;
    stop(token, handle).await;
    let mut seqs: Vec<u64> = got.iter().map(seq).collect();
    seqs.sort();
    assert_eq!(
        seqs,
        (0..50).collect::<Vec<_>>(),
        "only {digit} matches `{prefix}-\\d$`, not {letter}"
    );
}

/// A DLQ whose brokers are unreachable fails retriably; it used to be retried for ever, the
/// pipeline stalled without a word. Now, after the DLQ's own retry budget (5 attempts when it
/// sets no `retry:`), the pipeline stops saying why, and nothing is committed past the record
/// the DLQ could not take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dlq_that_cannot_be_reached_stops_the_pipeline_after_its_retries() {
    let broker = Broker::start();
    let b = broker.addr();
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    create_topics(&b, &[&input, &output], 1).await;
    let mut msgs = transactions(0, 10);
    msgs.insert(5, Msg::new("poison", "{not json"));
    produce(&b, &input, &msgs, &[]).await;
    // Nothing listens there: every DLQ write times out after message_timeout.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let filter = "[ { type: filter, patterns: [ { value: { country: [NL] } } ] } ]";
    let mut yaml = pipeline(&b, &input, &group, filter, &kafka_sink(&b, &output));
    yaml.push_str(&format!(
        "    dlq: {{ type: kafka, bootstrap_servers: \"{nowhere}\", topic: dead, message_timeout: 2s }}\n"
    ));
    let rt = build(&yaml);
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(120), rt.run(Default::default()))
        .await
        .expect("the pipeline must stop by itself when the DLQ stays unreachable");
    let err = result
        .expect_err("an unreachable DLQ fails the pipeline")
        .to_string();
    assert!(
        err.contains("relay") && err.contains("dead-letter") && err.contains("after 5 attempt(s)"),
        "{err}"
    );
    assert!(err.contains("dead"), "the topic is named: {err}");
    eprintln!(
        "unreachable DLQ: stopped after {:?}: {err}",
        started.elapsed()
    );
    let c = committed(&b, &group, &input, 1)[0];
    assert!(
        c.is_none_or(|o| o <= 5),
        "committed {c:?} past the record the DLQ could not take"
    );
}
