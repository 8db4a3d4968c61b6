//! `jq`: runs a jq program (via jaq) on each record; the outputs become the new values.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use weir_core::{BuildContext, BuildError, Flow, PluginConfig, Record, Transform, TransformError};

/// What the program receives as `.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum JqInput {
    /// The Pipes event `{topic, partition, offset, timestamp, key, headers, value}`.
    #[default]
    Event,
    /// Only the value.
    Value,
}

/// Runs a jq program compiled once at start-up. Each output becomes a record value: no output
/// drops the record (counts as done), several outputs split it (all share the original ack).
/// A runtime error sends the record to the stage's `on_error`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JqTransformConfig {
    /// The jq program, e.g. `.value | select(.amount > 100) | {id, amount}`.
    pub program: String,
    /// What `.` is: the whole event (default) or just the value.
    #[serde(default)]
    pub input: JqInput,
}

type Filter = jaq_core::compile::Filter<jaq_core::Native<data::JustLut<Val>>>;

/// The compiled jq transform.
pub struct JqTransform {
    filter: Filter,
    input: JqInput,
}

impl PluginConfig for JqTransformConfig {
    const TYPE: &'static str = "jq";
    const SUMMARY: &'static str = "Transform, filter or split records with a jq program (jaq)";
    const EXAMPLE: &'static str = r#"type: jq
program: '.value | select(.amount > 100) | {id, amount, country}'
"#;
    type Output = dyn Transform;

    fn build(self, _cx: &BuildContext) -> Result<Box<dyn Transform>, BuildError> {
        let filter = compile(&self.program).map_err(|e| BuildError::at("program", e))?;
        Ok(Box::new(JqTransform {
            filter,
            input: self.input,
        }))
    }
}

weir_core::register_plugin!(JqTransformConfig);

fn compile(code: &str) -> Result<Filter, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(&arena, File { code, path: () })
        .map_err(|errs| {
            format!(
                "jq program does not parse: {}",
                describe(&errs.into_iter().map(|(_, e)| e).collect::<Vec<_>>())
            )
        })?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| {
            format!(
                "jq program does not compile: {}",
                describe(&errs.into_iter().map(|(_, e)| e).collect::<Vec<_>>())
            )
        })
}

fn describe<T: std::fmt::Debug>(errs: &T) -> String {
    let s = format!("{errs:?}");
    if s.len() > 300 {
        format!("{}…", &s[..300])
    } else {
        s
    }
}

impl Transform for JqTransform {
    fn apply(&self, record: &mut Record) -> Result<Flow, TransformError> {
        let input: Json = match self.input {
            JqInput::Event => weir_core::event::envelope(record)?,
            JqInput::Value => record.value.json()?.clone(),
        };
        let val = Val::deserialize(&input)
            .map_err(|e| TransformError::Fatal(format!("jq input: {e}")))?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut outs = Vec::new();
        for out in self.filter.id.run((ctx, val)).map(unwrap_valr) {
            let v = out.map_err(|e| TransformError::Fatal(format!("jq program failed: {e}")))?;
            let text = v.to_string();
            let json: Json = serde_json::from_str(&text).map_err(|e| {
                TransformError::Fatal(format!("jq output is not JSON ({e}): {text:.200}"))
            })?;
            outs.push(json);
        }
        Ok(match outs.len() {
            0 => Flow::Drop,
            1 => {
                record.value.set_json(outs.pop().expect("one"));
                Flow::Keep
            }
            _ => Flow::Split(outs.into_iter().map(|v| record.derive(v)).collect()),
        })
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<JqTransform>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(program: &str) -> Box<dyn Transform> {
        JqTransformConfig {
            program: program.into(),
            input: JqInput::Event,
        }
        .build(&BuildContext {
            pipeline: "p".into(),
            component: "c".into(),
            options: Default::default(),
        })
        .unwrap()
    }

    #[test]
    fn maps_selects_and_splits() {
        let mut r = Record::from_bytes(&br#"{"amount": 150, "items": [1, 2, 3]}"#[..]);
        assert!(matches!(
            t(".value | {big: (.amount > 100)}").apply(&mut r).unwrap(),
            Flow::Keep
        ));
        assert_eq!(r.value.parsed().unwrap(), &json!({"big": true}));
        let mut r = Record::from_bytes(&br#"{"amount": 5}"#[..]);
        assert!(matches!(
            t(".value | select(.amount > 100)").apply(&mut r).unwrap(),
            Flow::Drop
        ));
        let mut r = Record::from_bytes(&br#"{"items": [1, 2, 3]}"#[..]);
        match t(".value.items[]").apply(&mut r).unwrap() {
            Flow::Split(rs) => assert_eq!(
                rs.iter()
                    .map(|r| r.value.parsed().unwrap().clone())
                    .collect::<Vec<_>>(),
                vec![json!(1), json!(2), json!(3)]
            ),
            other => panic!("expected a split, got {other:?}"),
        }
    }

    #[test]
    fn compile_and_runtime_errors_are_clear() {
        let e = JqTransformConfig {
            program: ".value | (".into(),
            input: JqInput::Event,
        }
        .build(&BuildContext {
            pipeline: "p".into(),
            component: "c".into(),
            options: Default::default(),
        })
        .err()
        .unwrap();
        assert_eq!(e.path, "program");
        assert!(e.message.contains("does not parse"), "{}", e.message);
        let e = JqTransformConfig {
            program: "nosuchfn(1)".into(),
            input: JqInput::Event,
        }
        .build(&BuildContext {
            pipeline: "p".into(),
            component: "c".into(),
            options: Default::default(),
        })
        .err()
        .unwrap();
        assert!(e.message.contains("does not compile"), "{}", e.message);
        let mut r = Record::from_bytes(&br#"{"a": "text"}"#[..]);
        let err = t(".value.a + 1").apply(&mut r).unwrap_err();
        assert!(err.to_string().contains("jq program failed"), "{err}");
    }
}
