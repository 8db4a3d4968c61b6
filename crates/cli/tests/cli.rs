//! The `weir` binary as an operator meets it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    v.sort();
    v
}

#[test]
fn every_example_validates() {
    let all = examples();
    assert!(all.iter().any(|p| p.ends_with("quickstart.yaml")));
    for p in all {
        let out = weir().arg("validate").arg(&p).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn validate_reports_every_problem_with_location_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(
        &f,
        "pipelines:\n  orders:\n    source: { type: generater }\n    transforms:\n      - type: filter\n        patterns: [ { value: { n: [ { numeric: [\">>\", 1] } ] } } ]\n    sinks:\n      - type: stdout\n        envelop: true\n",
    )
    .unwrap();
    let out = weir().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let name = f.display().to_string();
    assert!(err.contains(&format!("{name}:3:21: pipelines.orders.source.type: unknown source type `generater`, did you mean `generator`?")), "{err}");
    assert!(
        err.contains(&format!(
            "{name}:6:48: pipelines.orders.transforms[0].patterns[0].value.n[0].numeric"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("{name}:9:9: pipelines.orders.sinks[0].envelop: unknown option `envelop`, did you mean `envelope`?")), "{err}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    // `run` refuses the same file before starting anything.
    let out = weir().arg("run").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn malformed_yaml_and_missing_files_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("broken.yaml");
    std::fs::write(
        &f,
        "pipelines:\n  a:\n    source: {type: stdin\n    sinks: []\n",
    )
    .unwrap();
    let out = weir().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":4:10: invalid YAML"), "{err}");
    let out = weir()
        .arg("validate")
        .arg(dir.path().join("nope.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn missing_environment_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("env.yaml");
    std::fs::write(&f, "pipelines:\n  a:\n    source: { type: stdin }\n    sinks: [ { type: file, path: \"${WEIR_TEST_UNSET_DIR}/x\" } ]\n").unwrap();
    let out = weir()
        .arg("validate")
        .arg(&f)
        .env_remove("WEIR_TEST_UNSET_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("environment variable `WEIR_TEST_UNSET_DIR` is not set")
    );
    let out = weir()
        .arg("validate")
        .arg(&f)
        .env("WEIR_TEST_UNSET_DIR", "/tmp")
        .output()
        .unwrap();
    assert!(out.status.success());
}

/// Runs the generator alone to get the raw transactions, then applies the quickstart's rules in
/// plain Rust: an oracle independent of the filter, fields and template code.
#[test]
fn quickstart_prints_masked_big_spenders_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.yaml");
    std::fs::write(&raw, "pipelines:\n  raw:\n    source: { type: generator, count: 600, seed: 42 }\n    sinks: [ { type: stdout } ]\n").unwrap();
    let out = weir().arg("run").arg(&raw).output().unwrap();
    assert!(out.status.success());
    let expected: Vec<Json> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .filter(|t| t["amount"].as_f64().unwrap() > 500.0 && t["country"] != "NL")
        .collect();
    assert!(expected.len() > 20, "the seed gives some big spenders");

    let out = weir()
        .current_dir(dir.path())
        .args([
            "run",
            repo().join("examples/quickstart.yaml").to_str().unwrap(),
        ])
        .env("QUICKSTART_COUNT", "600")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let got: Vec<Json> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout carries only JSON lines"))
        .collect();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g["id"], e["id"]);
        assert_eq!(g["amount"], e["amount"]);
        let card = g["card"].as_str().unwrap();
        let real = e["card"]["number"].as_str().unwrap();
        assert_eq!(
            card,
            format!("************{}", &real[12..]),
            "masked but for the last four"
        );
        assert_eq!(g["pipeline"], "big-spenders");
    }
    let file = std::fs::read_to_string(dir.path().join("out/big-spenders.ndjson")).unwrap();
    assert_eq!(file, stdout, "both sinks got the same records");
}

