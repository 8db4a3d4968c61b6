//! Pipelines through the Redis connectors against real `redis-server`s: 100,000 records in
//! order per stream, read back by an independent client (Python's `redis`); `kill -9` of the
//! server mid-stream with `appendonly yes` losing nothing, the duplicates recognisable by their
//! offset fields; a reply lost on the way (a proxy that cuts the connection) retried, the
//! duplicates recognisable by their offset; a `WRONGTYPE` key dead-lettered while the rest flow; an unreachable Redis
//! retried and reported in the component's health; Redis to Redis through the lookup; the
//! source, the lookup and the sink all in database 3; and bad options reported with their
//! file, line and column.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use support::pipelines::build;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use weir_runtime::{Runtime, builtin_registry};
use weir_testkit::redis::RedisServer;

fn input(dir: &Path, n: usize, streams: usize) -> PathBuf {
    let p = dir.join("in.ndjson");
    let mut text = String::with_capacity(n * 40);
    for i in 0..n {
        text.push_str(&json!({"seq": i, "ccid": format!("c{}", i % streams)}).to_string());
        text.push('\n');
    }
    std::fs::write(&p, text).unwrap();
    p
}

async fn run_to_end(rt: Runtime, within: Duration) {
    tokio::time::timeout(within, rt.run(CancellationToken::new()))
        .await
        .expect("the pipeline finishes in time")
        .unwrap_or_else(|e| panic!("pipeline failed: {e}"));
}

