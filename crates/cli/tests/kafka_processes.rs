//! The `weir` binary with Kafka, as operators run it: `kill -9` mid-stream and restart, and two
//! runners sharing a consumer group. Each test starts its own broker
//! (`WEIR_TANSU`, installed by `scripts/test.sh`).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value as Json, json};
use weir_testkit::*;

mod support;
use support::Run;

/// A pipeline that copies `input` to `output`, deliberately slowly (small sink batches, long
/// linger, one write at a time: about 1,000 records/s) behind the source's large batches, so that
/// several seconds of records (well past the 1s commit interval) are in flight when the runner is
/// killed. A source that committed on read rather than on ack loses them.
fn slow_relay(b: &str, input: &str, output: &str, group: &str) -> String {
    format!(
        r#"pipelines:
  relay:
    source:
      type: kafka
      bootstrap_servers: "{b}"
      topics: [{input}]
      group_id: {group}
      start_from: earliest
      drain_timeout: 10s
      options: {{ "session.timeout.ms": 6000, "heartbeat.interval.ms": 500 }}
    sinks:
      - type: kafka
        bootstrap_servers: "{b}"
        topic: {output}
        linger: 100ms
        batch: {{ max_records: 100 }}
        headers: {{ x-runner: "${{RUNNER:-one}}" }}
"#
    )
}

type Weir = Run;

fn spawn_weir(config: &Path, log: &Path, runner: &str) -> Weir {
    Run::start(config, &[("RUNNER", runner)], log)
}

/// [`spawn_weir`] with a `RUST_LOG` filter of the test's own.
fn spawn_weir_logging(config: &Path, log: &Path, runner: &str, filter: &str) -> Weir {
    Run::start_logging(config, &[("RUNNER", runner)], log, filter)
}

/// Records in a topic now, by the partitions' high watermarks.
fn produced_count(b: &str, topic: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = client_config(b).create().unwrap();
    (0..partitions)
        .map(|p| {
            let mut tries = 0;
            loop {
                match c.fetch_watermarks(topic, p, Duration::from_secs(5)) {
                    Ok((_, high)) => break high,
                    Err(e) if tries < 5 => {
                        eprintln!("watermarks of {topic}[{p}]: {e}; retrying");
                        tries += 1;
                    }
                    Err(e) => panic!("cannot read the watermarks of {topic}[{p}]: {e}"),
                }
            }
        })
        .sum()
}

fn numbered(n: usize) -> Vec<Msg> {
    (0..n)
        .map(|i| Msg::new(format!("k{}", i % 50), json!({"seq": i}).to_string()))
        .collect()
}

