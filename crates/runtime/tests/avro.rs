//! Avro with a Confluent-compatible Schema Registry, against third parties: a real broker (Tansu),
//! a real registry (rivven-schema) and Confluent's own Python client (confluent-kafka's
//! AvroSerializer and AvroDeserializer, `tests/avro/avro_client.py`), whose expectations are
//! computed in Python from Python's values, never by Weir.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value as Json, json};
use support::https::{Answer, Https};
use support::pipelines::*;
use support::registry::*;
use support::tls::*;
use support::*;

fn kafka_source(b: &str, topic: &str, group: &str, format: &str) -> String {
    format!(
        "{{ type: kafka, bootstrap_servers: \"{b}\", topics: [{topic}], group_id: {group}, start_from: earliest, drain_timeout: 10s, format: {format}, options: {{ {} }} }}",
        FAST_GROUP.replace("\n        ", ", ")
    )
}

fn kafka_sink(b: &str, topic: &str, format: &str) -> String {
    format!("{{ type: kafka, bootstrap_servers: \"{b}\", topic: {topic}, format: {format} }}")
}

/// Python's expectations, one per sequence number: (integer style, RFC 3339 style).
fn expectations(lines: &str) -> BTreeMap<u64, (Json, Json)> {
    lines
        .lines()
        .map(|l| {
            let e: Json = serde_json::from_str(l).unwrap();
            (
                e["integer"]["seq"].as_u64().unwrap(),
                (e["integer"].clone(), e["rfc3339"].clone()),
            )
        })
        .collect()
}

fn read_expectations(path: &Path) -> BTreeMap<u64, (Json, Json)> {
    expectations(&std::fs::read_to_string(path).unwrap())
}

/// Field-by-field equality, naming the first field that differs.
fn assert_same_fields(got: &Json, want: &Json, what: &str) {
    let (g, w) = (got.as_object().unwrap(), want.as_object().unwrap());
    for (k, wv) in w {
        assert_eq!(g.get(k), Some(wv), "{what}: field `{k}`");
    }
    for k in g.keys() {
        assert!(w.contains_key(k), "{what}: unexpected field `{k}`");
    }
}

fn seq_of(g: &Got) -> u64 {
    let v: Json = serde_json::from_str(&g.value)
        .unwrap_or_else(|e| panic!("output is not JSON ({e}): {:?}", g.value));
    v["seq"].as_u64().unwrap()
}

/// The records the filter below keeps, decided from Python's values.
fn kept(e: &Json) -> bool {
    e["country"] == "NL"
        && ["EUR", "GBP"].contains(&e["currency"].as_str().unwrap())
        && e["attrs"]["a"].as_i64().unwrap() >= 40
}

