//! The `http` enrichment transform against a real HTTPS server (axum over rustls): merging at a
//! target, the cache, Pipes' drop and split semantics, retries that keep the order, dead
//! letters, and the concurrency limit measured on the server.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value as Json, json};
use support::https::{Answer, Https};
use support::pipelines::build;
use support::tls::certificates;
use tokio_util::sync::CancellationToken;

fn input(dir: &Path, n: usize) -> PathBuf {
    let p = dir.join("in.ndjson");
    let lines: Vec<String> = (0..n)
        .map(|i| json!({"seq": i, "customer": format!("c{}", i % 3)}).to_string())
        .collect();
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

/// file source → `enrich` transform → file sink (+ a file DLQ); returns (output, dead letters).
async fn run(dir: &Path, n: usize, enrich: &str) -> (Vec<Json>, Vec<Json>) {
    let inp = input(dir, n);
    let (out, dlq) = (dir.join("out.ndjson"), dir.join("dlq.ndjson"));
    let yaml = format!(
        "pipelines:\n  p:\n    source: {{ type: file, path: \"{}\" }}\n    transforms: [ {enrich} ]\n    sinks: [ {{ type: file, path: \"{}\" }} ]\n    dlq: {{ type: file, path: \"{}\", envelope: true }}\n",
        inp.display(),
        out.display(),
        dlq.display()
    );
    tokio::time::timeout(
        Duration::from_secs(60),
        build(&yaml).run(CancellationToken::new()),
    )
    .await
    .expect("finishes within 60s")
    .expect("pipeline ok");
    let lines = |p: &Path| -> Vec<Json> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    (lines(&out), lines(&dlq))
}

fn seqs(v: &[Json]) -> Vec<u64> {
    v.iter().map(|j| j["seq"].as_u64().unwrap()).collect()
}

fn ca(dir: &Path) -> String {
    dir.join("ca.pem").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_is_merged_at_the_target_and_cached_by_key() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |s, _| {
        let id = s.path.trim_start_matches("/customers/").to_owned();
        Answer::ok()
            .header("content-type", "application/json")
            .body(json!({"id": id, "tier": if id == "c1" { "gold" } else { "basic" }}).to_string())
    })
    .await;
    let enrich = format!(
        "{{ type: http, method: GET, url: \"{}/customers/<$.value.customer>\", target: value.profile, cache: {{ key: \"<$.value.customer>\", ttl: 1m }}, tls: {{ ca_file: \"{}\" }} }}",
        server.url,
        ca(dir.path())
    );
    let (out, dead) = run(dir.path(), 30, &enrich).await;
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(seqs(&out), (0..30).collect::<Vec<_>>());
    for r in &out {
        let c = r["customer"].as_str().unwrap();
        assert_eq!(r["profile"]["id"], c);
        assert_eq!(
            r["profile"]["tier"],
            if c == "c1" { "gold" } else { "basic" }
        );
    }
    let seen = server.seen();
    assert!(seen.iter().all(|s| s.method == "GET" && s.body.is_empty()));
    // Three customers; the first records of a batch may race before the first answer is cached.
    let distinct: std::collections::BTreeSet<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(distinct.len(), 3);
    assert!(
        seen.len() < 30,
        "the cache answered most lookups: {} requests",
        seen.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_answers_drop_records_and_arrays_split_them() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |s, _| {
        let seq = s.json()["seq"].as_u64().unwrap();
        let body = match seq % 4 {
            0 => "[]".to_owned(),
            1 => "{}".to_owned(),
            2 => json!([{"seq": seq, "part": "a"}, {"seq": seq, "part": "b"}]).to_string(),
            _ => json!({"seq": seq, "enriched": true}).to_string(),
        };
        Answer::ok().body(body)
    })
    .await;
    let enrich = format!(
        "{{ type: http, url: \"{}/enrich\", tls: {{ ca_file: \"{}\" }} }}",
        server.url,
        ca(dir.path())
    );
    let (out, dead) = run(dir.path(), 12, &enrich).await;
    assert!(dead.is_empty());
    let got: Vec<(u64, Json)> = out
        .iter()
        .map(|j| (j["seq"].as_u64().unwrap(), j.clone()))
        .collect();
    assert_eq!(
        got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![2, 2, 3, 6, 6, 7, 10, 10, 11],
        "[] and {{}} drop, arrays split in place, objects replace"
    );
    assert_eq!(got[0].1["part"], "a");
    assert_eq!(got[1].1["part"], "b");
    assert_eq!(got[2].1["enriched"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_record_keeps_its_place_and_a_rejected_one_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let tries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = tries.clone();
    let server = Https::start(dir.path(), None, move |s, _| {
        let seq = s.json()["seq"].as_u64().unwrap();
        if seq == 5 && t.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            return Answer::status(503);
        }
        if seq == 9 {
            return Answer::status(404).body("no such customer");
        }
        Answer::ok().body(json!({"seq": seq, "ok": true}).to_string())
    })
    .await;
    let enrich = format!(
        "{{ type: http, url: \"{}/e\", concurrency: 8, tls: {{ ca_file: \"{}\" }}, retry: {{ initial_backoff: 10ms }} }}",
        server.url,
        ca(dir.path())
    );
    let (out, dead) = run(dir.path(), 20, &enrich).await;
    let want: Vec<u64> = (0..20).filter(|s| *s != 9).collect();
    assert_eq!(
        seqs(&out),
        want,
        "the retried record 5 stays between 4 and 6"
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["value"]["seq"], 9, "the original record");
    let msg = dead[0]["headers"]["__connect.errors.exception.message"]
        .as_str()
        .unwrap();
    assert!(
        msg.contains("404") && msg.contains("no such customer"),
        "{msg}"
    );
    assert_eq!(dead[0]["headers"]["__connect.errors.stage"], "enrich");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_bounds_the_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |s, _| {
        Answer::ok()
            .body(String::from_utf8(s.body.clone()).unwrap())
            .after(Duration::from_millis(40))
    })
    .await;
    let enrich = format!(
        "{{ type: http, url: \"{}/echo\", concurrency: 4, tls: {{ ca_file: \"{}\" }} }}",
        server.url,
        ca(dir.path())
    );
    let (out, _) = run(dir.path(), 40, &enrich).await;
    assert_eq!(seqs(&out), (0..40).collect::<Vec<_>>());
    let m = server.max_in_flight();
    assert!((2..=4).contains(&m), "{m} in flight at most");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_answers_are_decompressed() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let server = Https::start(dir.path(), None, |s, _| {
        let seq = s.json()["seq"].as_u64().unwrap();
        Answer::ok()
            .body(json!({"seq": seq, "note": "z".repeat(500)}).to_string())
            .gzipped()
    })
    .await;
    let enrich = format!(
        "{{ type: http, url: \"{}/e\", tls: {{ ca_file: \"{}\" }} }}",
        server.url,
        ca(dir.path())
    );
    let (out, dead) = run(dir.path(), 5, &enrich).await;
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(seqs(&out), vec![0, 1, 2, 3, 4]);
    assert_eq!(out[0]["note"].as_str().unwrap().len(), 500);
    assert!(server.seen()[0].headers["accept-encoding"].contains("gzip"));
}
