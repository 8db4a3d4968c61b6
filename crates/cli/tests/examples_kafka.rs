//! The Kafka examples in `examples/`, run as their header comments tell a user to run them:
//! `weir run examples/<file>.yaml` with `KAFKA` (and for HTTPS, `ALERTS_URL`/`ALERTS_TOKEN`)
//! pointing at a broker and a server of the test's own. The expected output is worked out here
//! from the records the test produced and the rules the examples' comments state, never from
//! Weir's code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use weir_testkit::https::{Answer, Https};
use weir_testkit::*;

mod support;
use support::Run;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// Orders with every combination the examples' filter distinguishes: paid or open, over 100 or
/// not (exactly 100 is not over it), a number given as text; with `broken`, also a record that
/// is not JSON (without a DLQ, the default `on_error: stop` would rightly stop the pipeline).
fn orders(broken: bool) -> Vec<Msg> {
    let mut v: Vec<Msg> = (0..40)
        .map(|i| {
            let status = if i % 2 == 0 { "paid" } else { "open" };
            Msg::new(
                format!("o{i}"),
                json!({"id": i, "status": status, "amount": 90 + i,
                       "customer": {"id": format!("c-{}", i % 3), "email": format!("buyer{i}@example.com")}})
                .to_string(),
            )
        })
        .collect();
    v.push(Msg::new(
        "text-amount",
        json!({"id": 100, "status": "paid", "amount": "500", "customer": {"id": "c-0"}})
            .to_string(),
    ));
    if broken {
        v.push(Msg::new("broken", "not json"));
    }
    v
}

/// The ids the examples keep: paid, and a numeric amount over 100 (`"500"` is text, not a number).
fn kept() -> BTreeSet<i64> {
    (0..40).filter(|i| i % 2 == 0 && 90 + i > 100).collect()
}

const LOG_BROKEN: bool = false;

