//! Documentation generated from the plugin registry: `weir plugins`, the YAML reference in
//! docs/reference.md, and the JSON Schema of the pipeline format (`weir schema`).

use serde_json::{Map, Value as Json, json};
use weir_core::Registry;
use weir_core::config::{
    BatchOptions, ErrorBudget, OnError, PipelineSettings, RetryOptions, StageOptions,
    format::{Formats, SchemaRegistryConfig},
};
use weir_core::registry::{PluginEntry, PluginKind};

/// One documented option.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionDoc {
    /// Option name.
    pub name: String,
    /// Type, in words.
    pub ty: String,
    /// Required (no default).
    pub required: bool,
    /// Default, as JSON text.
    pub default: Option<String>,
    /// Doc comment.
    pub description: String,
}

fn resolve<'a>(v: &'a Json, root: &'a Json) -> &'a Json {
    if let Some(r) = v.get("$ref").and_then(Json::as_str)
        && let Some(name) = r.strip_prefix("#/$defs/")
        && let Some(d) = root.get("$defs").and_then(|d| d.get(name))
    {
        return d;
    }
    v
}

/// The alternatives of a `oneOf` / `anyOf` other than `null` (an `Option` adds a `null` one).
fn alternatives<'a>(v: &'a Json, root: &'a Json) -> Option<Vec<&'a Json>> {
    let alts = v
        .get("oneOf")
        .or_else(|| v.get("anyOf"))
        .and_then(Json::as_array)?;
    Some(
        alts.iter()
            .map(|a| resolve(a, root))
            .filter(|a| a.get("type") != Some(&json!("null")))
            .collect(),
    )
}

/// The schema itself, or the one schema an `Option` wraps (`anyOf: [T, null]`).
fn unwrap_option<'a>(v: &'a Json, root: &'a Json) -> &'a Json {
    let v = resolve(v, root);
    match alternatives(v, root) {
        Some(alts) if alts.len() == 1 && v.get("properties").is_none() => alts[0],
        _ => v,
    }
}

/// A struct's properties, when the schema is an object with named fields.
fn properties(v: &Json) -> Option<&Map<String, Json>> {
    v.get("properties").and_then(Json::as_object)
}