#[test]
fn stdin_pipeline_reads_lines_until_eof() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("stdin.yaml");
    std::fs::write(&f, "pipelines:\n  s:\n    source: { type: stdin }\n    transforms: [ { type: fields, exclude: [value.secret] } ]\n    sinks: [ { type: stdout, envelope: true } ]\n").unwrap();
    let mut child = weir()
        .arg("run")
        .arg(&f)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"a\":1,\"secret\":\"x\"}\nplain text\n\n{\"a\":2}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Json> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["value"], serde_json::json!({"a": 1}));
    assert_eq!(lines[0]["offset"], 0);
    assert_eq!(lines[0]["topic"], "stdin");
    // A non-JSON line is a string value; excluding a path from a string leaves it as it is.
    assert_eq!(lines[1]["value"], "plain text");
    assert_eq!(lines[2]["offset"], 3, "line numbers count the blank line");
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("endless.yaml");
    let out_file = dir.path().join("out.ndjson");
    std::fs::write(&f, format!("pipelines:\n  e:\n    source: {{ type: generator, rate_per_sec: 5000 }}\n    sinks: [ {{ type: file, path: {} }} ]\n", out_file.display())).unwrap();
    let child = weir()
        .arg("run")
        .arg(&f)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_file).unwrap();
    let mut n = 0;
    for line in text.lines() {
        serde_json::from_str::<Json>(line).expect("only whole lines");
        n += 1;
    }
    assert!(n > 100, "wrote {n} records before stopping");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stopping"), "{err}");
}

/// The allocator must not ask the kernel for transparent huge pages. With THP in `madvise` mode
/// (the kernel's and most distributions' default), mimalloc's `MADV_HUGEPAGE` on its arena made
/// every touched 2 MiB region resident: it doubled the peak RSS of every pipeline, the http sink's
/// included (docs/performance.md, "Weir beside Vector"). The workspace builds mimalloc with
/// `no_thp`; this runs the real binary with records flowing and reads the kernel's count.
#[test]
fn the_allocator_asks_the_kernel_for_no_huge_pages() {
    let thp = "/sys/kernel/mm/transparent_hugepage/enabled";
    let mode = std::fs::read_to_string(thp).unwrap_or_else(|e| {
        panic!("this test reads {thp} (Linux with transparent huge pages): {e}")
    });
    assert!(
        mode.contains("[madvise]"),
        "this test needs transparent huge pages in madvise mode, where a process's own \
         MADV_HUGEPAGE decides (found `{}` in {thp}; with `never` nothing can be seen, with \
         `always` the kernel gives huge pages to every process). Set it with \
         `echo madvise > {thp}` as root.",
        mode.trim()
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("flow.yaml");
    let out_file = dir.path().join("out.ndjson");
    std::fs::write(
        &f,
        format!(
            "pipelines:\n  flow:\n    source: {{ type: generator, rate_per_sec: 20000, seed: 1 }}\n    transforms:\n      - {{ type: fields, mask: [value.card.number], keep_last: 4 }}\n    sinks: [ {{ type: file, path: {} }} ]\n",
            out_file.display()
        ),
    )
    .unwrap();
    let mut child = weir()
        .arg("run")
        .arg("--data-dir")
        .arg(dir.path().join("state"))
        .arg(&f)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let written = || {
        std::fs::read(&out_file)
            .map(|b| b.iter().filter(|c| **c == b'\n').count())
            .unwrap_or(0)
    };
    while written() < 20_000 {
        if started.elapsed() > Duration::from_secs(30) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the pipeline wrote {} records in 30 s", written());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", child.id())).unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    let huge = smaps
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .unwrap_or_else(|| panic!("no AnonHugePages in smaps_rollup: {smaps}"))
        .trim();
    assert_eq!(huge, "0 kB", "weir holds transparent huge pages:\n{smaps}");
}

