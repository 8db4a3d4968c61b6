//! Options of the `filter` transform.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use weir_core::event::EVENT_FIELDS;
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

    fn build(self, cx: &BuildContext) -> Result<Box<dyn Transform>, BuildError> {
        if self.patterns.is_empty() {
            return Err(BuildError::at("patterns", "list at least one pattern"));
        }
        let filter =
            FilterTransform::new(&self.patterns).map_err(|e| BuildError::at(e.path, e.message))?;
        for (i, p) in self.patterns.iter().enumerate() {
            warn_unknown_top_fields(p, &format!("patterns[{i}]"), cx);
        }
        Ok(Box::new(filter))
    }
}

/// A pattern field the Kafka event shape does not have never matches: pasted from an
/// EventBridge bus rule (`detail`, `source`), it would silently drop every record.
fn warn_unknown_top_fields(pattern: &Json, path: &str, cx: &BuildContext) {
    let Json::Object(fields) = pattern else {
        return;
    };
    for (k, v) in fields {
        if k == "$or" {
            for (j, alt) in v.as_array().into_iter().flatten().enumerate() {
                warn_unknown_top_fields(alt, &format!("{path}.$or[{j}]"), cx);
            }
            continue;
        }
        if EVENT_FIELDS.contains(&k.as_str()) {
            continue;
        }
        let hint = if k == "detail" {
            "did you mean `value`? (an EventBridge bus event's `detail` is the record's `value` here)".to_owned()
        } else {
            format!("did you mean `value.{k}`?")
        };
        cx.warnings.push(
            format!("{path}.{k}"),
            format!(
                "`{k}` is not a field of the Kafka event shape ({}), so this pattern never matches and drops every record; {hint}",
                EVENT_FIELDS.join(", ")
            ),
        );
    }
}

weir_core::register_plugin!(FilterTransformConfig);