/// An internally tagged enum (`#[serde(tag = "type")]`): every alternative an object whose tag
/// property is a constant. Returns the tag's name and the alternatives with their tag values.
fn tagged_union<'a>(v: &'a Json, root: &'a Json) -> Option<(&'a str, Vec<(String, &'a Json)>)> {
    let alts = alternatives(v, root)?;
    let first = properties(alts.first()?)?;
    let tag = first
        .iter()
        .find_map(|(k, p)| constant(p).map(|_| k.as_str()))?;
    let variants = alts
        .iter()
        .map(|a| {
            let value = constant(properties(a)?.get(tag)?)?;
            Some((
                value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned),
                *a,
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((tag, variants))
}

/// The value a schema allows, when it allows exactly one (`const`, or a one-value `enum`).
fn constant(v: &Json) -> Option<&Json> {
    v.get("const")
        .or_else(|| match v.get("enum").and_then(Json::as_array) {
            Some(e) if e.len() == 1 => e.first(),
            _ => None,
        })
}

/// A type in words: `string`, `list of string`, `duration`, `map`, `object`, or an enum's
/// values as they are written in JSON (`"POST" | "PUT"`).
fn type_label(v: &Json, root: &Json) -> String {
    let v = resolve(v, root);
    if let Some(c) = constant(v) {
        return c.to_string();
    }
    if let Some(e) = v.get("enum").and_then(Json::as_array) {
        return e
            .iter()
            .filter(|x| !x.is_null())
            .map(Json::to_string)
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if tagged_union(v, root).is_some() {
        return "object".into();
    }
    if let Some(alts) = alternatives(v, root) {
        let mut parts: Vec<String> = Vec::new();
        for a in alts {
            let t = type_label(a, root);
            if !parts.contains(&t) {
                parts.push(t);
            }
        }
        return parts.join(" | ");
    }
    if v.get("title").and_then(Json::as_str) == Some("Duration")
        || v.get("pattern").is_some() && v.get("type") == Some(&json!("string"))
    {
        return "duration".into();
    }
    match v.get("type") {
        Some(Json::String(t)) if t == "array" => format!(
            "list of {}",
            v.get("items").map_or("any".into(), |i| type_label(i, root))
        ),
        Some(Json::String(t)) if t == "object" && v.get("properties").is_none() => "map".into(),
        Some(Json::String(t)) => t.clone(),
        Some(Json::Array(ts)) => ts
            .iter()
            .filter_map(Json::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".into(),
    }
}

fn description_of(v: &Json) -> String {
    v.get("description")
        .and_then(Json::as_str)
        .unwrap_or("")
        .replace('\n', " ")
}

/// Appends the options of an object schema, and of every object nested in it, as dotted names
/// (`tls.ca_file`). A tagged enum (`auth`) gets a row for its tag (`auth.type`, with the values)
/// and then each variant's own options, described with the variant they belong to.
fn collect_options(obj: &Json, root: &Json, prefix: &str, when: &str, out: &mut Vec<OptionDoc>) {
    let required: Vec<&str> = obj
        .get("required")
        .and_then(Json::as_array)
        .map(|r| r.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let Some(props) = properties(obj) else {
        return;
    };
    for (name, p) in props {
        let full = format!("{prefix}{name}");
        let mut description = description_of(p);
        if description.is_empty() {
            description = description_of(unwrap_option(p, root));
        }
        out.push(OptionDoc {
            name: full.clone(),
            ty: type_label(p, root),
            required: required.contains(&name.as_str()),
            default: p.get("default").map(|d| d.to_string()),
            description: format!("{when}{description}"),
        });
        let inner = unwrap_option(p, root);
        if let Some((tag, variants)) = tagged_union(inner, root) {
            let values: Vec<String> = variants
                .iter()
                .map(|(v, _)| Json::String(v.clone()).to_string())
                .collect();
            let kinds: Vec<String> = variants
                .iter()
                .map(|(v, a)| format!("`{v}`: {}", description_of(a).trim_end_matches('.')))
                .collect();
            out.push(OptionDoc {
                name: format!("{full}.{tag}"),
                ty: values.join(" | "),
                required: true,
                default: None,
                description: format!(
                    "{when}Which kind, each with its own options below. {}.",
                    kinds.join("; ")
                ),
            });
            for (value, variant) in &variants {
                let mut own = (*variant).clone();
                if let Some(o) = own.get_mut("properties").and_then(Json::as_object_mut) {
                    o.remove(tag);
                }
                let when = format!("{when}With `{tag}: {value}`: ");
                collect_options(&own, root, &format!("{full}."), &when, out);
            }
        } else if properties(inner).is_some() {
            collect_options(inner, root, &format!("{full}."), when, out);
        }
    }
}

/// The options of a schema (a plugin's, or a pipeline key's such as `settings`), nested ones
/// included.
pub fn schema_options(schema: &Json) -> Vec<OptionDoc> {
    let mut out = Vec::new();
    collect_options(schema, schema, "", "", &mut out);
    out
}

/// The options of a plugin, from its JSON Schema.
pub fn options(entry: &PluginEntry) -> (String, Vec<OptionDoc>) {
    let schema = (entry.schema)();
    let root = schema.as_value();
    let description = root
        .get("description")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_owned();
    (description, schema_options(root))
}

/// `weir plugins <type>` text.
pub fn plugin_text(entry: &PluginEntry) -> String {
    let (description, opts) = options(entry);
    let mut s = format!(
        "{} `{}`: {}\n\n{}\n\nOptions:\n",
        entry.kind.noun(),
        entry.type_name,
        entry.summary,
        description.trim()
    );
    if opts.is_empty() {
        s.push_str("  (none)\n");
    }
    for o in &opts {
        let req = if o.required {
            "required".to_owned()
        } else {
            format!("default {}", o.default.as_deref().unwrap_or("none"))
        };
        s.push_str(&format!(
            "  {} ({}, {})\n      {}\n",
            o.name, o.ty, req, o.description
        ));
    }
    s.push_str(&format!("\nExample:\n{}", indent(entry.example, "  ")));
    s
}

fn indent(text: &str, pad: &str) -> String {
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// docs/reference.md: every plugin's options, defaults and example, generated from the registry.
pub fn reference_markdown(registry: &Registry) -> String {
    let mut s = String::from(
        "# Pipeline YAML reference\n\n<!-- Generated by `weir docs reference` from the plugin registry; do not edit by hand. \
         A test fails when this file is stale: regenerate with `cargo run -p weir -- docs reference > docs/reference.md`. -->\n\n",
    );
    s.push_str("Runner options on components (taken off before the plugin sees its options):\n\n");
    s.push_str("| key | on | meaning |\n|---|---|---|\n");
    s.push_str("| `type` | all | plugin type |\n| `name` | all | component name (default: type, or type-index) |\n");
    let (batch, retry, stage) = (
        BatchOptions::default(),
        RetryOptions::default(),
        StageOptions::default(),
    );
    s.push_str(&format!(
        "| `transforms` | sinks | transforms for this sink only |\n| `batch` | sinks, dlq | `max_records` ({}), `max_bytes` ({} MiB), `max_wait` ({}) |\n",
        batch.max_records,
        batch.max_bytes / (1024 * 1024),
        batch.max_wait
    ));
    s.push_str(&format!(
        "| `retry` | transforms, sinks, dlq | `max_attempts` ({}{}), `initial_backoff` ({}), `max_backoff` ({}); exponential with jitter |\n",
        retry.max_attempts,
        if retry.max_attempts < 0 { " = forever" } else { "" },
        retry.initial_backoff,
        retry.max_backoff
    ));
    s.push_str(&format!(
        "| `max_in_flight` | sinks, dlq | concurrent writes; default: the sink's own, {} (keeps order) unless its page says otherwise (`kafka`: 4, order kept) |\n",
        stage.max_in_flight.unwrap_or(1)
    ));
    s.push_str("| `on_error` | transforms, sinks | `dlq` \\| `drop` \\| `stop` (\\| `keep` for transforms); default `dlq` with a pipeline `dlq`, else `stop` |\n");
    s.push_str("| `format` | sources, sinks | key and value converters, `{ key: ..., value: ... }`, each `json` \\| `avro` \\| `string` \\| `bytes` or a mapping with options; default key `string`, value `json` ([formats](connectors/formats.md)) |\n\n");
    s.push_str("`schema_registry:` (at the top of a file for every pipeline in it, or in a pipeline) is the Confluent-compatible Schema Registry `avro` formats use: `url` (one, or a list for failover), `basic_auth: { username, password }`, `bearer_token`, `tls: { ca_file, cert_file, key_file }`, `timeout` (10s). See [formats](connectors/formats.md).\n\n");
    s.push_str("## Pipeline keys\n\nBesides `source`, `transforms`, `sinks` and `dlq`, a pipeline takes these keys.\n\n");
    for (key, schema) in [
        ("error_budget", schema_of::<ErrorBudget>()),
        ("settings", schema_of::<PipelineSettings>()),
    ] {
        s.push_str(&format!(
            "### `{key}`\n\n{}\n\n",
            schema
                .get("description")
                .and_then(Json::as_str)
                .unwrap_or("")
                .trim()
        ));
        s.push_str(&options_table(&schema_options(&schema), &format!("{key}.")));
    }
    for kind in [PluginKind::Source, PluginKind::Transform, PluginKind::Sink] {
        s.push_str(&format!("## {}s\n\n", capitalize(kind.noun())));
        for e in registry.entries().filter(|e| e.kind == kind) {
            let (description, opts) = options(e);
            s.push_str(&format!(
                "### `{}`\n\n{}\n\n{}\n\n",
                e.type_name,
                e.summary,
                description.trim()
            ));
            s.push_str(&options_table(&opts, ""));
            s.push_str(&format!("```yaml\n{}```\n\n", e.example));
        }
    }
    s
}

/// A Markdown table of options, each name after `prefix` (`error_budget.`).
fn options_table(opts: &[OptionDoc], prefix: &str) -> String {
    if opts.is_empty() {
        return String::new();
    }
    let mut s = String::from("| option | type | default | description |\n|---|---|---|---|\n");
    for o in opts {
        let d = if o.required {
            "**required**".to_owned()
        } else {
            o.default
                .as_deref()
                .map_or("none".into(), |d| format!("`{d}`"))
        };
        s.push_str(&format!(
            "| `{prefix}{}` | {} | {} | {} |\n",
            o.name,
            o.ty.replace('|', "\\|"),
            d,
            o.description.replace('|', "\\|")
        ));
    }
    s.push('\n');
    s
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn schema_of<T: schemars::JsonSchema>() -> Json {
    schemars::SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value()
}

/// The JSON Schema of the pipeline file format, with each plugin's options, for editors.
pub fn pipeline_schema(registry: &Registry) -> Json {
    let mut defs = Map::new();
    // Schemas with named parts of their own: their `$defs` join the document's.
    let mut inline = |mut s: Json| -> Json {
        if let Some(d) = s
            .as_object_mut()
            .and_then(|o| o.remove("$defs"))
            .and_then(|d| d.as_object().cloned())
        {
            defs.extend(d);
        }
        if let Some(o) = s.as_object_mut() {
            o.remove("$schema");
        }
        s
    };
    let format = inline(schema_of::<Formats>());
    let schema_registry = inline(schema_of::<SchemaRegistryConfig>());
    let mut component = |kind: PluginKind, runner: &[(&str, Json)]| -> Json {
        let variants: Vec<Json> = registry
            .entries()
            .filter(|e| e.kind == kind)
            .map(|e| {
                let mut s = (e.schema)().to_value();
                if let Some(d) = s
                    .as_object_mut()
                    .and_then(|o| o.remove("$defs"))
                    .and_then(|d| d.as_object().cloned())
                {
                    defs.extend(d);
                }
                let o = s.as_object_mut().expect("object schema");
                o.remove("$schema");
                o.remove("additionalProperties");
                let props = o
                    .entry("properties")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("properties");
                props.insert(
                    "type".into(),
                    json!({"const": e.type_name, "description": e.summary}),
                );
                for (k, v) in runner {
                    props.insert((*k).into(), v.clone());
                }
                let req = o
                    .entry("required")
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .expect("required");
                req.push(json!("type"));
                s
            })
            .collect();
        json!({"oneOf": variants})
    };
    let name = json!({"type": "string", "description": "Component name"});
    let on_error = schema_of::<OnError>();
    let retry = schema_of::<RetryOptions>();
    let batch = schema_of::<BatchOptions>();
    let transform = component(
        PluginKind::Transform,
        &[
            ("name", name.clone()),
            ("on_error", on_error.clone()),
            ("retry", retry.clone()),
        ],
    );
    let source = component(
        PluginKind::Source,
        &[("name", name.clone()), ("format", format.clone())],
    );
    let sink = component(
        PluginKind::Sink,
        &[
            ("name", name),
            ("format", format),
            ("on_error", on_error),
            ("retry", retry),
            ("batch", batch),
            ("max_in_flight", json!({"type": "integer", "minimum": 1})),
            (
                "transforms",
                json!({"type": "array", "items": {"$ref": "#/$defs/Transform"}}),
            ),
        ],
    );
    defs.insert("Transform".into(), transform);
    defs.insert("Sink".into(), sink);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Weir pipelines",
        "type": "object",
        "additionalProperties": false,
        "required": ["pipelines"],
        "properties": {"schema_registry": schema_registry.clone(), "pipelines": {"type": "object", "additionalProperties": {
            "type": "object",
            "additionalProperties": false,
            "required": ["source", "sinks"],
            "properties": {
                "source": source,
                "transforms": {"type": "array", "items": {"$ref": "#/$defs/Transform"}},
                "sinks": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/Sink"}},
                "dlq": {"$ref": "#/$defs/Sink"},
                "error_budget": schema_of::<ErrorBudget>(),
                "settings": schema_of::<PipelineSettings>(),
                "schema_registry": schema_registry,
            }
        }}},
        "$defs": defs,
    })
}
