//! The `http` sink against a real HTTPS server (axum over rustls, certificates made by the test):
//! delivery and order, idempotency keys, batching and gzip, retries with `Retry-After`, dead
//! letters for 4xx, every auth type, mutual TLS, certificate checks, rate limit and concurrency,
//! all measured on the server's side.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value as Json, json};
use support::https::{Answer, Https, Seen};
use support::pipelines::build;
use support::tls::certificates;
use tokio_util::sync::CancellationToken;

/// `n` JSON lines `{"seq": i, ...}`; the file source gives each its path, partition 0 and line.
fn input(dir: &Path, n: usize) -> PathBuf {
    let p = dir.join("in.ndjson");
    let lines: Vec<String> = (0..n)
        .map(|i| json!({"seq": i, "amount": i * 10, "customer": format!("c{}", i % 3)}).to_string())
        .collect();
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn pipeline(input: &Path, sink: &str, extra: &str) -> String {
    format!(
        "pipelines:\n  p:\n    source: {{ type: file, path: \"{}\" }}\n    sinks:\n      - {sink}\n{extra}",
        input.display()
    )
}

fn dlq(dir: &Path) -> (String, PathBuf) {
    let p = dir.join("dlq.ndjson");
    (
        format!(
            "    dlq: {{ type: file, path: \"{}\", envelope: true }}\n",
            p.display()
        ),
        p,
    )
}

/// Runs until the file source is done and everything is delivered.
async fn run_to_end(yaml: &str) -> Result<(), String> {
    let rt = build(yaml);
    tokio::time::timeout(Duration::from_secs(60), rt.run(CancellationToken::new()))
        .await
        .expect("the pipeline finishes within 60s")
        .map_err(|e| e.to_string())
}

fn seq(s: &Seen) -> u64 {
    s.json()["seq"].as_u64().unwrap()
}

fn ca(dir: &Path) -> String {
    dir.join("ca.pem").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_once_each_in_order_with_idempotency_keys() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |_, _| Answer::ok()).await;
    let inp = input(dir.path(), 50);
    let sink = format!(
        "{{ type: http, url: \"{}/events/<$.value.customer>\", headers: {{ x-pipeline: \"<weir.pipeline>\" }}, tls: {{ ca_file: \"{}\" }} }}",
        server.url,
        ca(dir.path())
    );
    run_to_end(&pipeline(&inp, &sink, "")).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 50);
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(seq(s), i as u64, "in order");
        assert_eq!(s.method, "POST");
        assert_eq!(s.path, format!("/events/c{}", i % 3));
        assert_eq!(s.headers["content-type"], "application/json");
        assert_eq!(s.headers["x-pipeline"], "p");
        assert_eq!(
            s.headers["idempotency-key"],
            format!("{}-0-{}", inp.display(), i),
            "topic-partition-offset (the file source's offsets are line indexes)"
        );
        assert_eq!(
            s.json(),
            json!({"seq": i, "amount": i * 10, "customer": format!("c{}", i % 3)})
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_go_as_gzip_json_arrays_or_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |_, _| Answer::ok()).await;
    let inp = input(dir.path(), 100);
    let common = format!(
        "tls: {{ ca_file: \"{}\" }}, batch: {{ max_records: 20, max_wait: 50ms }}",
        ca(dir.path())
    );
    let yaml = format!(
        "pipelines:\n  p:\n    source: {{ type: file, path: \"{}\" }}\n    sinks:\n      - {{ type: http, url: \"{u}/array\", batch_format: json_array, compression: gzip, {common} }}\n      - {{ type: http, url: \"{u}/lines\", batch_format: ndjson, {common} }}\n",
        inp.display(),
        u = server.url
    );
    run_to_end(&yaml).await.unwrap();
    let seen = server.seen();
    let arrays: Vec<&Seen> = seen.iter().filter(|s| s.path == "/array").collect();
    let lines: Vec<&Seen> = seen.iter().filter(|s| s.path == "/lines").collect();
    assert_eq!(arrays.len(), 5, "100 records in batches of 20");
    assert_eq!(lines.len(), 5);
    let mut all = Vec::new();
    for a in &arrays {
        assert_eq!(a.headers["content-encoding"], "gzip");
        assert!(
            a.wire_bytes < a.body.len() / 2,
            "gzip shrinks {} bytes to {}",
            a.body.len(),
            a.wire_bytes
        );
        let items = a.json();
        let items = items.as_array().unwrap();
        assert_eq!(items.len(), 20);
        all.extend(items.iter().map(|v| v["seq"].as_u64().unwrap()));
        let first = items[0]["seq"].as_u64().unwrap();
        assert!(a.headers["idempotency-key"].ends_with(&format!("-0-{first}+20")));
    }
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    let mut from_lines = Vec::new();
    for l in &lines {
        assert_eq!(l.headers["content-type"], "application/x-ndjson");
        assert!(!l.headers.contains_key("content-encoding"));
        for line in String::from_utf8(l.body.clone()).unwrap().lines() {
            from_lines.push(
                serde_json::from_str::<Json>(line).unwrap()["seq"]
                    .as_u64()
                    .unwrap(),
            );
        }
    }
    assert_eq!(from_lines, (0..100).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_storm_recovers_with_nothing_lost_and_order_kept() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    // The first 15 requests fail (503, 500, 502 in turn), then the server is healthy.
    let server = Https::start(dir.path(), None, |_, n| {
        if n < 15 {
            Answer::status([503, 500, 502][n % 3]).body("upstream down")
        } else {
            Answer::ok()
        }
    })
    .await;
    let inp = input(dir.path(), 40);
    let sink = format!(
        "{{ type: http, url: \"{}/e\", tls: {{ ca_file: \"{}\" }}, retry: {{ initial_backoff: 10ms, max_backoff: 50ms }} }}",
        server.url,
        ca(dir.path())
    );
    let (dlq, dlq_path) = dlq(dir.path());
    run_to_end(&pipeline(&inp, &sink, &dlq)).await.unwrap();
    let seen = server.seen();
    let delivered: Vec<u64> = seen.iter().skip(15).map(seq).collect();
    assert_eq!(
        delivered,
        (0..40).collect::<Vec<_>>(),
        "every record once, in order, after the storm"
    );
    assert!(
        seen[..15].iter().all(|s| seq(s) == 0),
        "the storm retried the first record, nothing after it"
    );
    assert!(!dlq_path.exists() || std::fs::read_to_string(&dlq_path).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |_, n| {
        if n == 0 {
            Answer::status(429).header("retry-after", "2")
        } else {
            Answer::ok()
        }
    })
    .await;
    let inp = input(dir.path(), 3);
    let sink = format!(
        "{{ type: http, url: \"{}/e\", tls: {{ ca_file: \"{}\" }}, retry: {{ initial_backoff: 10ms }} }}",
        server.url,
        ca(dir.path())
    );
    run_to_end(&pipeline(&inp, &sink, "")).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_millis(1950),
        "waited {waited:?} after Retry-After: 2"
    );
    assert_eq!(
        seen.iter().skip(1).map(seq).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_holds_when_the_429_hits_a_record_in_the_middle_of_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    // The first record of the batch is delivered; the second gets a 429 asking for 2 s.
    let server = Https::start(dir.path(), None, |_, n| {
        if n == 1 {
            Answer::status(429).header("retry-after", "2")
        } else {
            Answer::ok()
        }
    })
    .await;
    let inp = input(dir.path(), 3);
    let sink = format!(
        "{{ type: http, url: \"{}/e\", tls: {{ ca_file: \"{}\" }}, retry: {{ initial_backoff: 10ms }}, batch: {{ max_records: 3, max_wait: 1s }} }}",
        server.url,
        ca(dir.path())
    );
    run_to_end(&pipeline(&inp, &sink, "")).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.iter().map(seq).collect::<Vec<_>>(), vec![0, 1, 1, 2]);
    let waited = seen[2].at - seen[1].at;
    assert!(
        waited >= Duration::from_millis(1950),
        "waited {waited:?} after a mid-batch Retry-After: 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_poison_record_goes_to_the_dlq_with_status_and_body_while_the_rest_flow() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |s, _| {
        if seq(s) == 7 {
            Answer::status(422).body(r#"{"error":"amount 70 is over the customer's limit"}"#)
        } else {
            Answer::ok()
        }
    })
    .await;
    let inp = input(dir.path(), 20);
    let sink = format!(
        "{{ type: http, url: \"{}/e\", tls: {{ ca_file: \"{}\" }} }}",
        server.url,
        ca(dir.path())
    );
    let (dlq, dlq_path) = dlq(dir.path());
    run_to_end(&pipeline(&inp, &sink, &dlq)).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 20, "the poison record is not retried");
    let dead: Vec<Json> = std::fs::read_to_string(&dlq_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["value"]["seq"], 7, "the original record");
    let h = &dead[0]["headers"];
    let msg = h["__connect.errors.exception.message"].as_str().unwrap();
    assert!(
        msg.contains("422") && msg.contains("over the customer's limit"),
        "{msg}"
    );
    assert_eq!(h["__connect.errors.stage"], "sink");
}

