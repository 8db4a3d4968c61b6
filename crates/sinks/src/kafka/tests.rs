//! Broker faults injected with librdkafka's mock cluster (`rdkafka::mocking`): the sink must
//! classify what it sees so the runner retries or dead-letters correctly. Happy paths run against
//! a real broker in the runner's integration tests.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use weir_core::testing::sample_records;
use weir_core::{BuildContext, PluginConfig, RecordOutcome, Sink, SinkError};

use super::KafkaSinkConfig;

fn sink(bootstrap: &str, topic: &str) -> Box<dyn Sink> {
    let config: KafkaSinkConfig = serde_json::from_value(serde_json::json!({
        "bootstrap_servers": bootstrap,
        "topic": topic,
        "message_timeout": "2s",
        "options": { "topic.metadata.propagation.max.ms": 500 }
    }))
    .unwrap();
    config.build(&BuildContext::for_test("p", "k")).unwrap()
}

fn outcomes(r: Result<(), SinkError>) -> Vec<RecordOutcome> {
    match r {
        Ok(()) => Vec::new(),
        Err(SinkError::Partial { outcomes: o, .. }) => o,
        Err(other) => panic!("expected per-record outcomes, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_is_down_gives_retriable_outcomes_and_recovers() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("t", 1, 1).unwrap();
    let s = sink(&mock.bootstrap_servers(), "t");
    s.write(&sample_records(3))
        .await
        .expect("broker up: delivered");

    mock.broker_down(1).unwrap();
    let down = outcomes(s.write(&sample_records(3)).await);
    assert_eq!(down.len(), 3);
    for o in &down {
        assert!(
            matches!(o, RecordOutcome::Retriable(m) if m.contains("\"t\"")),
            "a broker outage is retriable and names the topic: {o:?}"
        );
    }

    mock.broker_up(1).unwrap();
    let mut last = None;
    for _ in 0..10 {
        match s.write(&sample_records(3)).await {
            Ok(()) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        last.is_none(),
        "not delivered after the broker came back: {last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_produce_errors_are_retried_inside_librdkafka() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("t", 1, 1).unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let s = sink(&mock.bootstrap_servers(), "t");
    s.write(&sample_records(5))
        .await
        .expect("two transient errors then success: delivered, no runner retry needed");
    // What the broker holds: each record once, in order (the idempotent producer's promise;
    // the mock refuses before appending, so this checks the retries wrote nothing twice).
    let b = mock.bootstrap_servers();
    let got = weir_testkit::read_topic(
        &b,
        "t",
        1,
        5,
        Duration::from_millis(500),
        Duration::from_secs(20),
    )
    .await;
    let seqs: Vec<i64> = got
        .iter()
        .map(|g| {
            serde_json::from_str::<serde_json::Value>(&g.value).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        seqs,
        vec![0, 1, 2, 3, 4],
        "every record exactly once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_broker_accepts_is_fatal() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("t", 1, 1).unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let s = sink(&mock.bootstrap_servers(), "t");
    let o = outcomes(s.write(&sample_records(1)).await);
    assert!(
        matches!(&o[..], [RecordOutcome::Fatal(m)] if m.contains("too large") || m.contains("TooLarge")),
        "{o:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_fatal_and_says_weir_does_not_create_topics() {
    let mock = MockCluster::new(1).unwrap();
    // The mock cluster creates topics on demand; make it answer as a broker without the topic.
    mock.topic_error(
        "nope",
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
    )
    .unwrap();
    let s = sink(&mock.bootstrap_servers(), "nope");
    let o = outcomes(s.write(&sample_records(1)).await);
    assert!(
        matches!(&o[..], [RecordOutcome::Fatal(m)] if m.contains("does not create topics")),
        "{o:?}"
    );
}

/// Against a real broker (Tansu): the core conformance checks, keys and headers included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_sink_conformance_against_a_real_broker() {
    use weir_core::testing::{BoxFuture, SinkCapabilities, sink_conformance};
    let broker = weir_testkit::Broker::start();
    let topic = weir_testkit::unique("conformance");
    weir_testkit::create_topics(&broker.addr(), &[&topic], 1).await;
    let s = sink(&broker.addr(), &topic);
    let (b, t) = (broker.addr(), topic.clone());
    let read = move || -> BoxFuture<'static, Vec<weir_core::Record>> {
        let (b, t) = (b.clone(), t.clone());
        Box::pin(async move {
            weir_testkit::read_topic(
                &b,
                &t,
                1,
                0,
                Duration::from_millis(800),
                Duration::from_secs(10),
            )
            .await
            .into_iter()
            .map(|g| {
                let mut r = weir_core::Record::from_bytes(g.raw);
                r.key = g.key.map(bytes::Bytes::from);
                r.headers = g
                    .headers
                    .into_iter()
                    .map(|(name, v)| weir_core::Header {
                        name,
                        value: Some(bytes::Bytes::from(v)),
                    })
                    .collect();
                r
            })
            .collect()
        })
    };
    sink_conformance(
        &*s,
        SinkCapabilities {
            headers: true,
            keys: true,
        },
        &read,
    )
    .await
    .unwrap();
}