fn seq(g: &Got) -> u64 {
    serde_json::from_str::<Json>(&g.value).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

fn wait_for_log(log: &Path, needle: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "`{needle}` not logged within {timeout:?}; log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_loses_nothing() {
    const N: usize = 8000;
    let broker = Broker::start();
    let b = broker.addr();
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    create_topics(&b, &[&input, &output], 2).await;
    produce(&b, &input, &numbered(N), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.yaml");
    std::fs::write(&config, slow_relay(&b, &input, &output, &group)).unwrap();

    let mut first = spawn_weir(&config, &dir.path().join("first.log"), "first");
    let start = Instant::now();
    loop {
        let n = produced_count(&b, &output, 2);
        if n >= 3000 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "only {n} records relayed in 90s; log:\n{}",
            std::fs::read_to_string(dir.path().join("first.log")).unwrap_or_default()
        );
        if let Some(s) = first.child().try_wait().unwrap() {
            panic!("weir exited early with {s}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut child = first.take();
    child.kill().unwrap(); // SIGKILL: no drain, no commit
    child.wait().unwrap();
    let at_kill = produced_count(&b, &output, 2);
    assert!(
        (at_kill as usize) < N,
        "the whole input was relayed before the kill; the test proves nothing"
    );

    // The invariant itself: the group never committed past what reached the output (the relay
    // is one to one, and input keys map to output partitions the same way on both sides).
    let committed_at_kill: i64 = committed(&b, &group, &input, 2)
        .into_iter()
        .map(|o| o.unwrap_or(0))
        .sum();
    assert!(
        committed_at_kill <= at_kill,
        "committed {committed_at_kill} offsets but only {at_kill} records were written"
    );

    let second = spawn_weir(&config, &dir.path().join("second.log"), "second");
    let got = tokio::task::spawn_blocking({
        let (b, output) = (b.clone(), output.clone());
        move || {
            let distinct = |g: &[Got]| g.iter().map(seq).collect::<HashSet<_>>().len() >= N;
            consume_until(
                &b,
                &output,
                2,
                distinct,
                Duration::from_secs(3),
                Duration::from_secs(120),
            )
        }
    })
    .await
    .unwrap();
    let status = second.terminate();
    assert!(status.success(), "weir exited with {status}");

    let seqs: HashSet<u64> = got.iter().map(seq).collect();
    let missing: Vec<u64> = (0..N as u64).filter(|s| !seqs.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "{} records lost after kill -9 (first few: {:?}); log of the restarted runner:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default()
    );
    // Duplicates are only records that were in flight at the kill: at most what the first runner
    // wrote after its last commit, never more than it wrote in total.
    let duplicates = got.len() - seqs.len();
    let by_first = got
        .iter()
        .filter(|g| g.headers.get("x-runner").map(String::as_str) == Some("first"))
        .count();
    assert!(
        duplicates <= by_first,
        "{duplicates} duplicates but the first runner only wrote {by_first}"
    );
    eprintln!(
        "kill -9: {at_kill} relayed and {committed_at_kill} committed before the kill, {duplicates} redelivered after it"
    );
    // The group committed everything after the clean stop.
    let committed: i64 = committed(&b, &group, &input, 2)
        .into_iter()
        .map(|o| o.unwrap_or(0))
        .sum();
    assert_eq!(committed, N as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_in_one_group_split_the_partitions_and_deliver_everything_once() {
    const N: usize = 3000;
    let broker = Broker::start();
    let b = broker.addr();
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    create_topics(&b, &[&input, &output], 6).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.yaml");
    std::fs::write(&config, slow_relay(&b, &input, &output, &group)).unwrap();

    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let a = spawn_weir(&config, &log_a, "a");
    wait_for_log(&log_a, "partitions assigned", Duration::from_secs(60));
    let b_runner = spawn_weir(&config, &log_b, "b");
    wait_for_log(&log_b, "partitions assigned", Duration::from_secs(60));
    // Let the cooperative rebalance settle before producing.
    std::thread::sleep(Duration::from_secs(2));
    produce(&b, &input, &numbered(N), &[]).await;

    let got = read_topic(
        &b,
        &output,
        6,
        N,
        Duration::from_secs(3),
        Duration::from_secs(120),
    )
    .await;
    assert!(a.terminate().success());
    assert!(b_runner.terminate().success());

    let seqs: Vec<u64> = got.iter().map(seq).collect();
    let set: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(set.len(), N, "missing records");
    assert_eq!(seqs.len(), N, "records delivered twice");
    let mut per_runner: HashMap<String, usize> = HashMap::new();
    for g in &got {
        *per_runner
            .entry(g.headers.get("x-runner").cloned().unwrap_or_default())
            .or_default() += 1;
    }
    assert!(
        per_runner.get("a").copied().unwrap_or(0) > 0
            && per_runner.get("b").copied().unwrap_or(0) > 0,
        "both runners must take part: {per_runner:?}"
    );
    // Each input key maps to one input partition, hence to one runner.
    let mut runner_of_key: HashMap<String, String> = HashMap::new();
    for g in &got {
        let r = g.headers.get("x-runner").cloned().unwrap_or_default();
        let prev = runner_of_key.insert(g.key.clone().unwrap_or_default(), r.clone());
        assert!(
            prev.is_none_or(|p| p == r),
            "a key was handled by both runners"
        );
    }
}

/// A relay held to one write of 50 records at a time (each waits out its 100 ms linger: about
/// 500 records/s per runner, so every step of a test lands mid-stream), reading 100 records at a
/// time into two-batch buffers, so what is in flight at a rebalance (a few hundred records)
/// finishes well within its 10 s `drain_timeout`.
fn paced_relay(b: &str, input: &str, output: &str, group: &str) -> String {
    format!(
        r#"pipelines:
  relay:
    settings: {{ buffer_batches: 2 }}
    source:
      type: kafka
      bootstrap_servers: "{b}"
      topics: [{input}]
      group_id: {group}
      start_from: earliest
      batch_records: 100
      drain_timeout: 10s
      # Small fetches per partition interleave the partitions, so each holds records in flight.
      options: {{ "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "max.partition.fetch.bytes": 4096 }}
    sinks:
      - type: kafka
        bootstrap_servers: "{b}"
        topic: {output}
        linger: 100ms
        batch: {{ max_records: 50 }}
        max_in_flight: 1
        headers: {{ x-runner: "${{RUNNER:-one}}" }}
"#
    )
}

/// Every record of a topic now (by the high watermarks), with its headers.
fn read_everything(b: &str, topic: &str, partitions: i32) -> Vec<Got> {
    let want = produced_count(b, topic, partitions) as usize;
    let got = consume_all(
        b,
        topic,
        partitions,
        want,
        Duration::from_millis(200),
        Duration::from_secs(60),
    );
    assert!(
        got.len() >= want,
        "read {} of the {want} records in {topic}",
        got.len()
    );
    got
}

/// The group's committed offsets now, checked against the output read after them: every input
/// record below a committed offset is already in the output (nothing committed before it was
/// written). `seq_at` maps (partition, offset) of the input to the record's `seq`.
fn committed_were_written(
    b: &str,
    group: &str,
    input: &str,
    output: &str,
    seq_at: &HashMap<(i32, i64), u64>,
    when: &str,
) -> Vec<i64> {
    let committed: Vec<i64> = committed(b, group, input, 6)
        .into_iter()
        .map(|o| o.unwrap_or(0))
        .collect();
    let written: HashSet<u64> = read_everything(b, output, 6).iter().map(seq).collect();
    for (p, c) in committed.iter().enumerate() {
        for o in 0..*c {
            let s = seq_at[&(p as i32, o)];
            assert!(
                written.contains(&s),
                "{when}: {input}[{p}] is committed at {c}, but offset {o} (seq {s}) is not in the output"
            );
        }
    }
    eprintln!(
        "{when}: committed {committed:?}, {} distinct records written",
        written.len()
    );
    committed
}

/// Waits until `topic` holds at least `n` records; fails if `weir` exits first.
fn wait_for_output(b: &str, topic: &str, n: i64, runners: &mut [&mut Weir], what: &str) {
    let start = Instant::now();
    loop {
        let have = produced_count(b, topic, 6);
        if have >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{what}: only {have} of {n} records in {topic} after 90s"
        );
        for r in runners.iter_mut() {
            if let Some(s) = r.child().try_wait().unwrap() {
                panic!("{what}: weir exited early with {s}");
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runners join and leave while records are in flight: A alone, B joins mid-stream (partitions
/// move while A holds unacknowledged records), A stops cleanly mid-stream, B is killed with
/// SIGKILL mid-stream and restarted as C. Every record arrives; the only duplicates are records
/// B had read and not committed when it was killed; and at every step the group's committed
/// offsets cover only records already in the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runners_joining_and_leaving_mid_stream_lose_nothing_and_commit_only_what_was_written() {
    const N: usize = 8000;
    let broker = Broker::start();
    let b = broker.addr();
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    create_topics(&b, &[&input, &output], 6).await;
    // Produced while the runners come and go, faster than one runner relays (about 500/s), so
    // every partition has records in flight at every step. Record i goes to partition i % 6;
    // chunks are produced one after another, so it lands at offset i / 6 (checked at the end).
    let seq_at: HashMap<(i32, i64), u64> = (0..N as u64)
        .map(|i| (((i % 6) as i32, (i / 6) as i64), i))
        .collect();
    let producer = tokio::spawn({
        let (b, input) = (b.clone(), input.clone());
        async move {
            let msgs: Vec<Msg> = (0..N)
                .map(|i| Msg {
                    partition: Some((i % 6) as i32),
                    ..Msg::new(format!("k{}", i % 50), json!({"seq": i}).to_string())
                })
                .collect();
            for chunk in msgs.chunks(300) {
                produce(&b, &input, chunk, &[]).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.yaml");
    std::fs::write(&config, paced_relay(&b, &input, &output, &group)).unwrap();
    let log = |name: &str| dir.path().join(format!("{name}.log"));
    let log_text = |name: &str| std::fs::read_to_string(log(name)).unwrap_or_default();

    // The source's commits and revokes are logged at debug.
    let filter = "info,weir_sources::kafka::consumer=debug";
    let mut a = spawn_weir_logging(&config, &log("a"), "a", filter);
    wait_for_output(&b, &output, 1500, &mut [&mut a], "A alone");
    let mut b_runner = spawn_weir_logging(&config, &log("b"), "b", filter);
    // Cooperative rebalancing: A gives up partitions first, B gets them in a second round.
    wait_for_log(&log("a"), "partitions revoked", Duration::from_secs(60));
    wait_for_log(
        &log("b"),
        "partitions assigned: in-",
        Duration::from_secs(60),
    );
    committed_were_written(&b, &group, &input, &output, &seq_at, "after B joined");
    let at_join = produced_count(&b, &output, 6);
    wait_for_output(
        &b,
        &output,
        at_join + 1000,
        &mut [&mut a, &mut b_runner],
        "A and B",
    );
    assert!(
        produced_count(&b, &output, 6) < N as i64,
        "everything was relayed before A left; the test proves nothing"
    );
    let status = tokio::task::spawn_blocking(move || a.terminate())
        .await
        .unwrap();
    assert!(status.success(), "A exited with {status}");
    committed_were_written(&b, &group, &input, &output, &seq_at, "after A left");
    let at_leave = produced_count(&b, &output, 6);
    wait_for_output(
        &b,
        &output,
        at_leave + 1500,
        &mut [&mut b_runner],
        "B alone",
    );
    let mut killed = b_runner.take();
    killed.kill().unwrap(); // SIGKILL: no drain, no commit
    killed.wait().unwrap();
    let at_kill = produced_count(&b, &output, 6);
    assert!(
        (at_kill as usize) < N,
        "everything was relayed before the kill; the test proves nothing"
    );
    let committed_at_kill =
        committed_were_written(&b, &group, &input, &output, &seq_at, "after B was killed");

    // Tansu 0.6.0 hands the partitions to a killed member that is still in the group (an empty
    // assignment for the newcomer, seen for minutes); let B's 6 s session expire first.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let c = spawn_weir_logging(&config, &log("c"), "c", filter);
    let got = tokio::task::spawn_blocking({
        let (b, output) = (b.clone(), output.clone());
        move || {
            let distinct = |g: &[Got]| g.iter().map(seq).collect::<HashSet<_>>().len() >= N;
            consume_until(
                &b,
                &output,
                6,
                distinct,
                Duration::from_secs(3),
                Duration::from_secs(120),
            )
        }
    })
    .await
    .unwrap();
    let status = tokio::task::spawn_blocking(move || c.terminate())
        .await
        .unwrap();
    assert!(status.success(), "C exited with {status}");
    producer.await.expect("the producer failed");
    let layout: HashMap<(i32, i64), u64> = read_everything(&b, &input, 6)
        .iter()
        .map(|g| ((g.partition, g.offset), seq(g)))
        .collect();
    assert!(
        layout == seq_at,
        "the input is not laid out as the test assumed"
    );

    let mut copies: HashMap<u64, Vec<String>> = HashMap::new();
    for g in &got {
        copies
            .entry(seq(g))
            .or_default()
            .push(g.headers.get("x-runner").cloned().unwrap_or_default());
    }
    let missing: Vec<u64> = (0..N as u64).filter(|s| !copies.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{} records lost (first few: {:?}); log of C:\n{}\nbroker log:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        log_text("c"),
        broker.log()
    );
    // Every drain finished in time (the premise of "no duplicates but the kill's").
    for r in ["a", "b"] {
        assert!(
            !log_text(r).contains("will not finish"),
            "{r} abandoned in-flight records at a rebalance:\n{}",
            log_text(r)
        );
    }
    // Duplicates: only records B had read and not committed when it was killed, written again
    // by C; a revoke (B joining) or a clean leave (A) redelivers nothing.
    let offset_of: HashMap<u64, (i32, i64)> = seq_at.iter().map(|(k, v)| (*v, *k)).collect();
    let mut duplicates = 0;
    for (s, runners) in &copies {
        if runners.len() == 1 {
            continue;
        }
        duplicates += runners.len() - 1;
        let (p, o) = offset_of[s];
        assert!(
            runners.len() == 2
                && runners.contains(&"b".to_owned())
                && runners.contains(&"c".to_owned()),
            "seq {s} ({input}[{p}]@{o}) written by {runners:?}: only B's uncommitted records may be written twice (by B and C); log of A:\n{}\nlog of B:\n{}",
            log_text("a"),
            log_text("b")
        );
        assert!(
            o >= committed_at_kill[p as usize],
            "seq {s} ({input}[{p}]@{o}) was committed before the kill (at {}) yet delivered again",
            committed_at_kill[p as usize]
        );
    }
    let by: HashMap<&str, usize> = ["a", "b", "c"]
        .iter()
        .map(|r| (*r, copies.values().flatten().filter(|x| x == r).count()))
        .collect();
    assert!(
        by.values().all(|n| *n > 0),
        "every runner must take part: {by:?}"
    );
    // A held unacknowledged records when B's arrival took partitions from it.
    let revoke = log_text("a")
        .lines()
        .find(|l| l.contains("partitions revoked"))
        .unwrap_or_default()
        .to_owned();
    let in_flight: usize = revoke
        .split("; ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no in-flight count in A's revoke line: {revoke:?}"));
    assert!(
        in_flight > 0,
        "A held nothing in flight when B joined; the test proves nothing: {revoke}"
    );
    eprintln!(
        "join/leave/kill: written by {by:?}, {duplicates} duplicates after the kill (at {at_kill}); A's revoke: {revoke}"
    );
    let final_committed: i64 = committed(&b, &group, &input, 6)
        .into_iter()
        .map(|o| o.unwrap_or(0))
        .sum();
    assert_eq!(final_committed, N as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_keeps_the_consumer_in_its_group() {
    // The pipeline's buffers hold about 50 of these (five stages of one 10-record batch), so the
    // source meets a full pipeline for the last half.
    const N: usize = 100;
    let broker = Broker::start();
    let b = broker.addr();
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    create_topics(&b, &[&input, &output], 1).await;
    produce(&b, &input, &numbered(N), &[]).await;
    // Every write of 10 records waits out a 4s linger, and the pipeline buffers hold one batch,
    // so the pipeline stays full for 4s at a time, longer than the 3s max.poll.interval.ms. A
    // source that waited on the full pipeline instead of pausing its partitions and polling on
    // would be thrown out of its group (librdkafka's MAXPOLL) and its partitions reassigned; one
    // that never paused would keep fetching into memory (the pause and resume lines below).
    let yaml = format!(
        r#"pipelines:
  slow:
    settings: {{ buffer_batches: 1 }}
    source:
      type: kafka
      bootstrap_servers: "{b}"
      topics: [{input}]
      group_id: {group}
      start_from: earliest
      batch_records: 10
      options: {{ "session.timeout.ms": 3000, "heartbeat.interval.ms": 500, "max.poll.interval.ms": 3000 }}
    sinks:
      - type: kafka
        bootstrap_servers: "{b}"
        topic: {output}
        linger: 4s
        batch: {{ max_records: 10 }}
        max_in_flight: 1
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("slow.yaml");
    std::fs::write(&config, yaml).unwrap();
    let log = dir.path().join("slow.log");
    let runner = spawn_weir_logging(&config, &log, "slow", "info,weir_sources::kafka=debug");
    let got = read_topic(
        &b,
        &output,
        1,
        N,
        Duration::from_secs(1),
        Duration::from_secs(120),
    )
    .await;
    assert!(runner.terminate().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let running = text.split("stopping:").next().unwrap_or_default();
    assert_eq!(
        running.matches("partitions assigned").count(),
        1,
        "the consumer was reassigned while the sink was slow:\n{text}"
    );
    for bad in [
        "partitions revoked",
        "MAXPOLL",
        "SESSTMOUT",
        "max.poll.interval",
        "rebalance",
    ] {
        assert!(
            !running.contains(bad),
            "`{bad}` while the sink was slow:\n{text}"
        );
    }
    // The source paused its partitions while the pipeline was full and resumed them when it
    // had room, more than once.
    let paused = running
        .matches("the pipeline is full: paused 1 partitions")
        .count();
    let resumed = running
        .matches("the pipeline has room: resumed 1 partitions")
        .count();
    assert!(
        paused >= 2 && resumed >= 2,
        "paused {paused} and resumed {resumed} times:\n{text}"
    );
    let seqs: HashSet<u64> = got.iter().map(seq).collect();
    assert_eq!(seqs.len(), N);
    assert_eq!(got.len(), N, "records were redelivered");
    let order: Vec<u64> = got.iter().map(seq).collect();
    assert_eq!(order, (0..N as u64).collect::<Vec<_>>(), "in order");
}

/// Kafka → filter → `http` enrichment → `http` sink over HTTPS, `kill -9` mid-stream, restart:
/// every kept record reaches the server at least once, and the idempotency keys (the records'
/// Kafka coordinates) let the server count each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_https_kill_9_then_restart_delivers_every_record() {
    use weir_testkit::https::{Answer, Https};
    const N: usize = 1600;
    let broker = Broker::start();
    let b = broker.addr();
    let (input, group) = (unique("in"), unique("g"));
    create_topics(&b, &[&input], 2).await;
    produce(&b, &input, &numbered(N), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    weir_testkit::tls::certificates(dir.path());
    // The enrichment answers a risk score; the events endpoint takes ~3 ms per request, so the
    // kill lands mid-stream.
    let server = Https::start(dir.path(), None, |s, _| {
        if s.path == "/risk" {
            let seq = s.json()["seq"].as_u64().unwrap();
            Answer::ok().body(json!({"score": seq % 7}).to_string())
        } else {
            Answer::ok().after(Duration::from_millis(3))
        }
    })
    .await;
    let ca = dir.path().join("ca.pem").display().to_string();
    let config = dir.path().join("https.yaml");
    std::fs::write(
        &config,
        format!(
            r#"pipelines:
  to-https:
    source:
      type: kafka
      bootstrap_servers: "{b}"
      topics: [{input}]
      group_id: {group}
      start_from: earliest
      options: {{ "session.timeout.ms": 6000, "heartbeat.interval.ms": 500 }}
    transforms:
      - type: filter
        patterns: [ {{ value: {{ seq: [ {{ anything-but: [0] }} ] }} }} ]
      - type: http
        url: "{u}/risk"
        target: value.risk
        tls: {{ ca_file: "{ca}" }}
    sinks:
      - type: http
        url: "{u}/events"
        tls: {{ ca_file: "{ca}" }}
        batch: {{ max_records: 50 }}
"#,
            u = server.url
        ),
    )
    .unwrap();
    let want: HashSet<u64> = (1..N as u64).collect();
    let events = |server: &Https| -> Vec<weir_testkit::https::Seen> {
        server
            .seen()
            .into_iter()
            .filter(|s| s.path == "/events")
            .collect()
    };

    let mut first = spawn_weir(&config, &dir.path().join("first.log"), "first");
    let start = Instant::now();
    while events(&server).len() < 400 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "only {} events in 90s; log:\n{}",
            events(&server).len(),
            std::fs::read_to_string(dir.path().join("first.log")).unwrap_or_default()
        );
        if let Some(s) = first.child().try_wait().unwrap() {
            panic!("weir exited early with {s}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut child = first.take();
    child.kill().unwrap(); // SIGKILL: no drain, no commit
    child.wait().unwrap();
    let at_kill = events(&server).len();
    assert!(
        at_kill < want.len(),
        "everything arrived before the kill; the test proves nothing"
    );

    let second = spawn_weir(&config, &dir.path().join("second.log"), "second");
    let start = Instant::now();
    loop {
        let keys: HashSet<String> = events(&server)
            .iter()
            .map(|s| s.headers["idempotency-key"].clone())
            .collect();
        if keys.len() >= want.len() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{} of {} distinct records after the restart; log:\n{}",
            keys.len(),
            want.len(),
            std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = tokio::task::spawn_blocking(move || second.terminate())
        .await
        .unwrap();
    assert!(status.success(), "weir exited with {status}");

    // Exactly-once by idempotency key: one key is always the same record, and every kept
    // record has a key.
    let mut by_key: HashMap<String, u64> = HashMap::new();
    let all = events(&server);
    for e in &all {
        let v = e.json();
        let seq = v["seq"].as_u64().unwrap();
        assert_eq!(v["risk"]["score"], seq % 7, "enriched");
        let key = e.headers["idempotency-key"].clone();
        assert!(key.starts_with(&format!("{input}-")), "{key}");
        if let Some(prev) = by_key.insert(key.clone(), seq) {
            assert_eq!(prev, seq, "key {key} named two records");
        }
    }
    let seqs: HashSet<u64> = by_key.values().copied().collect();
    assert_eq!(seqs, want, "every kept record arrived");
    let duplicates = all.len() - by_key.len();
    eprintln!(
        "kill -9 with HTTPS: {at_kill} requests before the kill, {} after, {duplicates} duplicates dropped by key",
        all.len() - at_kill
    );
}

/// `weir run` with `password: "${KAFKA_PASSWORD}"` on a broker that requires SCRAM: with the
/// right password the records relay, with a wrong one the run fails naming the broker's refusal;
/// in neither run does the password appear in what the process printed (debug logs, with
/// librdkafka's security and broker debug contexts on, and the error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sasl_password_from_the_environment_never_appears_in_logs_or_errors() {
    const RIGHT: &str = "right-pa55-from-env-7319";
    const WRONG: &str = "wrong-pa55-from-env-4682";
    let weir = SaslUser::new("weir", RIGHT, Scram::Sha512);
    let broker = Broker::start_with_sasl(std::slice::from_ref(&weir));
    let b = broker.addr();
    let extra = weir.client_properties();
    let (input, output) = (unique("in"), unique("out"));
    create_topics_with(&b, &extra, &[&input, &output], 1).await;
    produce(&b, &input, &numbered(30), &extra).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sasl.yaml");
    let yaml = |group: &str| {
        format!(
            r#"pipelines:
  secure:
    source:
      type: kafka
      bootstrap_servers: "{b}"
      topics: [{input}]
      group_id: {group}
      start_from: earliest
      connect_timeout: 5s
      sasl: {{ mechanism: SCRAM-SHA-512, username: weir, password: "${{KAFKA_PASSWORD}}" }}
      options: {{ "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, debug: "security,broker" }}
    sinks:
      - type: kafka
        bootstrap_servers: "{b}"
        topic: {output}
        sasl: {{ mechanism: SCRAM-SHA-512, username: weir, password: "${{KAFKA_PASSWORD}}" }}
        options: {{ debug: "security,broker" }}
"#
        )
    };
    let spawn = |password: &str, log: &Path| {
        Run::adopt(
            support::weir()
                .arg("run")
                .arg(&config)
                .env("KAFKA_PASSWORD", password)
                .env("RUST_LOG", "debug")
                .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
                .stderr(std::fs::File::create(log).unwrap())
                .spawn()
                .expect("cannot start weir"),
        )
    };
    let printed = |log: &Path| {
        std::fs::read_to_string(log).unwrap()
            + &std::fs::read_to_string(log.with_extension("out")).unwrap()
    };

    // The right password: the records relay, then a clean stop.
    std::fs::write(&config, yaml(&unique("g"))).unwrap();
    let ok_log = dir.path().join("right.log");
    let running = spawn(RIGHT, &ok_log);
    let got = tokio::task::spawn_blocking({
        let (b, output, weir) = (b.clone(), output.clone(), weir.clone());
        move || {
            consume_until_with(
                &b,
                &weir.client_properties(),
                &output,
                1,
                |g| g.len() >= 30,
                Duration::from_millis(300),
                Duration::from_secs(60),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(running.terminate().code(), Some(0), "{}", printed(&ok_log));
    assert_eq!(
        got.iter().map(seq).collect::<Vec<_>>(),
        (0..30).collect::<Vec<u64>>(),
        "{}",
        printed(&ok_log)
    );
    let ok_text = printed(&ok_log);
    assert!(
        ok_text.contains("SCRAM"),
        "librdkafka's security debug lines were printed, so the check below covers them: {ok_text}"
    );
    assert!(!ok_text.contains(RIGHT), "the password leaked:\n{ok_text}");

    // A wrong password: the run fails, naming the refusal, and the password is nowhere.
    std::fs::write(&config, yaml(&unique("g"))).unwrap();
    let bad_log = dir.path().join("wrong.log");
    let mut failing = spawn(WRONG, &bad_log);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = failing.child().try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "weir with a wrong password did not fail within 60s:\n{}",
            printed(&bad_log)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let bad_text = printed(&bad_log);
    assert!(!status.success(), "{bad_text}");
    assert!(
        bad_text.contains("SASL SCRAM authentication failed: broker responded with invalid-proof"),
        "{bad_text}"
    );
    assert!(
        !bad_text.contains(WRONG),
        "the password leaked:\n{bad_text}"
    );
    assert!(!bad_text.contains(RIGHT), "{bad_text}");
}