/// Every entry of the streams, read by Python's redis client: per stream, the entries'
/// `value.seq`, `topic` and `offset` fields, in stream order.
fn python_read(port: u16, streams: &[&str]) -> BTreeMap<String, Vec<(u64, String, i64)>> {
    let script = r#"
import json, sys
try:
    import redis
except ImportError:
    sys.exit("the Python package `redis` is missing: python3 -m pip install redis (scripts/test.sh does)")
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
out = {}
for stream in sys.argv[2:]:
    got, last = [], "-"
    while True:
        page = r.xrange(stream, min=last, max="+", count=10000)
        if last != "-":
            page = page[1:]
        if not page:
            break
        for _id, f in page:
            got.append([json.loads(f[b"value"])["seq"], f[b"topic"].decode(), int(f[b"offset"])])
        last = page[-1][0].decode()
    out[stream] = got
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .args(streams)
        .output()
        .expect("python3 is needed for the Redis read-back tests");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sink_pipeline(input: &Path, sink: &str, extra: &str) -> String {
    format!(
        "pipelines:\n  p:\n    source: {{ type: file, path: \"{}\" }}\n    sinks:\n      - {sink}\n{extra}",
        input.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_arrive_in_order_per_stream_and_python_reads_them_back() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let inp = input(dir.path(), 100_000, 4);
    let sink = format!(
        "{{ type: redis, url: \"{}\", stream: \"events:<$.value.ccid>\", batch: {{ max_records: 1000 }} }}",
        server.url()
    );
    let started = Instant::now();
    run_to_end(
        build(&sink_pipeline(&inp, &sink, "")),
        Duration::from_secs(300),
    )
    .await;
    eprintln!("100,000 records to Redis in {:?}", started.elapsed());
    let streams = ["events:c0", "events:c1", "events:c2", "events:c3"];
    let got = python_read(server.port(), &streams);
    let mut total = 0;
    for (i, s) in streams.iter().enumerate() {
        let entries = &got[*s];
        let seqs: Vec<u64> = entries.iter().map(|e| e.0).collect();
        let expected: Vec<u64> = (0..100_000u64).filter(|n| n % 4 == i as u64).collect();
        assert_eq!(seqs, expected, "stream {s}: every record, once, in order");
        assert!(entries.iter().all(|e| e.1 == inp.display().to_string()));
        total += entries.len();
    }
    assert_eq!(total, 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_redis_mid_stream_loses_nothing_and_duplicates_carry_their_offsets() {
    let mut server = RedisServer::start_with(&[("appendonly", "yes"), ("appendfsync", "everysec")]);
    let dir = tempfile::tempdir().unwrap();
    let n = 40_000;
    let inp = input(dir.path(), n, 1);
    let sink = format!(
        "{{ type: redis, url: \"{}\", stream: \"events\", timeout: 2s, connect_timeout: 500ms, batch: {{ max_records: 200 }}, retry: {{ max_attempts: -1, initial_backoff: 50ms, max_backoff: 500ms }} }}",
        server.url()
    );
    let rt = build(&sink_pipeline(&inp, &sink, ""));
    let run = tokio::spawn(rt.run(CancellationToken::new()));
    // Mid-stream: some, not all, written.
    let start = Instant::now();
    loop {
        let len: usize = server.cli(&["XLEN", "events"]).trim().parse().unwrap_or(0);
        if len >= 5_000 {
            assert!(
                len < n,
                "the pipeline finished before the kill; make the input larger"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart();
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the pipeline finishes after the restart")
        .unwrap()
        .unwrap_or_else(|e| panic!("pipeline failed: {e}"));

    let got = &python_read(server.port(), &["events"])["events"];
    let seqs: BTreeSet<u64> = got.iter().map(|e| e.0).collect();
    assert_eq!(
        seqs.len(),
        n,
        "every record is in the stream after the crash"
    );
    // A duplicate is a replay of the same record: same source offset, same value.
    let mut by_offset: BTreeMap<i64, u64> = BTreeMap::new();
    for (seq, _, offset) in got {
        let first = *by_offset.entry(*offset).or_insert(*seq);
        assert_eq!(first, *seq, "offset {offset} names two different records");
    }
    assert_eq!(by_offset.len(), n, "one offset per record");
    eprintln!(
        "{} entries for {n} records: {} duplicates, recognisable by their offset",
        got.len(),
        got.len() - n
    );
}

/// A TCP proxy in front of Redis that, once `cut` is set, swallows the replies on the
/// connection that next receives one and closes it 300 ms later: the commands it forwarded
/// were applied, but the client never hears so. Later connections pass everything.
async fn reply_losing_proxy(upstream: u16, cut: Arc<AtomicBool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let up = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
            });
            let cut = cut.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut cut_at: Option<Instant> = None;
                loop {
                    let read = match cut_at {
                        Some(at) => {
                            let left = Duration::from_millis(300).saturating_sub(at.elapsed());
                            match tokio::time::timeout(left, sr.read(&mut buf)).await {
                                Ok(r) => r,
                                Err(_) => break,
                            }
                        }
                        None => sr.read(&mut buf).await,
                    };
                    let Ok(n) = read else { break };
                    if n == 0 {
                        break;
                    }
                    if cut_at.is_none() && cut.swap(false, Ordering::SeqCst) {
                        cut_at = Some(Instant::now());
                    }
                    if cut_at.is_none() && cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                // Dropping both halves closes the client's connection.
                up.abort();
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_is_retried_and_the_duplicates_carry_the_same_offsets() {
    let server = RedisServer::start();
    let cut = Arc::new(AtomicBool::new(false));
    let port = reply_losing_proxy(server.port(), cut.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let inp = input(dir.path(), n, 1);
    let sink = format!(
        "{{ type: redis, url: \"redis://127.0.0.1:{port}\", stream: events, timeout: 2s, batch: {{ max_records: 500 }}, retry: {{ max_attempts: -1, initial_backoff: 50ms, max_backoff: 200ms }} }}"
    );
    let run = tokio::spawn(build(&sink_pipeline(&inp, &sink, "")).run(CancellationToken::new()));
    let start = Instant::now();
    while server
        .cli(&["XLEN", "events"])
        .trim()
        .parse::<usize>()
        .unwrap_or(0)
        < 2_000
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cut.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the pipeline finishes")
        .unwrap()
        .unwrap_or_else(|e| panic!("pipeline failed: {e}"));
    assert!(!cut.load(Ordering::SeqCst), "the proxy cut a connection");
    let got = &python_read(server.port(), &["events"])["events"];
    let mut by_offset: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for (seq, _, offset) in got {
        by_offset.entry(*offset).or_default().push(*seq);
    }
    assert_eq!(by_offset.len(), n, "every record is there");
    let duplicated: Vec<_> = by_offset.values().filter(|s| s.len() > 1).collect();
    assert!(
        !duplicated.is_empty(),
        "the batch whose reply was lost is written again"
    );
    assert!(
        by_offset.values().all(|s| s.iter().all(|x| *x == s[0])),
        "a duplicate repeats its record's offset"
    );
    eprintln!(
        "{} entries for {n} records: {} records written twice after the lost reply",
        got.len(),
        duplicated.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrongtype_key_goes_to_the_dlq_while_the_other_records_flow() {
    let server = RedisServer::start();
    server.cli(&["SET", "events:c1", "a string, not a stream"]);
    let dir = tempfile::tempdir().unwrap();
    let inp = input(dir.path(), 30, 3);
    let dlq = dir.path().join("dlq.ndjson");
    let sink = format!(
        "{{ type: redis, url: \"{}\", stream: \"events:<$.value.ccid>\" }}",
        server.url()
    );
    let extra = format!(
        "    dlq: {{ type: file, path: \"{}\", envelope: true }}\n",
        dlq.display()
    );
    run_to_end(
        build(&sink_pipeline(&inp, &sink, &extra)),
        Duration::from_secs(60),
    )
    .await;
    let dead: Vec<Json> = std::fs::read_to_string(&dlq)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 10);
    for d in &dead {
        assert_eq!(d["value"]["ccid"], "c1");
        let m = d["headers"]["__connect.errors.exception.message"]
            .as_str()
            .unwrap();
        assert!(m.contains("WRONGTYPE"), "{m}");
        assert_eq!(d["headers"]["__connect.errors.stage"], "sink");
    }
    let got = python_read(server.port(), &["events:c0", "events:c2"]);
    assert_eq!(got["events:c0"].len() + got["events:c2"].len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_retried_and_the_pipeline_reports_it() {
    let port = weir_testkit::free_port();
    let dir = tempfile::tempdir().unwrap();
    let inp = input(dir.path(), 50, 1);
    let sink = format!(
        "{{ type: redis, name: store, url: \"redis://127.0.0.1:{port}\", stream: events, connect_timeout: 300ms, retry: {{ max_attempts: -1, initial_backoff: 50ms, max_backoff: 300ms }} }}"
    );
    let rt = build(&sink_pipeline(&inp, &sink, ""));
    let telemetry = rt.metrics().telemetry().clone();
    let run = tokio::spawn(rt.run(CancellationToken::new()));
    let start = Instant::now();
    let reason = loop {
        let degraded: Vec<String> = telemetry
            .pipeline_health("p")
            .into_iter()
            .filter_map(|(component, h)| Some(format!("{component}: {}", h.current()?.0)))
            .collect();
        if let Some(r) = degraded.into_iter().find(|r| r.starts_with("store")) {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        reason.contains(&format!("cannot connect to Redis at 127.0.0.1:{port}")),
        "{reason}"
    );
    assert!(
        !run.is_finished(),
        "records wait for Redis, they are not dropped"
    );
    let server = RedisServer::start_on(port, &[]);
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the pipeline finishes once Redis is there")
        .unwrap()
        .unwrap_or_else(|e| panic!("pipeline failed: {e}"));
    assert_eq!(python_read(port, &["events"])["events"].len(), 50);
    let still: Vec<_> = telemetry
        .pipeline_health("p")
        .into_iter()
        .filter(|(_, h)| h.current().is_some())
        .map(|(c, h)| (c, h.current()))
        .collect();
    assert!(still.is_empty(), "healthy again: {still:?}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_to_redis_through_the_lookup_keeps_the_source_position_in_the_entries() {
    let server = RedisServer::start();
    let url = server.url();
    server.cli(&["HSET", "tenant:acme", "region", "eu-west-1"]);
    for i in 0..20 {
        let tenant = if i % 2 == 0 { "acme" } else { "ghost" };
        let v = json!({"seq": i, "tenant": tenant}).to_string();
        server.cli(&["XADD", "in", "*", "value", &v]);
    }
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dlq.ndjson");
    let yaml = format!(
        "pipelines:\n  p:\n    source: {{ type: redis, url: \"{url}\", streams: [in], group: relay, start_from: earliest, block: 100ms, drain_timeout: 2s }}\n    transforms:\n      - {{ type: redis, url: \"{url}\", key: \"tenant:<$.value.tenant>\", command: hgetall, target: value.tenant_info, on_miss: fail, cache: {{ ttl: 1m }} }}\n    sinks:\n      - {{ type: redis, url: \"{url}\", stream: out }}\n    dlq: {{ type: file, path: \"{}\", envelope: true }}\n",
        dlq.display()
    );
    let rt = build(&yaml);
    let token = CancellationToken::new();
    let run = tokio::spawn(rt.run(token.clone()));
    let start = Instant::now();
    loop {
        let len: usize = server.cli(&["XLEN", "out"]).trim().parse().unwrap_or(0);
        let dead = std::fs::read_to_string(&dlq).map_or(0, |t| t.lines().count());
        if len == 10 && dead == 10 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "out {len}, dead {dead}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Acknowledged in the source group once written or dead-lettered.
    let start = Instant::now();
    while server.cli(&["XPENDING", "in", "relay"]).lines().next() != Some("0") {
        assert!(start.elapsed() < Duration::from_secs(10), "still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    run.await.unwrap().unwrap();

    let ids = server.cli(&["XRANGE", "in", "-", "+"]);
    let got = &python_read(server.port(), &["out"])["out"];
    for (seq, topic, offset) in got {
        assert_eq!(seq % 2, 0);
        assert_eq!(topic, "in");
        // The offset is the source entry's id, milliseconds × 10⁶ + sequence.
        let id = format!("{}-{}", offset / 1_000_000, offset % 1_000_000);
        assert!(ids.contains(&id), "{id} is not an entry of `in`");
    }
    let dead = std::fs::read_to_string(&dlq).unwrap();
    assert!(
        dead.contains("tenant:ghost") && dead.contains("on_miss"),
        "{dead}"
    );
}

/// The `value` fields of a stream's entries in database `db`, read back by `redis-cli`.
fn cli_values(server: &RedisServer, db: u32, stream: &str) -> Vec<Json> {
    let out = server.cli(&["-n", &db.to_string(), "XRANGE", stream, "-", "+"]);
    let lines: Vec<&str> = out.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == "value")
        .map(|w| serde_json::from_str(w[1]).unwrap_or_else(|e| panic!("{}: {e}", w[1])))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_lookup_and_sink_use_the_database_index_given() {
    let server = RedisServer::start();
    let url = server.url();
    // Database 0 has a decoy input stream of the same name; the lookup's key is set in
    // database 3 only.
    server.cli(&[
        "XADD",
        "in",
        "*",
        "value",
        r#"{"seq":99,"tenant":"acme","db":0}"#,
    ]);
    server.cli(&["-n", "3", "HSET", "tenant:acme", "region", "eu-west-1"]);
    for i in 0..5 {
        let v = json!({"seq": i, "tenant": "acme"}).to_string();
        server.cli(&["-n", "3", "XADD", "in", "*", "value", &v]);
    }
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dlq.ndjson");
    let yaml = format!(
        "pipelines:\n  p:\n    source: {{ type: redis, url: \"{url}\", database: 3, streams: [in], group: relay, start_from: earliest, block: 100ms, drain_timeout: 2s }}\n    transforms:\n      - {{ type: redis, url: \"{url}\", database: 3, key: \"tenant:<$.value.tenant>\", command: hgetall, target: value.tenant_info, on_miss: fail }}\n    sinks:\n      - {{ type: redis, url: \"{url}\", database: 3, stream: out }}\n    dlq: {{ type: file, path: \"{}\", envelope: true }}\n",
        dlq.display()
    );
    let token = CancellationToken::new();
    let run = tokio::spawn(build(&yaml).run(token.clone()));
    let start = Instant::now();
    loop {
        let written = cli_values(&server, 3, "out").len() + cli_values(&server, 0, "out").len();
        let dead = std::fs::read_to_string(&dlq).map_or(0, |t| t.lines().count());
        if written + dead >= 5 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "written {written}, dead {dead}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    run.await.unwrap().unwrap();

    let dead = std::fs::read_to_string(&dlq).unwrap_or_default();
    assert_eq!(dead, "", "the lookup finds tenant:acme in database 3");
    assert_eq!(
        cli_values(&server, 3, "out"),
        (0..5)
            .map(|i| json!({"seq": i, "tenant": "acme", "tenant_info": {"region": "eu-west-1"}}))
            .collect::<Vec<_>>(),
        "database 3's input, enriched, written to database 3"
    );
    assert_eq!(
        server.cli(&["EXISTS", "out", "tenant:acme"]).trim(),
        "0",
        "nothing written to or looked up in database 0"
    );
    assert_eq!(
        server.cli(&["XINFO", "GROUPS", "in"]).trim(),
        "",
        "the source's group is in database 3"
    );
}

#[test]
fn bad_options_are_reported_with_their_location_and_without_the_password() {
    let registry = builtin_registry().unwrap();
    let yaml = "pipelines:\n  p:\n    source: { type: redis, url: \"redis://127.0.0.1\", streams: [], group: g }\n    transforms:\n      - { type: redis, url: \"redis://127.0.0.1\", key: \"t:<$tenant>\" }\n    sinks:\n      - type: redis\n        url: \"redis://weir:pa55word-xyz@127.0.0.1:6379\"\n        stream: s\n      - { type: redis, url: \"127.0.0.1:6379\", stream: \"e:<$.value.id>\" }\n";
    let e = match Runtime::from_yaml_str("test.yaml", yaml, &registry) {
        Ok(_) => panic!("built"),
        Err(e) => e.to_string(),
    };
    eprintln!("{e}");
    for expected in [
        "test.yaml:3:",
        "pipelines.p.source.streams",
        "test.yaml:5:",
        "pipelines.p.transforms[0].key",
        "test.yaml:8:",
        "pipelines.p.sinks[0].url",
        "`password`",
        "pipelines.p.sinks[1].url",
        "must start with redis://",
    ] {
        assert!(e.contains(expected), "missing {expected:?} in:\n{e}");
    }
    assert!(!e.contains("pa55word-xyz"), "{e}");
}
