//! `format:` and `schema_registry:` mistakes are caught when the pipeline is built (before any
//! connection), each as one error located at file:line:column.

use weir_runtime::{Runtime, builtin_registry};

const SCHEMA: &str = r#"'{"type":"record","name":"Alert","fields":[{"name":"id","type":"long"}]}'"#;

/// The errors of a pipeline that must not build.
fn errors(yaml: &str) -> String {
    let registry = builtin_registry().unwrap();
    match Runtime::from_yaml_str("f.yaml", yaml, &registry) {
        Ok(_) => panic!("built, but should not:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

fn builds(yaml: &str) {
    let registry = builtin_registry().unwrap();
    if let Err(e) = Runtime::from_yaml_str("f.yaml", yaml, &registry) {
        panic!("does not build: {e}\n{yaml}");
    }
}

/// One error, at `at` (line:column), whose message has every one of `words`.
fn assert_error(yaml: &str, at: &str, words: &[&str]) {
    let e = errors(yaml);
    assert_eq!(e.matches("f.yaml:").count(), 1, "one error: {e}");
    assert!(e.contains(&format!("f.yaml:{at}:")), "at {at}: {e}");
    for w in words {
        assert!(e.contains(w), "`{w}` missing: {e}");
    }
}

const REG: &str = "schema_registry: { url: \"http://127.0.0.1:9\" }\n";

fn file_sink(format: &str) -> String {
    format!(
        "pipelines:\n  p:\n    source: {{ type: stdin }}\n    sinks:\n      - type: file\n        path: /tmp/weir-never-written.ndjson\n        format: {format}\n"
    )
}

#[test]
fn avro_without_a_registry() {
    assert_error(
        "pipelines:\n  p:\n    source: { type: stdin, format: { value: avro } }\n    sinks: [ { type: stdout } ]\n",
        "3:36",
        &["schema registry", "schema_registry:"],
    );
}

#[test]
fn a_sink_writing_avro_needs_a_schema() {
    assert_error(
        &format!("{REG}{}", file_sink("{ value: avro }")),
        "8:26",
        &["schema", "use_latest"],
    );
}

#[test]
fn the_schema_given_twice() {
    assert_error(
        &format!(
            "{REG}{}",
            file_sink(&format!(
                "{{ value: {{ type: avro, schema: {SCHEMA}, schema_file: a.avsc }} }}"
            ))
        ),
        "8:26",
        &["not both"],
    );
}

#[test]
fn writer_schema_options_on_a_source() {
    assert_error(
        &format!(
            "{REG}pipelines:\n  p:\n    source: {{ type: stdin, format: {{ value: {{ type: avro, use_latest: true }} }} }}\n    sinks: [ {{ type: stdout }} ]\n"
        ),
        "4:45",
        &["for sinks"],
    );
}

#[test]
fn format_on_a_transform_or_the_dlq() {
    let e = errors(&format!(
        "{REG}pipelines:\n  p:\n    source: {{ type: stdin }}\n    transforms: [ {{ type: insert, path: x, value: 1, format: {{ value: avro }} }} ]\n    sinks: [ {{ type: stdout }} ]\n    dlq: {{ type: stdout, format: {{ value: avro }} }}\n"
    ));
    assert_eq!(e.matches("f.yaml:").count(), 2, "{e}");
    assert!(e.contains("f.yaml:5:"), "the transform's: {e}");
    assert!(e.contains("f.yaml:7:"), "the dlq's: {e}");
}

#[test]
fn an_unknown_format_lists_the_known_ones() {
    assert_error(
        "pipelines:\n  p:\n    source: { type: stdin, format: { value: protobuf } }\n    sinks: [ { type: stdout } ]\n",
        "3",
        &["protobuf", "json", "avro", "string", "bytes"],
    );
}

#[test]
fn a_misspelt_side_gets_a_suggestion() {
    assert_error(
        "pipelines:\n  p:\n    source: { type: stdin, format: { valeu: json } }\n    sinks: [ { type: stdout } ]\n",
        "3",
        &["valeu", "value"],
    );
}

#[test]
fn the_topic_strategy_needs_a_fixed_topic() {
    // A file sink has no topic to name the subject after.
    assert_error(
        &format!(
            "{REG}{}",
            file_sink(&format!("{{ value: {{ type: avro, schema: {SCHEMA} }} }}"))
        ),
        "8:17",
        &["topic", "subject_strategy: record"],
    );
    // With the record strategy it builds.
    builds(&format!(
        "{REG}{}",
        file_sink(&format!(
            "{{ value: {{ type: avro, schema: {SCHEMA}, subject_strategy: record }} }}"
        ))
    ));
}

#[test]
fn a_schema_file_that_is_missing_or_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.avsc");
    assert_error(
        &format!(
            "{REG}{}",
            file_sink(&format!(
                "{{ value: {{ type: avro, schema_file: \"{}\", subject_strategy: record }} }}",
                missing.display()
            ))
        ),
        "8:17",
        &["value: schema_file", "missing.avsc"],
    );
    let bad = dir.path().join("bad.avsc");
    std::fs::write(
        &bad,
        r#"{"type":"record","name":"A","fields":[{"name":"x"}]}"#,
    )
    .unwrap();
    assert_error(
        &format!(
            "{REG}{}",
            file_sink(&format!(
                "{{ value: {{ type: avro, schema_file: \"{}\", subject_strategy: record }} }}",
                bad.display()
            ))
        ),
        "8:17",
        &["does not parse"],
    );
}

#[test]
fn use_latest_with_another_strategy() {
    assert_error(
        &format!(
            "{REG}{}",
            file_sink("{ value: { type: avro, use_latest: true, subject_strategy: record } }")
        ),
        "8:17",
        &["value: use_latest", "subject_strategy: topic"],
    );
}

#[test]
fn a_registry_secret_from_a_missing_variable() {
    assert_error(
        "schema_registry:\n  url: \"http://127.0.0.1:9\"\n  basic_auth: { username: key, password: \"${WEIR_TEST_SURELY_UNSET_SECRET}\" }\npipelines:\n  p:\n    source: { type: stdin, format: { value: avro } }\n    sinks: [ { type: stdout } ]\n",
        "3",
        &["WEIR_TEST_SURELY_UNSET_SECRET"],
    );
}
