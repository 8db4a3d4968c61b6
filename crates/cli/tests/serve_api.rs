//! `weir serve`'s API with a real HTTP client (and curl): pipelines created, read, changed,
//! operated and deleted; errors in one shape; the token; secrets that never come back; a
//! pipeline that survives `kill -9`; files that are read-only over the API and reload.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

const TOKEN: &str = "t0ken-for-the-tests";

fn gen_body(name: &str, rate: u32) -> String {
    json!({"name": name, "source": {"type": "generator", "rate_per_sec": rate},
           "transforms": [{"type": "filter", "patterns": [{"value": {"amount": [{"numeric": [">=", 0]}]}}]}],
           "sinks": [{"type": "null"}]})
    .to_string()
}

fn token_file(dir: &std::path::Path) -> String {
    let f = dir.join("token");
    std::fs::write(&f, format!("{TOKEN}\n")).unwrap();
    f.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_are_created_operated_changed_and_deleted_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path());
    let s = Serve::start(dir.path(), &["--token-file", &tf], &[]);
    let u = &s.url;
    let t = Some(TOKEN);

    // Create (JSON), then list and read it.
    let a = call(
        "POST",
        &format!("{u}/v1/pipelines"),
        t,
        Some(("application/json", &gen_body("orders", 200))),
        &[],
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json["generation"], 1);
    let st = wait_status(u, "orders", Duration::from_secs(10), |s| {
        s["state"] == "running"
    })
    .await;
    assert_eq!(st["desired_state"], "running");
    assert_eq!(st["components"].as_array().unwrap().len(), 3);
    let list = call("GET", &format!("{u}/v1/pipelines"), None, None, &[]).await;
    assert_eq!(list.json["pipelines"][0]["name"], "orders");
    assert_eq!(list.json["pipelines"][0]["origin"], "api");
    let got = call("GET", &format!("{u}/v1/pipelines/orders"), None, None, &[]).await;
    assert_eq!(got.json["definition"]["source"]["type"], "generator");
    assert_eq!(got.json["status"]["name"], "orders");

    // Records flow and are counted.
    let st = wait_status(u, "orders", Duration::from_secs(10), |s| {
        s["components"][2]["sent_events"].as_u64().unwrap_or(0) > 100
    })
    .await;
    assert_eq!(st["state"], "running");

    // Pause, resume, stop, start, restart: 202 at once; the status shows the progress.
    for (verb, state, desired) in [
        ("pause", "paused", "paused"),
        ("resume", "running", "running"),
        ("stop", "stopped", "stopped"),
        ("start", "running", "running"),
    ] {
        let a = call(
            "POST",
            &format!("{u}/v1/pipelines/orders/{verb}"),
            t,
            None,
            &[],
        )
        .await;
        assert_eq!(a.status, 202, "{verb}: {}", a.text);
        assert_eq!(a.json["desired_state"], desired);
        wait_status(u, "orders", Duration::from_secs(15), |s| {
            s["state"] == state
        })
        .await;
    }
    let a = call(
        "POST",
        &format!("{u}/v1/pipelines/orders/restart"),
        t,
        None,
        &[],
    )
    .await;
    assert_eq!(a.status, 202);
    wait_status(u, "orders", Duration::from_secs(15), |s| {
        s["state"] == "running" && s["restart_count"].as_u64() >= Some(1)
    })
    .await;

    // Paused stays paused: nothing more is sent.
    call(
        "POST",
        &format!("{u}/v1/pipelines/orders/pause"),
        t,
        None,
        &[],
    )
    .await;
    wait_status(u, "orders", Duration::from_secs(10), |s| {
        s["state"] == "paused"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = wait_status(u, "orders", Duration::from_secs(1), |_| true).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let b = wait_status(u, "orders", Duration::from_secs(1), |_| true).await;
    assert_eq!(
        a["components"][2]["sent_events"], b["components"][2]["sent_events"],
        "records sent while paused"
    );
    call(
        "POST",
        &format!("{u}/v1/pipelines/orders/resume"),
        t,
        None,
        &[],
    )
    .await;

    // Replace (YAML), with If-Match: a stale generation is 412, the right one 202.
    let yaml = "name: orders\nsource: { type: generator, rate_per_sec: 300 }\nsinks: [ { type: \"null\", name: out } ]\n";
    let stale = call(
        "PUT",
        &format!("{u}/v1/pipelines/orders"),
        t,
        Some(("application/yaml", yaml)),
        &[("if-match", "7")],
    )
    .await;
    assert_error(&stale, 412, "stale_generation");
    let ok = call(
        "PUT",
        &format!("{u}/v1/pipelines/orders"),
        t,
        Some(("application/yaml", yaml)),
        &[("if-match", "1")],
    )
    .await;
    assert_eq!(ok.status, 202, "{}", ok.text);
    let st = wait_status(u, "orders", Duration::from_secs(15), |s| {
        s["observed_generation"] == 2 && s["state"] == "running"
    })
    .await;
    assert_eq!(st["generation"], 2);
    assert_eq!(st["components"][1]["name"], "out");
    // The same definition again changes nothing.
    let same = call(
        "PUT",
        &format!("{u}/v1/pipelines/orders"),
        t,
        Some(("application/yaml", yaml)),
        &[],
    )
    .await;
    assert_eq!(same.json["generation"], 2, "{}", same.text);

    // Dry run validates without creating; /v1/validate likewise.
    let dry = call(
        "POST",
        &format!("{u}/v1/pipelines?dry_run=true"),
        t,
        Some(("application/json", &gen_body("dry", 1))),
        &[],
    )
    .await;
    assert_eq!(dry.status, 200, "{}", dry.text);
    assert_eq!(dry.json["name"], "dry");
    assert_error(
        &call("GET", &format!("{u}/v1/pipelines/dry"), None, None, &[]).await,
        404,
        "not_found",
    );

    // Delete: drains and removes.
    let d = call("DELETE", &format!("{u}/v1/pipelines/orders"), t, None, &[]).await;
    assert_eq!(d.status, 204, "{}", d.text);
    assert_error(
        &call("GET", &format!("{u}/v1/pipelines/orders"), None, None, &[]).await,
        404,
        "not_found",
    );
    assert_error(
        &call("DELETE", &format!("{u}/v1/pipelines/orders"), t, None, &[]).await,
        404,
        "not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_one_error_shape_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path());
    let s = Serve::start(
        dir.path(),
        &["--token-file", &tf, "--body-limit", "2048"],
        &[],
    );
    let u = &s.url;
    let t = Some(TOKEN);
    // A definition with a mistake: 400 with the line and column in the submitted body.
    let body = "name: p\nsource: { type: generater }\nsinks: [ { type: \"null\" } ]\n";
    let a = call(
        "POST",
        &format!("{u}/v1/pipelines"),
        t,
        Some(("application/yaml", body)),
        &[],
    )
    .await;
    assert_error(&a, 400, "invalid_definition");
    let d = &a.json["error"]["details"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(2), Some(17)),
        "{}",
        a.text
    );
    assert_eq!(d["path"], "source.type");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `generator`?"),
        "{}",
        a.text
    );
    // Malformed JSON: 400 with the location.
    let a = call(
        "POST",
        &format!("{u}/v1/validate"),
        None,
        Some(("application/json", "{\"name\": \"p\",\n \"source\": }")),
        &[],
    )
    .await;
    assert_error(&a, 400, "invalid_definition");
    assert_eq!(a.json["error"]["details"][0]["line"], 2, "{}", a.text);
    assert!(a.text.contains("invalid JSON"), "{}", a.text);
    // Malformed YAML likewise.
    let a = call(
        "POST",
        &format!("{u}/v1/validate"),
        None,
        Some(("application/yaml", "name: p\nsource: [\n")),
        &[],
    )
    .await;
    assert_error(&a, 400, "invalid_definition");
    // Too large: 413.
    let big = format!("{{\"name\": \"p\", \"x\": \"{}\"}}", "y".repeat(4096));
    assert_error(
        &call(
            "POST",
            &format!("{u}/v1/pipelines"),
            t,
            Some(("application/json", &big)),
            &[],
        )
        .await,
        413,
        "payload_too_large",
    );
    // Unknown route 404, wrong method 405, both JSON.
    assert_error(
        &call("GET", &format!("{u}/v1/nothing"), None, None, &[]).await,
        404,
        "not_found",
    );
    assert_error(
        &call("PATCH", &format!("{u}/v1/pipelines"), t, None, &[]).await,
        405,
        "method_not_allowed",
    );
    // A body naming another pipeline than the URL.
    let a = call(
        "PUT",
        &format!("{u}/v1/pipelines/a"),
        t,
        Some(("application/json", &gen_body("b", 1))),
        &[],
    )
    .await;
    assert_error(&a, 400, "name_mismatch");
    // A bad pipeline name.
    let a = call(
        "POST",
        &format!("{u}/v1/pipelines"),
        t,
        Some(("application/json", &gen_body("bad name", 1))),
        &[],
    )
    .await;
    assert_error(&a, 400, "invalid_definition");
    // Unknown plugin.
    let a = call("GET", &format!("{u}/v1/plugins/filtre"), None, None, &[]).await;
    assert_error(&a, 404, "not_found");
    assert!(a.text.contains("did you mean `filter`?"), "{}", a.text);
    // The catalogue has what `weir plugins` lists.
    let a = call("GET", &format!("{u}/v1/plugins"), None, None, &[]).await;
    assert!(
        a.json["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["type"] == "kafka" && p["kind"] == "source")
    );
    let a = call("GET", &format!("{u}/v1/plugins/filter"), None, None, &[]).await;
    assert_eq!(a.json[0]["options"][0]["name"], "patterns", "{}", a.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_calls_need_the_token_and_reads_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path());
    let s = Serve::start(dir.path(), &["--token-file", &tf], &[]);
    let u = &s.url;
    let body = gen_body("p", 1);
    assert_error(
        &call(
            "POST",
            &format!("{u}/v1/pipelines"),
            None,
            Some(("application/json", &body)),
            &[],
        )
        .await,
        401,
        "unauthorized",
    );
    assert_error(
        &call(
            "POST",
            &format!("{u}/v1/pipelines"),
            Some("wrong"),
            Some(("application/json", &body)),
            &[],
        )
        .await,
        401,
        "unauthorized",
    );
    assert_eq!(
        call(
            "POST",
            &format!("{u}/v1/pipelines"),
            Some(TOKEN),
            Some(("application/json", &body)),
            &[]
        )
        .await
        .status,
        201
    );
    for verb in ["pause", "stop", "restart"] {
        assert_error(
            &call(
                "POST",
                &format!("{u}/v1/pipelines/p/{verb}"),
                None,
                None,
                &[],
            )
            .await,
            401,
            "unauthorized",
        );
    }
    assert_error(
        &call("DELETE", &format!("{u}/v1/pipelines/p"), None, None, &[]).await,
        401,
        "unauthorized",
    );
    for path in [
        "/v1/pipelines",
        "/v1/pipelines/p",
        "/v1/pipelines/p/status",
        "/livez",
        "/metrics",
        "/v1/openapi.json",
    ] {
        assert_eq!(
            call("GET", &format!("{u}{path}"), None, None, &[])
                .await
                .status,
            200,
            "{path}"
        );
    }
    // With curl, as an operator would.
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
            &format!("{u}/v1/pipelines/p/pause"),
        ])
        .output()
        .expect("curl is installed by scripts/test.sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "202");
}

