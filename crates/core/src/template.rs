//! EventBridge Pipes input templates: `<$.value.id>` placeholders in JSON or plain text.
//!
//! Inside a JSON string a placeholder is replaced by the value's text; outside quotes it is
//! replaced by the JSON value itself (objects and arrays included; a missing value is `null`).
//! A template that is not JSON is plain text and renders to a string. Reserved variables:
//! `<weir.pipeline>`, `<weir.event>` (the whole event as JSON), `<weir.event.json>` (the event as a
//! JSON string) and `<weir.event.ingestion-time>` (RFC 3339), with Pipes' `aws.pipes.*` spellings
//! accepted too, so a Pipes template can be pasted unchanged.

use crate::time::rfc3339;
use std::borrow::Cow;
use std::time::SystemTime;

use serde_json::Value as Json;

use crate::event;
use crate::path::{Segment, get, parse_segments};
use crate::record::{DecodeError, Record};

#[derive(Debug, Clone, PartialEq)]
enum Var {
    /// `$` plus a path into the event (empty path = whole event).
    Path(Vec<Segment>),
    Pipeline,
    Event,
    EventJson,
    IngestionTime,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var { var: Var, quoted: bool },
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
    json: bool,
}

/// A template that does not compile, or one that cannot render a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// Bad syntax.
    #[error("invalid template: {0}")]
    Syntax(String),
    /// The record's value could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A JSON template produced invalid JSON (a value substituted where JSON does not allow it).
    #[error("template produced invalid JSON: {0}")]
    Render(String),
}

/// Values for reserved variables.
#[derive(Debug, Clone)]
pub struct TemplateContext<'a> {
    /// Pipeline name.
    pub pipeline: &'a str,
}

impl Template {
    /// Compiles a template.
    pub fn compile(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut in_string = false;
        let mut escaped = false;
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if c == '<'
                && let Some((var, len)) = parse_var(rest)?
            {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var {
                    var,
                    quoted: in_string,
                });
                rest = &rest[len..];
                escaped = false;
                continue;
            }
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
            }
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        // JSON mode when the template is JSON with its placeholders filled by neutral values.
        let probe: String = parts
            .iter()
            .map(|p| match p {
                Part::Lit(s) => s.as_str(),
                Part::Var { quoted: true, .. } => "",
                Part::Var { quoted: false, .. } => "null",
            })
            .collect();
        let json = serde_json::from_str::<Json>(&probe).is_ok();
        Ok(Template { parts, json })
    }

    /// True when the template renders JSON (else plain text).
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// True when the template has no placeholders.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// Renders against a record: JSON for a JSON template, a JSON string for a text template.
    pub fn render(
        &self,
        record: &mut Record,
        cx: &TemplateContext<'_>,
    ) -> Result<Json, TemplateError> {
        let text = self.render_raw(record, cx)?;
        if self.json {
            serde_json::from_str(&text).map_err(|e| TemplateError::Render(e.to_string()))
        } else {
            Ok(Json::String(text))
        }
    }

    /// Renders to text (URLs, header values, keys): values are substituted as text.
    pub fn render_text(
        &self,
        record: &mut Record,
        cx: &TemplateContext<'_>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var { var, .. } => {
                    if let Some(v) = resolve(var, record, cx)? {
                        push_text(&mut out, &v);
                    }
                }
            }
        }
        Ok(out)
    }

    fn render_raw(
        &self,
        record: &mut Record,
        cx: &TemplateContext<'_>,
    ) -> Result<String, TemplateError> {
        if !self.json {
            return self.render_text(record, cx);
        }
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var { var, quoted } => {
                    let v = resolve(var, record, cx)?;
                    match (quoted, v) {
                        (true, Some(v)) => {
                            let mut t = String::new();
                            push_text(&mut t, &v);
                            let enc = serde_json::to_string(&t).expect("strings serialize");
                            out.push_str(&enc[1..enc.len() - 1]);
                        }
                        (true, None) => {}
                        (false, Some(v)) => {
                            out.push_str(&serde_json::to_string(&*v).expect("JSON serializes"))
                        }
                        (false, None) => out.push_str("null"),
                    }
                }
            }
        }
        Ok(out)
    }
}