const FILTER: &str = "[ { type: filter, patterns: [ { value: { country: [NL], currency: [EUR, GBP], attrs: { a: [ { numeric: [\">=\", 40] } ] } } } ] } ]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_avro_is_decoded_filtered_on_fields_and_matches_field_by_field() {
    let broker = Broker::start();
    let registry = SchemaRegistry::start();
    let (b, r) = (broker.addr(), registry.url());
    let (input, json_input) = (unique("tx"), unique("tx-json"));
    let (out_int, out_text, out_json) = (unique("out-int"), unique("out-text"), unique("out-json"));
    create_topics(
        &b,
        &[&input, &json_input, &out_int, &out_text, &out_json],
        3,
    )
    .await;

    // 200 records with schema v1, then 200 with v2 (a field added with a default) mid-stream.
    let dir = tempfile::tempdir().unwrap();
    let (e1, e2) = (dir.path().join("v1.jsonl"), dir.path().join("v2.jsonl"));
    for (version, start, file) in [("v1", 0, &e1), ("v2", 200, &e2)] {
        python_produce(&b, &r, &input, 200, start, version, file);
    }
    let mut expected = read_expectations(&e1);
    expected.extend(read_expectations(&e2));
    assert_eq!(expected.len(), 400);
    // The same records as JSON text, for the same filter on plain JSON.
    let json_msgs: Vec<Msg> = expected
        .iter()
        .map(|(s, (int, _))| Msg::new(format!("k{}", s % 30), int.to_string()))
        .collect();
    produce(&b, &json_input, &json_msgs, &[]).await;

    let yaml = format!(
        "schema_registry: {{ url: \"{r}\" }}\npipelines:\n  avro-int:\n    source: {}\n    transforms: {FILTER}\n    sinks: [ {} ]\n  avro-text:\n    source: {}\n    transforms: {FILTER}\n    sinks: [ {} ]\n  json:\n    source: {}\n    transforms: {FILTER}\n    sinks: [ {} ]\n",
        kafka_source(&b, &input, &unique("g"), "{ value: avro }"),
        kafka_sink(&b, &out_int, "{ value: json }"),
        kafka_source(
            &b,
            &input,
            &unique("g"),
            "{ value: { type: avro, timestamps: rfc3339 } }"
        ),
        kafka_sink(&b, &out_text, "{ value: json }"),
        kafka_source(&b, &json_input, &unique("g"), "{ value: json }"),
        kafka_sink(&b, &out_json, "{ value: json }"),
    );
    let rt = build(&yaml);
    let catalog = rt.schema_catalog();
    let (token, handle) = run(rt);

    let want: BTreeSet<u64> = expected
        .iter()
        .filter(|(_, (int, _))| kept(int))
        .map(|(s, _)| *s)
        .collect();
    assert!(
        want.len() > 10 && want.len() < 100,
        "the filter keeps {} of 400",
        want.len()
    );
    let quiet = Duration::from_secs(2);
    let timeout = Duration::from_secs(90);
    let got_int = read_topic(&b, &out_int, 3, want.len(), quiet, timeout).await;
    let got_text = read_topic(&b, &out_text, 3, want.len(), quiet, timeout).await;
    let got_json = read_topic(&b, &out_json, 3, want.len(), quiet, timeout).await;
    stop(token, handle).await;

    for (got, style) in [(&got_int, 0), (&got_text, 1), (&got_json, 0)] {
        let seqs: Vec<u64> = got.iter().map(seq_of).collect();
        assert_eq!(seqs.len(), want.len(), "duplicates or missing records");
        assert_eq!(seqs.iter().copied().collect::<BTreeSet<_>>(), want);
        for g in got {
            let s = seq_of(g);
            let v: Json = serde_json::from_str(&g.value).unwrap();
            let (int, text) = &expected[&s];
            let want = if style == 0 { int } else { text };
            assert_same_fields(&v, want, &format!("seq {s}"));
            assert_eq!(g.key.as_deref(), Some(format!("k{}", s % 30).as_str()));
        }
    }
    // v1 records have no `channel`, v2 records have it: each decoded with its writer's schema.
    let v: Json = serde_json::from_str(&got_int[0].value).unwrap();
    assert_eq!(v.get("channel").is_some(), seq_of(&got_int[0]) >= 200);

    // The runner lists both schema versions with their counters, per pipeline.
    let schemas = catalog.list();
    let subject = format!("{input}-value");
    for p in ["avro-int", "avro-text"] {
        let mine: Vec<_> = schemas.iter().filter(|(n, _)| &**n == p).collect();
        assert_eq!(mine.len(), 2, "{p}: {schemas:?}");
        for (_, s) in &mine {
            assert_eq!(s.name.as_deref(), Some("com.example.cards.Transaction"));
            assert_eq!(s.decoded, 200, "{p}: schema id {}", s.id);
            assert_eq!(s.encoded, 0);
            assert!(s.subjects.iter().all(|sub| sub == &subject), "{s:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_encodes_avro_that_the_python_deserializer_reads_back() {
    let broker = Broker::start();
    let registry = SchemaRegistry::start();
    let (b, r) = (broker.addr(), registry.url());
    let (input, output, dlq) = (unique("in"), unique("avro-out"), unique("dlq"));
    create_topics(&b, &[&input, &output, &dlq], 2).await;

    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("transaction.avsc");
    std::fs::write(&schema, python_avro(&["schema", "--schema", "v2"])).unwrap();
    let expected = expectations(&python_avro(&[
        "expected", "--schema", "v2", "--count", "300",
    ]));
    // Half the input writes times as integers, half as RFC 3339 text: the encoder takes both.
    let mut msgs: Vec<Msg> = expected
        .iter()
        .map(|(s, (int, text))| {
            let v = if s % 2 == 0 { int } else { text };
            Msg::new(format!("k{}", s % 30), v.to_string())
        })
        .collect();
    // One record that does not fit the schema: an enum symbol it does not have.
    let mut bad = expected[&0].0.clone();
    bad["seq"] = json!(100_000);
    bad["currency"] = json!("JPY");
    let bad_text = bad.to_string();
    msgs.insert(150, Msg::new("bad", bad_text.clone()));
    produce(&b, &input, &msgs, &[]).await;

    let yaml = format!(
        "schema_registry: {{ url: \"{r}\" }}\npipelines:\n  encode:\n    source: {}\n    sinks: [ {} ]\n    dlq: {{ type: kafka, bootstrap_servers: \"{b}\", topic: {dlq} }}\n",
        kafka_source(&b, &input, &unique("g"), "{ value: json }"),
        kafka_sink(
            &b,
            &output,
            &format!(
                "{{ value: {{ type: avro, schema_file: \"{}\" }} }}",
                schema.display()
            )
        ),
    );
    let rt = build(&yaml);
    let catalog = rt.schema_catalog();
    let (token, handle) = run(rt);
    let read = dir.path().join("read.jsonl");
    let (b2, o2, read2) = (b.clone(), output.clone(), read.clone());
    tokio::task::spawn_blocking(move || {
        python_avro(&[
            "consume",
            "--bootstrap",
            &b2,
            "--registry",
            &r,
            "--topic",
            &o2,
            "--count",
            "300",
            "--out",
            read2.to_str().unwrap(),
        ])
    })
    .await
    .unwrap();
    let dead = read_topic(
        &b,
        &dlq,
        2,
        1,
        Duration::from_secs(1),
        Duration::from_secs(30),
    )
    .await;
    stop(token, handle).await;

    let mut seen = BTreeSet::new();
    for line in std::fs::read_to_string(&read).unwrap().lines() {
        let g: Json = serde_json::from_str(line).unwrap();
        let s = g["value"]["seq"].as_u64().unwrap();
        assert!(seen.insert(s), "seq {s} twice");
        assert_same_fields(&g["value"], &expected[&s].0, &format!("seq {s}"));
    }
    assert_eq!(seen.len(), 300);

    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!(
        d.value, bad_text,
        "the dead letter keeps the original bytes"
    );
    assert_eq!(d.key.as_deref(), Some("bad"));
    let msg = &d.headers["__connect.errors.exception.message"];
    assert!(msg.contains("$.currency") && msg.contains("JPY"), "{msg}");
    assert_eq!(d.headers["weir.errors.component"], "kafka-0.format");

    let schemas = catalog.list();
    assert_eq!(schemas.len(), 1, "{schemas:?}");
    let s = &schemas[0].1;
    assert_eq!(s.encoded, 300);
    assert_eq!(s.subjects, vec![format!("{output}-value")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_go_to_the_dlq_with_headers_and_original_bytes_while_good_records_flow()
{
    let broker = Broker::start();
    let registry = SchemaRegistry::start();
    let (b, r) = (broker.addr(), registry.url());
    let (input, output, dlq) = (unique("tx"), unique("out"), unique("dlq"));
    create_topics(&b, &[&input, &output, &dlq], 1).await;
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("e.jsonl");
    let good = |start| python_produce(&b, &r, &input, 50, start, "v1", &e);
    good(0);
    // The registry gave the schema an id; find it in the first record's wire header.
    let first = read_topic(&b, &input, 1, 1, Duration::ZERO, Duration::from_secs(30)).await;
    let id = &first[0].raw[1..5];
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", vec![0, 0, 0], "too short"),
        (
            "wrong-magic",
            [&[1u8][..], id, &[2, 4]].concat(),
            "magic byte",
        ),
        (
            "plain-json",
            br#"{"seq": 1}"#.to_vec(),
            "not the Confluent wire format's magic byte",
        ),
        (
            "unknown-id",
            vec![0, 0, 0, 0x7f, 0xff, 2, 4],
            "schema id 32767",
        ),
        (
            "bad-datum",
            [&[0u8][..], id, &[0x80]].concat(),
            "not valid Avro",
        ),
    ];
    let msgs: Vec<Msg> = bad
        .iter()
        .map(|(k, v, _)| Msg {
            key: Some((*k).to_owned()),
            value: v.clone(),
            partition: None,
            headers: vec![("trace".into(), (*k).to_owned())],
        })
        .collect();
    produce(&b, &input, &msgs, &[]).await;
    good(50);

    let yaml = format!(
        "schema_registry: {{ url: \"{r}\" }}\npipelines:\n  decode:\n    source: {}\n    sinks: [ {} ]\n    dlq: {{ type: kafka, bootstrap_servers: \"{b}\", topic: {dlq} }}\n",
        kafka_source(&b, &input, &unique("g"), "{ value: avro }"),
        kafka_sink(&b, &output, "{ value: json }"),
    );
    let (token, handle) = start(&yaml);
    let quiet = Duration::from_secs(2);
    let out = read_topic(&b, &output, 1, 100, quiet, Duration::from_secs(60)).await;
    let dead = read_topic(&b, &dlq, 1, bad.len(), quiet, Duration::from_secs(30)).await;
    stop(token, handle).await;

    let seqs: Vec<u64> = out.iter().map(seq_of).collect();
    assert_eq!(seqs, (0..100).collect::<Vec<_>>(), "good records, in order");
    assert_eq!(dead.len(), bad.len(), "{dead:#?}");
    for (d, (key, bytes, reason)) in dead.iter().zip(&bad) {
        assert_eq!(d.key.as_deref(), Some(*key));
        assert_eq!(&d.raw, bytes, "{key}: original bytes");
        let h = &d.headers;
        assert_eq!(h["trace"], *key, "{key}: its own headers kept");
        assert_eq!(h["__connect.errors.topic"], input);
        assert_eq!(h["__connect.errors.partition"], "0");
        assert!(h["__connect.errors.offset"].parse::<u64>().unwrap() >= 50);
        assert_eq!(h["__connect.errors.stage"], "decode");
        assert_eq!(h["weir.errors.component"], "kafka.format");
        let msg = &h["__connect.errors.exception.message"];
        assert!(msg.contains(reason), "{key}: {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_registry_holds_records_back_and_skips_none() {
    let broker = Broker::start();
    let registry = SchemaRegistry::start();
    let proxy = FaultProxy::start(registry.port(), false);
    let (b, r) = (broker.addr(), registry.url());
    let (input, output, dlq) = (unique("tx"), unique("out"), unique("dlq"));
    create_topics(&b, &[&input, &output, &dlq], 2).await;
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("e.jsonl");
    python_produce(&b, &r, &input, 100, 0, "v1", &e);

    // Weir reaches the registry through the proxy, which answers 503 for now.
    let yaml = format!(
        "schema_registry: {{ url: \"{}\", timeout: 2s }}\npipelines:\n  decode:\n    source: {}\n    sinks: [ {} ]\n    dlq: {{ type: kafka, bootstrap_servers: \"{b}\", topic: {dlq} }}\n",
        proxy.url,
        kafka_source(&b, &input, &unique("g"), "{ value: avro }"),
        kafka_sink(&b, &output, "{ value: json }"),
    );
    let (token, handle) = start(&yaml);
    let early = read_topic(&b, &output, 2, 1, Duration::ZERO, Duration::from_secs(5)).await;
    assert!(
        early.is_empty(),
        "records passed while the registry was down"
    );
    proxy.set_up(true);
    let quiet = Duration::from_secs(2);
    let out = read_topic(&b, &output, 2, 100, quiet, Duration::from_secs(60)).await;
    let dead = read_topic(&b, &dlq, 2, 0, quiet, Duration::from_secs(3)).await;
    stop(token, handle).await;

    assert!(dead.is_empty(), "nothing is dead-lettered: {dead:?}");
    let mut seqs: Vec<u64> = out.iter().map(seq_of).collect();
    // Per partition in order, and every record exactly once.
    for p in 0..2 {
        let mut part: Vec<&Got> = out.iter().filter(|g| g.partition == p).collect();
        part.sort_by_key(|g| g.offset);
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        for g in part {
            let s = seq_of(g);
            if let Some(prev) = last.insert(g.key.clone().unwrap(), s) {
                assert!(prev < s, "key {:?}: {s} after {prev}", g.key);
            }
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..100).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_is_reached_over_mutual_tls() {
    let broker = Broker::start();
    let registry = SchemaRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let tls_port = free_port();
    let _tunnel = stunnel(dir.path(), tls_port, registry.port(), true);
    let (b, r) = (broker.addr(), registry.url());
    let (input, output) = (unique("tx"), unique("out"));
    create_topics(&b, &[&input, &output], 1).await;
    let e = dir.path().join("e.jsonl");
    python_produce(&b, &r, &input, 20, 0, "v1", &e);
    let f = |n: &str| dir.path().join(n).display().to_string();
    let yaml = format!(
        "schema_registry:\n  url: \"https://127.0.0.1:{tls_port}\"\n  tls: {{ ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\" }}\npipelines:\n  decode:\n    source: {}\n    sinks: [ {} ]\n",
        f("ca.pem"),
        f("client.pem"),
        f("client.key"),
        kafka_source(&b, &input, &unique("g"), "{ value: avro }"),
        kafka_sink(&b, &output, "{ value: json }"),
    );
    let (token, handle) = start(&yaml);
    let out = read_topic(
        &b,
        &output,
        1,
        20,
        Duration::from_secs(1),
        Duration::from_secs(60),
    )
    .await;
    stop(token, handle).await;
    let expected = read_expectations(&e);
    assert_eq!(out.len(), 20);
    for g in &out {
        let v: Json = serde_json::from_str(&g.value).unwrap();
        let s = seq_of(g);
        assert_same_fields(&v, &expected[&s].0, &format!("seq {s}"));
    }
}

#[test]
fn a_registry_client_certificate_rustls_refuses_is_a_located_config_error() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    // An X.509 v1 certificate (no extensions), which rustls does not accept.
    openssl(
        dir.path(),
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "v1.pem",
        ],
    );
    let f = |n: &str| dir.path().join(n).display().to_string();
    let yaml = format!(
        "schema_registry:\n  url: \"https://127.0.0.1:9\"\n  tls: {{ ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\" }}\npipelines:\n  p:\n    source: {{ type: stdin, format: {{ value: avro }} }}\n    sinks: [ {{ type: stdout }} ]\n",
        f("ca.pem"),
        f("v1.pem"),
        f("client.key"),
    );
    let registry = weir_runtime::builtin_registry().unwrap();
    let err = match weir_runtime::Runtime::from_yaml_str("bad.yaml", &yaml, &registry) {
        Ok(_) => panic!("a pipeline with an unusable client certificate built"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(
            "bad.yaml:2:3: schema_registry: cannot build the HTTPS client from the tls files"
        ),
        "{err}"
    );
    assert!(err.contains("UnsupportedCertVersion"), "{err}");
    assert_eq!(
        err.matches("bad.yaml:").count(),
        1,
        "one error, not echoes: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fraud_detection_example_alerts_on_exactly_the_anomalies() {
    let broker = Broker::start();
    let registry = SchemaRegistry::start();
    let (b, r) = (broker.addr(), registry.url());
    create_topics(&b, &["card-transactions"], 3).await;
    let dir = tempfile::tempdir().unwrap();
    let sent = dir.path().join("sent.jsonl");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fraud-detection");
    let out = std::process::Command::new("python3")
        .arg(example.join("produce.py"))
        .args(["--count", "600", "--bootstrap", &b, "--registry", &r])
        .arg("--echo")
        .arg(&sent)
        .output()
        .expect("python3 is needed for the Avro example test");
    assert!(
        out.status.success(),
        "produce.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A payload some other producer wrote as JSON by mistake.
    produce(
        &b,
        "card-transactions",
        &[Msg::new("card-x", r#"{"amount": 99999}"#)],
        &[],
    )
    .await;

    let (alerts, dead) = (
        dir.path().join("alerts.ndjson"),
        dir.path().join("dlq.ndjson"),
    );
    let yaml = std::fs::read_to_string(example.join("pipeline.yaml"))
        .unwrap()
        .replace("${KAFKA:-127.0.0.1:9092}", &b)
        .replace("${SCHEMA_REGISTRY:-http://127.0.0.1:8081}", &r)
        .replace(
            "${FRAUD_ALERTS:-target/fraud-alerts.ndjson}",
            alerts.to_str().unwrap(),
        )
        .replace(
            "${FRAUD_DLQ:-target/fraud-alerts-dlq.ndjson}",
            dead.to_str().unwrap(),
        )
        .replace(
            "start_from: earliest",
            &format!("start_from: earliest\n      options:\n        {FAST_GROUP}"),
        );
    // What the README promises: large amounts, or card-not-present gambling and crypto.
    let transactions: Vec<Json> = std::fs::read_to_string(&sent)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let suspicious: BTreeMap<String, &Json> = transactions
        .iter()
        .filter(|t| {
            t["amount"].as_f64().unwrap() >= 3000.0
                || (t["card_present"] == false
                    && ["gambling", "crypto"].contains(&t["merchant_category"].as_str().unwrap()))
        })
        .map(|t| (t["transaction_id"].as_str().unwrap().to_owned(), t))
        .collect();
    assert!(
        suspicious.len() > 30 && suspicious.len() < 200,
        "{}",
        suspicious.len()
    );

    let (token, handle) = start(&yaml);
    let lines = |p: &Path| -> Vec<Json> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while (lines(&alerts).len() < suspicious.len() || lines(&dead).is_empty())
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop(token, handle).await;

    let got = lines(&alerts);
    assert_eq!(
        got.len(),
        suspicious.len(),
        "one alert per suspicious payment"
    );
    for a in &got {
        let id = a["transaction"].as_str().unwrap();
        let t = suspicious
            .get(id)
            .unwrap_or_else(|| panic!("alert for an ordinary payment: {a}"));
        assert_eq!(a["alert"], "possible-fraud");
        assert_eq!(a["card"], t["card_id"]);
        assert_eq!(a["amount"], t["amount"]);
        assert_eq!(a["currency"], t["currency"]);
        assert_eq!(a["merchant_category"], t["merchant_category"]);
        assert_eq!(a["card_present"], t["card_present"]);
        assert_eq!(a["country"], t["country"]);
        assert_eq!(
            a["at"], t["timestamp"],
            "timestamp-millis as epoch milliseconds"
        );
        assert_eq!(a["pipeline"], "fraud-alerts");
        assert!(
            a["source"]
                .as_str()
                .unwrap()
                .starts_with("card-transactions/")
        );
    }
    let dead = lines(&dead);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        dead[0]["value"],
        json!({"amount": 99999}),
        "the original payload"
    );
    assert_eq!(dead[0]["key"], "card-x");
    assert!(
        dead[0]["headers"]["__connect.errors.exception.message"]
            .as_str()
            .unwrap()
            .contains("magic byte"),
        "{}",
        dead[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_registry_url_takes_over_from_a_failing_first() {
    let broker = Broker::start();
    let registry = SchemaRegistry::start();
    let down = FaultProxy::start(registry.port(), false);
    let (b, r) = (broker.addr(), registry.url());
    let (input, output) = (unique("tx"), unique("out"));
    create_topics(&b, &[&input, &output], 1).await;
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("e.jsonl");
    python_produce(&b, &r, &input, 10, 0, "v1", &e);
    let yaml = format!(
        "schema_registry: {{ url: [\"{}\", \"{r}\"] }}\npipelines:\n  decode:\n    source: {}\n    sinks: [ {} ]\n",
        down.url,
        kafka_source(&b, &input, &unique("g"), "{ value: avro }"),
        kafka_sink(&b, &output, "{ value: json }"),
    );
    let (token, handle) = start(&yaml);
    let out = read_topic(
        &b,
        &output,
        1,
        10,
        Duration::from_secs(1),
        Duration::from_secs(30),
    )
    .await;
    stop(token, handle).await;
    let seqs: Vec<u64> = out.iter().map(seq_of).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_credentials_are_sent_and_a_refusal_holds_records_back() {
    use base64::Engine as _;
    let broker = Broker::start();
    let registry = SchemaRegistry::start();
    let (b, r) = (broker.addr(), registry.url());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("weir-key:s3cret")
    );
    let gate = AuthGate::start(registry.port(), &expected);
    let (input, output, dlq) = (unique("tx"), unique("out"), unique("dlq"));
    create_topics(&b, &[&input, &output, &dlq], 1).await;
    let dir = tempfile::tempdir().unwrap();
    let e = dir.path().join("e.jsonl");
    python_produce(&b, &r, &input, 10, 0, "v1", &e);
    // The password comes from a secret file; first a wrong one.
    let secret = dir.path().join("sr-password");
    std::fs::write(&secret, "wrong\n").unwrap();
    let yaml = format!(
        "schema_registry:\n  url: \"{}\"\n  basic_auth: {{ username: weir-key, password: \"file:{}\" }}\npipelines:\n  decode:\n    source: {}\n    sinks: [ {} ]\n    dlq: {{ type: kafka, bootstrap_servers: \"{b}\", topic: {dlq} }}\n",
        gate.url,
        secret.display(),
        kafka_source(&b, &input, &unique("g"), "{ value: avro }"),
        kafka_sink(&b, &output, "{ value: json }"),
    );
    // Records waiting on the registry are abandoned uncommitted when the stop's deadline passes.
    let impatient = yaml.replace(
        "    dlq:",
        "    settings: { shutdown_timeout: 2s }\n    dlq:",
    );
    let token = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(build(&impatient).run(token.clone()));
    let quiet = Duration::from_secs(1);
    let early = read_topic(&b, &output, 1, 1, Duration::ZERO, Duration::from_secs(4)).await;
    let dead = read_topic(&b, &dlq, 1, 0, quiet, Duration::from_secs(2)).await;
    token.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("stops within its deadline")
        .unwrap();
    let err = stopped
        .expect_err("records that could not be decoded were abandoned")
        .to_string();
    assert!(err.contains("abandoned uncommitted"), "{err}");
    assert!(
        early.is_empty() && dead.is_empty(),
        "refused credentials must hold records back, not pass or dead-letter them"
    );
    let refused = gate.seen.lock().unwrap().clone();
    assert!(!refused.is_empty(), "the registry was asked");
    assert!(refused.iter().all(|a| {
        a.as_deref()
            .is_some_and(|a| a.starts_with("Basic ") && a != expected)
    }));

    // With the right secret (a restart, as after rotating it) every record flows.
    std::fs::write(&secret, "s3cret\n").unwrap();
    let (token, handle) = start(&yaml);
    let out = read_topic(&b, &output, 1, 10, quiet, Duration::from_secs(30)).await;
    stop(token, handle).await;
    let seqs: Vec<u64> = out.iter().map(seq_of).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    assert_eq!(
        gate.seen.lock().unwrap().last().unwrap().as_deref(),
        Some(expected.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subject_strategy_and_use_latest_write_what_python_reads() {
    let broker = Broker::start();
    let registry = SchemaRegistry::start();
    let (b, r) = (broker.addr(), registry.url());
    let input = unique("in");
    let (by_record, by_topic_record, latest) = (unique("rec"), unique("toprec"), unique("latest"));
    create_topics(&b, &[&input, &by_record, &by_topic_record, &latest], 1).await;
    let schema = python_avro(&["schema", "--schema", "v1"]);
    // An operator registered the subject's schema beforehand; `use_latest` writes with it.
    registry.register(&format!("{latest}-value"), &schema);
    let expected = expectations(&python_avro(&["expected", "--count", "20"]));
    let msgs: Vec<Msg> = expected
        .values()
        .map(|(int, _)| Msg::new("k", int.to_string()))
        .collect();
    produce(&b, &input, &msgs, &[]).await;
    let inline = serde_json::to_string(&schema.trim()).unwrap();
    let sink = |topic: &str, side: String| kafka_sink(&b, topic, &format!("{{ value: {side} }}"));
    let yaml = format!(
        "schema_registry: {{ url: \"{r}\" }}\npipelines:\n  encode:\n    source: {}\n    sinks:\n      - {}\n      - {}\n      - {}\n",
        kafka_source(&b, &input, &unique("g"), "{ value: json }"),
        sink(
            &by_record,
            format!("{{ type: avro, schema: {inline}, subject_strategy: record }}")
        ),
        sink(
            &by_topic_record,
            format!("{{ type: avro, schema: {inline}, subject_strategy: topic_record }}")
        ),
        sink(&latest, "{ type: avro, use_latest: true }".into()),
    );
    let rt = build(&yaml);
    let catalog = rt.schema_catalog();
    let (token, handle) = run(rt);
    let dir = tempfile::tempdir().unwrap();
    for topic in [&by_record, &by_topic_record, &latest] {
        let out = dir.path().join(format!("{topic}.jsonl"));
        let (b2, r2, t2, o2) = (b.clone(), r.clone(), topic.clone(), out.clone());
        tokio::task::spawn_blocking(move || {
            python_avro(&[
                "consume",
                "--bootstrap",
                &b2,
                "--registry",
                &r2,
                "--topic",
                &t2,
                "--count",
                "20",
                "--out",
                o2.to_str().unwrap(),
            ])
        })
        .await
        .unwrap();
        let lines = std::fs::read_to_string(&out).unwrap();
        assert_eq!(lines.lines().count(), 20, "{topic}");
        for line in lines.lines() {
            let g: Json = serde_json::from_str(line).unwrap();
            let s = g["value"]["seq"].as_u64().unwrap();
            assert_same_fields(&g["value"], &expected[&s].0, &format!("{topic} seq {s}"));
        }
    }
    stop(token, handle).await;
    let subjects: BTreeSet<String> = catalog
        .list()
        .into_iter()
        .flat_map(|(_, s)| s.subjects)
        .collect();
    let name = "com.example.cards.Transaction";
    for want in [
        name.to_owned(),
        format!("{by_topic_record}-{name}"),
        format!("{latest}-value"),
    ] {
        assert!(subjects.contains(&want), "{want} not in {subjects:?}");
        assert!(registry.subjects().contains(&want), "{want} not registered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fraud_detection_example_posts_its_alerts_to_the_https_api() {
    use support::https::{Answer, Https};
    let broker = Broker::start();
    let registry = SchemaRegistry::start();
    let (b, r) = (broker.addr(), registry.url());
    create_topics(&b, &["card-transactions"], 3).await;
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let api = Https::start(dir.path(), None, |_, _| Answer::status(202)).await;
    let sent = dir.path().join("sent.jsonl");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fraud-detection");
    let out = std::process::Command::new("python3")
        .arg(example.join("produce.py"))
        .args([
            "--count",
            "300",
            "--seed",
            "11",
            "--bootstrap",
            &b,
            "--registry",
            &r,
        ])
        .arg("--echo")
        .arg(&sent)
        .output()
        .expect("python3 is needed for the Avro example test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let suspicious: BTreeSet<String> = std::fs::read_to_string(&sent)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .filter(|t| {
            t["amount"].as_f64().unwrap() >= 3000.0
                || (t["card_present"] == false
                    && ["gambling", "crypto"].contains(&t["merchant_category"].as_str().unwrap()))
        })
        .map(|t| t["transaction_id"].as_str().unwrap().to_owned())
        .collect();
    let yaml = std::fs::read_to_string(example.join("pipeline-https.yaml"))
        .unwrap()
        .replace("${KAFKA:-127.0.0.1:9092}", &b)
        .replace("${SCHEMA_REGISTRY:-http://127.0.0.1:8081}", &r)
        .replace(
            "${FRAUD_ALERTS:-target/fraud-alerts.ndjson}",
            dir.path().join("alerts.ndjson").to_str().unwrap(),
        )
        .replace(
            "${FRAUD_DLQ:-target/fraud-alerts-dlq.ndjson}",
            dir.path().join("dlq.ndjson").to_str().unwrap(),
        )
        .replace(
            "${FRAUD_API_URL:-https://fraud-api.example.invalid}",
            &api.url,
        )
        .replace("${FRAUD_API_TOKEN:-change-me}", "t0ken")
        .replace(
            "# A private CA: tls: { ca_file: /etc/weir/fraud-api-ca.pem }",
            &format!(
                "tls: {{ ca_file: \"{}\" }}",
                dir.path().join("ca.pem").display()
            ),
        )
        .replace(
            "start_from: earliest",
            &format!("start_from: earliest\n      options:\n        {FAST_GROUP}"),
        );
    let (token, handle) = start(&yaml);
    let got = api
        .wait_for(suspicious.len(), Duration::from_secs(90))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop(token, handle).await;
    let got = api.seen().len().max(got.len());
    assert_eq!(got, suspicious.len(), "one request per alert");
    let seen = api.seen();
    let ids: BTreeSet<String> = seen
        .iter()
        .map(|s| s.json()["transaction"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, suspicious);
    for s in &seen {
        assert_eq!(s.path, "/v1/alerts");
        assert_eq!(s.headers["authorization"], "Bearer t0ken");
        assert!(s.headers["idempotency-key"].starts_with("card-transactions-"));
        assert_eq!(s.json()["alert"], "possible-fraud");
    }
}

/// One poison record for every stage a record passes, among 10,000 good ones on one partition:
/// bytes that are not Avro (the source's `decode`), a record a `jq` program refuses
/// (`transform`), one the enrichment API answers 400 for (`enrich`), and one the kafka sink cannot
/// produce (a partition the topic lacks: `sink`). Each poison is dead-lettered with its own stage
/// and offset; the 10,000 good records reach the output in order, none missing, none twice; the
/// group commits the whole input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_at_every_stage_is_dead_lettered_with_its_stage_while_10_000_good_ones_flow_in_order()
 {
    let broker = Broker::start();
    let registry = SchemaRegistry::start();
    let (b, r) = (broker.addr(), registry.url());
    let (input, output, dlq) = (unique("tx"), unique("out"), unique("dlq"));
    create_topics(&b, &[&input, &output, &dlq], 1).await;
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let e = dir.path().join("e.jsonl");
    // seq 0..5000 at offsets 0..5000, the undecodable record at 5000, seq 5000..10003 after it.
    python_produce(&b, &r, &input, 5000, 0, "v1", &e);
    let not_avro = br#"{"seq": "not avro"}"#.to_vec();
    produce(
        &b,
        &input,
        &[Msg {
            key: Some("poison".into()),
            value: not_avro.clone(),
            ..Default::default()
        }],
        &[],
    )
    .await;
    python_produce(&b, &r, &input, 5003, 5000, "v1", &e);
    const TRANSFORM: u64 = 3000;
    const ENRICH: u64 = 6000;
    const SINK: u64 = 9000;

    let server = Https::start(dir.path(), None, |s, _| {
        if s.path == format!("/score/{ENRICH}") {
            Answer::status(400).body("{\"error\": \"unknown transaction\"}")
        } else {
            Answer::ok()
                .header("content-type", "application/json")
                .body("{\"risk\": \"low\"}")
        }
    })
    .await;
    let group = unique("g");
    let yaml = format!(
        r#"schema_registry: {{ url: "{r}" }}
pipelines:
  poison:
    source: {source}
    transforms:
      - type: jq
        program: '.value | if .seq == {TRANSFORM} then error("poison at the transform") else .part = (if .seq == {SINK} then 7 else 0 end) end'
      - {{ type: http, method: GET, url: "{url}/score/<$.value.seq>", target: value.score, concurrency: 16, tls: {{ ca_file: "{ca}" }} }}
    sinks:
      - {{ type: kafka, bootstrap_servers: "{b}", topic: {output}, partition: "<$.value.part>" }}
    dlq: {{ type: kafka, bootstrap_servers: "{b}", topic: {dlq} }}
"#,
        source = kafka_source(&b, &input, &group, "{ value: avro }"),
        url = server.url,
        ca = dir.path().join("ca.pem").display(),
    );
    let began = std::time::Instant::now();
    let (token, handle) = start(&yaml);
    let quiet = Duration::from_secs(3);
    let out = read_topic(&b, &output, 1, 10_000, quiet, Duration::from_secs(300)).await;
    let dead = read_topic(&b, &dlq, 1, 4, quiet, Duration::from_secs(60)).await;
    eprintln!(
        "{} written, {} dead-lettered after {:?}; the server saw {} requests",
        out.len(),
        dead.len(),
        began.elapsed(),
        server.seen().len()
    );
    assert_eq!(
        out.len(),
        10_000,
        "good records written; the broker's log:\n{}",
        broker.log_tail(30)
    );
    // Every offset done, poison included, before the group commits it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while committed(&b, &group, &input, 1) != vec![Some(10_004)] {
        assert!(
            std::time::Instant::now() < deadline,
            "the group committed {:?} of 10,004",
            committed(&b, &group, &input, 1)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop(token, handle).await;

    let want: Vec<u64> = (0..10_003)
        .filter(|s| ![TRANSFORM, ENRICH, SINK].contains(s))
        .collect();
    let got: Vec<u64> = out.iter().map(seq_of).collect();
    assert_eq!(got.len(), 10_000, "good records written");
    assert!(got == want, "the good records are not all there in order");
    for g in &out {
        let v: Json = serde_json::from_str(&g.value).unwrap();
        assert_eq!(v["score"], json!({"risk": "low"}), "enriched: {v}");
    }

    // The input offset of a seq: one past it from 5000 on (the undecodable record is at 5000).
    let offset = |seq: u64| if seq < 5000 { seq } else { seq + 1 };
    let mut letters: Vec<(String, u64, String)> = dead
        .iter()
        .map(|d| {
            (
                d.headers["__connect.errors.stage"].clone(),
                d.headers["__connect.errors.offset"].parse().unwrap(),
                d.headers["__connect.errors.exception.message"].clone(),
            )
        })
        .collect();
    letters.sort_by_key(|l| l.1);
    assert_eq!(dead.len(), 4, "{letters:#?}");
    let stages: Vec<(&str, u64)> = letters.iter().map(|(s, o, _)| (s.as_str(), *o)).collect();
    assert_eq!(
        stages,
        vec![
            ("transform", offset(TRANSFORM)),
            ("decode", 5000),
            ("enrich", offset(ENRICH)),
            ("sink", offset(SINK)),
        ]
    );
    let why: Vec<&str> = letters.iter().map(|l| l.2.as_str()).collect();
    assert!(why[0].contains("poison at the transform"), "{}", why[0]);
    assert!(why[1].contains("magic byte"), "{}", why[1]);
    assert!(why[2].contains("400"), "{}", why[2]);
    assert!(why[3].to_lowercase().contains("partition"), "{}", why[3]);
    let decode = dead
        .iter()
        .find(|d| d.headers["__connect.errors.stage"] == "decode")
        .unwrap();
    assert_eq!(
        decode.raw, not_avro,
        "the undecodable record keeps its bytes"
    );
}
