//! The redis sink against a real `redis-server`: the core conformance checks (acknowledged only
//! once Redis answered, order, values, keys and headers read back with `XRANGE`), the entry's
//! fields, `WRONGTYPE` failing one record alone, `BUSY` and an unreachable server retried,
//! `MAXLEN`, `MINID` by age, `NOMKSTREAM`, ACL users and a wrong password, TLS to a TLS-only
//! server (a CA file, client certificates, an untrusted server certificate), the database
//! index, and bad options.
//! Whole pipelines (dead letters, 100,000 records read back by Python, `kill -9` of the server)
//! are tested in weir-runtime's `tests/redis.rs`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value as Json, json};
use weir_core::testing::{BoxFuture, SinkCapabilities, sample_records, sink_conformance};
use weir_core::{
    BuildContext, Header, Origin, PluginConfig, Record, RecordOutcome, Sink, SinkError,
};
use weir_redis::redis;
use weir_redis::streams::{Entry, entries};
use weir_testkit::redis::RedisServer;

use super::RedisSinkConfig;

fn sink(options: Json) -> Result<Box<dyn Sink>, String> {
    let config: RedisSinkConfig = serde_json::from_value(options).map_err(|e| e.to_string())?;
    config
        .build(&BuildContext::for_test("p", "redis"))
        .map_err(|e| format!("{}: {}", e.path, e.message))
}

async fn xrange(url: &str, stream: &str) -> Vec<Entry> {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .unwrap();
    entries(&v).unwrap()
}

async fn query(url: &str, args: &[&str]) -> redis::Value {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(&mut con).await.unwrap()
}