/// `examples/kafka-to-log.yaml`: paid orders over 100 are logged as envelopes with their Kafka
/// coordinates and the customer's email masked; nothing else is logged; a SIGTERM commits
/// everything, so the example's group ends at the topic's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_to_log_example_logs_paid_orders_over_100_masked() {
    let broker = Broker::start();
    let b = broker.addr();
    create_topics(&b, &["orders"], 3).await;
    produce(&b, "orders", &orders(LOG_BROKEN), &[]).await;
    let input = read_topic(
        &b,
        "orders",
        3,
        orders(LOG_BROKEN).len(),
        Duration::from_millis(200),
        Duration::from_secs(30),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("weir.log");
    let mut weir = Run::start(&example("kafka-to-log.yaml"), &[("KAFKA", &b)], &log);

    let records = |text: &str| -> Vec<Json> {
        text.lines()
            .filter(|l| l.contains("record="))
            .map(|l| {
                let at = l.find("record=").unwrap() + "record=".len();
                let end = l[at..].rfind(" pipeline=").map_or(l.len(), |e| at + e);
                serde_json::from_str(l[at..end].trim())
                    .unwrap_or_else(|e| panic!("a logged record is not JSON ({e}): {l}"))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let logged = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let got = records(&text);
        if got.len() >= kept().len() {
            // A moment more, so an extra record would show.
            tokio::time::sleep(Duration::from_millis(500)).await;
            break records(&std::fs::read_to_string(&log).unwrap_or_default());
        }
        assert!(weir.exited().is_none(), "weir run exited early:\n{text}");
        assert!(
            Instant::now() < deadline,
            "{} of {} records logged in 60s:\n{text}",
            got.len(),
            kept().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = weir.terminate();
    assert!(status.success(), "exit {status}");

    let ids: BTreeSet<i64> = logged
        .iter()
        .map(|e| e["value"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, kept());
    assert_eq!(logged.len(), kept().len(), "each once: {logged:?}");
    for e in &logged {
        let id = e["value"]["id"].as_i64().unwrap();
        let original = input
            .iter()
            .find(|g| g.key.as_deref() == Some(&format!("o{id}")))
            .unwrap();
        assert_eq!(e["topic"], "orders");
        assert_eq!(e["partition"], original.partition, "{e}");
        assert_eq!(e["offset"], original.offset, "{e}");
        assert_eq!(e["key"], format!("o{id}"));
        let email = e["value"]["customer"]["email"].as_str().unwrap();
        assert!(
            !email.contains('@') && !email.contains("buyer"),
            "the email is masked: {e}"
        );
        assert_eq!(
            e["value"]["customer"]["id"],
            format!("c-{}", id % 3),
            "only the email is masked"
        );
    }
    let marks = watermarks(&b, "orders", 3);
    let committed = committed(&b, "weir-example-paid-orders", "orders", 3);
    assert_eq!(
        committed,
        marks
            .iter()
            .map(|(_, high)| Some(*high))
            .collect::<Vec<_>>(),
        "the clean stop committed every record, kept or not"
    );
}

/// `examples/kafka-to-https.yaml` against a real HTTPS server: one POST per paid order over
/// 100 to `/v1/customers/<id>/orders`, gzip, the bearer token, the pipeline header and an
/// `Idempotency-Key` of the order's `<topic>-<partition>-<offset>` (docs/connectors/http.md);
/// an order the server refuses with 422 goes to `orders-dlq` with the status, and one it
/// answers 503 the first time is retried and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_to_https_example_posts_paid_orders_with_idempotency_keys() {
    let broker = Broker::start();
    let b = broker.addr();
    create_topics(&b, &["orders", "orders-dlq"], 3).await;
    produce(&b, "orders", &orders(true), &[]).await;
    let input = read_topic(
        &b,
        "orders",
        3,
        orders(true).len(),
        Duration::from_millis(200),
        Duration::from_secs(30),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    weir_testkit::tls::certificates(dir.path());
    let refused = 12; // the server refuses this order for good
    let flaky = 14; // and answers 503 once for this one
    let tried_flaky = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = {
        let tried_flaky = tried_flaky.clone();
        Https::start(dir.path(), None, move |s, _| {
            let id = s.json()["id"].as_i64().unwrap_or(-1);
            if id == refused {
                Answer::status(422).body(r#"{"error":"customer closed"}"#)
            } else if id == flaky && !tried_flaky.swap(true, std::sync::atomic::Ordering::SeqCst) {
                Answer::status(503)
            } else {
                Answer::ok()
            }
        })
        .await
    };
    let log = dir.path().join("weir.log");
    let ca = dir.path().join("ca.pem");
    let weir = Run::start(
        &example("kafka-to-https.yaml"),
        &[
            ("KAFKA", &b),
            ("ALERTS_URL", &server.url),
            ("ALERTS_TOKEN", "tok-123"),
            // The example verifies the server with the system's roots; the test's CA is the one.
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ],
        &log,
    );
    let want = kept().len() + 1; // the 503 is seen twice
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.seen().len() < want {
        assert!(
            Instant::now() < deadline,
            "{} of {want} requests in 60s:\n{}",
            server.seen().len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = read_topic(
        &b,
        "orders-dlq",
        3,
        1,
        Duration::from_millis(500),
        Duration::from_secs(30),
    )
    .await;
    let status = weir.terminate();
    assert!(status.success(), "exit {status}");

    let seen = server.seen();
    assert_eq!(seen.len(), want, "nothing else was sent");
    let mut delivered = BTreeSet::new();
    for s in &seen {
        let v = s.json();
        let id = v["id"].as_i64().unwrap();
        let original = input
            .iter()
            .find(|g| g.key.as_deref() == Some(&format!("o{id}")))
            .unwrap();
        assert_eq!(s.method, "POST");
        assert_eq!(s.path, format!("/v1/customers/c-{}/orders", id % 3));
        assert_eq!(s.headers["authorization"], "Bearer tok-123");
        assert_eq!(s.headers["content-encoding"], "gzip");
        assert_eq!(s.headers["x-weir-pipeline"], "orders-to-https");
        assert_eq!(
            s.headers["idempotency-key"],
            format!("orders-{}-{}", original.partition, original.offset)
        );
        assert_eq!(
            v,
            serde_json::from_str::<Json>(&original.value).unwrap(),
            "the order as it came"
        );
        delivered.insert(id);
    }
    assert_eq!(delivered, kept());
    assert_eq!(
        dead.len(),
        2,
        "the refused order and the record that is not JSON are dead-lettered: {dead:?}"
    );
    let refused_letter = dead
        .iter()
        .find(|d| d.key.as_deref() == Some(&*format!("o{refused}")))
        .expect("the refused order is a dead letter");
    let letter: Json = serde_json::from_str(&refused_letter.value).unwrap();
    assert_eq!(letter["id"], refused, "the dead letter is the order itself");
    let headers = format!("{:?}", refused_letter.headers);
    assert!(
        headers.contains("422"),
        "the status is in the headers: {headers}"
    );
    assert!(
        headers.contains("customer closed"),
        "the response body is in the headers: {headers}"
    );
    let broken = dead
        .iter()
        .find(|d| d.key.as_deref() == Some("broken"))
        .expect("the record that is not JSON is a dead letter");
    assert_eq!(broken.raw, b"not json", "its bytes untouched");
    let stage = broken
        .headers
        .get("__connect.errors.stage")
        .unwrap_or_else(|| panic!("a stage header: {:?}", broken.headers));
    assert_ne!(
        stage, "sink",
        "it failed before any sink: {:?}",
        broken.headers
    );
    let message = broken
        .headers
        .get("__connect.errors.exception.message")
        .unwrap_or_else(|| panic!("an error message header: {:?}", broken.headers));
    assert!(message.to_lowercase().contains("json"), "{message}");
}
