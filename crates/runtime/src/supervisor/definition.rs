//! A pipeline's definition as the API and files give it: parsed into a spec with located
//! errors, and shown back with secrets as their references, never their values.

use serde_json::Value as Json;
use weir_core::config::load::parse_yaml;
use weir_core::config::{
    ConfigError, ConfigErrors, Location, Node, NodeKind, PipelineSpec, SourceFile,
    load_pipeline_body, process_env,
};

/// The media type of a pipeline body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// `application/yaml` (also `text/yaml`, `application/x-yaml`).
    Yaml,
    /// `application/json`.
    Json,
}

impl ContentType {
    /// From a `Content-Type` header value (parameters ignored); JSON when absent or unknown.
    pub fn from_mime(mime: &str) -> ContentType {
        let base = mime
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
                ContentType::Yaml
            }
            _ => ContentType::Json,
        }
    }

    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            ContentType::Yaml => "application/yaml",
            ContentType::Json => "application/json",
        }
    }
}

/// A pipeline definition: its spec, and how it is shown (secrets as references).
#[derive(Debug, Clone)]
pub struct Definition {
    /// The parsed spec (with `${VAR}` expanded).
    pub spec: PipelineSpec,
    /// The definition as JSON, before `${VAR}` expansion, with inline secrets and URL
    /// passwords replaced by `***`.
    pub redacted: Json,
}

/// Option names whose values are secrets wherever they appear.
const SECRET_KEYS: &[&str] = &[
    "password",
    "token",
    "client_secret",
    "bearer_token",
    "key_password",
    "hash_salt",
];

/// A scalar that only names where a secret comes from (`${VAR}`, `file:/path`) may be shown.
fn is_reference(s: &str) -> bool {
    let t = s.trim();
    t.starts_with("file:")
        || (t.starts_with("${") && t.ends_with('}') && t.matches("${").count() == 1)
}

fn redact(node: &Node, key: Option<&str>, parent: Option<&str>) -> Json {
    match &node.kind {
        NodeKind::Str(s) => {
            let secret = key.is_some_and(|k| {
                SECRET_KEYS.contains(&k) || (k == "value" && parent == Some("auth"))
            });
            if secret && !is_reference(s) {
                Json::String("***".into())
            } else if s.contains("://") && !s.contains(char::is_whitespace) {
                // A URL option: its whole text is the URL, `${VAR}` references included.
                Json::String(weir_core::redact::url(s).into_owned())
            } else {
                Json::String(weir_core::redact::urls(s).into_owned())
            }
        }
        NodeKind::Seq(items) => Json::Array(items.iter().map(|i| redact(i, None, key)).collect()),
        NodeKind::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let name = k.scalar_text().unwrap_or_default();
                    let value = redact(v, Some(&name), key);
                    (name, value)
                })
                .collect(),
        ),
        _ => node.to_json(),
    }
}

/// The definition `node` (unexpanded) as shown by the API.
pub fn redacted_definition(node: &Node) -> Json {
    redact(node, None, None)
}

fn json_syntax_error(source_name: &str, body: &str) -> Option<ConfigError> {
    let e = serde_json::from_str::<serde::de::IgnoredAny>(body).err()?;
    let file = SourceFile::new(source_name, body);
    Some(file.error(
        Location {
            line: e.line().max(1) as u32,
            column: e.column().max(1) as u32,
        },
        "",
        format!("invalid JSON: {e}"),
    ))
}

impl Definition {
    /// Parses an API body (one pipeline: `name:` plus its keys) of the given type; errors are
    /// located in the body.
    pub fn parse(
        body: &str,
        content_type: ContentType,
        source_name: &str,
    ) -> Result<(Definition, Vec<ConfigError>), ConfigErrors> {
        if content_type == ContentType::Json
            && let Some(e) = json_syntax_error(source_name, body)
        {
            return Err(ConfigErrors(vec![e]));
        }
        let (spec, errors) = load_pipeline_body(source_name, body, &process_env);
        let spec = match (spec, errors.is_empty()) {
            (Some(s), true) => s,
            _ => return Err(ConfigErrors(errors)),
        };
        let raw =
            parse_yaml(&SourceFile::new(source_name, body)).map_err(|e| ConfigErrors(vec![e]))?;
        let mut redacted = redacted_definition(&raw);
        if let Some(m) = redacted.as_object_mut() {
            m.remove("name");
        }
        Ok((Definition { spec, redacted }, Vec::new()))
    }

    /// A pipeline read from a file: shown as its mapping under `pipelines:` in that file.
    pub fn from_file(spec: PipelineSpec) -> Definition {
        let redacted = parse_yaml(&spec.file)
            .ok()
            .and_then(|root| {
                root.get("pipelines")
                    .and_then(|p| p.get(&spec.name))
                    .map(redacted_definition)
            })
            .unwrap_or(Json::Null);
        Definition { spec, redacted }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_secrets_and_url_passwords_are_hidden_and_references_are_shown() {
        let body = "name: p\nsource: { type: stdin }\nsinks:\n  - type: http\n    url: https://u:pw@h/x?api_key=k\n    auth: { type: api_key, header: x-key, value: inline-secret }\n  - type: http\n    url: https://h/y\n    auth: { type: bearer, token: \"${TOKEN}\" }\nschema_registry: { url: http://r, basic_auth: { username: u, password: \"file:/run/pw\" } }\n";
        let raw = parse_yaml(&SourceFile::new("b", body)).unwrap();
        let shown = redacted_definition(&raw).to_string();
        assert!(
            !shown.contains("inline-secret") && !shown.contains(":pw@") && !shown.contains("=k"),
            "{shown}"
        );
        assert!(
            shown.contains("${TOKEN}") && shown.contains("file:/run/pw"),
            "{shown}"
        );
        assert!(shown.contains("https://u:***@h/x?api_key=***"), "{shown}");
    }

    #[test]
    fn content_types() {
        assert_eq!(
            ContentType::from_mime("application/yaml; charset=utf-8"),
            ContentType::Yaml
        );
        assert_eq!(ContentType::from_mime("text/yaml"), ContentType::Yaml);
        assert_eq!(
            ContentType::from_mime("application/json"),
            ContentType::Json
        );
    }
}