fn text(e: &Entry, field: &str) -> Option<String> {
    e.field(field)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The inverse of the sink's defaults: value, key, `header.*` fields.
fn as_record(e: &Entry) -> Record {
    let mut r = Record::from_bytes(Bytes::copy_from_slice(e.field("value").unwrap()));
    r.key = e.field("key").map(Bytes::copy_from_slice);
    for (k, v) in e.fields.as_ref().unwrap() {
        if let Some(name) = k.strip_prefix(b"header.") {
            r.headers.push(Header {
                name: String::from_utf8_lossy(name).into_owned(),
                value: Some(Bytes::copy_from_slice(v)),
            });
        }
    }
    r
}

fn with_origin(mut r: Record, offset: i64) -> Record {
    r.meta.origin = Some(Origin {
        topic: Arc::from("orders"),
        partition: 3,
        offset,
    });
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_sink_conformance() {
    let server = RedisServer::start();
    let sink = sink(json!({"url": server.url(), "stream": "conformance"})).unwrap();
    let url = server.url();
    let read = move || -> BoxFuture<'static, Vec<Record>> {
        let url = url.clone();
        Box::pin(async move {
            xrange(&url, "conformance")
                .await
                .iter()
                .map(as_record)
                .collect()
        })
    };
    sink_conformance(
        &*sink,
        SinkCapabilities {
            headers: true,
            keys: true,
        },
        &read,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_carry_the_value_key_headers_and_source_position_under_their_names() {
    let server = RedisServer::start();
    let records: Vec<Record> = sample_records(3)
        .into_iter()
        .enumerate()
        .map(|(i, r)| with_origin(r, 40 + i as i64))
        .collect();
    sink(json!({"url": server.url(), "stream": "s1"}))
        .unwrap()
        .write(&records)
        .await
        .unwrap();
    let got = xrange(&server.url(), "s1").await;
    assert_eq!(got.len(), 3);
    let e = &got[2];
    let names: Vec<String> = e
        .fields
        .as_ref()
        .unwrap()
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(
        names,
        ["value", "key", "header.h", "topic", "partition", "offset"]
    );
    let value: Json = serde_json::from_slice(e.field("value").unwrap()).unwrap();
    assert_eq!(value["seq"], 2);
    assert_eq!(text(e, "key").as_deref(), Some("k2"));
    assert_eq!(text(e, "header.h").as_deref(), Some("v2"));
    assert_eq!(text(e, "topic").as_deref(), Some("orders"));
    assert_eq!(text(e, "partition").as_deref(), Some("3"));
    assert_eq!(text(e, "offset").as_deref(), Some("42"));

    // Renamed, and left out with an empty name.
    sink(json!({
        "url": server.url(), "stream": "s2", "value_field": "payload", "key_field": "",
        "headers_prefix": "", "topic_field": "", "partition_field": "", "offset_field": "seq"
    }))
    .unwrap()
    .write(&records[..1])
    .await
    .unwrap();
    let got = xrange(&server.url(), "s2").await;
    let names: Vec<&[u8]> = got[0]
        .fields
        .as_ref()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_slice())
        .collect();
    assert_eq!(names, [&b"payload"[..], b"seq"]);
    assert_eq!(text(&got[0], "seq").as_deref(), Some("40"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_a_template_and_a_wrongtype_key_fails_that_record_alone() {
    let server = RedisServer::start();
    server.cli(&["SET", "events:bad", "not a stream"]);
    let sink = sink(json!({"url": server.url(), "stream": "events:<$.value.ccid>"})).unwrap();
    let records: Vec<Record> = ["a", "bad", "b", "a", ""]
        .iter()
        .map(|c| Record::from_json(json!({"ccid": c})))
        .collect();
    let err = sink.write(&records).await.unwrap_err();
    let SinkError::Partial { outcomes, .. } = err else {
        panic!("expected per-record outcomes, got {err:?}");
    };
    assert_eq!(outcomes[0], RecordOutcome::Delivered);
    assert!(
        matches!(&outcomes[1], RecordOutcome::Fatal(m) if m.contains("WRONGTYPE")),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(outcomes[2], RecordOutcome::Delivered);
    assert_eq!(outcomes[3], RecordOutcome::Delivered);
    // `events:` is a valid stream name: a missing field renders empty text.
    assert_eq!(outcomes[4], RecordOutcome::Delivered);
    assert_eq!(xrange(&server.url(), "events:a").await.len(), 2);
    assert_eq!(xrange(&server.url(), "events:b").await.len(), 1);
    assert_eq!(xrange(&server.url(), "events:").await.len(), 1);
    // An empty stream name fails the record; nothing is sent for it.
    let sink = super::RedisSinkConfig {
        stream: "<$.value.ccid>".into(),
        ..serde_json::from_value(json!({"url": server.url(), "stream": "x"})).unwrap()
    }
    .build(&BuildContext::for_test("p", "redis"))
    .unwrap();
    let err = sink
        .write(&[Record::from_json(json!({"ccid": ""}))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::Partial { outcomes, .. } if matches!(&outcomes[0], RecordOutcome::Fatal(m) if m.contains("empty"))),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_len_trims_each_stream_exactly_or_approximately() {
    let server = RedisServer::start();
    let records: Vec<Record> = (0..1000)
        .map(|i| Record::from_json(json!({"seq": i})))
        .collect();
    let exact =
        sink(json!({"url": server.url(), "stream": "exact", "max_len": 100, "exact_trim": true}))
            .unwrap();
    let approx = sink(json!({"url": server.url(), "stream": "approx", "max_len": 100})).unwrap();
    for chunk in records.chunks(250) {
        exact.write(chunk).await.unwrap();
        approx.write(chunk).await.unwrap();
    }
    let kept = xrange(&server.url(), "exact").await;
    assert_eq!(kept.len(), 100);
    // The newest are kept.
    let first: Json = serde_json::from_slice(kept[0].field("value").unwrap()).unwrap();
    assert_eq!(first["seq"], 900);
    // `~` removes whole nodes only (100 entries each by default): at least 100 stay, and far
    // fewer than the 1000 written.
    let approx_len = xrange(&server.url(), "approx").await.len();
    assert!((100..=300).contains(&approx_len), "{approx_len}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_trims_entries_older_than_the_age_by_their_ids() {
    let server = RedisServer::start();
    let sink =
        sink(json!({"url": server.url(), "stream": "aged", "max_age": "1s", "exact_trim": true}))
            .unwrap();
    let old: Vec<Record> = (0..10)
        .map(|i| Record::from_json(json!({"seq": i})))
        .collect();
    sink.write(&old).await.unwrap();
    assert_eq!(xrange(&server.url(), "aged").await.len(), 10);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    sink.write(&[Record::from_json(json!({"seq": 10}))])
        .await
        .unwrap();
    let kept = xrange(&server.url(), "aged").await;
    assert_eq!(kept.len(), 1, "{kept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_create_streams_a_missing_stream_fails_its_records() {
    let server = RedisServer::start();
    server.cli(&["XADD", "exists", "*", "init", "1"]);
    let sink = sink(json!({"url": server.url(), "stream": "<$.value.s>", "create_streams": false}))
        .unwrap();
    let err = sink
        .write(&[
            Record::from_json(json!({"s": "exists"})),
            Record::from_json(json!({"s": "missing"})),
        ])
        .await
        .unwrap_err();
    let SinkError::Partial { outcomes, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(outcomes[0], RecordOutcome::Delivered);
    assert!(
        matches!(&outcomes[1], RecordOutcome::Fatal(m) if m.contains("does not exist")),
        "{outcomes:?}"
    );
    assert_eq!(
        query(&server.url(), &["EXISTS", "missing"]).await,
        redis::Value::Int(0)
    );
    assert_eq!(xrange(&server.url(), "exists").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_and_an_unreachable_server_are_retriable() {
    // Nothing listens: retriable, naming the address.
    let port = weir_testkit::free_port();
    let down = sink(
        json!({"url": format!("redis://127.0.0.1:{port}"), "stream": "s", "connect_timeout": "1s"}),
    )
    .unwrap();
    let err = down
        .write(&[Record::from_json(json!(1))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::Retriable { message, .. } if message.contains(&format!("127.0.0.1:{port}"))),
        "{err:?}"
    );
    assert!(down.healthcheck().await.is_err());

    // A script that runs past busy-reply-threshold makes Redis answer BUSY to everyone else.
    let server = RedisServer::start_with(&[("busy-reply-threshold", "100")]);
    let sink = sink(json!({"url": server.url(), "stream": "s"})).unwrap();
    sink.write(&[Record::from_json(json!(0))]).await.unwrap();
    let port = server.port().to_string();
    let script = std::thread::spawn(move || {
        std::process::Command::new("redis-cli")
            .args(["-p", &port, "EVAL", "while true do end", "0"])
            .output()
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = sink
        .write(&[Record::from_json(json!(1))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::Retriable { message, .. } if message.contains("BUSY")),
        "{err:?}"
    );
    server.cli(&["SCRIPT", "KILL"]);
    let _ = script.join();
    sink.write(&[Record::from_json(json!(2))]).await.unwrap();
    assert_eq!(xrange(&server.url(), "s").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticates_as_an_acl_user_and_a_wrong_password_is_clear_and_not_shown() {
    let server = RedisServer::start_with(&[
        ("user", "weir on >c0rrect-horse ~events:* +xadd +ping"),
        // The default user may not write: only the ACL user can.
        ("user", "default on nopass ~* +@read +@connection +acl"),
    ]);
    let ok = sink(json!({
        "url": server.url(), "stream": "events:1", "username": "weir", "password": "c0rrect-horse"
    }))
    .unwrap();
    ok.healthcheck().await.unwrap();
    ok.write(&[Record::from_json(json!({"a": 1}))])
        .await
        .unwrap();
    assert_eq!(xrange(&server.url(), "events:1").await.len(), 1);

    // A key the user may not touch is a per-record refusal (NOPERM), not an outage.
    let denied = sink(json!({
        "url": server.url(), "stream": "other", "username": "weir", "password": "c0rrect-horse"
    }))
    .unwrap();
    let err = denied
        .write(&[Record::from_json(json!(1))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::Partial { outcomes, .. } if matches!(&outcomes[0], RecordOutcome::Fatal(m) if m.contains("NOPERM"))),
        "{err:?}"
    );

    let wrong = sink(json!({
        "url": server.url(), "stream": "events:1", "username": "weir", "password": "hunter2-wrong"
    }))
    .unwrap();
    let err = wrong
        .write(&[Record::from_json(json!(1))])
        .await
        .unwrap_err();
    let message = err.to_string();
    // Refused credentials are the operator's to fix: the records wait (retriable).
    assert!(matches!(err, SinkError::Retriable { .. }), "{err:?}");
    assert!(
        message.contains("authentication refused (WRONGPASS) for user `weir`")
            && message.contains("`password`"),
        "{message}"
    );
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port())),
        "{message}"
    );
    assert!(!message.contains("hunter2-wrong"), "{message}");
    let health = wrong.healthcheck().await.unwrap_err().to_string();
    assert!(
        health.contains("WRONGPASS") && !health.contains("hunter2"),
        "{health}"
    );
}

/// The `value` fields of a stream's entries, read back by `redis-cli` (over TLS for a TLS
/// server, in database `db`): in raw output every field name and value is a line of its own.
fn cli_values(server: &RedisServer, db: u32, stream: &str) -> Vec<Json> {
    let out = server.cli(&["-n", &db.to_string(), "XRANGE", stream, "-", "+"]);
    let lines: Vec<&str> = out.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == "value")
        .map(|w| serde_json::from_str(w[1]).unwrap_or_else(|e| panic!("{}: {e}", w[1])))
        .collect()
}

/// A TLS-only server and the folder of its certificates (`ca.pem`, `client.pem`,
/// `other-ca.pem`...).
fn tls_server(config: &[(&str, &str)]) -> (RedisServer, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    weir_testkit::tls::certificates(certs.path());
    let server = RedisServer::start_tls(certs.path(), config);
    assert!(
        server.url().starts_with("rediss://127.0.0.1:"),
        "{}",
        server.url()
    );
    (server, certs)
}

fn pem(certs: &tempfile::TempDir, name: &str) -> String {
    certs.path().join(name).display().to_string()
}

fn retriable_message(err: &SinkError) -> String {
    match err {
        SinkError::Retriable { message, .. } => message.clone(),
        other => panic!("expected a retriable connection failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_over_tls_to_a_tls_only_server_trusting_the_ca_file() {
    let (server, certs) = tls_server(&[]);
    // The server speaks TLS only: plain TCP on its port gets nowhere.
    let plain = sink(json!({
        "url": server.url().replace("rediss://", "redis://"), "stream": "secure",
        "timeout": "1s", "connect_timeout": "1s"
    }))
    .unwrap();
    assert!(plain.write(&[Record::from_json(json!(0))]).await.is_err());

    let tls = sink(json!({
        "url": server.url(), "stream": "secure", "tls": {"ca_file": pem(&certs, "ca.pem")}
    }))
    .unwrap();
    tls.healthcheck().await.unwrap();
    let records: Vec<Record> = (0..3)
        .map(|i| Record::from_json(json!({"seq": i, "over": "tls"})))
        .collect();
    tls.write(&records).await.unwrap();
    assert_eq!(
        cli_values(&server, 0, "secure"),
        (0..3)
            .map(|i| json!({"seq": i, "over": "tls"}))
            .collect::<Vec<_>>(),
        "read back by redis-cli --tls --cacert ca.pem"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_checks_clients_takes_the_client_certificate_and_refuses_a_client_without_one()
 {
    let (server, certs) = tls_server(&[("tls-auth-clients", "yes")]);
    let with_cert = sink(json!({
        "url": server.url(), "stream": "mutual",
        "tls": {
            "ca_file": pem(&certs, "ca.pem"),
            "cert_file": pem(&certs, "client.pem"),
            "key_file": pem(&certs, "client.key")
        }
    }))
    .unwrap();
    with_cert
        .write(&[Record::from_json(json!({"client": "certified"}))])
        .await
        .unwrap();
    assert_eq!(
        cli_values(&server, 0, "mutual"),
        [json!({"client": "certified"})]
    );

    let without = sink(json!({
        "url": server.url(), "stream": "mutual", "timeout": "2s", "connect_timeout": "2s",
        "tls": {"ca_file": pem(&certs, "ca.pem")}
    }))
    .unwrap();
    let err = without
        .write(&[Record::from_json(json!({"client": "anonymous"}))])
        .await
        .unwrap_err();
    let message = retriable_message(&err);
    eprintln!("without a client certificate: {message}");
    assert!(
        message.contains(&format!(
            "cannot connect to Redis at 127.0.0.1:{}",
            server.port()
        )),
        "{message}"
    );
    assert!(
        message.contains("requires a client certificate")
            && message.contains("CertificateRequired")
            && message.contains("`tls.cert_file`"),
        "{message}"
    );
    assert_eq!(
        cli_values(&server, 0, "mutual").len(),
        1,
        "nothing more written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_signed_by_another_ca_is_not_trusted() {
    let (server, certs) = tls_server(&[]);
    let wrong_ca = sink(json!({
        "url": server.url(), "stream": "untrusted", "timeout": "2s", "connect_timeout": "2s",
        "tls": {"ca_file": pem(&certs, "other-ca.pem")}
    }))
    .unwrap();
    let err = wrong_ca
        .write(&[Record::from_json(json!(1))])
        .await
        .unwrap_err();
    let message = retriable_message(&err);
    eprintln!("another CA: {message}");
    assert!(
        message.contains(&format!(
            "cannot connect to Redis at 127.0.0.1:{}",
            server.port()
        )),
        "{message}"
    );
    // The cause itself, not just "an error": the issuer is unknown to the CA file given.
    assert!(
        message.contains("not trusted") && message.contains("UnknownIssuer"),
        "{message}"
    );
    assert!(message.contains("tls.ca_file"), "{message}");
    assert!(wrong_ca.healthcheck().await.is_err());
    assert_eq!(server.cli(&["EXISTS", "untrusted"]).trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_into_the_database_index_given() {
    let server = RedisServer::start();
    let s = sink(json!({"url": server.url(), "stream": "in-db-3", "database": 3})).unwrap();
    s.write(&[
        Record::from_json(json!({"db": 3, "n": 0})),
        Record::from_json(json!({"db": 3, "n": 1})),
    ])
    .await
    .unwrap();
    assert_eq!(
        cli_values(&server, 3, "in-db-3"),
        [json!({"db": 3, "n": 0}), json!({"db": 3, "n": 1})],
        "read back with redis-cli -n 3"
    );
    assert_eq!(
        server.cli(&["EXISTS", "in-db-3"]).trim(),
        "0",
        "database 0 has no such key"
    );
    assert_eq!(server.cli(&["DBSIZE"]).trim(), "0");
}

#[test]
fn bad_options_name_the_option_and_never_repeat_a_password() {
    for (options, option, says) in [
        (
            json!({"url": "localhost:6379", "stream": "s"}),
            "url",
            "redis://",
        ),
        (
            json!({"url": "redis://weir:s3cret@localhost", "stream": "s"}),
            "url",
            "`password`",
        ),
        (
            json!({"url": "redis://localhost", "stream": "events:<$value.ccid>"}),
            "stream",
            "template",
        ),
        (
            json!({"url": "redis://localhost", "stream": ""}),
            "stream",
            "empty",
        ),
        (
            json!({"url": "redis://localhost", "stream": "s", "max_len": 10, "max_age": "1h"}),
            "max_age",
            "not both",
        ),
        (
            json!({"url": "redis://localhost", "stream": "s", "max_len": 0}),
            "max_len",
            "at least 1",
        ),
        (
            json!({"url": "redis://localhost", "stream": "s", "value_field": ""}),
            "value_field",
            "empty",
        ),
        (
            json!({"url": "redis://localhost", "stream": "s", "tls": {"ca_file": "/x.pem"}}),
            "tls",
            "rediss://",
        ),
    ] {
        let e = sink(options.clone())
            .err()
            .unwrap_or_else(|| panic!("{options} built"));
        assert!(e.starts_with(option), "{options}: {e}");
        assert!(e.contains(says), "{options}: {e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}
