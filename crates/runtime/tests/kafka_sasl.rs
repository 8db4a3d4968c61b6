//! The Kafka source and sink with SASL against a real broker: Tansu 0.6.0 started with
//! `--authentication`, its users' SCRAM credentials created with `tansu user create`
//! ([`Broker::start_with_sasl`]). Records relay with SCRAM-SHA-256 and SCRAM-SHA-512; a wrong
//! password fails with librdkafka's own cause and leaves nothing delivered or committed.
//!
//! PLAIN: Tansu 0.6.0's SASL library is built without PLAIN (its handshake answers
//! `NoSharedMechanism` and closes the connection), and librdkafka's mock cluster has no SASL at
//! all, so no broker here accepts or refuses a PLAIN password; the PLAIN test only proves that
//! `mechanism: PLAIN` reaches the broker as a PLAIN handshake.

mod support;

use std::time::Duration;

use serde_json::json;
use support::pipelines::*;
use support::*;
use tokio_util::sync::CancellationToken;

/// The user Weir connects as, and the user the test's own clients (topic creation, producer,
/// reader) connect as, with the other mechanism: each relay test then proves that Weir spoke
/// the mechanism under test, since its user has no credential for any other.
fn users(weir: Scram) -> (SaslUser, SaslUser) {
    let other = match weir {
        Scram::Sha256 => Scram::Sha512,
        Scram::Sha512 => Scram::Sha256,
    };
    (
        SaslUser::new("weir", "weir-pa55-word", weir),
        SaslUser::new("tester", "tester-pa55-word", other),
    )
}

fn sasl(mechanism: &str, username: &str, password: &str) -> String {
    format!("{{ mechanism: {mechanism}, username: {username}, password: \"{password}\" }}")
}

/// A Kafka -> Kafka pipeline whose source and sink each authenticate with their own `sasl:`.
fn relay_yaml(
    b: &str,
    input: &str,
    output: &str,
    group: &str,
    source_sasl: &str,
    sink_sasl: &str,
) -> String {
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
      commit_interval: 200ms
      sasl: {source_sasl}
      options:
        {FAST_GROUP}
    sinks:
      - type: kafka
        bootstrap_servers: "{b}"
        topic: {output}
        message_timeout: 3s
        sasl: {sink_sasl}
        retry: {{ max_attempts: 2, initial_backoff: 50ms }}
        on_error: stop
"#
    )
}

fn records(n: usize) -> Vec<Msg> {
    (0..n)
        .map(|i| Msg::new(format!("k{i}"), json!({"seq": i}).to_string()))
        .collect()
}

/// Starts a SASL broker with `users` and creates `topics` (one partition) as `admin`.
async fn sasl_broker(users: &[SaslUser], admin: &SaslUser, topics: &[&str]) -> Broker {
    let broker = Broker::start_with_sasl(users);
    create_topics_with(&broker.addr(), &admin.client_properties(), topics, 1).await;
    broker
}