fn push_text(out: &mut String, v: &Json) {
    match v {
        Json::String(s) => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

fn parse_var(s: &str) -> Result<Option<(Var, usize)>, TemplateError> {
    let Some(end) = s.find('>') else {
        return Ok(None);
    };
    let inner = &s[1..end];
    let var = if let Some(path) = inner.strip_prefix('$') {
        if path.is_empty() {
            Var::Path(Vec::new())
        } else {
            let path = path.strip_prefix('.').ok_or_else(|| {
                TemplateError::Syntax(format!("`<{inner}>`: write `<$.value.field>`"))
            })?;
            Var::Path(
                parse_segments(path)
                    .map_err(|e| TemplateError::Syntax(format!("`<{inner}>`: {}", e.reason)))?,
            )
        }
    } else {
        match inner {
            "weir.pipeline" | "aws.pipes.pipe-name" => Var::Pipeline,
            "weir.event" | "aws.pipes.event" => Var::Event,
            "weir.event.json" | "aws.pipes.event.json" => Var::EventJson,
            "weir.event.ingestion-time" | "aws.pipes.event.ingestion-time" => Var::IngestionTime,
            _ if inner.starts_with("weir.") || inner.starts_with("aws.pipes.") => {
                return Err(TemplateError::Syntax(format!(
                    "unknown variable `<{inner}>` (known: weir.pipeline, weir.event, weir.event.json, weir.event.ingestion-time)"
                )));
            }
            _ => return Ok(None),
        }
    };
    Ok(Some((var, end + 1)))
}

fn resolve<'r>(
    var: &Var,
    record: &'r mut Record,
    cx: &TemplateContext<'_>,
) -> Result<Option<Cow<'r, Json>>, TemplateError> {
    Ok(match var {
        Var::Pipeline => Some(Cow::Owned(Json::String(cx.pipeline.to_owned()))),
        Var::IngestionTime => Some(Cow::Owned(Json::String(rfc3339(SystemTime::now())))),
        Var::Event => Some(Cow::Owned(event::envelope(record)?)),
        Var::Path(segs) if segs.is_empty() => Some(Cow::Owned(event::envelope(record)?)),
        Var::EventJson => Some(Cow::Owned(Json::String(
            event::envelope(record)?.to_string(),
        ))),
        Var::Path(segs) => {
            let (Segment::Key(top), rest) = (&segs[0], &segs[1..]) else {
                return Ok(None);
            };
            match event::field(record, top)? {
                None => None,
                Some(Cow::Borrowed(j)) => get(j, rest).map(Cow::Borrowed),
                Some(Cow::Owned(j)) => get(&j, rest).cloned().map(Cow::Owned),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Origin;
    use serde_json::json;

    fn rec() -> Record {
        let mut r = Record::from_bytes(
            &br#"{"id":"o-1","amount":12.5,"customer":{"name":"Ann \"A\""},"tags":["x","y"]}"#[..],
        );
        r.meta.origin = Some(Origin {
            topic: "orders".into(),
            partition: 0,
            offset: 9,
        });
        r
    }
    const CX: TemplateContext<'static> = TemplateContext { pipeline: "p1" };

    #[test]
    fn json_template_substitutes_values_and_strings() {
        let t = Template::compile(r#"{"order": <$.value.id>, "who": "name: <$.value.customer.name>", "c": <$.value.customer>, "tags": <$.value.tags>, "t": "<$.topic>", "p": "<weir.pipeline>"}"#).unwrap();
        assert!(t.is_json());
        assert_eq!(
            t.render(&mut rec(), &CX).unwrap(),
            json!({"order":"o-1","who":"name: Ann \"A\"","c":{"name":"Ann \"A\""},"tags":["x","y"],"t":"orders","p":"p1"})
        );
    }

    #[test]
    fn missing_values_are_null_unquoted_and_empty_quoted() {
        let t = Template::compile(r#"{"a": <$.value.nope>, "b": "x<$.value.nope>y"}"#).unwrap();
        assert_eq!(
            t.render(&mut rec(), &CX).unwrap(),
            json!({"a":null,"b":"xy"})
        );
    }

    #[test]
    fn text_template_renders_a_string() {
        let t = Template::compile("Order <$.value.id> paid <$.value.amount>").unwrap();
        assert!(!t.is_json());
        assert_eq!(
            t.render(&mut rec(), &CX).unwrap(),
            json!("Order o-1 paid 12.5")
        );
    }

    #[test]
    fn whole_event_and_pipes_aliases() {
        let t =
            Template::compile(r#"{"e": <aws.pipes.event>, "n": "<aws.pipes.pipe-name>"}"#).unwrap();
        let out = t.render(&mut rec(), &CX).unwrap();
        assert_eq!(out["e"]["value"]["id"], "o-1");
        assert_eq!(out["e"]["offset"], 9);
        assert_eq!(out["n"], "p1");
    }

    #[test]
    fn errors_are_clear() {
        assert!(
            Template::compile("<weir.nope>")
                .unwrap_err()
                .to_string()
                .contains("unknown variable")
        );
        assert!(
            Template::compile("<$value>")
                .unwrap_err()
                .to_string()
                .contains("write `<$.value.field>`")
        );
        let mut bad = Record::from_bytes(&b"{oops"[..]);
        assert!(matches!(
            Template::compile("<$.value.a>")
                .unwrap()
                .render(&mut bad, &CX),
            Err(TemplateError::Decode(_))
        ));
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
