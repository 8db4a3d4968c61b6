//! Parsing a located YAML tree into [`PipelineSpec`]s: the file's top level, each pipeline's
//! keys, and each component's runner options taken off before the rest goes to its plugin.
//! Every problem is collected with its location, so an operator sees them all at once.

use std::sync::Arc;

use super::de::{DeError, child_index, child_key, from_node};
use super::error::{ConfigError, SourceFile, did_you_mean};
use super::format::{FormatKind, Formats, SchemaRegistryConfig};
use super::node::{Location, Node, NodeKind};
use super::spec::{
    ComponentSpec, ErrorBudget, OnError, PIPELINE_KEYS, PipelineSettings, PipelineSpec,
    RetryOptions, SINK_RUNNER_KEYS, StageOptions, check_name, runner_keys,
};
use crate::plugin::PluginKind;

pub(crate) struct Parser<'a> {
    pub file: &'a SourceFile,
    pub errors: Vec<ConfigError>,
}

impl Parser<'_> {
    fn err(&mut self, node: &Node, path: &str, msg: impl Into<String>) {
        self.errors.push(self.file.error(node.location, path, msg));
    }

    fn de_err(&mut self, e: DeError, fallback: &Node, path: &str) {
        let loc = e.location.unwrap_or(fallback.location);
        let p = e.path.unwrap_or_else(|| path.to_owned());
        self.errors.push(self.file.error(loc, p, e.message));
    }

    fn typed<T: serde::de::DeserializeOwned>(&mut self, node: &Node, path: &str) -> Option<T> {
        match from_node(node, path) {
            Ok(v) => Some(v),
            Err(e) => {
                self.de_err(e, node, path);
                None
            }
        }
    }

    fn entries<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        what: &str,
    ) -> Option<&'n [(Node, Node)]> {
        match &node.kind {
            NodeKind::Map(e) => Some(e),
            _ => {
                self.err(
                    node,
                    path,
                    format!("{what} must be a mapping, found {}", node.type_name()),
                );
                None
            }
        }
    }

    pub fn file(&mut self, root: &Node) -> Vec<PipelineSpec> {
        let mut out = Vec::new();
        let Some(entries) = self.entries(root, "", "a pipeline file") else {
            return out;
        };
        let mut pipelines = None;
        let mut registry = None;
        for (k, v) in entries {
            match k.as_str() {
                Some("pipelines") => pipelines = Some(v),
                Some("schema_registry") => {
                    registry = self
                        .typed::<SchemaRegistryConfig>(v, "schema_registry")
                        .map(|r| (r, (v.location, "schema_registry".to_owned())))
                }
                other => {
                    let key = other
                        .map(str::to_owned)
                        .or_else(|| k.scalar_text())
                        .unwrap_or_default();
                    let hint = did_you_mean(&key, ["pipelines", "schema_registry"])
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default();
                    self.err(
                        k,
                        &key,
                        format!(
                            "unknown top-level key `{key}`{hint} (a pipeline file has `pipelines:` and optionally `schema_registry:`)"
                        ),
                    );
                }
            }
        }
        let Some(pipelines) = pipelines else {
            self.err(root, "", "no `pipelines:` in this file");
            return out;
        };
        let Some(entries) = self.entries(pipelines, "pipelines", "`pipelines`") else {
            return out;
        };
        if entries.is_empty() {
            self.err(
                pipelines,
                "pipelines",
                "`pipelines` is empty: define at least one pipeline",
            );
        }
        for (k, v) in entries {
            let Some(name) = k.scalar_text() else {
                self.err(k, "pipelines", "a pipeline name must be text");
                continue;
            };
            let path = child_key("pipelines", &name);
            if let Err(why) = check_name(&name) {
                self.err(k, &path, format!("pipeline name: {why}"));
                continue;
            }
            if let Some(mut p) = self.pipeline(&name, v, &path, registry.as_ref()) {
                if v.get("schema_registry").is_none()
                    && let Some(r) = root.get("schema_registry")
                {
                    // Inherited from the file: a change there changes the pipeline.
                    p.canonical = format!("{}{}", p.canonical, r.to_json());
                }
                out.push(p);
            }
        }
        out
    }

    /// A file of transforms alone (`weir dlq redrive --transform`): `transforms:` and a list, or
    /// just the list.
    pub fn transforms_file(&mut self, root: &Node) -> Vec<ComponentSpec> {
        match &root.kind {
            NodeKind::Seq(_) => self.components(root, "", PluginKind::Transform),
            NodeKind::Map(entries) => {
                let mut out = Vec::new();
                for (k, v) in entries {
                    let key = k.scalar_text().unwrap_or_default();
                    if key == "transforms" {
                        out = self.components(v, "transforms", PluginKind::Transform);
                    } else {
                        self.err(
                            k,
                            &key,
                            format!("unknown key `{key}`: a transforms file has `transforms:` and a list of transforms"),
                        );
                    }
                }
                out
            }
            _ => {
                self.err(
                    root,
                    "",
                    format!(
                        "a transforms file is `transforms:` and a list of transforms, found {}",
                        root.type_name()
                    ),
                );
                Vec::new()
            }
        }
    }

    /// One pipeline as an API body: `name:` plus the keys a pipeline has in a file.
    pub fn body(&mut self, root: &Node) -> Option<PipelineSpec> {
        let entries = self.entries(root, "", "a pipeline body")?;
        let Some((k, name_node)) = entries.iter().find(|(k, _)| k.as_str() == Some("name")) else {
            self.err(
                root,
                "",
                "missing `name:`: a pipeline body is `name:` plus the keys of a pipeline (source, transforms, sinks, …)",
            );
            return None;
        };
        let Some(name) = name_node.as_str().map(str::to_owned) else {
            self.err(name_node, "name", "`name` must be text");
            return None;
        };
        if let Err(why) = check_name(&name) {
            self.err(name_node, "name", format!("pipeline name: {why}"));
            return None;
        }
        let rest: Vec<(Node, Node)> = entries
            .iter()
            .filter(|(key, _)| !std::ptr::eq(key, k))
            .cloned()
            .collect();
        let node = Node::new(root.location, NodeKind::Map(rest));
        self.pipeline(&name, &node, "", None)
    }

    fn pipeline(
        &mut self,
        name: &str,
        node: &Node,
        path: &str,
        file_registry: Option<&(SchemaRegistryConfig, (Location, String))>,
    ) -> Option<PipelineSpec> {
        let entries = self.entries(node, path, "a pipeline")?;
        let mut source = None;
        let mut transforms = Vec::new();
        let mut sinks = Vec::new();
        let mut dlq = None;
        let mut error_budget = None;
        let mut settings = PipelineSettings::default();
        let (mut schema_registry, mut schema_registry_at) = match file_registry.cloned() {
            Some((r, at)) => (Some(r), Some(at)),
            None => (None, None),
        };
        let mut saw_sinks = false;
        let mut ok = true;
        for (k, v) in entries {
            let key = k.scalar_text().unwrap_or_default();
            let kpath = child_key(path, &key);
            match key.as_str() {
                "source" => source = self.component(v, &kpath, PluginKind::Source, 0, false),
                "transforms" => transforms = self.components(v, &kpath, PluginKind::Transform),
                "sinks" => {
                    saw_sinks = true;
                    sinks = self.components(v, &kpath, PluginKind::Sink);
                }
                "dlq" => dlq = self.component(v, &kpath, PluginKind::Sink, 0, true),
                "error_budget" => error_budget = self.typed::<ErrorBudget>(v, &kpath),
                "settings" => settings = self.typed(v, &kpath).unwrap_or_default(),
                "schema_registry" => {
                    schema_registry = self.typed::<SchemaRegistryConfig>(v, &kpath);
                    schema_registry_at = Some((v.location, kpath.clone()));
                }
                _ => {
                    ok = false;
                    let hint = did_you_mean(&key, PIPELINE_KEYS.iter().copied())
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default();
                    self.err(
                        k,
                        &kpath,
                        format!(
                            "unknown pipeline key `{key}`{hint} (expected one of: {})",
                            PIPELINE_KEYS.join(", ")
                        ),
                    );
                }
            }
        }
        if let Some(b) = &error_budget
            && !(0.0..=1.0).contains(&b.max_failed_ratio)
        {
            let n = node
                .get("error_budget")
                .map(|n| n.locate("max_failed_ratio"))
                .unwrap_or(node);
            self.err(
                n,
                &format!("{path}.error_budget.max_failed_ratio"),
                "must be between 0.0 and 1.0",
            );
        }
        if node.get("source").is_none() {
            self.err(
                node,
                path,
                "missing `source:`: every pipeline reads from one source",
            );
            ok = false;
        }
        if !saw_sinks {
            self.err(
                node,
                path,
                "missing `sinks:`: every pipeline writes to at least one sink",
            );
            ok = false;
        } else if sinks.is_empty()
            && node
                .get("sinks")
                .is_some_and(|s| matches!(&s.kind, NodeKind::Seq(v) if v.is_empty()))
        {
            self.err(
                node.get("sinks").expect("checked"),
                &child_key(path, "sinks"),
                "`sinks` is empty: add at least one sink",
            );
            ok = false;
        }
        let mut seen = std::collections::HashSet::new();
        for s in &sinks {
            if !seen.insert(s.name.clone()) {
                self.err(
                    &Node::new(s.location, NodeKind::Null),
                    &s.path,
                    format!("two sinks are named `{}`; names must be unique", s.name),
                );
            }
        }
        if settings.buffer_batches == 0 {
            self.err(
                node.get("settings").unwrap_or(node),
                path,
                "settings.buffer_batches must be at least 1",
            );
        }
        let source = source?;
        if schema_registry.is_none() {
            for c in std::iter::once(&source).chain(&sinks) {
                if c.format.as_ref().is_some_and(Formats::uses_avro) {
                    self.err(
                        &Node::new(c.format_location.unwrap_or(c.location), NodeKind::Null),
                        &child_key(&c.path, "format"),
                        "an avro format needs a schema registry: add `schema_registry: { url: ... }` to the pipeline or the top of the file",
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        Some(PipelineSpec {
            name: Arc::from(name),
            canonical: node.to_json().to_string(),
            file: self.file.clone(),
            path: path.to_owned(),
            location: node.location,
            source,
            transforms,
            sinks,
            dlq,
            error_budget,
            settings,
            schema_registry,
            schema_registry_at,
        })
    }

    fn components(&mut self, node: &Node, path: &str, kind: PluginKind) -> Vec<ComponentSpec> {
        match &node.kind {
            NodeKind::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.component(item, &child_index(path, i), kind, i, false))
                .collect(),
            NodeKind::Null => Vec::new(),
            _ => {
                self.err(
                    node,
                    path,
                    format!(
                        "expected a list of {}s, found {}",
                        kind.noun(),
                        node.type_name()
                    ),
                );
                Vec::new()
            }
        }
    }

    fn component(
        &mut self,
        node: &Node,
        path: &str,
        kind: PluginKind,
        index: usize,
        dlq: bool,
    ) -> Option<ComponentSpec> {
        let entries = self.entries(node, path, &format!("a {}", kind.noun()))?;
        let allowed = runner_keys(kind, dlq);
        let mut type_node = None;
        let mut name = None;
        let mut options = StageOptions::default();
        if dlq {
            // Overridden by the DLQ's own `retry:`; without one its retries are bounded.
            options.retry = RetryOptions::dlq_default();
        }
        let mut transforms = Vec::new();
        let mut format = None;
        let mut format_location = None;
        let mut rest = Vec::new();
        let before = self.errors.len();
        for (k, v) in entries {
            let key = k.scalar_text().unwrap_or_default();
            let kpath = child_key(path, &key);
            if !allowed.contains(&key.as_str()) {
                // Sinks take every runner key, so any runner key not allowed here is misplaced.
                if SINK_RUNNER_KEYS.contains(&key.as_str()) {
                    self.err(
                        k,
                        &kpath,
                        format!(
                            "`{key}` is not available on a {}{}",
                            if dlq { "dlq " } else { "" },
                            kind.noun()
                        ),
                    );
                    continue;
                }
                rest.push((k.clone(), v.clone()));
                continue;
            }
            match key.as_str() {
                "type" => type_node = Some(v),
                "name" => {
                    name = self.typed::<String>(v, &kpath);
                    if let Some(Err(why)) = name.as_deref().map(check_name) {
                        self.err(v, &kpath, format!("component name: {why}"));
                    }
                }
                "transforms" => transforms = self.components(v, &kpath, PluginKind::Transform),
                "batch" => options.batch = self.typed(v, &kpath).unwrap_or_default(),
                "retry" => {
                    options.retry = self.typed(v, &kpath).unwrap_or_default();
                    if dlq && v.get("max_attempts").is_none() {
                        options.retry.max_attempts = RetryOptions::DLQ_MAX_ATTEMPTS;
                    }
                }
                "max_in_flight" => {
                    options.max_in_flight = self.typed(v, &kpath);
                    if options.max_in_flight == Some(0) {
                        self.err(v, &kpath, "max_in_flight must be at least 1");
                    }
                }
                "on_error" => options.on_error = self.typed(v, &kpath),
                "format" => {
                    format_location = Some(v.location);
                    format = self.typed::<Formats>(v, &kpath);
                    if let Some(f) = &format {
                        self.check_formats(f, v, &kpath, kind);
                    }
                }
                _ => unreachable!("allowed keys are handled"),
            }
        }
        if options.batch.max_records == 0 {
            self.err(
                node,
                &child_key(path, "batch"),
                "batch.max_records must be at least 1",
            );
        }
        if options.retry.max_attempts == 0 || options.retry.max_attempts < -1 {
            self.err(
                node,
                &child_key(path, "retry"),
                "retry.max_attempts must be -1 (forever) or at least 1",
            );
        }
        if kind != PluginKind::Transform && options.on_error == Some(OnError::Keep) {
            self.err(
                node,
                &child_key(path, "on_error"),
                "`on_error: keep` is only for transforms; sinks use dlq, drop or stop",
            );
        }
        let Some(type_node) = type_node else {
            self.err(
                node,
                path,
                format!(
                    "missing `type:`: which {} plugin is this? (`weir plugins` lists them)",
                    kind.noun()
                ),
            );
            return None;
        };
        let Some(type_name) = type_node.as_str().map(str::to_owned) else {
            self.err(
                type_node,
                &child_key(path, "type"),
                if matches!(type_node.kind, NodeKind::Null) {
                    "`type` must be text, found null: YAML reads a bare `null` as nothing; write `type: \"null\"` for the null sink".to_owned()
                } else {
                    format!("`type` must be text, found {}", type_node.type_name())
                },
            );
            return None;
        };
        if self.errors.len() > before {
            return None;
        }
        let name = name.unwrap_or_else(|| {
            if kind == PluginKind::Source || dlq {
                type_name.clone()
            } else {
                format!("{type_name}-{index}")
            }
        });
        Some(ComponentSpec {
            kind,
            type_name,
            name,
            path: path.to_owned(),
            location: node.location,
            type_location: type_node.location,
            config: Node::new(node.location, NodeKind::Map(rest)),
            options,
            transforms,
            format,
            format_location,
            is_dlq: dlq,
        })
    }

    /// Checks what the types cannot: a sink writing Avro needs a schema; reading options on a
    /// sink and writing options on a source are mistakes worth naming.
    fn check_formats(&mut self, f: &Formats, node: &Node, path: &str, kind: PluginKind) {
        for (side, spec) in [("key", f.key()), ("value", f.value())] {
            let at = node.get(side).unwrap_or(node);
            let spath = child_key(path, side);
            let writes_schema = spec.schema.is_some() || spec.schema_file.is_some();
            if spec.kind != FormatKind::Avro {
                if writes_schema || spec.use_latest {
                    self.err(
                        at,
                        &spath,
                        "`schema`, `schema_file` and `use_latest` are for `type: avro`",
                    );
                }
                continue;
            }
            match kind {
                PluginKind::Sink => {
                    if spec.schema.is_some() && spec.schema_file.is_some() {
                        self.err(
                            at,
                            &spath,
                            "give the schema once: `schema` or `schema_file`, not both",
                        );
                    } else if writes_schema == spec.use_latest {
                        self.err(
                            at,
                            &spath,
                            "writing Avro needs a schema: `schema` or `schema_file` (registered under the subject), or `use_latest: true` (the subject's latest registered schema)",
                        );
                    }
                }
                _ => {
                    if writes_schema || spec.use_latest {
                        self.err(
                            at,
                            &spath,
                            "a source reads the writer's schema from the registry by the id in each message; `schema`, `schema_file` and `use_latest` are for sinks",
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{RetryOptions, load_str};

    fn retries(dlq: &str) -> (i64, i64) {
        let yaml = format!(
            "pipelines:\n  p:\n    source: {{ type: stdin }}\n    sinks: [ {{ type: stdout }} ]\n    dlq: {dlq}\n"
        );
        let p = load_str("t.yaml", &yaml, &|_| None).unwrap().remove(0);
        (
            p.sinks[0].options.retry.max_attempts,
            p.dlq.unwrap().options.retry.max_attempts,
        )
    }

    #[test]
    fn a_dlq_retries_a_bounded_number_of_times_unless_told_otherwise() {
        assert_eq!(RetryOptions::DLQ_MAX_ATTEMPTS, 5);
        // Sinks retry for ever by default; the DLQ 5 times, with or without other retry options.
        assert_eq!(retries("{ type: stdout }"), (-1, 5));
        assert_eq!(
            retries("{ type: stdout, retry: { max_backoff: 1s } }"),
            (-1, 5)
        );
        assert_eq!(
            retries("{ type: stdout, retry: { max_attempts: 2 } }"),
            (-1, 2)
        );
        assert_eq!(
            retries("{ type: stdout, retry: { max_attempts: -1 } }"),
            (-1, -1)
        );
    }
}
