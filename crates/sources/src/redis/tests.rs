//! The redis source against a real `redis-server`: the core conformance checks (tracked acks,
//! a prompt stop, the replay of what was not delivered), `XACK` only after a record's ack, a
//! crashed consumer's pending entries taken over with `XAUTOCLAIM` (and not before
//! `claim_idle`), `start_from` for a new group, entries another producer wrote, the database
//! index, and a Redis that is not there yet. Pipelines through it are tested in weir-runtime's `tests/redis.rs`.

use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_core::telemetry::ComponentTelemetry;
use weir_core::testing::{run_source_acked, source_conformance, source_replay_conformance};
use weir_core::{BuildContext, ComponentId, PluginConfig, Source, SourceContext};
use weir_redis::redis::{self, Value};
use weir_testkit::redis::RedisServer;

use super::RedisSourceConfig;

fn config(url: &str, extra: Json) -> RedisSourceConfig {
    let mut o = json!({
        "url": url, "streams": ["events"], "group": "g", "consumer": "c1",
        "start_from": "earliest", "block": "100ms", "drain_timeout": "1s"
    });
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    serde_json::from_value(o).unwrap()
}

fn source(url: &str, extra: Json) -> Box<dyn Source> {
    config(url, extra)
        .build(&BuildContext::for_test("p", "redis"))
        .unwrap_or_else(|e| panic!("{}: {}", e.path, e.message))
}

