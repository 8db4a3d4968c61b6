//! Runs a YAML pipeline that mixes built-in plugins with this crate's own.
//!
//!     cargo run -p weir-example-custom-plugin

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use weir_example_custom_plugin::{CountingSinkConfig, RedactEmailsTransformConfig};

const PIPELINE: &str = r#"
pipelines:
  signups:
    source: { type: stdin }
    transforms:
      - type: redact_emails
      - type: fields
        exclude: [value.password]
    sinks:
      - type: stdout
      - type: counting
        label: signups seen
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Built-ins plus this crate's plugins, added explicitly (no reliance on link-time collection).
    let registry = weir_runtime::builtin_registry()?
        .with::<RedactEmailsTransformConfig>()?
        .with::<CountingSinkConfig>()?;
    let runtime = weir_runtime::Runtime::from_yaml_str("signups.yaml", PIPELINE, &registry)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    runtime
        .run(CancellationToken::new())
        .await
        .context("pipeline failed")?;
    Ok(())
}
