//! The redis lookup against a real `redis-server`: a hit merged at the target (string and
//! hash), a miss with each `on_miss`, replacing the value and splitting an array as the http
//! enrichment does, the cache and its TTL counted in Redis's own command statistics, one read
//! per distinct key in a batch, `WRONGTYPE` failing the record, an unreachable Redis retried,
//! and bad options.

use std::time::Duration;

use serde_json::{Value as Json, json};
use weir_core::{BuildContext, Flow, PluginConfig, Record, Transform, TransformError};
use weir_testkit::redis::RedisServer;

use super::RedisTransformConfig;

fn lookup(options: Json) -> Box<dyn Transform> {
    let config: RedisTransformConfig = serde_json::from_value(options).unwrap();
    config
        .build(&BuildContext::for_test("p", "lookup"))
        .unwrap_or_else(|e| panic!("{}: {}", e.path, e.message))
}

fn records(tenants: &[&str]) -> Vec<Record> {
    tenants
        .iter()
        .enumerate()
        .map(|(i, t)| Record::from_json(json!({"seq": i, "tenant": t})))
        .collect()
}

fn value(r: &Record) -> Json {
    r.value.decoded().unwrap().into_owned()
}

/// How many times Redis ran `command` (`INFO commandstats`).
fn calls(server: &RedisServer, command: &str) -> u64 {
    let info = server.cli(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_is_merged_at_the_target_and_a_miss_follows_on_miss() {
    let server = RedisServer::start();
    server.cli(&[
        "SET",
        "tenant:acme",
        r#"{"region":"eu-west-1","tier":"gold"}"#,
    ]);
    server.cli(&["HSET", "profile:acme", "region", "eu-west-1", "seats", "40"]);
    let get = lookup(json!({
        "url": server.url(), "key": "tenant:<$.value.tenant>", "target": "value.tenant_info"
    }));
    let mut rs = records(&["acme", "nobody"]);
    let out = get.apply_batch(&mut rs).await;
    assert!(matches!(out[0], Ok(Flow::Keep)), "{:?}", out[0]);
    assert_eq!(
        value(&rs[0]),
        json!({"seq": 0, "tenant": "acme", "tenant_info": {"region": "eu-west-1", "tier": "gold"}})
    );
    // A missing key drops the record by default, as an empty HTTP answer does.
    assert!(matches!(out[1], Ok(Flow::Drop)), "{:?}", out[1]);

    let hash = lookup(json!({
        "url": server.url(), "key": "profile:<$.value.tenant>", "command": "hgetall",
        "target": "value.profile", "on_miss": "keep"
    }));
    let mut rs = records(&["acme", "nobody"]);
    let out = hash.apply_batch(&mut rs).await;
    assert!(matches!(out[0], Ok(Flow::Keep)));
    assert_eq!(
        value(&rs[0])["profile"],
        json!({"region": "eu-west-1", "seats": "40"})
    );
    assert!(matches!(out[1], Ok(Flow::Keep)));
    assert_eq!(
        value(&rs[1]),
        json!({"seq": 1, "tenant": "nobody"}),
        "kept unchanged"
    );

    let fail = lookup(json!({
        "url": server.url(), "key": "tenant:<$.value.tenant>", "on_miss": "fail"
    }));
    let mut rs = records(&["nobody"]);
    let out = fail.apply_batch(&mut rs).await;
    assert!(
        matches!(&out[0], Err(TransformError::Fatal(m)) if m.contains("tenant:nobody") && m.contains("missing")),
        "{:?}",
        out[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_target_the_answer_replaces_the_value_and_an_array_splits() {
    let server = RedisServer::start();
    server.cli(&["SET", "k:one", r#"{"replaced":true}"#]);
    server.cli(&["SET", "k:many", r#"[{"n":1},{"n":2}]"#]);
    server.cli(&["SET", "k:empty", "{}"]);
    server.cli(&["SET", "k:text", "eu-west-1"]);
    let l = lookup(json!({"url": server.url(), "key": "k:<$.value.tenant>"}));
    let mut rs = records(&["one", "many", "empty", "text"]);
    let out = l.apply_batch(&mut rs).await;
    assert!(matches!(out[0], Ok(Flow::Keep)));
    assert_eq!(value(&rs[0]), json!({"replaced": true}));
    match &out[1] {
        Ok(Flow::Split(parts)) => {
            assert_eq!(
                parts.iter().map(value).collect::<Vec<_>>(),
                [json!({"n": 1}), json!({"n": 2})]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(out[2], Ok(Flow::Drop)), "an empty answer drops");
    assert!(
        matches!(&out[3], Err(TransformError::Fatal(m)) if m.contains("not JSON") && m.contains("value_format")),
        "{:?}",
        out[3]
    );
    let text = lookup(json!({
        "url": server.url(), "key": "k:<$.value.tenant>", "value_format": "string", "target": "value.region"
    }));
    let mut rs = records(&["text"]);
    text.apply_batch(&mut rs).await;
    assert_eq!(value(&rs[0])["region"], "eu-west-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_cached_for_the_ttl_and_a_batch_reads_each_key_once() {
    let server = RedisServer::start();
    server.cli(&["SET", "tenant:a", r#""v1""#]);
    let cached = lookup(json!({
        "url": server.url(), "key": "tenant:<$.value.tenant>", "target": "value.r",
        "cache": {"ttl": "1s"}
    }));
    let mut rs = records(&["a", "a", "a", "b", "b"]);
    cached.apply_batch(&mut rs).await;
    // One pipelined round trip with one GET per distinct key (the miss of b included).
    assert_eq!(calls(&server, "get"), 2);
    assert_eq!(value(&rs[2])["r"], "v1");

    server.cli(&["SET", "tenant:a", r#""v2""#]);
    let mut rs = records(&["a", "b"]);
    let out = cached.apply_batch(&mut rs).await;
    assert_eq!(
        calls(&server, "get"),
        2,
        "hits and the cached miss do not call Redis"
    );
    assert_eq!(
        value(&rs[0])["r"],
        "v1",
        "the cached answer, within the TTL"
    );
    assert!(matches!(out[1], Ok(Flow::Drop)));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut rs = records(&["a"]);
    cached.apply_batch(&mut rs).await;
    assert_eq!(calls(&server, "get"), 3);
    assert_eq!(value(&rs[0])["r"], "v2", "read again after the TTL");

    // Without a cache every batch reads.
    let uncached =
        lookup(json!({"url": server.url(), "key": "tenant:<$.value.tenant>", "target": "value.r"}));
    for _ in 0..3 {
        uncached.apply_batch(&mut records(&["a"])).await;
    }
    assert_eq!(calls(&server, "get"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrongtype_key_fails_its_record_and_an_unreachable_redis_is_retriable() {
    let server = RedisServer::start();
    server.cli(&["RPUSH", "tenant:list", "x"]);
    server.cli(&["SET", "tenant:ok", "1"]);
    let l =
        lookup(json!({"url": server.url(), "key": "tenant:<$.value.tenant>", "target": "value.t"}));
    let mut rs = records(&["list", "ok"]);
    let out = l.apply_batch(&mut rs).await;
    assert!(
        matches!(&out[0], Err(TransformError::Fatal(m)) if m.contains("WRONGTYPE")),
        "{:?}",
        out[0]
    );
    assert!(matches!(out[1], Ok(Flow::Keep)), "{:?}", out[1]);

    let port = weir_testkit::free_port();
    let down = lookup(json!({
        "url": format!("redis://127.0.0.1:{port}"), "key": "t:<$.value.tenant>", "connect_timeout": "300ms"
    }));
    let out = down.apply_batch(&mut records(&["a", "b"])).await;
    for o in &out {
        assert!(
            matches!(o, Err(TransformError::Retriable(m)) if m.contains(&format!("127.0.0.1:{port}"))),
            "{o:?}"
        );
    }
}

#[test]
fn bad_options_name_the_option() {
    for (options, option) in [
        (json!({"url": "redis://localhost", "key": ""}), "key"),
        (
            json!({"url": "redis://localhost", "key": "t:<$tenant>"}),
            "key",
        ),
        (
            json!({"url": "redis://localhost", "key": "k", "target": "key.x"}),
            "target",
        ),
        (
            json!({"url": "redis://localhost", "key": "k", "cache": {"ttl": "0s"}}),
            "cache.ttl",
        ),
        (json!({"url": "redis://:pw@localhost", "key": "k"}), "url"),
    ] {
        let config: RedisTransformConfig = serde_json::from_value(options.clone()).unwrap();
        let e = config
            .build(&BuildContext::for_test("p", "lookup"))
            .err()
            .unwrap_or_else(|| panic!("{options} built"));
        assert_eq!(e.path, option, "{options}: {}", e.message);
    }
}