async fn relay_with(mechanism: Scram) {
    let (weir, tester) = users(mechanism);
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    let broker = sasl_broker(&[weir.clone(), tester.clone()], &tester, &[&input, &output]).await;
    let b = broker.addr();
    let extra = tester.client_properties();
    let msgs = records(50);
    produce(&b, &input, &msgs, &extra).await;

    let auth = sasl(mechanism.mechanism(), &weir.name, &weir.password);
    let (token, handle) = start(&relay_yaml(&b, &input, &output, &group, &auth, &auth));
    let got = tokio::task::spawn_blocking({
        let (b, output, tester) = (b.clone(), output.clone(), tester.clone());
        move || {
            consume_until_with(
                &b,
                &tester.client_properties(),
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
    stop(token, handle).await;
    let values: Vec<Vec<u8>> = got.into_iter().map(|g| g.raw).collect();
    assert_eq!(
        values,
        msgs.iter().map(|m| m.value.clone()).collect::<Vec<_>>(),
        "the output topic holds exactly the input, in order\n{}",
        broker.log_tail(20)
    );
    // The source authenticated for its group too: everything read is committed.
    let committed = tokio::task::spawn_blocking({
        let (b, group, input, tester) = (b.clone(), group.clone(), input.clone(), tester.clone());
        move || committed_with(&b, &tester.client_properties(), &group, &input, 1)
    })
    .await
    .unwrap();
    assert_eq!(committed, vec![Some(50)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_source_and_sink_relay_with_scram_sha_256() {
    relay_with(Scram::Sha256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_source_and_sink_relay_with_scram_sha_512() {
    relay_with(Scram::Sha512).await;
}

/// Runs the pipeline until it fails (within 90 s) and returns its error, `{:#}`.
async fn failure(yaml: &str) -> String {
    let rt = build(yaml);
    let r = tokio::time::timeout(Duration::from_secs(90), rt.run(CancellationToken::new()))
        .await
        .expect("a pipeline whose credentials are refused must fail, not hang");
    format!("{:#}", r.expect_err("the broker refused the credentials"))
}

/// librdkafka's own words when the broker's SCRAM server-final-message carries
/// `e=invalid-proof` (rdkafka_sasl_scram.c, inside rdkafka_request.c's "SASL authentication
/// error: %s").
const SCRAM_REFUSED: &str = "SASL authentication error: SASL SCRAM authentication failed: broker responded with invalid-proof";

/// Nothing was committed for `group` on `input`, and `output` is empty.
async fn nothing_delivered_or_committed(
    b: &str,
    admin: &SaslUser,
    group: &str,
    input: &str,
    output: &str,
) {
    let (b, admin, group, input, output) = (
        b.to_owned(),
        admin.clone(),
        group.to_owned(),
        input.to_owned(),
        output.to_owned(),
    );
    tokio::task::spawn_blocking(move || {
        let extra = admin.client_properties();
        assert_eq!(
            committed_with(&b, &extra, &group, &input, 1),
            vec![None],
            "nothing is committed"
        );
        assert_eq!(
            watermarks_with(&b, &extra, &output, 1),
            vec![(0, 0)],
            "nothing is delivered"
        );
        // And the input is all still there, for a run with the right password.
        assert_eq!(watermarks_with(&b, &extra, &input, 1), vec![(0, 20)]);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_scram_password_on_the_source_fails_naming_authentication_and_commits_nothing() {
    let (weir, tester) = users(Scram::Sha512);
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    let broker = sasl_broker(&[weir.clone(), tester.clone()], &tester, &[&input, &output]).await;
    let b = broker.addr();
    produce(&b, &input, &records(20), &tester.client_properties()).await;

    let wrong = sasl("SCRAM-SHA-512", &weir.name, "not-the-pa55-word");
    let right = sasl("SCRAM-SHA-512", &weir.name, &weir.password);
    let msg = failure(&relay_yaml(&b, &input, &output, &group, &wrong, &right)).await;
    assert!(msg.contains(SCRAM_REFUSED), "librdkafka's cause: {msg}");
    assert!(
        msg.contains(
            "the brokers refused the credentials: check `sasl.mechanism`, `sasl.username` and `sasl.password`"
        ),
        "and what to fix: {msg}"
    );
    assert!(msg.contains(&b), "the address: {msg}");
    assert!(!msg.contains("not-the-pa55-word"), "{msg}");
    nothing_delivered_or_committed(&b, &tester, &group, &input, &output).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_scram_password_on_the_sink_stops_the_pipeline_naming_authentication_and_commits_nothing()
 {
    let (weir, tester) = users(Scram::Sha256);
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    let broker = sasl_broker(&[weir.clone(), tester.clone()], &tester, &[&input, &output]).await;
    let b = broker.addr();
    produce(&b, &input, &records(20), &tester.client_properties()).await;

    let wrong = sasl("SCRAM-SHA-256", &weir.name, "not-the-pa55-word");
    let right = sasl("SCRAM-SHA-256", &weir.name, &weir.password);
    let msg = failure(&relay_yaml(&b, &input, &output, &group, &right, &wrong)).await;
    assert!(msg.contains(SCRAM_REFUSED), "librdkafka's cause: {msg}");
    assert!(
        msg.contains("the brokers refused the credentials"),
        "and what to fix: {msg}"
    );
    assert!(!msg.contains("not-the-pa55-word"), "{msg}");
    nothing_delivered_or_committed(&b, &tester, &group, &input, &output).await;
}

/// What can be proved of PLAIN here: Weir asks for a PLAIN handshake. Tansu 0.6.0 refuses every
/// PLAIN handshake (no PLAIN in its SASL library), so neither a relay nor a wrong PLAIN password
/// can be tested against it; when a Tansu with PLAIN arrives, this test fails and the relay and
/// refusal tests above get a PLAIN case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_reaches_the_broker_as_a_plain_handshake() {
    let (weir, tester) = users(Scram::Sha512);
    let (input, output, group) = (unique("in"), unique("out"), unique("g"));
    let broker = sasl_broker(&[weir.clone(), tester.clone()], &tester, &[&input, &output]).await;
    let b = broker.addr();
    produce(&b, &input, &records(20), &tester.client_properties()).await;
    let plain = sasl("PLAIN", &weir.name, &weir.password);
    let msg = failure(&relay_yaml(&b, &input, &output, &group, &plain, &plain)).await;
    assert!(
        msg.contains("SASL PLAIN mechanism handshake failed"),
        "librdkafka's cause names PLAIN: {msg}"
    );
    assert!(
        broker.log().contains("NoSharedMechanism"),
        "Tansu refused the mechanism, not the password: {}",
        broker.log_tail(10)
    );
    assert!(!msg.contains(&weir.password), "{msg}");
    nothing_delivered_or_committed(&b, &tester, &group, &input, &output).await;
}