#[test]
fn plugins_lists_and_describes() {
    let out = weir().arg("plugins").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "stdin",
        "file",
        "generator",
        "filter",
        "fields",
        "insert",
        "template",
        "jq",
        "stdout",
        "log",
        "null",
    ] {
        assert!(
            text.contains(&format!("  {name} ")),
            "{name} missing from:\n{text}"
        );
    }
    let out = weir().args(["plugins", "generator"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("rate_per_sec"), "{text}");
    assert!(
        text.contains("anomaly_rate (number, default 0.03)"),
        "{text}"
    );
    assert!(text.contains("Example:"), "{text}");
    let out = weir().args(["plugins", "filtr"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `filter`"));
}

#[test]
fn schema_is_json_schema_with_every_plugin() {
    let out = weir().arg("schema").output().unwrap();
    let schema: Json = serde_json::from_slice(&out.stdout).unwrap();
    let sources =
        &schema["properties"]["pipelines"]["additionalProperties"]["properties"]["source"]["oneOf"];
    let types: Vec<&str> = sources
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["properties"]["type"]["const"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["file", "generator", "kafka", "redis", "stdin"]);
    assert!(schema["$defs"]["Sink"]["oneOf"].as_array().unwrap().len() >= 5);
    // Converters on sources and sinks, the registry at the top and per pipeline.
    assert!(sources[0]["properties"]["format"].is_object());
    assert!(schema["$defs"]["Sink"]["oneOf"][0]["properties"]["format"].is_object());
    assert!(
        schema["$defs"]["FormatKind"].is_object(),
        "its parts are defined"
    );
    assert!(schema["properties"]["schema_registry"].is_object());
    assert!(
        schema["properties"]["pipelines"]["additionalProperties"]["properties"]["schema_registry"]
            .is_object()
    );
}

#[test]
fn a_directory_of_files_runs_together_and_names_must_be_unique() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let pipeline = |name: &str, n: u32| {
        format!(
            "pipelines:\n  {name}:\n    source: {{ type: generator, count: {n}, seed: 1 }}\n    sinks: [ {{ type: file, path: {}/{name}.ndjson }} ]\n",
            out.display()
        )
    };
    std::fs::write(dir.path().join("a.yaml"), pipeline("alpha", 30)).unwrap();
    std::fs::write(dir.path().join("b.yml"), pipeline("beta", 40)).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a pipeline").unwrap();
    let run = weir().arg("run").arg(dir.path()).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("alpha.ndjson"))
            .unwrap()
            .lines()
            .count(),
        30
    );
    assert_eq!(
        std::fs::read_to_string(out.join("beta.ndjson"))
            .unwrap()
            .lines()
            .count(),
        40
    );
    std::fs::write(dir.path().join("c.yaml"), pipeline("alpha", 1)).unwrap();
    let v = weir().arg("validate").arg(dir.path()).output().unwrap();
    assert_eq!(v.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&v.stderr).contains("pipeline `alpha` is already defined in"),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
}

