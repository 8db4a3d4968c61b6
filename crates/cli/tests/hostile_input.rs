//! Hostile input and unkind environments, end to end through the `weir` binary: records that try
//! to crash a transform or corrupt a line sink, secrets that must not be printed, closed pipes,
//! a crash of the process while a file is being followed, and configuration mistakes that used
//! to pass.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

fn weir() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
    // Checkpoints of this test run stay out of the user's state folder.
    c.env("WEIR_DATA_DIR", std::env::temp_dir().join("weir-test-data"));
    c
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `weir run file` with `input` on stdin; returns (status, stdout, stderr).
fn run_with_stdin(
    file: &Path,
    input: &[u8],
    envs: &[(&str, &str)],
) -> (Option<i32>, Vec<u8>, String) {
    let mut cmd = weir();
    cmd.arg("run")
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits for a child to exit; kills it and fails the test if it is still running at `limit`.
fn wait_or_kill(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn json_lines(bytes: &[u8]) -> Vec<Json> {
    std::str::from_utf8(bytes)
        .expect("every line is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

#[test]
fn a_jq_program_the_record_drives_into_deep_recursion_dead_letters_that_record_only() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dlq.ndjson");
    let f = write(
        dir.path(),
        "jq.yaml",
        &format!(
            "pipelines:\n  j:\n    source: {{ type: stdin }}\n    transforms:\n      - type: jq\n        program: 'def f: [f]; if .value.n == null then f else reduce range(.value.n) as $i (null; {{wrap: .}}) end'\n    sinks: [ {{ type: stdout }} ]\n    dlq: {{ type: file, path: {} }}\n",
            dlq.display()
        ),
    );
    let (code, stdout, stderr) =
        run_with_stdin(&f, b"{\"n\":2}\n{\"n\":5000}\n{\"x\":1}\n{\"n\":1}\n", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        json_lines(&stdout),
        vec![json!({"wrap": {"wrap": null}}), json!({"wrap": null})]
    );
    let letters = json_lines(&std::fs::read(&dlq).unwrap());
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0]["value"], json!({"n": 5000}));
    let why = letters[0]["headers"]["__connect.errors.exception.message"]
        .as_str()
        .unwrap();
    assert!(why.contains("nests deeper than 128"), "{why}");
    assert_eq!(letters[1]["value"], json!({"x": 1}));
    let why = letters[1]["headers"]["__connect.errors.exception.message"]
        .as_str()
        .unwrap();
    assert!(why.contains("recursion too deep"), "{why}");
}

#[test]
fn a_dead_letter_of_a_line_with_invalid_utf8_is_a_valid_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dlq.ndjson");
    let f = write(
        dir.path(),
        "utf8.yaml",
        &format!(
            "pipelines:\n  u:\n    source: {{ type: stdin }}\n    transforms: [ {{ type: filter, patterns: [ {{ value: {{ a: [1] }} }} ] }} ]\n    sinks: [ {{ type: stdout }} ]\n    dlq: {{ type: file, path: {} }}\n",
            dlq.display()
        ),
    );
    let (code, stdout, stderr) =
        run_with_stdin(&f, b"{\"a\":1,\"s\":\"\xff\xfe\"}\n{\"a\":1}\n", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(json_lines(&stdout), vec![json!({"a": 1})]);
    let raw = std::fs::read(&dlq).unwrap();
    let letters = json_lines(&raw);
    assert_eq!(letters.len(), 1);
    // The original bytes, base64 as coreutils' `base64` encodes them.
    assert_eq!(
        letters[0]["value_base64"],
        json!("eyJhIjoxLCJzIjoi//4ifQ==")
    );
    assert_eq!(
        letters[0]["headers"]["__connect.errors.stage"],
        json!("transform")
    );
}

#[test]
fn unchanged_values_keep_their_bytes_and_changed_ones_keep_their_numbers_and_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "numbers.yaml",
        "pipelines:\n  n:\n    source: { type: stdin }\n    transforms:\n      - { type: fields, mask: [value.card.number] }\n    sinks: [ { type: stdout } ]\n",
    );
    let untouched = "{ \"z\": 1, \"id\" :123456789012345678901234567890 }";
    let touched = "{\"z\":2.2250738585072011e-308,\"id\":123456789012345678901234567890,\"card\":{\"number\":\"4111\"},\"a\":1}";
    let (code, stdout, stderr) =
        run_with_stdin(&f, format!("{untouched}\n{touched}\n").as_bytes(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let text = String::from_utf8(stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], untouched,
        "no card: the value is written as it came"
    );
    assert_eq!(
        lines[1],
        "{\"z\":2.2250738585072011e-308,\"id\":123456789012345678901234567890,\"card\":{\"number\":\"****\"},\"a\":1}"
    );
}