#[test]
fn without_a_token_only_loopback_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = weir()
        .args(["serve", "--listen", "0.0.0.0:0", "--state-dir"])
        .arg(dir.path())
        .env_remove("WEIR_ADMIN_TOKEN")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("weir serve listened on 0.0.0.0 without a token");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tls_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    weir_testkit::tls::certificates(dir.path());
    let cert = dir.path().join("server.pem").display().to_string();
    let key = dir.path().join("server.key").display().to_string();
    let s = Serve::start(dir.path(), &["--tls-cert", &cert, "--tls-key", &key], &[]);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(dir.path().join("ca.pem"))
        .arg(format!("https://{}/livez", s.addr))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"status\":\"ok\"}");
    // Plain HTTP to the TLS port does not get an answer.
    let plain = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &format!("http://{}/livez", s.addr),
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("\"ok\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_the_environment_and_files_never_leave_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("pw");
    std::fs::write(&secret_file, "file-secret-value-123\n").unwrap();
    let env_secret = "env-secret-value-456";
    let s = Serve::start(dir.path(), &[], &[("WEIR_TEST_PASSWORD", env_secret)]);
    let u = &s.url;
    // The sink's target is down, so the failures (and any URL in them) end up in the status.
    let body = json!({"name": "secretive", "source": {"type": "generator", "rate_per_sec": 50},
        "sinks": [{"type": "http", "url": format!("http://user:${{WEIR_TEST_PASSWORD}}@127.0.0.1:{}/x?api_key=inline-key-789", weir_testkit::free_port()),
                   "auth": {"type": "basic", "username": "u", "password": format!("file:{}", secret_file.display())},
                   "retry": {"max_attempts": 2, "initial_backoff": "10ms"}, "on_error": "stop"},
                  {"type": "http", "url": "http://127.0.0.1:1/y", "name": "inline",
                   "auth": {"type": "bearer", "token": "inline-bearer-000"},
                   "retry": {"max_attempts": 2, "initial_backoff": "10ms"}}]})
    .to_string();
    let a = call(
        "POST",
        &format!("{u}/v1/pipelines"),
        None,
        Some(("application/json", &body)),
        &[],
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    wait_status(u, "secretive", Duration::from_secs(20), |s| {
        s["last_error"].is_string()
    })
    .await;
    let mut seen = String::new();
    for path in [
        "/v1/pipelines",
        "/v1/pipelines/secretive",
        "/v1/pipelines/secretive/status",
        "/metrics",
        "/readyz",
    ] {
        seen.push_str(
            &call("GET", &format!("{u}{path}"), None, None, &[])
                .await
                .text,
        );
    }
    let got = call(
        "GET",
        &format!("{u}/v1/pipelines/secretive"),
        None,
        None,
        &[],
    )
    .await;
    assert!(
        got.text.contains("${WEIR_TEST_PASSWORD}"),
        "the reference is shown: {}",
        got.text
    );
    assert!(got.text.contains("file:"), "{}", got.text);
    seen.push_str(&s.log_text());
    for secret in [
        env_secret,
        "file-secret-value-123",
        "inline-key-789",
        "inline-bearer-000",
    ] {
        assert!(!seen.contains(secret), "{secret} leaked: {seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_pipeline_survives_kill_9_in_its_desired_state() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let mut s = Serve::start(dir.path(), &[], &[]);
    let u = s.url.clone();
    for name in ["kept", "held"] {
        let body = json!({"name": name, "source": {"type": "generator", "rate_per_sec": 100},
                          "sinks": [{"type": "file", "path": out.display().to_string()}]})
        .to_string();
        assert_eq!(
            call(
                "POST",
                &format!("{u}/v1/pipelines"),
                None,
                Some(("application/json", &body)),
                &[]
            )
            .await
            .status,
            201
        );
    }
    call(
        "POST",
        &format!("{u}/v1/pipelines/held/pause"),
        None,
        None,
        &[],
    )
    .await;
    wait_status(&u, "held", Duration::from_secs(10), |s| {
        s["state"] == "paused"
    })
    .await;
    s.kill9_and_restart();
    let u = s.url.clone();
    wait_status(&u, "kept", Duration::from_secs(15), |s| {
        s["state"] == "running"
    })
    .await;
    let held = wait_status(&u, "held", Duration::from_secs(15), |s| {
        s["state"] == "paused"
    })
    .await;
    assert_eq!(held["desired_state"], "paused");
    assert_eq!(s.terminate().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_pipelines_are_read_only_over_the_api_and_follow_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipelines.yaml");
    // As editors save: a new file renamed over the old one.
    let replace_file = |text: String| {
        let tmp = dir.path().join(".pipelines.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    let write = |rate: u32, extra: &str| {
        replace_file(format!(
            "pipelines:\n  from-file:\n    source: {{ type: generator, rate_per_sec: {rate} }}\n    sinks: [ {{ type: \"null\" }} ]\n{extra}"
        ));
    };
    write(50, "");
    let s = Serve::start(
        dir.path(),
        &[file.to_str().unwrap(), "--poll-interval", "200ms"],
        &[],
    );
    let u = &s.url;
    wait_status(u, "from-file", Duration::from_secs(10), |s| {
        s["state"] == "running"
    })
    .await;
    let a = call(
        "PUT",
        &format!("{u}/v1/pipelines/from-file"),
        None,
        Some(("application/json", &gen_body("from-file", 1))),
        &[],
    )
    .await;
    assert_error(&a, 409, "defined_in_file");
    assert!(
        a.text.contains("pipelines.yaml"),
        "the message names the file: {}",
        a.text
    );
    assert_error(
        &call(
            "DELETE",
            &format!("{u}/v1/pipelines/from-file"),
            None,
            None,
            &[],
        )
        .await,
        409,
        "defined_in_file",
    );
    // Pausing is an operation, not a change of definition: allowed.
    assert_eq!(
        call(
            "POST",
            &format!("{u}/v1/pipelines/from-file/pause"),
            None,
            None,
            &[]
        )
        .await
        .status,
        202
    );
    call(
        "POST",
        &format!("{u}/v1/pipelines/from-file/resume"),
        None,
        None,
        &[],
    )
    .await;
    // Editing the file changes the pipeline (a new generation); a broken edit changes nothing
    // and says why; a new pipeline in the file starts; one removed from the file stops.
    write(60, "");
    wait_status(u, "from-file", Duration::from_secs(10), |s| {
        s["observed_generation"] == 2 && s["state"] == "running"
    })
    .await;
    replace_file("pipelines:\n  from-file:\n    source: { type: generater }\n    sinks: [ { type: \"null\" } ]\n".into());
    let st = wait_status(u, "from-file", Duration::from_secs(10), |s| {
        s["last_reload_error"].is_string()
    })
    .await;
    assert!(
        st["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("did you mean `generator`"),
        "{st}"
    );
    assert_eq!(st["state"], "running", "the old generation keeps running");
    write(
        60,
        "  second:\n    source: { type: generator, rate_per_sec: 10 }\n    sinks: [ { type: \"null\" } ]\n",
    );
    wait_status(u, "second", Duration::from_secs(10), |s| {
        s["state"] == "running"
    })
    .await;
    let st = wait_status(u, "from-file", Duration::from_secs(5), |_| true).await;
    assert_eq!(st["observed_generation"], 2, "unchanged: not touched");
    write(60, "");
    for _ in 0..100 {
        if call("GET", &format!("{u}/v1/pipelines/second"), None, None, &[])
            .await
            .status
            == 404
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_error(
        &call("GET", &format!("{u}/v1/pipelines/second"), None, None, &[]).await,
        404,
        "not_found",
    );
    // SIGHUP reads the files too.
    write(70, "");
    s.hup();
    wait_status(u, "from-file", Duration::from_secs(10), |s| {
        s["observed_generation"] == 3
    })
    .await;
    let m = call("GET", &format!("{u}/metrics"), None, None, &[])
        .await
        .text;
    assert!(
        m.contains("weir_config_reloads_total{result=\"ok\"} 4"),
        "{m}"
    );
    assert!(
        m.contains("weir_config_reloads_total{result=\"error\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_https_target_makes_the_pipeline_degraded_and_not_ready_then_recovers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use weir_testkit::https::{Answer, Https};
    let dir = tempfile::tempdir().unwrap();
    weir_testkit::tls::certificates(dir.path());
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let server = Https::start(dir.path(), None, move |_, _| {
        if f.load(Ordering::SeqCst) {
            Answer::status(503).body("maintenance")
        } else {
            Answer::ok()
        }
    })
    .await;
    let s = Serve::start(dir.path(), &[], &[]);
    let u = &s.url;
    let body = json!({"name": "webhook", "source": {"type": "generator", "rate_per_sec": 20},
        "sinks": [{"type": "http", "url": format!("{}/hook", server.url),
                   "tls": {"ca_file": dir.path().join("ca.pem").display().to_string()},
                   "retry": {"initial_backoff": "100ms", "max_backoff": "500ms"}}]})
    .to_string();
    assert_eq!(
        call(
            "POST",
            &format!("{u}/v1/pipelines"),
            None,
            Some(("application/json", &body)),
            &[]
        )
        .await
        .status,
        201
    );
    wait_status(u, "webhook", Duration::from_secs(10), |s| {
        s["state"] == "running"
    })
    .await;
    let ready = call("GET", &format!("{u}/readyz"), None, None, &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    // The target answers 503: degraded, with the reason, within 5 s; not ready.
    failing.store(true, Ordering::SeqCst);
    let st = wait_status(u, "webhook", Duration::from_secs(5), |s| {
        s["state"] == "degraded"
    })
    .await;
    let reason = st["reason"].as_str().unwrap();
    assert!(
        reason.contains("http-0") && reason.contains("503"),
        "{reason}"
    );
    assert_eq!(st["components"][1]["state"], "degraded");
    let ready = call("GET", &format!("{u}/readyz"), None, None, &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert_eq!(ready.json["pipelines"][0]["name"], "webhook");
    assert!(
        ready.json["pipelines"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("degraded"),
        "{}",
        ready.text
    );
    // It recovers: running and ready again.
    failing.store(false, Ordering::SeqCst);
    wait_status(u, "webhook", Duration::from_secs(10), |s| {
        s["state"] == "running"
    })
    .await;
    assert_eq!(
        call("GET", &format!("{u}/readyz"), None, None, &[])
            .await
            .status,
        200
    );
    // /livez never looked at any of it.
    assert_eq!(
        call("GET", &format!("{u}/livez"), None, None, &[])
            .await
            .status,
        200
    );
    // The requests' latency is a histogram of the sink.
    let m = call("GET", &format!("{u}/metrics"), None, None, &[])
        .await
        .text;
    let count = m
        .lines()
        .find(|l| l.starts_with("weir_http_request_duration_seconds_count{pipeline=\"webhook\",component=\"http-0\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(count > 0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_sink_cannot_be_built_keeps_the_old_generation_running_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &[], &[]);
    let u = &s.url;
    let out = dir.path().join("out.ndjson");
    let good = json!({"name": "steady", "source": {"type": "generator", "rate_per_sec": 200},
        "sinks": [{"type": "file", "path": out.display().to_string(), "batch": {"max_wait": "20ms"}}]})
    .to_string();
    assert_eq!(
        call(
            "POST",
            &format!("{u}/v1/pipelines"),
            None,
            Some(("application/json", &good)),
            &[]
        )
        .await
        .status,
        201
    );
    let before = wait_status(u, "steady", Duration::from_secs(10), |s| {
        s["state"] == "running" && s["components"][1]["sent_events"].as_u64() > Some(50)
    })
    .await;
    let bad = json!({"name": "steady", "source": {"type": "generator", "rate_per_sec": 200},
        "sinks": [{"type": "http", "url": "https://127.0.0.1:1/x", "tls": {"ca_file": "/nonexistent/ca.pem"}}]})
    .to_string();
    let a = call(
        "PUT",
        &format!("{u}/v1/pipelines/steady"),
        None,
        Some(("application/json", &bad)),
        &[],
    )
    .await;
    assert_error(&a, 400, "invalid_definition");
    assert!(a.text.contains("/nonexistent/ca.pem"), "{}", a.text);
    // Still the first generation, never restarted, still delivering.
    let mut last = before["components"][1]["sent_events"].as_u64().unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let st = wait_status(u, "steady", Duration::from_secs(1), |_| true).await;
        assert_eq!(st["observed_generation"], 1);
        assert_eq!(st["generation"], 1);
        assert_eq!(st["restart_count"], 0);
        assert_eq!(
            st["since"], before["since"],
            "the old generation never stopped"
        );
        let sent = st["components"][1]["sent_events"].as_u64().unwrap();
        assert!(sent > last, "no record delivered in 300 ms: {st}");
        last = sent;
    }
    let m = call("GET", &format!("{u}/metrics"), None, None, &[])
        .await
        .text;
    assert!(
        m.contains("weir_config_reloads_total{result=\"error\"} 1"),
        "{m}"
    );
}

fn ctl(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = weir()
        .args(["ctl", "--server", url])
        .args(args)
        .env("WEIR_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_ctl_operates_pipelines_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let tf = token_file(dir.path());
    let s = Serve::start(dir.path(), &["--token-file", &tf], &[]);
    let u = s.url.clone();
    // apply -f: a pipeline file with two pipelines, and a single body.
    let file = dir.path().join("two.yaml");
    std::fs::write(&file, "pipelines:\n  one:\n    source: { type: generator, rate_per_sec: 20 }\n    sinks: [ { type: \"null\" } ]\n  two:\n    source: { type: generator, rate_per_sec: 20 }\n    sinks: [ { type: \"null\" } ]\n").unwrap();
    let (ok, out, err) = ctl(&u, &["apply", "-f", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "pipeline/one applied (generation 1)\npipeline/two applied (generation 1)\n"
    );
    let body = dir.path().join("three.yaml");
    std::fs::write(&body, "name: three\nsource: { type: generator, rate_per_sec: 20 }\nsinks: [ { type: \"null\" } ]\n").unwrap();
    assert!(ctl(&u, &["apply", "-f", body.to_str().unwrap()]).0);
    wait_status(&u, "three", Duration::from_secs(10), |s| {
        s["state"] == "running"
    })
    .await;
    // list: a table, or JSON.
    let (ok, out, _) = ctl(&u, &["list"]);
    assert!(ok);
    let rows: Vec<&str> = out.lines().collect();
    assert!(
        rows[0].starts_with("NAME") && rows[0].contains("STATE") && rows[0].contains("ORIGIN"),
        "{out}"
    );
    assert_eq!(rows.len(), 4, "{out}");
    let (_, out, _) = ctl(&u, &["-o", "json", "list"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pipelines"].as_array().unwrap().len(), 3);
    let (_, out, _) = ctl(&u, &["-o", "yaml", "status", "one"]);
    assert!(
        out.contains("name: one") && out.contains("desired_state: running"),
        "{out}"
    );
    // pause / status / resume / delete.
    let (ok, out, _) = ctl(&u, &["pause", "one"]);
    assert!(ok && out.contains("pause requested"), "{out}");
    wait_status(&u, "one", Duration::from_secs(10), |s| {
        s["state"] == "paused"
    })
    .await;
    let (_, out, _) = ctl(&u, &["status", "one"]);
    assert!(out.lines().nth(1).unwrap().contains("paused"), "{out}");
    assert!(out.contains("COMPONENT"), "{out}");
    assert!(ctl(&u, &["resume", "one"]).0);
    let (ok, out, _) = ctl(&u, &["delete", "two"]);
    assert!(ok && out == "pipeline/two deleted\n", "{out}");
    // Failures: non-zero exit and the API's message as it is.
    let (ok, _, err) = ctl(&u, &["get", "two"]);
    assert!(!ok);
    assert!(err.contains("no pipeline named `two`"), "{err}");
    std::fs::write(
        &body,
        "name: three\nsource: { type: generater }\nsinks: [ { type: \"null\" } ]\n",
    )
    .unwrap();
    let (ok, _, err) = ctl(&u, &["apply", "-f", body.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("2:17: source.type: unknown source type `generater`"),
        "{err}"
    );
    let out = weir()
        .args(["ctl", "--server", &u, "pause", "one"])
        .env_remove("WEIR_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Authorization: Bearer"));
    let (ok, _, err) = ctl("http://127.0.0.1:1", &["list"]);
    assert!(
        !ok && err.contains("cannot reach the Weir API at http://127.0.0.1:1"),
        "{err}"
    );
}
