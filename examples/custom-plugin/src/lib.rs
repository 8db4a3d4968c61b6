//! A third-party plugin crate: a `redact_emails` transform and a `counting` sink, registered with
//! Weir and used from YAML next to the built-ins. Read this with docs/plugin-authoring.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use weir_core::{
    BuildContext, BuildError, Flow, PluginConfig, Record, Sink, SinkError, Transform,
    TransformError,
};

/// Replaces every string that looks like an e-mail address, anywhere in the value, with a fixed
/// text. A plugin config is a documented struct: doc comments become `weir plugins` output.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactEmailsTransformConfig {
    /// The replacement text.
    #[serde(default = "default_replacement")]
    pub replacement: String,
}

fn default_replacement() -> String {
    "[email]".into()
}

/// The built transform.
pub struct RedactEmails {
    replacement: String,
}

fn redact(v: &mut Json, with: &str) -> usize {
    match v {
        Json::String(s)
            if s.contains('@') && s.rsplit('@').next().is_some_and(|d| d.contains('.')) =>
        {
            *s = with.to_owned();
            1
        }
        Json::Array(a) => a.iter_mut().map(|x| redact(x, with)).sum(),
        Json::Object(m) => m.values_mut().map(|x| redact(x, with)).sum(),
        _ => 0,
    }
}

impl Transform for RedactEmails {
    fn apply(&self, record: &mut Record) -> Result<Flow, TransformError> {
        // Only mark the value modified when something changed: untouched values pass through as bytes.
        let mut copy = record.value.json()?.clone();
        if redact(&mut copy, &self.replacement) > 0 {
            record.value.set_json(copy);
        }
        Ok(Flow::Keep)
    }
}

impl PluginConfig for RedactEmailsTransformConfig {
    const TYPE: &'static str = "redact_emails";
    const SUMMARY: &'static str = "Replace e-mail addresses anywhere in the value";
    const EXAMPLE: &'static str = "type: redact_emails\nreplacement: \"[email]\"\n";
    type Output = dyn Transform;
    fn build(self, _cx: &BuildContext) -> Result<Box<dyn Transform>, BuildError> {
        if self.replacement.contains('@') {
            return Err(BuildError::at(
                "replacement",
                "the replacement must not itself look like an address",
            ));
        }
        Ok(Box::new(RedactEmails {
            replacement: self.replacement,
        }))
    }
}

// Registering makes the type available to `Registry::from_inventory()`; embedders can instead add
// it explicitly with `registry.with::<RedactEmailsTransformConfig>()`.
weir_core::register_plugin!(RedactEmailsTransformConfig);

/// Counts records into a process-wide counter and reports the total when flushed.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CountingSinkConfig {
    /// A label for the log line at shutdown.
    #[serde(default)]
    pub label: Option<String>,
}

/// Total records written by every counting sink (for the example's test).
pub static COUNTED: AtomicU64 = AtomicU64::new(0);

/// The built sink.
pub struct CountingSink {
    label: Arc<str>,
}

#[async_trait]
impl Sink for CountingSink {
    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        COUNTED.fetch_add(records.len() as u64, Ordering::SeqCst);
        Ok(())
    }
    async fn flush(&self) -> Result<(), SinkError> {
        eprintln!("{}: {} records", self.label, COUNTED.load(Ordering::SeqCst));
        Ok(())
    }
}

impl PluginConfig for CountingSinkConfig {
    const TYPE: &'static str = "counting";
    const SUMMARY: &'static str = "Count records (example plugin)";
    const EXAMPLE: &'static str = "type: counting\nlabel: seen\n";
    type Output = dyn Sink;
    fn build(self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(CountingSink {
            label: self.label.map_or_else(|| cx.component.clone(), Arc::from),
        }))
    }
}

weir_core::register_plugin!(CountingSinkConfig);

/// Called by the binary so the linker keeps this crate's registrations.
pub fn link() {}
