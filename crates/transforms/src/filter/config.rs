//! Options of the `filter` transform.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use weir_core::{BuildContext, BuildError, PluginConfig, Transform};

use super::FilterTransform;

/// Keeps records that match at least one EventBridge event pattern; drops the rest (a dropped
/// record counts as done). A pattern from an EventBridge Pipes `FilterCriteria` can be pasted
/// unchanged, because records are matched in Pipes' Kafka event shape.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterTransformConfig {
    /// Event patterns, OR'd: a record is kept when any pattern matches. Each pattern is an
    /// object over `topic`, `partition`, `offset`, `timestamp`, `key`, `headers` and `value`, with
    /// lists of values or matchers at the leaves (`prefix`, `suffix`, `equals-ignore-case`,
    /// `anything-but`, `numeric`, `exists`, `wildcard`, `cidr`) and `$or` for alternatives.
    pub patterns: Vec<Json>,
}

impl PluginConfig for FilterTransformConfig {
    const TYPE: &'static str = "filter";
    const SUMMARY: &'static str =
        "Keep records matching EventBridge event patterns (Pipes' Kafka event shape)";
    const EXAMPLE: &'static str = r#"type: filter
patterns:
  - value:
      amount: [ { numeric: [">", 500] } ]
      country: [ { anything-but: [NL] } ]
  - headers: { priority: [high] }
"#;
    type Output = dyn Transform;

    fn build(self, _cx: &BuildContext) -> Result<Box<dyn Transform>, BuildError> {
        if self.patterns.is_empty() {
            return Err(BuildError::at("patterns", "list at least one pattern"));
        }
        FilterTransform::new(&self.patterns)
            .map(|f| Box::new(f) as Box<dyn Transform>)
            .map_err(|e| BuildError::at(e.path, e.message))
    }
}

weir_core::register_plugin!(FilterTransformConfig);
