//! The example crate's plugins work from YAML beside the built-ins.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn custom_plugins_run_from_yaml() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir-example-custom-plugin"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"name\":\"Ann\",\"email\":\"ann@example.com\",\"password\":\"hunter2\"}\n{\"name\":\"Bo\",\"contacts\":[\"bo@x.io\",\"n/a\"]}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            serde_json::json!({"name":"Ann","email":"[email]"}),
            serde_json::json!({"name":"Bo","contacts":["[email]","n/a"]}),
        ]
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("signups seen: 2 records"));
}

#[test]
fn custom_plugin_config_errors_are_located() {
    let registry = weir_runtime::builtin_registry()
        .unwrap()
        .with::<weir_example_custom_plugin::RedactEmailsTransformConfig>()
        .unwrap();
    let yaml = "pipelines:\n  p:\n    source: { type: stdin }\n    transforms: [ { type: redact_emails, replacement: a@b.c } ]\n    sinks: [ { type: stdout } ]\n";
    let err = weir_runtime::Runtime::from_yaml_str("p.yaml", yaml, &registry)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("p.yaml:4:55: pipelines.p.transforms[0].replacement: the replacement must not itself look like an address"), "{err}");
}