/// An `http` sink as the `dlq:` sends the envelope, error headers included, as the body: the
/// receiver learns why each record failed (docs/decisions.md). `envelope: false` sends the bare
/// value, as a sink does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_dlq_receives_each_dead_letter_as_an_envelope_with_its_error_headers() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let target = Https::start(dir.path(), None, |s, _| {
        if seq(s) % 5 == 2 {
            Answer::status(422).body(r#"{"error":"unknown customer"}"#)
        } else {
            Answer::ok()
        }
    })
    .await;
    let inp = input(dir.path(), 20);
    let sink = format!(
        "{{ type: http, name: webhook, url: \"{}/e\", tls: {{ ca_file: \"{}\" }} }}",
        target.url,
        ca(dir.path())
    );
    for envelope in [None, Some(false)] {
        let dlq_server = Https::start(dir.path(), None, |_, _| Answer::ok()).await;
        let opt = envelope.map_or(String::new(), |e| format!(", envelope: {e}"));
        let dlq = format!(
            "    dlq: {{ type: http, url: \"{}/dead\", tls: {{ ca_file: \"{}\" }}{opt} }}\n",
            dlq_server.url,
            ca(dir.path())
        );
        run_to_end(&pipeline(&inp, &sink, &dlq)).await.unwrap();
        let dead = dlq_server.seen();
        assert_eq!(dead.len(), 4, "records 2, 7, 12 and 17 failed");
        for (d, want) in dead.iter().zip([2, 7, 12, 17]) {
            assert_eq!(d.path, "/dead");
            assert_eq!(d.headers["content-type"], "application/json");
            let body = d.json();
            if envelope == Some(false) {
                assert_eq!(body["seq"], want, "the bare value: {body}");
                assert!(body.get("headers").is_none(), "{body}");
                continue;
            }
            assert_eq!(body["value"]["seq"], want, "the original value: {body}");
            assert_eq!(body["partition"], 0);
            assert_eq!(body["offset"], want, "the line of the input file");
            let h = &body["headers"];
            assert_eq!(h["__connect.errors.stage"], "sink", "{body}");
            assert_eq!(h["weir.errors.component"], "webhook", "{body}");
            assert_eq!(h["weir.errors.pipeline"], "p", "{body}");
            assert_eq!(h["__connect.errors.offset"], want.to_string(), "{body}");
            let msg = h["__connect.errors.exception.message"].as_str().unwrap();
            assert!(
                msg.contains("422") && msg.contains("unknown customer"),
                "{msg}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_type_is_sent_and_secrets_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
    let secret = format!("file:{}", dir.path().join("secret").display());
    // OAuth2: the token endpoint issues t1, t2, ...; the API accepts only the newest token, and
    // after its 5th request it revokes t1 (as an expiry would), so the sink must fetch t2.
    let server = Https::start(dir.path(), None, |s, _| Answer::ok().body(s.path.clone())).await;
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let api_calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (i2, a2) = (issued.clone(), api_calls.clone());
    let oauth = Https::start(dir.path(), None, move |s, _| {
        use std::sync::atomic::Ordering::SeqCst;
        if s.path == "/token" {
            let n = i2.fetch_add(1, SeqCst) + 1;
            return Answer::ok()
                .header("content-type", "application/json")
                .body(json!({"access_token": format!("t{n}"), "token_type": "Bearer", "expires_in": 3600}).to_string());
        }
        let calls = a2.fetch_add(1, SeqCst) + 1;
        let newest = format!("Bearer t{}", i2.load(SeqCst));
        let current = if calls > 5 && i2.load(SeqCst) == 1 { "revoked".to_owned() } else { newest };
        if s.headers.get("authorization") == Some(&current) { Answer::ok() } else { Answer::status(401) }
    })
    .await;
    let inp = input(dir.path(), 10);
    let tls = format!("tls: {{ ca_file: \"{}\" }}", ca(dir.path()));
    let u = &server.url;
    let yaml = format!(
        "pipelines:\n  p:\n    source: {{ type: file, path: \"{}\" }}\n    sinks:\n      - {{ type: http, url: \"{u}/basic\", {tls}, auth: {{ type: basic, username: weir, password: \"{secret}\" }} }}\n      - {{ type: http, url: \"{u}/bearer\", {tls}, auth: {{ type: bearer, token: \"{secret}\" }} }}\n      - {{ type: http, url: \"{u}/header\", {tls}, auth: {{ type: api_key, name: x-api-key, value: \"{secret}\" }} }}\n      - {{ type: http, url: \"{u}/query\", {tls}, auth: {{ type: api_key, name: api_key, value: \"{secret}\", in: query }} }}\n      - {{ type: http, url: \"{}/api\", {tls}, auth: {{ type: oauth2, token_url: \"{}/token\", client_id: weir, client_secret: \"{secret}\", scopes: [events.write, events.read] }} }}\n",
        inp.display(),
        oauth.url,
        oauth.url
    );
    run_to_end(&yaml).await.unwrap();
    let seen = server.seen();
    let by = |p: &str| -> Vec<Seen> { seen.iter().filter(|s| s.path == p).cloned().collect() };
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("weir:s3cret")
    );
    assert!(
        by("/basic")
            .iter()
            .all(|s| s.headers["authorization"] == basic)
    );
    assert!(
        by("/bearer")
            .iter()
            .all(|s| s.headers["authorization"] == "Bearer s3cret")
    );
    assert!(by("/header").iter().all(|s| s.headers["x-api-key"] == "s3cret" && !s.headers.contains_key("authorization")));
    assert!(by("/query").iter().all(|s| s.query == "api_key=s3cret"));
    for p in ["/basic", "/bearer", "/header", "/query"] {
        assert_eq!(by(p).len(), 10, "{p}");
    }
    let o = oauth.seen();
    let tokens: Vec<&Seen> = o.iter().filter(|s| s.path == "/token").collect();
    assert_eq!(tokens.len(), 2, "one token, then one more after the 401");
    let form = String::from_utf8(tokens[0].body.clone()).unwrap();
    for part in [
        "grant_type=client_credentials",
        "client_id=weir",
        "client_secret=s3cret",
        "scope=events.write+events.read",
    ] {
        assert!(form.contains(part), "{part} in {form}");
    }
    let ok: Vec<u64> = o
        .iter()
        .filter(|s| s.path == "/api")
        .filter(|s| s.headers.contains_key("authorization"))
        .map(seq)
        .collect();
    // Records 0-4 with t1, record 5 refused with t1 then sent again with t2, then 6-9.
    assert_eq!(ok, vec![0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9]);
}

async fn failing_over_tls(tls: &str, server: &Https, dir: &Path) -> String {
    let inp = input(dir, 1);
    let sink = format!(
        "{{ type: http, url: \"{}/e\", {tls}, retry: {{ max_attempts: 2, initial_backoff: 10ms }} }}",
        server.url
    );
    let (dlq, dlq_path) = dlq(dir);
    run_to_end(&pipeline(&inp, &sink, &dlq)).await.unwrap();
    let dead = std::fs::read_to_string(&dlq_path).unwrap();
    let d: Json = serde_json::from_str(dead.lines().next().expect("a dead letter")).unwrap();
    d["headers"]["__connect.errors.exception.message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_lets_a_client_certificate_in_and_refuses_a_client_without_one() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), Some(&dir.path().join("ca.pem")), |_, _| {
        Answer::ok()
    })
    .await;
    let f = |n: &str| dir.path().join(n).display().to_string();
    let inp = input(dir.path(), 5);
    let sink = format!(
        "{{ type: http, url: \"{}/e\", tls: {{ ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\" }} }}",
        server.url,
        f("ca.pem"),
        f("client.pem"),
        f("client.key")
    );
    run_to_end(&pipeline(&inp, &sink, "")).await.unwrap();
    assert_eq!(server.seen().len(), 5);

    let other = tempfile::tempdir().unwrap();
    let msg = failing_over_tls(
        &format!("tls: {{ ca_file: \"{}\" }}", f("ca.pem")),
        &server,
        other.path(),
    )
    .await;
    assert_eq!(
        server.seen().len(),
        5,
        "no request got through without a certificate"
    );
    assert!(msg.contains("error sending request"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |_, _| Answer::ok()).await;
    let other = tempfile::tempdir().unwrap();
    let msg = failing_over_tls(
        &format!(
            "tls: {{ ca_file: \"{}\" }}",
            dir.path().join("other-ca.pem").display()
        ),
        &server,
        other.path(),
    )
    .await;
    assert!(server.seen().is_empty());
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_and_max_in_flight_hold_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |_, _| {
        Answer::ok().after(Duration::from_millis(40))
    })
    .await;
    let inp = input(dir.path(), 40);
    let tls = format!("tls: {{ ca_file: \"{}\" }}", ca(dir.path()));
    let yaml = format!(
        "pipelines:\n  p:\n    source: {{ type: file, path: \"{}\" }}\n    sinks:\n      - {{ type: http, url: \"{u}/limited\", {tls}, rate_limit_per_sec: 50, max_in_flight: 8 }}\n      - {{ type: http, url: \"{u}/parallel\", {tls}, max_in_flight: 4 }}\n",
        inp.display(),
        u = server.url
    );
    run_to_end(&yaml).await.unwrap();
    let seen = server.seen();
    let limited: Vec<&Seen> = seen.iter().filter(|s| s.path == "/limited").collect();
    assert_eq!(limited.len(), 40);
    // Up to max_in_flight (8) requests may each open a connection (TLS handshake) and arrive
    // late, so measure from the ninth: 32 requests at 50/s are 31 intervals of 20 ms.
    let steady = &limited[8..];
    let span = steady.last().unwrap().at - steady[0].at;
    assert!(
        span >= Duration::from_millis(31 * 20 - 20),
        "32 requests in {span:?}"
    );
    // Any 11 consecutive arrivals span at least 10 intervals (less a little jitter).
    for w in steady.windows(11) {
        assert!(
            w[10].at - w[0].at >= Duration::from_millis(180),
            "{:?}",
            w[10].at - w[0].at
        );
    }
    assert!(server.max_in_flight() <= 8 + 4, "both sinks together");
    let parallel = seen.iter().filter(|s| s.path == "/parallel").count();
    assert_eq!(parallel, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_bounds_concurrent_requests() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |_, _| {
        Answer::ok().after(Duration::from_millis(50))
    })
    .await;
    let inp = input(dir.path(), 60);
    let sink = format!(
        "{{ type: http, url: \"{}/e\", tls: {{ ca_file: \"{}\" }}, max_in_flight: 6 }}",
        server.url,
        ca(dir.path())
    );
    run_to_end(&pipeline(&inp, &sink, "")).await.unwrap();
    assert_eq!(server.seen().len(), 60);
    let m = server.max_in_flight();
    assert!(
        (2..=6).contains(&m),
        "at most 6 at once, and more than one: {m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let expired = support::tls::expired_server(dir.path());
    let server = Https::start(expired.path(), None, |_, _| Answer::ok()).await;
    let other = tempfile::tempdir().unwrap();
    let msg = failing_over_tls(
        &format!("tls: {{ ca_file: \"{}\" }}", ca(dir.path())),
        &server,
        other.path(),
    )
    .await;
    assert!(server.seen().is_empty());
    assert!(msg.to_lowercase().contains("expired"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_skip_verify_accepts_an_unknown_certificate_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |_, _| Answer::ok()).await;
    let inp = input(dir.path(), 3);
    let sink = format!(
        "{{ type: http, url: \"{}/e\", tls: {{ insecure_skip_verify: true }} }}",
        server.url
    );
    run_to_end(&pipeline(&inp, &sink, "")).await.unwrap();
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_statuses_replace_the_default_and_secrets_stay_out_of_errors() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    // 409 twice (listed: retried), then 503 (not listed: a dead letter).
    let server = Https::start(dir.path(), None, |s, n| match (seq(s), n) {
        (0, 0 | 1) => Answer::status(409).body("busy"),
        (1, _) => Answer::status(503).body("down"),
        _ => Answer::ok(),
    })
    .await;
    let inp = input(dir.path(), 3);
    let sink = format!(
        "{{ type: http, url: \"{}/e\", tls: {{ ca_file: \"{}\" }}, retry_statuses: [409], retry: {{ initial_backoff: 10ms }}, auth: {{ type: api_key, name: key, value: sup3r-s3cret, in: query }} }}",
        server.url,
        ca(dir.path())
    );
    let (dlq, dlq_path) = dlq(dir.path());
    run_to_end(&pipeline(&inp, &sink, &dlq)).await.unwrap();
    let seen: Vec<u64> = server.seen().iter().map(seq).collect();
    assert_eq!(seen, vec![0, 0, 0, 1, 2]);
    let dead = std::fs::read_to_string(&dlq_path).unwrap();
    assert_eq!(dead.lines().count(), 1);
    assert!(dead.contains("503"), "{dead}");

    // A transport failure names the error, never the URL with the key in its query.
    let closed = format!("https://127.0.0.1:{}", support::free_port());
    let sink = format!(
        "{{ type: http, url: \"{closed}/e\", retry: {{ max_attempts: 2, initial_backoff: 10ms }}, auth: {{ type: api_key, name: key, value: sup3r-s3cret, in: query }} }}"
    );
    let other = tempfile::tempdir().unwrap();
    let (dlq, dlq_path) = self::dlq(other.path());
    run_to_end(&pipeline(&input(other.path(), 1), &sink, &dlq))
        .await
        .unwrap();
    let dead = std::fs::read_to_string(&dlq_path).unwrap();
    assert!(dead.contains("error sending request"), "{dead}");
    assert!(!dead.contains("sup3r-s3cret"), "the key leaked: {dead}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth2_token_is_fetched_again_when_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let i2 = issued.clone();
    let server = Https::start(dir.path(), None, move |s, _| {
        use std::sync::atomic::Ordering::SeqCst;
        if s.path == "/token" {
            let n = i2.fetch_add(1, SeqCst) + 1;
            return Answer::ok()
                .body(json!({"access_token": format!("t{n}"), "expires_in": 1}).to_string());
        }
        Answer::ok()
    })
    .await;
    let inp = input(dir.path(), 10);
    // 10 requests at 4/s take over 2 s: tokens living 1 s must be fetched again, before a 401.
    let sink = format!(
        "{{ type: http, url: \"{u}/api\", rate_limit_per_sec: 4, tls: {{ ca_file: \"{}\" }}, auth: {{ type: oauth2, token_url: \"{u}/token\", client_id: weir, client_secret: s }} }}",
        ca(dir.path()),
        u = server.url
    );
    run_to_end(&pipeline(&inp, &sink, "")).await.unwrap();
    let seen = server.seen();
    let tokens = seen.iter().filter(|s| s.path == "/token").count();
    assert!(
        tokens >= 2,
        "{tokens} tokens for 2+ seconds of 1-second tokens"
    );
    let used: std::collections::BTreeSet<&str> = seen
        .iter()
        .filter(|s| s.path == "/api")
        .map(|s| s.headers["authorization"].as_str())
        .collect();
    assert!(used.len() >= 2, "{used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_is_retried_then_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |_, _| {
        Answer::ok().after(Duration::from_secs(3))
    })
    .await;
    let inp = input(dir.path(), 1);
    let sink = format!(
        "{{ type: http, url: \"{}/slow\", timeout: 200ms, tls: {{ ca_file: \"{}\" }}, retry: {{ max_attempts: 2, initial_backoff: 10ms }} }}",
        server.url,
        ca(dir.path())
    );
    let (dlq, dlq_path) = dlq(dir.path());
    let started = std::time::Instant::now();
    run_to_end(&pipeline(&inp, &sink, &dlq)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "did not wait for the slow server"
    );
    assert_eq!(server.seen().len(), 2, "two attempts");
    let dead = std::fs::read_to_string(&dlq_path).unwrap();
    assert!(
        dead.contains("timed out") || dead.contains("timeout"),
        "{dead}"
    );
}