#[test]
fn filters_compare_big_integers_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "ids.yaml",
        "pipelines:\n  i:\n    source: { type: stdin }\n    transforms:\n      - type: filter\n        patterns:\n          - { value: { id: [9007199254740993] } }\n          - { value: { big: [ { numeric: [\">\", 12345678901234567890] } ] } }\n    sinks: [ { type: stdout } ]\n",
    );
    let input = "{\"id\":9007199254740992}\n{\"id\":9007199254740993}\n{\"big\":12345678901234567890}\n{\"big\":12345678901234567891}\n";
    let (code, stdout, stderr) = run_with_stdin(&f, input.as_bytes(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let text = String::from_utf8(stdout).unwrap();
    assert_eq!(
        text,
        "{\"id\":9007199254740993}\n{\"big\":12345678901234567891}\n"
    );
}

#[test]
fn a_secret_in_a_registry_url_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: the registry is down, the encoder fails and the pipeline stops.
    let f = write(
        dir.path(),
        "secret.yaml",
        "schema_registry: { url: \"http://reader:${WEIR_TEST_REGISTRY_PASSWORD}@127.0.0.1:1\", timeout: 1s }\npipelines:\n  s:\n    source: { type: stdin }\n    sinks:\n      - type: stdout\n        format: { value: { type: avro, subject_strategy: record, schema: '{\"type\":\"record\",\"name\":\"A\",\"fields\":[{\"name\":\"a\",\"type\":\"long\"}]}' } }\n        retry: { max_attempts: 2, initial_backoff: 10ms }\n        on_error: stop\n",
    );
    let secret = "hunter2-do-not-print";
    let (code, _stdout, stderr) = run_with_stdin(
        &f,
        b"{\"a\":1}\n",
        &[("WEIR_TEST_REGISTRY_PASSWORD", secret)],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains(secret), "the password leaked: {stderr}");
    assert!(stderr.contains("reader:***@127.0.0.1:1"), "{stderr}");
    assert!(stderr.contains("error: pipeline `s` failed"), "{stderr}");
}

#[test]
fn a_secret_where_a_duration_or_number_belongs_is_named_by_its_reference() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "typo.yaml",
        "pipelines:\n  t:\n    source: { type: generator, count: \"${WEIR_TEST_SECRET_N}\" }\n    sinks:\n      - type: stdout\n        batch: { max_wait: \"${WEIR_TEST_SECRET}\" }\n      - type: http\n        url: \"${WEIR_TEST_SECRET}\"\n",
    );
    let secret = "s3cr3t-value-xyz";
    let out = weir()
        .arg("validate")
        .arg(&f)
        .env("WEIR_TEST_SECRET", secret)
        .env("WEIR_TEST_SECRET_N", secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains(secret), "the secret leaked: {err}");
    assert!(err.contains("sinks[0].batch.max_wait"), "{err}");
    assert!(err.contains("${WEIR_TEST_SECRET}"), "{err}");
    assert!(err.contains("${WEIR_TEST_SECRET_N}"), "{err}");
    assert!(
        err.contains("sinks[1]"),
        "the bad URL is reported too: {err}"
    );
}

