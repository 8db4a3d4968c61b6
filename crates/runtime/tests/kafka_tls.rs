//! The Kafka source and sink over TLS and mutual TLS. Tansu 0.6.0 cannot serve TLS itself, so
//! Debian's `stunnel4` terminates TLS in front of it (and checks client certificates for mutual
//! TLS); the broker advertises the stunnel address. Certificates are made here with `openssl`.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use support::tls::*;
use support::*;
use tokio_util::sync::CancellationToken;
use weir_runtime::Runtime;
use weir_runtime::builtin_registry;

/// A broker behind stunnel: (broker, stunnel, TLS address, certificate folder).
fn tls_broker(mutual: bool) -> (Broker, Stunnel, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (broker_port, tls_port) = (free_port(), free_port());
    let addr = format!("127.0.0.1:{tls_port}");
    let broker = Broker::start_with(broker_port, &addr);
    let tunnel = stunnel(dir.path(), tls_port, broker_port, mutual);
    (broker, tunnel, addr, dir)
}

fn p(dir: &Path, f: &str) -> String {
    dir.join(f).display().to_string()
}

fn client_tls(dir: &Path, mutual: bool) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("security.protocol", "ssl".to_owned()),
        ("ssl.ca.location", p(dir, "ca.pem")),
    ];
    if mutual {
        v.push(("ssl.certificate.location", p(dir, "client.pem")));
        v.push(("ssl.key.location", p(dir, "client.key")));
    }
    v
}

fn tls_yaml(b: &str, input: &str, output: &str, tls: &str) -> String {
    format!(
        r#"pipelines:
  secure:
    source:
      type: kafka
      bootstrap_servers: "{b}"
      topics: [{input}]
      group_id: {group}
      start_from: earliest
      connect_timeout: 5s
      tls: {tls}
      options: {{ "session.timeout.ms": 6000, "heartbeat.interval.ms": 500 }}
    sinks:
      - type: kafka
        bootstrap_servers: "{b}"
        topic: {output}
        tls: {tls}
"#,
        group = unique("g")
    )
}

async fn relay_over_tls(mutual: bool) {
    let (_broker, _tunnel, b, dir) = tls_broker(mutual);
    let d = dir.path();
    let extra_owned = client_tls(d, mutual);
    let extra: Vec<(&str, &str)> = extra_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (input, output) = (unique("in"), unique("out"));
    {
        let mut cfg = client_config(&b);
        for (k, v) in &extra {
            cfg.set(*k, *v);
        }
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            cfg.create().unwrap();
        let topics = [
            rdkafka::admin::NewTopic::new(&input, 1, rdkafka::admin::TopicReplication::Fixed(1)),
            rdkafka::admin::NewTopic::new(&output, 1, rdkafka::admin::TopicReplication::Fixed(1)),
        ];
        for r in admin
            .create_topics(&topics, &rdkafka::admin::AdminOptions::new())
            .await
            .unwrap()
        {
            r.unwrap();
        }
    }
    let msgs: Vec<Msg> = (0..50)
        .map(|i| Msg::new(format!("k{i}"), json!({"seq": i}).to_string()))
        .collect();
    produce(&b, &input, &msgs, &extra).await;

    let tls = if mutual {
        format!(
            "{{ ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\" }}",
            p(d, "ca.pem"),
            p(d, "client.pem"),
            p(d, "client.key")
        )
    } else {
        format!("{{ ca_file: \"{}\" }}", p(d, "ca.pem"))
    };
    let registry = builtin_registry().unwrap();
    let rt = Runtime::from_yaml_str("tls.yaml", &tls_yaml(&b, &input, &output, &tls), &registry)
        .unwrap();
    let token = CancellationToken::new();
    let t = token.clone();
    let handle = tokio::spawn(async move { rt.run(t).await });
    let got = tokio::task::spawn_blocking({
        let (b, output, extra_owned) = (b.clone(), output.clone(), extra_owned.clone());
        move || {
            let extra: Vec<(&str, &str)> =
                extra_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
            consume_until_with(
                &b,
                &extra,
                &output,
                1,
                |g| g.len() >= 50,
                Duration::from_millis(500),
                Duration::from_secs(60),
            )
        }
    })
    .await
    .unwrap();
    token.cancel();
    let result = tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .unwrap()
        .unwrap();
    result.expect("pipeline over TLS failed");
    let values: Vec<Vec<u8>> = got.into_iter().map(|g| g.raw).collect();
    assert_eq!(
        values,
        msgs.into_iter().map(|m| m.value).collect::<Vec<_>>()
    );
}

/// Runs a pipeline whose source connects with `tls` and returns its failure message.
async fn failure_with(b: &str, tls: &str) -> String {
    let registry = builtin_registry().unwrap();
    let yaml = tls_yaml(b, "nothing", "nothing", tls);
    let rt = Runtime::from_yaml_str("tls.yaml", &yaml, &registry).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(60), rt.run(CancellationToken::new()))
        .await
        .expect("a pipeline that cannot connect must fail, not hang");
    format!("{:#}", r.expect_err("connecting must fail"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_source_and_sink_over_tls() {
    relay_over_tls(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_source_and_sink_over_mutual_tls() {
    relay_over_tls(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let (_broker, _tunnel, b, dir) = tls_broker(true);
    let msg = failure_with(
        &b,
        &format!("{{ ca_file: \"{}\" }}", p(dir.path(), "ca.pem")),
    )
    .await;
    assert!(msg.contains("cannot reach the Kafka brokers"), "{msg}");
    assert!(msg.contains(&b), "the message names the address: {msg}");
    // The specific cause, not any connection failure: the handshake was refused for want of a
    // client certificate (OpenSSL's alert 116), and Weir says which options fix it.
    assert!(msg.contains("certificate required"), "{msg}");
    assert!(
        msg.contains(
            "the brokers require a client certificate: give `tls.cert_file` and `tls.key_file`"
        ),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_another_ca_fails_with_a_clear_error() {
    let (_broker, _tunnel, b, dir) = tls_broker(false);
    let msg = failure_with(
        &b,
        &format!("{{ ca_file: \"{}\" }}", p(dir.path(), "other-ca.pem")),
    )
    .await;
    assert!(msg.contains("cannot reach the Kafka brokers"), "{msg}");
    assert!(
        msg.contains("certificate verify failed"),
        "the TLS cause is named: {msg}"
    );
    assert!(
        msg.contains("the brokers' certificate is not trusted: `tls.ca_file` must hold the CA"),
        "and what to fix: {msg}"
    );
}
