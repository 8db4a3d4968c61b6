//! `template`: reshapes the record value with an EventBridge Pipes input template.

use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::template::{Template, TemplateContext};
use weir_core::{BuildContext, BuildError, Flow, PluginConfig, Record, Transform, TransformError};

/// Replaces the record value with a rendered Pipes input template. Placeholders such as
/// `<$.value.id>` read Pipes' Kafka event shape; inside quotes they substitute text, outside
/// quotes JSON values. Reserved variables: `<weir.pipeline>`, `<weir.event>`, `<weir.event.json>`,
/// `<weir.event.ingestion-time>` (and their `aws.pipes.*` spellings). A template that is not JSON
/// renders to a JSON string.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateTransformConfig {
    /// The input template.
    pub template: String,
}

/// The compiled template transform.
pub struct TemplateTransform {
    template: Template,
    pipeline: String,
}

impl PluginConfig for TemplateTransformConfig {
    const TYPE: &'static str = "template";
    const SUMMARY: &'static str = "Reshape the value with an EventBridge Pipes input template";
    const EXAMPLE: &'static str = r#"type: template
template: |
  {"alert": "big spender", "order": <$.value.id>, "amount": <$.value.amount>,
   "card": "<$.value.card.number>", "pipeline": "<weir.pipeline>", "seen_at": "<weir.event.ingestion-time>"}
"#;
    type Output = dyn Transform;

    fn build(self, cx: &BuildContext) -> Result<Box<dyn Transform>, BuildError> {
        let template = Template::compile(&self.template)
            .map_err(|e| BuildError::at("template", e.to_string()))?;
        Ok(Box::new(TemplateTransform {
            template,
            pipeline: cx.pipeline.to_string(),
        }))
    }
}

weir_core::register_plugin!(TemplateTransformConfig);

impl Transform for TemplateTransform {
    fn apply(&self, record: &mut Record) -> Result<Flow, TransformError> {
        let out = self
            .template
            .render(
                record,
                &TemplateContext {
                    pipeline: &self.pipeline,
                },
            )
            .map_err(|e| TransformError::Fatal(e.to_string()))?;
        record.value.set_json(out);
        Ok(Flow::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reshapes_value_and_reports_invalid_output() {
        let cx = BuildContext::for_test("p", "c");
        let t = TemplateTransformConfig {
            template: r#"{"o": <$.value.id>, "who": "<$.value.n>"}"#.into(),
        }
        .build(&cx)
        .unwrap();
        let mut r = Record::from_bytes(&br#"{"id": 3, "n": "x"}"#[..]);
        t.apply(&mut r).unwrap();
        assert_eq!(r.value.parsed().unwrap(), &json!({"o":3,"who":"x"}));
        let e = TemplateTransformConfig {
            template: "<$.>".into(),
        }
        .build(&cx)
        .err()
        .unwrap();
        assert_eq!(e.path, "template");
    }
}
