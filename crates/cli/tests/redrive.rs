//! `weir dlq redrive` as an operator runs it: dead letters made by real pipelines (a Kafka DLQ
//! filled by an HTTPS target that was down, a file DLQ filled by a failing transform and a
//! refusing target), redriven once the problem is fixed, with `kill -9` in the middle, with
//! selections, fix-up transforms and bad arguments. Each Kafka test starts its own broker
//! (`WEIR_TANSU`, installed by `scripts/test.sh`); the HTTPS targets are the testkit's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use weir_testkit::https::{Answer, Https, Seen};
use weir_testkit::*;

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    c.env(
        "RUST_LOG",
        std::env::var("TEST_WEIR_LOG").unwrap_or("warn".into()),
    );
    c
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `weir dlq redrive <args>` to its end (bounded: 240 s).
fn redrive(args: &[&str]) -> Out {
    let c = weir()
        .args(["dlq", "redrive", "--progress", "lines"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = c.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(c.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            signal(pid, "-KILL");
            panic!("weir dlq redrive {args:?} did not finish within 240s");
        }
    };
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The value of a summary line (`  delivered    1000  (…)` → `1000`).
fn summary(out: &Out, key: &str) -> String {
    out.stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .unwrap_or_else(|| panic!("no `{key}` in the summary:\n{}", out.stderr))
        .trim()
        .to_owned()
}

fn summary_count(out: &Out, key: &str) -> u64 {
    summary(out, key)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The consumer group a Kafka redrive keeps its progress in, from its summary.
fn group_of(out: &Out) -> String {
    summary(out, "progress")
        .strip_prefix("consumer group ")
        .unwrap_or_else(|| panic!("not a consumer group:\n{}", out.stderr))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn id_of(s: &Seen) -> u64 {
    s.json()["id"].as_u64().unwrap()
}

/// A running `weir run`, killed if the test fails first.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// A Kafka pipeline `orders` (input topic → `https` target, 2 attempts → Kafka DLQ) whose
/// target is down, run until `n` records are dead letters; then the target comes back.
struct KafkaLetters {
    broker: Broker,
    dir: tempfile::TempDir,
    file: PathBuf,
    input: String,
    dlq: String,
    server: Https,
    up: Arc<AtomicBool>,
    /// Per letter: its record's id, and the input partition and offset it came from.
    letters: Vec<(u64, i32, i64)>,
    /// Letters per DLQ partition.
    per_partition: BTreeMap<i32, i64>,
}

const PARTITIONS: i32 = 2;

async fn kafka_letters(n: usize, answer_delay: Duration) -> KafkaLetters {
    let broker = Broker::start();
    let b = broker.addr();
    let (input, dlq) = (unique("orders"), unique("orders-dlq"));
    create_topics(&b, &[&input, &dlq], PARTITIONS).await;
    let dir = tempfile::tempdir().unwrap();
    tls::certificates(dir.path());
    let up = Arc::new(AtomicBool::new(false));
    let is_up = up.clone();
    let server = Https::start(dir.path(), None, move |_, _| {
        if is_up.load(Ordering::SeqCst) {
            Answer::ok().after(answer_delay)
        } else {
            Answer::status(503).body("maintenance")
        }
    })
    .await;
    let file = dir.path().join("orders.yaml");
    std::fs::write(
        &file,
        format!(
            r#"pipelines:
  orders:
    source:
      type: kafka
      bootstrap_servers: "{b}"
      topics: [{input}]
      group_id: orders
      start_from: earliest
    sinks:
      - type: http
        name: webhook
        url: {url}/orders
        tls: {{ ca_file: "{ca}" }}
        retry: {{ max_attempts: 2, initial_backoff: 1ms, max_backoff: 1ms }}
        # Records are done (and a redrive's progress committed) 50 at a time.
        batch: {{ max_records: 50 }}
    dlq:
      type: kafka
      bootstrap_servers: "{b}"
      topic: {dlq}
"#,
            url = server.url,
            ca = dir.path().join("ca.pem").display()
        ),
    )
    .unwrap();
    let msgs: Vec<Msg> = (0..n)
        .map(|i| {
            Msg::new(
                format!("k{i}"),
                json!({"id": i, "amount": i * 3}).to_string(),
            )
        })
        .collect();
    produce(&b, &input, &msgs, &[]).await;
    let log = dir.path().join("run.log");
    let mut run = Running(Some(
        weir()
            .arg("run")
            .arg(&file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    ));
    let got = read_topic(
        &b,
        &dlq,
        PARTITIONS,
        n,
        Duration::from_secs(1),
        Duration::from_secs(180),
    )
    .await;
    let child = run.0.take().unwrap();
    signal(child.id(), "-TERM");
    let status = child.wait_with_output().unwrap().status;
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "weir run: {status}\n{log}");
    assert_eq!(got.len(), n, "every record is a dead letter\n{log}");
    let mut letters = Vec::new();
    let mut per_partition = BTreeMap::new();
    for g in &got {
        assert_eq!(
            g.headers["__connect.errors.class.name"], "weir.sink.RetriesExhausted",
            "{g:?}"
        );
        assert!(
            g.headers["__connect.errors.exception.message"].contains("503"),
            "{g:?}"
        );
        let v: Json = serde_json::from_str(&g.value).unwrap();
        letters.push((
            v["id"].as_u64().unwrap(),
            g.headers["__connect.errors.partition"].parse().unwrap(),
            g.headers["__connect.errors.offset"].parse().unwrap(),
        ));
        *per_partition.entry(g.partition).or_insert(0) += 1;
    }
    up.store(true, Ordering::SeqCst);
    KafkaLetters {
        broker,
        dir,
        file,
        input,
        dlq,
        server,
        up,
        letters,
        per_partition,
    }
}

impl KafkaLetters {
    /// The group's committed offset of every DLQ partition, and the letters each holds.
    fn lag(&self, group: &str) -> Vec<(Option<i64>, i64)> {
        committed(&self.broker.addr(), group, &self.dlq, PARTITIONS)
            .into_iter()
            .enumerate()
            .map(|(p, c)| (c, *self.per_partition.get(&(p as i32)).unwrap_or(&0)))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_letters_from_a_target_that_was_down_are_redriven_once_each_and_the_group_ends_with_no_lag()
 {
    let k = kafka_letters(1000, Duration::ZERO).await;
    let file = k.file.display().to_string();
    let before = k.server.seen().len();

    // A dry run prints what it would send and sends and commits nothing.
    let dry = redrive(&[&file, "--pipeline", "orders", "--dry-run"]);
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    let printed: Vec<Json> = dry
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed.len(), 1000, "{}", dry.stderr);
    let ids: BTreeSet<u64> = printed
        .iter()
        .map(|p| p["value"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (0..1000).collect());
    for p in &printed {
        assert_eq!(p["topic"], k.input.as_str(), "the record's own origin: {p}");
        let h = p["headers"].as_object().unwrap();
        assert!(
            h.keys()
                .all(|n| !n.starts_with("__connect.errors.") && !n.starts_with("weir.errors.")),
            "error headers removed: {p}"
        );
        assert_eq!(h["weir.redrive.count"], "1", "{p}");
        assert!(
            h["weir.redrive.from"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}/", k.dlq)),
            "{p}"
        );
        assert!(
            h["weir.redrive.at"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .is_ok()
        );
    }
    assert_eq!(k.server.seen().len(), before, "a dry run sends nothing");
    let group = group_of(&dry);
    assert_eq!(
        k.lag(&group).iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        vec![None; PARTITIONS as usize],
        "a dry run commits nothing"
    );

    // The redrive: into the pipeline's first stage (its http sink).
    let out = redrive(&[&file, "--pipeline", "orders"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        group_of(&out),
        group,
        "the same command keeps the same progress"
    );
    let after: Vec<Seen> = k.server.seen()[before..].to_vec();
    let mut times: BTreeMap<u64, usize> = BTreeMap::new();
    for s in &after {
        *times.entry(id_of(s)).or_default() += 1;
    }
    assert_eq!(after.len(), 1000, "{}", out.stderr);
    assert!(
        times.values().all(|n| *n == 1) && times.len() == 1000,
        "every record delivered once more"
    );
    // Each request carries the idempotency key of the record's first attempt.
    let keys: BTreeMap<u64, String> = k
        .letters
        .iter()
        .map(|(id, p, o)| (*id, format!("{}-{p}-{o}", k.input)))
        .collect();
    for s in &after {
        assert_eq!(s.headers["idempotency-key"], keys[&id_of(s)]);
    }
    assert_eq!(summary_count(&out, "read"), 1000);
    assert_eq!(summary_count(&out, "delivered"), 1000);
    assert_eq!(summary_count(&out, "failed"), 0);
    for (committed, letters) in k.lag(&group) {
        assert_eq!(
            committed,
            Some(letters),
            "lag 0 on every DLQ partition\n{}",
            out.stderr
        );
    }

    // Run again: everything is committed, nothing is sent twice.
    let again = redrive(&[&file, "--pipeline", "orders"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(summary_count(&again, "read"), 0, "{}", again.stderr);
    assert_eq!(k.server.seen().len(), before + 1000);
    drop(k.up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_redrive_killed_mid_way_then_run_again_delivers_every_letter_at_least_once() {
    let n = 600;
    // A slow target: the redrive takes seconds, so it is killed with records in flight.
    let k = kafka_letters(n, Duration::from_millis(20)).await;
    let file = k.file.display().to_string();
    let before = k.server.seen().len();
    let group = unique("redrive");
    let args = [
        "dlq",
        "redrive",
        &file,
        "-p",
        "orders",
        "--group",
        &group,
        "--progress",
        "none",
    ];
    let log = k.dir.path().join("killed.log");
    let mut child = weir()
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Killed with 250 of 600 delivered (at 20 ms a request, seconds after the first were done
    // and committed), and records in flight.
    while k.server.seen().len() < before + 250 {
        assert!(Instant::now() < deadline, "the redrive did not get going");
        assert!(child.try_wait().unwrap().is_none(), "it ended too soon");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first_run = k.server.seen().len() - before;
    assert!(
        first_run < n,
        "killed before the end ({first_run} of {n}): {}",
        std::fs::read_to_string(&log).unwrap()
    );

    // The killed member holds its partitions until the broker gives up on it: the rerun
    // waits for them.
    let out = redrive(&[
        &file,
        "-p",
        "orders",
        "--group",
        &group,
        "--idle-timeout",
        "150s",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let ids: BTreeSet<u64> = k.server.seen()[before..].iter().map(id_of).collect();
    assert!(
        ids == (0..n as u64).collect(),
        "every letter delivered, {} of {n}\n{}",
        ids.len(),
        out.stderr
    );
    let total = k.server.seen().len() - before;
    // At least once: what the killed run sent and had not committed is sent again; what it
    // committed is not (the rerun resumed from the group's offsets).
    let reread = summary_count(&out, "read") as usize;
    assert!(reread < n, "the rerun resumed ({reread} read)");
    assert!(total >= n && total <= first_run + reread, "{total}");
    assert_eq!(group_of(&out), group);
    for (committed, letters) in k.lag(&group) {
        assert_eq!(committed, Some(letters));
    }
    let _ = &k.dir;
}

/// A file DLQ filled by two pipelines: `orders` (a jq check that refuses `kind: bad`, and a
/// target that refuses `reject` with 422 and answers 503 to `down`) in two phases around
/// `split`, and `other`, all its records `bad`.
struct FileLetters {
    dir: tempfile::TempDir,
    main: PathBuf,
    data: PathBuf,
    dlq: PathBuf,
    server: Https,
    fixed: Arc<AtomicBool>,
    split: i64,
}

fn kind(id: u64) -> &'static str {
    match id % 6 {
        1 => "bad",
        2 | 5 => "reject",
        3 => "down",
        _ => "ok",
    }
}

fn ids(range: std::ops::Range<u64>, kinds: &[&str]) -> BTreeSet<u64> {
    range.filter(|i| kinds.contains(&kind(*i))).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn file_letters() -> FileLetters {
    let dir = tempfile::tempdir().unwrap();
    tls::certificates(dir.path());
    let fixed = Arc::new(AtomicBool::new(false));
    let is_fixed = fixed.clone();
    let server = Https::start(dir.path(), None, move |s, _| {
        if is_fixed.load(Ordering::SeqCst) {
            return Answer::ok();
        }
        match s.path.as_str() {
            "/reject" => Answer::status(422).body("unknown customer"),
            "/down" => Answer::status(503),
            _ => Answer::ok(),
        }
    })
    .await;
    let dlq = dir.path().join("dlq.ndjson");
    let data = dir.path().join("data");
    let pipeline = |name: &str| {
        format!(
            r#"pipelines:
  {name}:
    source: {{ type: file, path: "${{INPUT:-none.ndjson}}" }}
    transforms:
      - type: jq
        name: check
        program: 'if .value.kind == "bad" then error("kind bad is not allowed") else .value end'
    sinks:
      - type: http
        name: webhook
        url: {url}/<$.value.kind>
        tls: {{ ca_file: "{ca}" }}
        retry: {{ max_attempts: 2, initial_backoff: 1ms, max_backoff: 1ms }}
        # One record per request batch: a record waiting behind a retried one would run out
        # of attempts with it.
        batch: {{ max_records: 1 }}
    dlq: {{ type: file, path: "{dlq}" }}
"#,
            url = server.url,
            ca = dir.path().join("ca.pem").display(),
            dlq = dlq.display()
        )
    };
    let main = dir.path().join("main.yaml");
    std::fs::write(&main, pipeline("orders")).unwrap();
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, pipeline("other")).unwrap();
    let run = |file: &Path, input: &Path| {
        let out = weir()
            .arg("run")
            .arg(file)
            .arg("--data-dir")
            .arg(&data)
            .env("INPUT", input)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let input = |name: &str, range: std::ops::Range<u64>| {
        let p = dir.path().join(name);
        let lines: Vec<String> = range
            .map(|i| json!({"id": i, "kind": kind(i)}).to_string())
            .collect();
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    };
    run(&main, &input("phase1.ndjson", 0..30));
    std::thread::sleep(Duration::from_millis(50));
    let split = now_ms();
    std::thread::sleep(Duration::from_millis(50));
    run(&main, &input("phase2.ndjson", 30..60));
    let others: Vec<String> = (100..106)
        .map(|i| json!({"id": i, "kind": "bad"}).to_string())
        .collect();
    let p = dir.path().join("other.ndjson");
    std::fs::write(&p, others.join("\n") + "\n").unwrap();
    run(&other, &p);
    FileLetters {
        dir,
        main,
        data,
        dlq,
        server,
        fixed,
        split,
    }
}

impl FileLetters {
    /// The ids a dry run with `args` would send.
    fn dry_run(&self, args: &[&str]) -> BTreeSet<u64> {
        let main = self.main.display().to_string();
        let data = self.data.display().to_string();
        let mut all = vec![
            main.as_str(),
            "-p",
            "orders",
            "--dry-run",
            "--data-dir",
            &data,
        ];
        all.extend_from_slice(args);
        let out = redrive(&all);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        out.stdout
            .lines()
            .map(|l| {
                let v: Json = serde_json::from_str(l).unwrap();
                v["value"]["id"].as_u64().unwrap()
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selections_pick_exactly_the_letters_asked_for() {
    let f = file_letters().await;
    let all = ids(0..60, &["bad", "reject", "down"]);
    let lines = std::fs::read_to_string(&f.dlq).unwrap().lines().count();
    assert_eq!(
        lines,
        all.len() + 6,
        "the DLQ holds both pipelines' letters"
    );
    assert_eq!(f.dry_run(&[]), all, "the pipeline's own letters");
    assert_eq!(f.dry_run(&["--stage", "transform"]), ids(0..60, &["bad"]));
    assert_eq!(f.dry_run(&["--component", "check"]), ids(0..60, &["bad"]));
    assert_eq!(
        f.dry_run(&["--stage", "sink", "--class", "Fatal"]),
        ids(0..60, &["reject"])
    );
    assert_eq!(
        f.dry_run(&["--class", "weir.sink.RetriesExhausted"]),
        ids(0..60, &["down"])
    );
    let split = f.split.to_string();
    assert_eq!(
        f.dry_run(&["--since", &split]),
        ids(30..60, &["bad", "reject", "down"])
    );
    assert_eq!(
        f.dry_run(&["--until", &split]),
        ids(0..30, &["bad", "reject", "down"])
    );
    assert_eq!(
        f.dry_run(&[
            "--pattern",
            r#"{"value": {"id": [{"numeric": [">=", 40]}]}}"#
        ]),
        ids(40..60, &["bad", "reject", "down"])
    );
    assert_eq!(
        f.dry_run(&[
            "--pattern",
            r#"{"headers": {"weir.errors.component": ["webhook"]}}"#,
            "--until",
            &split
        ]),
        ids(0..30, &["reject", "down"])
    );
    assert_eq!(
        f.dry_run(&["--from-pipeline", "other"]),
        (100..106).collect()
    );
    let mut everything = all.clone();
    everything.extend(100..106);
    assert_eq!(f.dry_run(&["--any-pipeline"]), everything);
    assert!(f.server.seen().iter().all(|s| s.path != "/fixed"));
    assert!(
        !f.data.join("file-source").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("weir-redrive")),
        "dry runs keep no checkpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fix_up_transforms_repair_letters_and_a_checkpoint_keeps_the_progress_of_a_file_dlq() {
    let f = file_letters().await;
    f.fixed.store(true, Ordering::SeqCst);
    let before = f.server.seen().len();
    let fix = f.dir.path().join("fix.yaml");
    std::fs::write(
        &fix,
        "transforms:\n  - { type: jq, name: fix-kind, input: value, program: '.kind = \"fixed\"' }\n",
    )
    .unwrap();
    let (main, data, fix) = (
        f.main.display().to_string(),
        f.data.display().to_string(),
        fix.display().to_string(),
    );
    let args = [
        main.as_str(),
        "-p",
        "orders",
        "--data-dir",
        &data,
        "--stage",
        "transform",
        "--transform",
        &fix,
    ];
    let out = redrive(&args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let sent: Vec<Seen> = f.server.seen()[before..].to_vec();
    assert!(
        sent.iter().all(|s| s.path == "/fixed"),
        "fixed up before the pipeline's check"
    );
    assert_eq!(
        sent.iter().map(id_of).collect::<BTreeSet<_>>(),
        ids(0..60, &["bad"])
    );
    assert_eq!(sent.len(), ids(0..60, &["bad"]).len(), "once each");
    assert!(
        summary(&out, "progress").starts_with("checkpoint "),
        "{}",
        out.stderr
    );

    // The same command again: the checkpoint is past every letter.
    let again = redrive(&args);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(summary_count(&again, "sent"), 0, "{}", again.stderr);
    assert_eq!(f.server.seen().len(), before + sent.len());

    // The sink's letters, the target fixed, straight back into the pipeline.
    let out = redrive(&[
        &main,
        "-p",
        "orders",
        "--data-dir",
        &data,
        "--stage",
        "sink",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let sent: BTreeSet<u64> = f.server.seen()[before..].iter().map(id_of).collect();
    assert_eq!(sent, ids(0..60, &["bad", "reject", "down"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_give_located_errors_and_change_nothing() {
    let f = file_letters().await;
    f.fixed.store(true, Ordering::SeqCst);
    let dlq_before = std::fs::read(&f.dlq).unwrap();
    let seen_before = f.server.seen().len();
    let main = f.main.display().to_string();
    let state = f.dir.path().join("state");
    let data = state.display().to_string();
    let fail = |args: &[&str], wants: &[&str]| {
        let mut all = vec![main.as_str(), "--data-dir", data.as_str()];
        all.extend_from_slice(args);
        let out = redrive(&all);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        for w in wants {
            assert!(
                out.stderr.contains(w),
                "{args:?}: wanted {w:?} in:\n{}",
                out.stderr
            );
        }
    };
    fail(
        &["-p", "order"],
        &[&format!(
            "{main}: no pipeline `order`, did you mean `orders`? (it defines: orders)"
        )],
    );
    fail(
        &[
            "-p",
            "orders",
            "--pattern",
            r#"{"value": {"id": [{"numerc": [">", 1]}]}}"#,
        ],
        &[
            "--pattern: value.id",
            "unknown matcher `numerc`, did you mean `numeric`?",
        ],
    );
    fail(
        &["-p", "orders", "--pattern", r#"{"value": "#],
        &["--pattern:1:10: not JSON"],
    );
    fail(
        &["-p", "orders", "--since", "yesterday"],
        &["--since: \"yesterday\" is not a time"],
    );
    fail(
        &["-p", "orders", "--to", "input"],
        &[
            "--to input: pipeline `orders` reads from a `file` source",
            "use --to pipeline",
        ],
    );
    let missing = f.dir.path().join("no-such-fix.yaml");
    fail(
        &[
            "-p",
            "orders",
            "--transform",
            &missing.display().to_string(),
        ],
        &[&format!(
            "cannot read the transforms file {}: No such file or directory",
            missing.display()
        )],
    );
    let broken = f.dir.path().join("broken-fix.yaml");
    std::fs::write(
        &broken,
        "transforms:\n  - type: jq\n    program: '.value |'\n",
    )
    .unwrap();
    fail(
        &["-p", "orders", "--transform", &broken.display().to_string()],
        &[&format!("{}:3:", broken.display()), "transforms[0]"],
    );
    // A DLQ file that cannot be read, and a Kafka DLQ whose brokers cannot be reached.
    let elsewhere = f.dir.path().join("elsewhere.yaml");
    let port = free_port();
    std::fs::write(
        &elsewhere,
        format!(
            r#"pipelines:
  gone:
    source: {{ type: stdin }}
    sinks: [ {{ type: stdout }} ]
    dlq: {{ type: file, path: "{}" }}
  remote:
    source: {{ type: stdin }}
    sinks: [ {{ type: stdout }} ]
    dlq: {{ type: kafka, bootstrap_servers: "127.0.0.1:{port}", topic: orders-dlq }}
"#,
            f.dir.path().join("missing.ndjson").display()
        ),
    )
    .unwrap();
    let other = elsewhere.display().to_string();
    let fail_in = |args: &[&str], wants: &[&str]| {
        let mut all = vec![other.as_str(), "--data-dir", data.as_str()];
        all.extend_from_slice(args);
        let out = redrive(&all);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        for w in wants {
            assert!(
                out.stderr.contains(w),
                "{args:?}: wanted {w:?} in:\n{}",
                out.stderr
            );
        }
    };
    fail_in(
        &["-p", "gone"],
        &[
            &format!("cannot read the DLQ file (the dlq: at {other}:5:10: pipelines.gone.dlq)"),
            "No such file or directory",
        ],
    );
    let started = Instant::now();
    fail_in(
        &["-p", "remote", "--connect-timeout", "2s"],
        &[&format!(
            "{other}:9:10: pipelines.remote.dlq: cannot read the DLQ topic `orders-dlq` at 127.0.0.1:{port}"
        )],
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "bounded by --connect-timeout"
    );

    assert_eq!(
        std::fs::read(&f.dlq).unwrap(),
        dlq_before,
        "the DLQ is untouched"
    );
    assert_eq!(f.server.seen().len(), seen_before, "nothing was sent");
    assert!(
        !state.join("file-source").exists(),
        "no checkpoint was written"
    );
}

/// docs/redrive.md's runnable example, as written there.
#[test]
fn the_redrive_example_runs_as_documented() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/redrive.yaml");
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("state");
    let run = weir()
        .arg("run")
        .arg(&example)
        .arg("--data-dir")
        .arg(&data)
        .env_remove("HOOK_URL")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let letters = std::fs::read_to_string(cwd.path().join("out/orders-dlq.ndjson")).unwrap();
    assert_eq!(letters.lines().count(), 20);
    let dry = weir()
        .args(["dlq", "redrive"])
        .arg(&example)
        .args([
            "-p",
            "orders",
            "--class",
            "RetriesExhausted",
            "--dry-run",
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("HOOK_URL")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let printed = String::from_utf8(dry.stdout).unwrap();
    assert_eq!(printed.lines().count(), 20);
    for l in printed.lines() {
        let v: Json = serde_json::from_str(l).unwrap();
        assert!(
            v["value"]["id"].as_str().unwrap().starts_with("txn-"),
            "{v}"
        );
        assert_eq!(v["headers"]["weir.redrive.count"], "1", "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_redrive_killed_mid_way_resumes_from_its_checkpoint_and_delivers_every_letter() {
    let n = 600;
    let dir = tempfile::tempdir().unwrap();
    tls::certificates(dir.path());
    let up = Arc::new(AtomicBool::new(false));
    let is_up = up.clone();
    let server = Https::start(dir.path(), None, move |_, _| {
        if is_up.load(Ordering::SeqCst) {
            Answer::ok().after(Duration::from_millis(20))
        } else {
            Answer::status(503)
        }
    })
    .await;
    let file = dir.path().join("orders.yaml");
    std::fs::write(
        &file,
        format!(
            r#"pipelines:
  orders:
    source: {{ type: file, path: "${{INPUT:-none.ndjson}}" }}
    sinks:
      - type: http
        url: {url}/orders
        tls: {{ ca_file: "{ca}" }}
        retry: {{ max_attempts: 2, initial_backoff: 1ms, max_backoff: 1ms }}
        batch: {{ max_records: 50 }}
    dlq: {{ type: file, path: "{dlq}" }}
"#,
            url = server.url,
            ca = dir.path().join("ca.pem").display(),
            dlq = dir.path().join("dlq.ndjson").display()
        ),
    )
    .unwrap();
    let input = dir.path().join("in.ndjson");
    let lines: Vec<String> = (0..n).map(|i| json!({"id": i}).to_string()).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let data = dir.path().join("data");
    let run = weir()
        .arg("run")
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .env("INPUT", &input)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let letters = std::fs::read_to_string(dir.path().join("dlq.ndjson")).unwrap();
    assert_eq!(letters.lines().count(), n);
    up.store(true, Ordering::SeqCst);

    let before = server.seen().len();
    let (file, data) = (file.display().to_string(), data.display().to_string());
    let mut child = weir()
        .args(["dlq", "redrive", &file, "-p", "orders", "--data-dir", &data])
        .args(["--progress", "none"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.seen().len() < before + 250 {
        assert!(Instant::now() < deadline, "the redrive did not get going");
        assert!(child.try_wait().unwrap().is_none(), "it ended too soon");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first_run = server.seen().len() - before;
    assert!(first_run < n, "killed before the end ({first_run} of {n})");

    let out = redrive(&[&file, "-p", "orders", "--data-dir", &data]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let ids: BTreeSet<u64> = server.seen()[before..].iter().map(id_of).collect();
    assert_eq!(ids, (0..n as u64).collect(), "every letter delivered");
    let reread = summary_count(&out, "read") as usize;
    assert!(
        reread < n,
        "the rerun resumed from the checkpoint ({reread} read)"
    );
    let total = server.seen().len() - before;
    assert!(total >= n && total <= first_run + reread, "{total}");
    let again = redrive(&[&file, "-p", "orders", "--data-dir", &data]);
    assert_eq!(summary_count(&again, "read"), 0, "{}", again.stderr);
}