#[test]
fn a_closed_stdout_stops_the_pipeline_without_dead_lettering_healthy_records() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dlq.ndjson");
    let f = write(
        dir.path(),
        "head.yaml",
        &format!(
            "pipelines:\n  h:\n    source: {{ type: generator, rate_per_sec: 2000 }}\n    sinks: [ {{ type: stdout, batch: {{ max_records: 10, max_wait: 10ms }} }} ]\n    dlq: {{ type: file, path: {} }}\n",
            dlq.display()
        ),
    );
    let mut child = weir()
        .arg("run")
        .arg(&f)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -3`: read three lines, then close the pipe.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        serde_json::from_str::<Json>(&line).unwrap();
    }
    drop(stdout);
    let out = wait_or_kill(child, Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("standard output was closed"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&dlq).unwrap_or_default(),
        "",
        "no healthy record was dead-lettered"
    );
}

#[test]
fn logs_written_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "log.yaml",
        "pipelines:\n  l:\n    source: { type: generator, count: 3 }\n    sinks: [ { type: log } ]\n",
    );
    let out = weir().arg("run").arg(&f).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("record="), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI escape codes in a piped log: {err:?}"
    );
}

#[test]
fn names_keys_and_patterns_that_cannot_work_are_refused_or_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "names.yaml",
        "pipelines:\n  \"\":\n    source: { type: stdin }\n    sinks: [ { type: stdout } ]\n  \"a\\nb\":\n    source: { type: stdin }\n    sinks: [ { type: stdout } ]\n  ${WEIR_TEST_NAME}:\n    source: { type: stdin }\n    sinks: [ { type: stdout } ]\n  ok:\n    source: { type: stdin }\n    transforms:\n      - type: filter\n        patterns:\n          - { value: { n: [ { numeric: [\">\", 10, \"<\", 1] } ] } }\n    sinks: [ { type: stdout, name: \"bad name\" } ]\n",
    );
    let out = weir()
        .arg("validate")
        .arg(&f)
        .env("WEIR_TEST_NAME", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let name = f.display().to_string();
    assert!(
        err.contains(&format!(
            "{name}:2:3: pipelines[\"\"]: pipeline name: must not be empty"
        )),
        "{err}"
    );
    assert!(err.contains("pipeline name: \"a\\nb\" has '\\n'"), "{err}");
    assert!(err.contains("is not expanded in keys"), "{err}");
    assert!(
        err.contains("can never match: no number is > 10 and < 1"),
        "{err}"
    );
    assert!(
        err.contains("component name: \"bad name\" has ' '"),
        "{err}"
    );
    // A bound no double can hold is refused where it is written.
    let f = write(
        dir.path(),
        "huge.yaml",
        "pipelines:\n  p:\n    source: { type: stdin }\n    transforms: [ { type: filter, patterns: [ { value: { n: [ { numeric: [\"<\", 1e999] } ] } } ] } ]\n    sinks: [ { type: stdout } ]\n",
    );
    let out = weir().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4:", f.display()))
            && err.contains("1e999` is beyond the range of a double"),
        "{err}"
    );
    assert!(!err.contains("policy"), "{err}");
    // A field an EventBridge bus rule has but the Kafka event shape does not: a warning that
    // names the fix, and the file is still valid.
    let f = write(
        dir.path(),
        "detail.yaml",
        "pipelines:\n  p:\n    source: { type: stdin }\n    transforms: [ { type: filter, patterns: [ { detail: { status: [paid] } } ] } ]\n    sinks: [ { type: stdout } ]\n",
    );
    let out = weir().arg("validate").arg(&f).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("warning: {}:4:", f.display()))
            && err.contains("patterns[0].detail: `detail` is not a field of the Kafka event shape")
            && err.contains("did you mean `value`?"),
        "{err}"
    );
}

#[test]
fn duplicate_keys_are_explained_without_library_hints() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "dup.yaml",
        "pipelines:\n  p:\n    source: { type: stdin }\n    source: { type: stdin }\n    sinks: [ { type: stdout } ]\n",
    );
    let out = weir().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("duplicate key"), "{err}");
    assert!(
        !err.contains("DuplicateKeyPolicy") && !err.contains("Options"),
        "{err}"
    );
}

