//! The OpenAPI document is generated from the handlers, has every endpoint, and schemathesis
//! (property-based API testing from PyPI) finds no 5xx and no answer that disagrees with it.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_with_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &[], &[]);
    let doc = call(
        "GET",
        &format!("{}/v1/openapi.json", s.url),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(doc.json["openapi"], "3.1.0");
    let paths = doc.json["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/livez", &["get"][..]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/v1/openapi.json", &["get"]),
        ("/v1/validate", &["post"]),
        ("/v1/plugins", &["get"]),
        ("/v1/plugins/{type}", &["get"]),
        ("/v1/pipelines", &["get", "post"]),
        ("/v1/pipelines/{name}", &["get", "put", "delete"]),
        ("/v1/pipelines/{name}/status", &["get"]),
        ("/v1/pipelines/{name}/pause", &["post"]),
        ("/v1/pipelines/{name}/resume", &["post"]),
        ("/v1/pipelines/{name}/stop", &["post"]),
        ("/v1/pipelines/{name}/start", &["post"]),
        ("/v1/pipelines/{name}/restart", &["post"]),
        ("/v1/pipelines/{name}/offsets", &["get", "patch", "delete"]),
        ("/v1/pipelines/{name}/usage", &["get"]),
    ] {
        for m in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*m)).is_some(),
                "{m} {path} is not in the document"
            );
        }
    }
    assert_eq!(
        doc.json["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "schemathesis-token").unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "pipelines:\n  gen:\n    source: { type: generator, rate_per_sec: 100 }\n    transforms: [ { type: filter, patterns: [ { value: { amount: [ { numeric: [\">\", 0] } ] } } ] } ]\n    sinks: [ { type: \"null\" } ]\n",
    )
    .unwrap();
    let s = Serve::start(
        dir.path(),
        &[
            file.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ],
        &[],
    );
    let url = format!("{}/v1/openapi.json", s.url);
    let work = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("schemathesis")
            .args([
                "run",
                &url,
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection",
                "-H",
                "Authorization: Bearer schemathesis-token",
                "--max-examples",
                "100",
                "--seed",
                "20261201",
            ])
            .env("NO_COLOR", "1")
            // Its cache stays out of the repository.
            .current_dir(&work)
            .output()
            .expect("schemathesis is not installed: scripts/test.sh installs it with pip")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    assert!(!s.log_text().contains("panicked"), "{}", s.log_text());
}
