//! The http sink against a real HTTPS server: the core conformance checks (a record is
//! acknowledged only once the server answered 2xx, order, values, empty batches, flush).
//! Retries, dead letters and auth through whole pipelines are tested in weir-runtime.

use weir_core::testing::{BoxFuture, SinkCapabilities, sink_conformance};
use weir_core::{BuildContext, PluginConfig, Record};
use weir_testkit::https::{Answer, Https};

use super::HttpSinkConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_sink_conformance_one_request_per_record_and_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    weir_testkit::tls::certificates(dir.path());
    for batch in ["none", "ndjson"] {
        let server = std::sync::Arc::new(Https::start(dir.path(), None, |_, _| Answer::ok()).await);
        let config: HttpSinkConfig = serde_json::from_value(serde_json::json!({
            "url": format!("{}/in", server.url),
            "tls": {"ca_file": dir.path().join("ca.pem")},
            "batch_format": batch,
        }))
        .unwrap();
        let sink = config.build(&BuildContext::for_test("p", "http")).unwrap();
        let s = server.clone();
        let read = move || -> BoxFuture<'static, Vec<Record>> {
            let s = s.clone();
            Box::pin(async move {
                s.seen()
                    .iter()
                    .flat_map(|r| {
                        r.body
                            .split(|b| *b == b'\n')
                            .filter(|l| !l.is_empty())
                            .map(|l| Record::from_bytes(l.to_vec()))
                            .collect::<Vec<_>>()
                    })
                    .collect()
            })
        };
        sink_conformance(
            &*sink,
            SinkCapabilities {
                headers: false,
                keys: false,
            },
            &read,
        )
        .await
        .unwrap_or_else(|e| panic!("batch_format {batch}: {e}"));
    }
}

#[test]
fn envelope_and_a_body_template_are_refused_together() {
    let config: HttpSinkConfig = serde_json::from_value(serde_json::json!({
        "url": "https://127.0.0.1:1/in",
        "body": "{\"id\": <$.value.id>}",
        "envelope": true,
    }))
    .unwrap();
    let Err(e) = config.build(&BuildContext::for_test("p", "http")) else {
        panic!("built");
    };
    assert_eq!(e.path, "envelope");
    assert!(e.message.contains("not both"), "{}", e.message);
}