/// Lines appended to a followed file while `weir` is killed with SIGKILL and restarted: every
/// line reaches the output, and the restart resumes near where the first run stopped.
#[test]
fn a_followed_file_survives_kill_9_without_losing_or_rereading_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let output = dir.path().join("out.ndjson");
    std::fs::write(&input, "").unwrap();
    let f = write(
        dir.path(),
        "follow.yaml",
        &format!(
            "pipelines:\n  f:\n    source: {{ type: file, path: {}, follow: true, poll_interval: 20ms, commit_interval: 100ms }}\n    sinks: [ {{ type: file, path: {}, batch: {{ max_wait: 10ms }} }} ]\n",
            input.display(),
            output.display()
        ),
    );
    let start = || {
        weir()
            .arg("run")
            .arg(&f)
            .env("WEIR_DATA_DIR", data.path())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let total = 3000;
    let mut writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    let mut write_lines = |from: usize, to: usize| {
        for i in from..to {
            writeln!(writer, "{{\"id\":{i}}}").unwrap();
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let mut first = start();
    write_lines(0, 1500);
    std::thread::sleep(Duration::from_millis(500));
    first.kill().unwrap();
    first.wait().unwrap();
    let seen_before = std::fs::read_to_string(&output).unwrap().lines().count();
    write_lines(1500, total);
    let mut second = start();
    // Wait until every line is out, then stop it cleanly.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&output).unwrap_or_default();
        let ids: std::collections::BTreeSet<i64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Json>(l).unwrap()["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        if ids.len() == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {total} lines arrived",
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(second.wait().unwrap().success());
    let lines = std::fs::read_to_string(&output).unwrap().lines().count();
    assert!(
        seen_before >= 1000,
        "the first run delivered {seen_before} lines"
    );
    // Read again after the crash: at most what was uncommitted (a commit every 100 ms), not all.
    assert!(
        lines - total < seen_before,
        "{lines} lines for {total}: the restart read everything again"
    );
}

/// Kafka `options:` that would silently change the delivery guarantee, or override an option of
/// Weir's own, are refused where they are written, naming the option to use instead.
#[test]
fn kafka_options_that_carry_the_guarantee_are_refused_with_the_option_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("source", "enable.auto.commit: false", "commit_interval"),
        ("source", "auto.offset.reset: latest", "start_from"),
        ("source", "enable.auto.offset.store: true", "at-least-once"),
        ("source", "auto.commit.interval.ms: 10", "commit_interval"),
        ("source", "group.id: other", "group_id"),
        ("sink", "acks: 1", "acks=all"),
        ("sink", "enable.idempotence: false", "idempotent"),
        ("sink", "compression.type: lz4", "`compression`"),
        ("sink", "message.timeout.ms: 1000", "message_timeout"),
        ("sink", "linger.ms: 50", "`linger`"),
    ];
    for (side, option, want) in cases {
        let (source_opts, sink_opts) = if side == "source" {
            (format!("\n        {option}"), String::new())
        } else {
            (String::new(), format!("\n          {option}"))
        };
        let f = dir.path().join("p.yaml");
        std::fs::write(
            &f,
            format!(
                "pipelines:\n  p:\n    source:\n      type: kafka\n      bootstrap_servers: 127.0.0.1:9092\n      topics: [a]\n      group_id: g\n      options:{}\n    sinks:\n      - type: kafka\n        bootstrap_servers: 127.0.0.1:9092\n        topic: b\n        options:{}\n",
                if source_opts.is_empty() { " {}" } else { &source_opts },
                if sink_opts.is_empty() { " {}" } else { &sink_opts },
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("validate")
            .arg(&f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{option}: {err}");
        let key = option.split(':').next().unwrap();
        assert!(err.contains(&format!("options.{key}")), "{option}: {err}");
        assert!(
            err.contains("cannot be overridden") && err.contains(want),
            "{option}: {err}"
        );
        let line = if side == "source" { ":9:" } else { ":14:" };
        assert!(err.contains(line), "located at the option ({line}): {err}");
    }
    // Tuning options stay allowed.
    let f = dir.path().join("ok.yaml");
    std::fs::write(
        &f,
        "pipelines:\n  p:\n    source:\n      type: kafka\n      bootstrap_servers: 127.0.0.1:9092\n      topics: [a]\n      group_id: g\n      options: {session.timeout.ms: 6000, fetch.max.bytes: 1048576}\n    sinks:\n      - type: kafka\n        bootstrap_servers: 127.0.0.1:9092\n        topic: b\n        options: {queue.buffering.max.kbytes: 65536}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("validate")
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `topic_pattern` librdkafka's POSIX regex cannot run as Rust's `regex` reads it is refused
/// where it is written; one that only looks different in POSIX (`\d`, `(?i)`) is translated and
/// passes.
#[test]
fn a_topic_pattern_posix_cannot_express_is_refused_where_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (r"'\borders'", "word boundary"),
        (r"'orders@eu'", "can never appear in a Kafka topic name"),
        (r"'orders-(?=eu)'", "look-around"),
        (r"'(?i)orders-\d+'", ""),
    ];
    for (pattern, want) in cases {
        let f = write(
            dir.path(),
            "p.yaml",
            &format!(
                "pipelines:\n  p:\n    source:\n      type: kafka\n      bootstrap_servers: 127.0.0.1:9092\n      group_id: g\n      topic_pattern: {pattern}\n    sinks:\n      - {{ type: stdout }}\n"
            ),
        );
        let out = weir().arg("validate").arg(&f).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if want.is_empty() {
            assert!(out.status.success(), "{pattern} is valid: {err}");
            continue;
        }
        assert_eq!(out.status.code(), Some(2), "{pattern}: {err}");
        assert!(err.contains(want), "{pattern}: {err}");
        assert!(
            err.contains("p.yaml:7:") && err.contains("topic_pattern"),
            "located at the pattern (line 7): {err}"
        );
    }
}