#[test]
fn sink_transforms_apply_to_that_sink_only_and_dlq_catches_failures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let f = dir.path().join("p.yaml");
    std::fs::write(
        &f,
        format!(
            "pipelines:\n  p:\n    source: {{ type: generator, count: 300, seed: 5 }}\n    sinks:\n      - type: file\n        path: {d}/all.ndjson\n      - type: file\n        path: {d}/anomalies.ndjson\n        transforms:\n          - {{ type: filter, patterns: [ {{ value: {{ anomaly: [true] }} }} ] }}\n          - {{ type: jq, program: '.value | if .amount > 9000 then error(\"too big\") else {{id, amount}} end' }}\n    dlq: {{ type: file, path: {d}/dlq.ndjson, envelope: true }}\n"
        ),
    )
    .unwrap();
    let run = weir().arg("run").arg(&f).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let all: Vec<Json> = std::fs::read_to_string(dir.path().join("all.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        all.len(),
        300,
        "the first sink is untouched by the second sink's transforms"
    );
    let anomalies: Vec<&Json> = all.iter().filter(|t| t["anomaly"] == true).collect();
    let (too_big, ok): (Vec<&Json>, Vec<&Json>) = anomalies
        .iter()
        .partition(|t| t["amount"].as_f64().unwrap() > 9000.0);
    let got: Vec<Json> = std::fs::read_to_string(dir.path().join("anomalies.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), ok.len());
    for (g, e) in got.iter().zip(&ok) {
        assert_eq!(
            g,
            &serde_json::json!({"id": e["id"], "amount": e["amount"]})
        );
    }
    let dlq: Vec<Json> = std::fs::read_to_string(dir.path().join("dlq.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dlq.len(), too_big.len());
    for (d, e) in dlq.iter().zip(&too_big) {
        assert_eq!(
            d["value"], **e,
            "the dead letter carries the original record"
        );
        assert_eq!(d["headers"]["__connect.errors.stage"], "transform");
        assert_eq!(d["headers"]["weir.errors.component"], "jq-1");
    }
}

#[test]
fn log_sink_writes_json_logs_to_stderr_only() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("log.yaml");
    std::fs::write(&f, "pipelines:\n  l:\n    source: { type: generator, count: 3, seed: 2 }\n    sinks: [ { type: log, level: warn } ]\n").unwrap();
    let out = weir()
        .args(["--log-format", "json", "run"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "logs never go to stdout");
    let lines: Vec<Json> = String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON log lines"))
        .collect();
    let records: Vec<&Json> = lines
        .iter()
        .filter(|l| l["level"] == "WARN" && l["fields"]["record"].is_string())
        .collect();
    assert_eq!(records.len(), 3);
    let first: Json =
        serde_json::from_str(records[0]["fields"]["record"].as_str().unwrap()).unwrap();
    assert!(first["id"].as_str().unwrap().starts_with("txn-"));
}

#[test]
fn on_error_dlq_without_a_dlq_is_refused_at_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("nodlq.yaml");
    std::fs::write(
        &f,
        "pipelines:\n  p:\n    source: { type: stdin }\n    transforms:\n      - { type: jq, program: '.', on_error: dlq }\n    sinks:\n      - type: stdout\n        on_error: dlq\n        transforms:\n          - { type: jq, program: '.', on_error: dlq }\n",
    )
    .unwrap();
    let out = weir().arg("validate").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in [
        "pipelines.p.transforms[0].on_error",
        "pipelines.p.sinks[0].on_error",
        "pipelines.p.sinks[0].transforms[0].on_error",
    ] {
        assert!(
            err.contains(&format!(
                "{path}: `on_error: dlq` needs a pipeline `dlq:` sink"
            )),
            "{path} missing from:\n{err}"
        );
    }
}

/// The YAML reference is generated from the plugins this binary has (the runtime's and the
/// `sse` sink of weir-admin), so a new or changed option fails here until it is regenerated.
#[test]
fn reference_docs_are_current() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["docs", "reference"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference.md");
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have.as_bytes() == out.stdout.as_slice(),
        "docs/reference.md is stale: run `cargo run -p weir -- docs reference > docs/reference.md`"
    );
    assert!(have.contains("### `sse`"), "the sse sink is documented");
}

/// The part of docs/reference.md about one plugin: from `### \`name\`` under `## kind` to the
/// next heading.
fn reference_section(md: &str, kind: &str, name: &str) -> String {
    let from = md
        .find(&format!("## {kind}\n"))
        .unwrap_or_else(|| panic!("no ## {kind}"));
    let rest = &md[from..];
    let start = rest
        .find(&format!("### `{name}`\n"))
        .unwrap_or_else(|| panic!("no {kind} `{name}`"));
    let body = &rest[start + 4..];
    let end = body
        .find("\n## ")
        .into_iter()
        .chain(body.find("\n### "))
        .min();
    body[..end.unwrap_or(body.len())].to_owned()
}

/// The reference tells every option, nested and per variant, with enum values (issue 13's
/// examples, written out here as the reference must show them).
#[test]
fn the_reference_shows_nested_options_enum_values_and_the_pipeline_keys() {
    let path = repo().join("docs/reference.md");
    let md = std::fs::read_to_string(path).unwrap();
    let sink = reference_section(&md, "Sinks", "http");
    for row in [
        r#"| `method` | "POST" \| "PUT" \| "PATCH" \| "DELETE" |"#,
        r#"| `auth.type` | "basic" \| "bearer" \| "api_key" \| "oauth2" | **required** |"#,
        "| `tls.ca_file` |",
        "| `tls.insecure_skip_verify` | boolean | `false` |",
        "| `auth.username` | string | **required** | With `type: basic`: User name. |",
        "| `auth.token_url` |",
        r#"| `auth.in` | "header" \| "query" |"#,
        r#"| `batch_format` | "none" \| "json_array" \| "ndjson" |"#,
    ] {
        assert!(sink.contains(row), "the http sink lacks {row}:\n{sink}");
    }
    assert!(!sink.contains("object \\| object"), "{sink}");
    let kafka = reference_section(&md, "Sources", "kafka");
    for row in [
        r#"| `sasl.mechanism` | "PLAIN" \| "SCRAM-SHA-256" \| "SCRAM-SHA-512" | **required** |"#,
        "| `sasl.password` |",
        "| `tls.verify_hostname` | boolean | `true` |",
        r#"| `start_from` | "latest" \| "earliest" |"#,
    ] {
        assert!(
            kafka.contains(row),
            "the kafka source lacks {row}:\n{kafka}"
        );
    }
    let enrich = reference_section(&md, "Transforms", "http");
    assert!(enrich.contains("| `cache.ttl` |"), "{enrich}");
    let budget = reference_section(&md, "Pipeline keys", "error_budget");
    assert!(
        budget.contains("| `error_budget.max_failed_ratio` | number | **required** |"),
        "{budget}"
    );
    let settings = reference_section(&md, "Pipeline keys", "settings");
    assert!(
        settings.contains("| `settings.shutdown_timeout` | duration | `\"30s\"` |"),
        "{settings}"
    );
    // `weir plugins` shows the same.
    let out = weir().args(["plugins", "http"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(r#"auth.type ("basic" | "bearer" | "api_key" | "oauth2", required)"#),
        "{text}"
    );
    assert!(text.contains("tls.ca_file ("), "{text}");
}
