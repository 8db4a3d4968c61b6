//! Running YAML pipelines in a test and stopping them, so a failing assertion never leaves a
//! consumer thread behind.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weir_runtime::{Runtime, builtin_registry};

/// librdkafka options every test client of Weir uses: Tansu holds a new group's JoinGroup for
/// half the session timeout, so keep it short.
pub const FAST_GROUP: &str = "\"session.timeout.ms\": 6000\n        \"heartbeat.interval.ms\": 500";

/// Cancels the pipeline when dropped, so a failing assertion does not leave the consumer thread
/// running (the test runtime would wait for it for ever).
pub struct CancelOnDrop(pub CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

pub fn start(yaml: &str) -> (CancelOnDrop, tokio::task::JoinHandle<()>) {
    run(build(yaml))
}

/// Builds pipelines from YAML; panics with the configuration errors.
pub fn build(yaml: &str) -> Runtime {
    let registry = builtin_registry().unwrap();
    Runtime::from_yaml_str("test.yaml", yaml, &registry)
        .unwrap_or_else(|e| panic!("pipeline does not build: {e}"))
}

/// Runs built pipelines until stopped; the task panics if they fail.
pub fn run(rt: Runtime) -> (CancelOnDrop, tokio::task::JoinHandle<()>) {
    let token = CancellationToken::new();
    let t = token.clone();
    let handle = tokio::spawn(async move {
        rt.run(t).await.expect("pipeline failed");
    });
    (CancelOnDrop(token), handle)
}

pub async fn stop(token: CancelOnDrop, handle: tokio::task::JoinHandle<()>) {
    token.0.cancel();
    tokio::time::timeout(Duration::from_secs(60), handle)
        .await
        .expect("pipeline did not stop within 60s")
        .expect("pipeline task panicked");
}