async fn q(url: &str, args: &[&str]) -> Value {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(&mut con)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

async fn add(url: &str, stream: &str, n: usize, from: usize) {
    for i in from..from + n {
        let v = json!({"seq": i}).to_string();
        let k = format!("k{i}");
        q(
            url,
            &["XADD", stream, "*", "value", &v, "key", &k, "header.h", "x"],
        )
        .await;
    }
}

/// `XPENDING <stream> <group>`'s count.
async fn pending(url: &str, stream: &str) -> i64 {
    match q(url, &["XPENDING", stream, "g"]).await {
        Value::Array(a) => match &a[0] {
            Value::Int(n) => *n,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

fn seq(r: &weir_core::Record) -> u64 {
    r.value.decoded().unwrap()["seq"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_source_conformance_and_acknowledges_everything_delivered() {
    let server = RedisServer::start();
    add(&server.url(), "events", 20, 0).await;
    let run = source_conformance(source(&server.url(), json!({})), 20, true)
        .await
        .unwrap();
    let r = &run.records[19];
    assert_eq!(seq(r), 19);
    assert_eq!(r.key.as_deref(), Some(&b"k19"[..]));
    assert_eq!(r.header("h"), Some(&b"x"[..]));
    let id = String::from_utf8(r.header("redis.id").unwrap().to_vec()).unwrap();
    let origin = r.meta.origin.as_ref().unwrap();
    assert_eq!(&*origin.topic, "events");
    assert_eq!(Some(origin.offset), weir_redis::streams::id_offset(&id));
    assert_eq!(
        r.timestamp,
        Some(id.split('-').next().unwrap().parse().unwrap())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pending(&server.url(), "events").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_records_whose_acks_failed() {
    let server = RedisServer::start();
    add(&server.url(), "events", 20, 0).await;
    let url = server.url();
    let make = || source(&url, json!({}));
    let again = source_replay_conformance(&make, 20, Duration::from_secs(20))
        .await
        .unwrap();
    // Nothing of the first run was acknowledged (its records were still held when it
    // stopped), so the same consumer reads its whole pending list again, in order.
    assert_eq!(seq(&again[0]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_is_acknowledged_only_once_its_record_is_done() {
    let server = RedisServer::start();
    add(&server.url(), "events", 5, 0).await;
    let (tx, mut rx) = mpsc::channel(4);
    let shutdown = CancellationToken::new();
    let id = ComponentId {
        pipeline: "p".into(),
        component: "redis".into(),
    };
    let (cx, _acker) = SourceContext::new(id, tx, shutdown.clone());
    let task = tokio::spawn(source(&server.url(), json!({})).run(cx));
    let batch = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(batch.records.len(), 5);
    // Read but not done: all pending, however long we wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pending(&server.url(), "events").await, 5);
    let records = batch.records;
    // One record failed (a sink gave up): it stays pending; the others are acknowledged.
    records[2].ack.set(weir_core::AckStatus::Errored);
    drop(records);
    let start = std::time::Instant::now();
    while pending(&server.url(), "events").await != 1 {
        assert!(start.elapsed() < Duration::from_secs(5), "not acknowledged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_consumers_pending_entries_are_taken_over_after_claim_idle() {
    let server = RedisServer::start();
    let url = server.url();
    q(&url, &["XGROUP", "CREATE", "events", "g", "0", "MKSTREAM"]).await;
    add(&url, "events", 10, 0).await;
    // Another consumer reads everything and dies before acknowledging anything.
    q(
        &url,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "crashed",
            "COUNT",
            "100",
            "STREAMS",
            "events",
            ">",
        ],
    )
    .await;
    assert_eq!(pending(&url, "events").await, 10);

    // Within claim_idle nothing is taken over.
    let early = run_source_acked(
        source(
            &url,
            json!({"consumer": "rescuer", "claim_idle": "1h", "claim_interval": "100ms"}),
        ),
        None,
        Duration::from_secs(2),
    )
    .await;
    assert!(early.records.is_empty(), "{} records", early.records.len());

    tokio::time::sleep(Duration::from_millis(600)).await;
    let run = run_source_acked(
        source(
            &url,
            json!({"consumer": "rescuer", "claim_idle": "500ms", "claim_interval": "100ms"}),
        ),
        Some(10),
        Duration::from_secs(10),
    )
    .await;
    let mut seqs: Vec<u64> = run.records.iter().map(seq).collect();
    seqs.sort();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pending(&url, "events").await,
        0,
        "claimed entries are acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_starts_at_the_end_or_the_start() {
    let server = RedisServer::start();
    let url = server.url();
    add(&url, "events", 5, 0).await;
    let u = url.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        add(&u, "events", 3, 100).await;
    });
    let latest = run_source_acked(
        source(&url, json!({"group": "g-latest", "start_from": "latest"})),
        Some(3),
        Duration::from_secs(10),
    )
    .await;
    later.await.unwrap();
    assert_eq!(
        latest.records.iter().map(seq).collect::<Vec<_>>(),
        [100, 101, 102]
    );
    let earliest = run_source_acked(
        source(&url, json!({"group": "g-earliest"})),
        Some(8),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(earliest.records.len(), 8);
    assert_eq!(seq(&earliest.records[0]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_from_other_producers_become_json_objects_of_their_fields() {
    let server = RedisServer::start();
    let url = server.url();
    q(
        &url,
        &["XADD", "sensors", "*", "sensor", "t1", "celsius", "21.5"],
    )
    .await;
    let run = run_source_acked(
        source(&url, json!({"streams": ["sensors"]})),
        Some(1),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        run.records[0].value.decoded().unwrap().into_owned(),
        json!({"sensor": "t1", "celsius": "21.5"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_stream_of_the_database_index_given() {
    let server = RedisServer::start();
    // The same stream name in databases 0 and 3, with different entries.
    server.cli(&["XADD", "events", "*", "value", r#"{"db":0,"seq":0}"#]);
    for i in 0..3 {
        let v = json!({"db": 3, "seq": i}).to_string();
        server.cli(&["-n", "3", "XADD", "events", "*", "value", &v]);
    }
    let run = run_source_acked(
        source(&server.url(), json!({"database": 3})),
        Some(3),
        Duration::from_secs(10),
    )
    .await;
    let values: Vec<Json> = run
        .records
        .iter()
        .map(|r| r.value.decoded().unwrap().into_owned())
        .collect();
    assert_eq!(
        values,
        (0..3)
            .map(|i| json!({"db": 3, "seq": i}))
            .collect::<Vec<_>>()
    );
    // The group lives in database 3, its entries acknowledged there; database 0's stream has
    // no group.
    let start = std::time::Instant::now();
    while server
        .cli(&["-n", "3", "XPENDING", "events", "g"])
        .lines()
        .next()
        != Some("0")
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not acknowledged in db 3"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.cli(&["XINFO", "GROUPS", "events"]).trim(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_is_not_there_yet_is_retried_and_reported() {
    let port = weir_testkit::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let telemetry = ComponentTelemetry::detached();
    let health = telemetry.health.clone();
    let mut cx = BuildContext::for_test("p", "redis");
    cx.telemetry = telemetry;
    let s = config(&url, json!({"connect_timeout": "300ms"}))
        .build(&cx)
        .unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let shutdown = CancellationToken::new();
    let id = ComponentId {
        pipeline: "p".into(),
        component: "redis".into(),
    };
    let (scx, _acker) = SourceContext::new(id, tx, shutdown.clone());
    let task = tokio::spawn(s.run(scx));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (reason, _) = health.current().expect("degraded while Redis is away");
    assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
    assert!(!task.is_finished(), "the source gave up");

    let server = RedisServer::start_on(port, &[]);
    add(&server.url(), "events", 3, 0).await;
    let batch = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(batch.records.len(), 3);
    assert!(health.current().is_none(), "healthy again");
    drop(batch);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn bad_options_name_the_option() {
    for (extra, option) in [
        (json!({"streams": []}), "streams"),
        (json!({"streams": ["a", ""]}), "streams[1]"),
        (json!({"streams": ["a", "a"]}), "streams[1]"),
        (json!({"group": ""}), "group"),
        (json!({"batch_records": 0}), "batch_records"),
        (json!({"claim_idle": "0s"}), "claim_idle"),
        (json!({"url": "redis://u:pw@localhost"}), "url"),
    ] {
        let e = config("redis://localhost", extra.clone())
            .build(&BuildContext::for_test("p", "redis"))
            .err()
            .unwrap_or_else(|| panic!("{extra} built"));
        assert_eq!(e.path, option, "{extra}: {}", e.message);
    }
}
