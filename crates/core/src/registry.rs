//! Plugin registration: each plugin declares a typed, documented config; the registry keeps an
//! erased entry per `type:` name, collected at link time with `inventory`.

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::{JsonSchema, Schema};
use serde::de::DeserializeOwned;

use crate::config::{ComponentSpec, ConfigError, SourceFile, did_you_mean, from_node};
pub use crate::plugin::PluginKind;
use crate::plugin::{Sink, Source, Transform};

/// Information a plugin gets while it is built (before anything connects).
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// Pipeline name.
    pub pipeline: Arc<str>,
    /// Component name.
    pub component: Arc<str>,
    /// The component's runner options (batching, retries, `max_in_flight`), for plugins whose
    /// own limits follow them (the `http` sink's concurrent requests).
    pub options: crate::config::StageOptions,
    /// True when the sink is the pipeline's `dlq:` (line sinks then write the error headers).
    pub is_dlq: bool,
    /// Where components keep state between runs (the `file` source's checkpoints): `weir run
    /// --data-dir`, `weir serve --state-dir`. `None` means such state is not kept.
    pub data_dir: Option<Arc<std::path::Path>>,
    /// Problems that do not stop the build but that the operator should hear about (a pattern
    /// that can never match): `weir validate` prints them with their location.
    pub warnings: Warnings,
    /// The component's metrics and health, for plugins that report more than the engine's
    /// standard counters (request latency, consumer lag, a broker that cannot be reached).
    pub telemetry: crate::telemetry::ComponentTelemetry,
}

/// Where a component is being built: its file, its pipeline, and what the process provides.
#[derive(Debug, Clone, Copy)]
pub struct BuildScope<'a> {
    /// The file (or API body) the component is written in.
    pub file: &'a SourceFile,
    /// The pipeline's name.
    pub pipeline: &'a Arc<str>,
    /// Where components keep state between runs.
    pub data_dir: Option<&'a Arc<std::path::Path>>,
    /// The process's metrics registry.
    pub telemetry: &'a crate::telemetry::Telemetry,
}

/// Warnings a plugin raises while it is built, located like errors.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<std::sync::Mutex<Vec<BuildError>>>);

impl Warnings {
    /// Records a warning about the option at `path` (relative to the component).
    pub fn push(&self, path: impl Into<String>, message: impl Into<String>) {
        self.0
            .lock()
            .expect("warnings lock")
            .push(BuildError::at(path, message));
    }

    /// Takes the warnings recorded so far.
    pub fn take(&self) -> Vec<BuildError> {
        std::mem::take(&mut *self.0.lock().expect("warnings lock"))
    }
}

impl BuildContext {
    /// A context for tests and embedders: default options, not a DLQ, no data folder.
    pub fn for_test(pipeline: &str, component: &str) -> Self {
        BuildContext {
            pipeline: Arc::from(pipeline),
            component: Arc::from(component),
            options: Default::default(),
            is_dlq: false,
            data_dir: None,
            warnings: Warnings::default(),
            telemetry: crate::telemetry::ComponentTelemetry::detached(),
        }
    }
}

/// A plugin's config is valid YAML but cannot be built (bad pattern, program or template).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    /// Path of the offending option relative to the component (`patterns[0].value.amount`), or empty.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl BuildError {
    /// An error about the component as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        BuildError {
            path: String::new(),
            message: message.into(),
        }
    }
    /// An error about one option.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        BuildError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A built component.
pub enum Built {
    /// A source.
    Source(Box<dyn Source>),
    /// A transform.
    Transform(Arc<dyn Transform>),
    /// A sink.
    Sink(Arc<dyn Sink>),
}

/// Links a trait object type to its plugin kind.
pub trait PluginOutput {
    /// The kind.
    const KIND: PluginKind;
    /// Wraps a built plugin.
    fn wrap(b: Box<Self>) -> Built;
}

impl PluginOutput for dyn Source {
    const KIND: PluginKind = PluginKind::Source;
    fn wrap(b: Box<Self>) -> Built {
        Built::Source(b)
    }
}
impl PluginOutput for dyn Transform {
    const KIND: PluginKind = PluginKind::Transform;
    fn wrap(b: Box<Self>) -> Built {
        Built::Transform(Arc::from(b))
    }
}
impl PluginOutput for dyn Sink {
    const KIND: PluginKind = PluginKind::Sink;
    fn wrap(b: Box<Self>) -> Built {
        Built::Sink(Arc::from(b))
    }
}

/// A plugin's typed configuration: the config is the documentation. Derive `Deserialize`
/// (with `deny_unknown_fields`) and `JsonSchema`, put a doc comment on every field, give defaults
/// with `#[serde(default = ...)]`, and register it with [`crate::register_plugin!`].
pub trait PluginConfig: DeserializeOwned + JsonSchema + 'static {
    /// The YAML `type:` name (equals the plugin's folder name).
    const TYPE: &'static str;
    /// One line for `weir plugins`.
    const SUMMARY: &'static str;
    /// A complete YAML example of the component, `type:` included; it must validate.
    const EXAMPLE: &'static str;
    /// `dyn Source`, `dyn Transform` or `dyn Sink`.
    type Output: ?Sized + PluginOutput;
    /// Builds the plugin. Compile patterns and programs here; never connect to anything.
    fn build(self, cx: &BuildContext) -> Result<Box<Self::Output>, BuildError>;
}

/// Why a component could not be built: a located deserialization error or a build error.
#[derive(Debug)]
pub enum ComponentError {
    /// The options did not deserialize.
    Options(crate::config::DeError),
    /// The plugin refused them.
    Build(BuildError),
}

type BuildFn = fn(&ComponentSpec, &BuildContext) -> Result<Built, ComponentError>;

/// The erased registration of one plugin.
#[derive(Clone, Copy)]
pub struct PluginEntry {
    /// Kind.
    pub kind: PluginKind,
    /// `type:` name.
    pub type_name: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// YAML example.
    pub example: &'static str,
    /// JSON Schema of the options.
    pub schema: fn() -> Schema,
    build: BuildFn,
    config_type: fn() -> std::any::TypeId,
}

impl std::fmt::Debug for PluginEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PluginEntry({} {})", self.kind.noun(), self.type_name)
    }
}

fn build_erased<C: PluginConfig>(
    spec: &ComponentSpec,
    cx: &BuildContext,
) -> Result<Built, ComponentError> {
    let config: C = from_node(&spec.config, &spec.path).map_err(ComponentError::Options)?;
    config
        .build(cx)
        .map(<C::Output as PluginOutput>::wrap)
        .map_err(ComponentError::Build)
}

fn schema_of<C: PluginConfig>() -> Schema {
    schemars::SchemaGenerator::default().into_root_schema_for::<C>()
}

impl PluginEntry {
    /// The entry for a config type.
    pub const fn of<C: PluginConfig>() -> Self {
        PluginEntry {
            kind: <C::Output as PluginOutput>::KIND,
            type_name: C::TYPE,
            summary: C::SUMMARY,
            example: C::EXAMPLE,
            schema: schema_of::<C>,
            build: build_erased::<C>,
            config_type: std::any::TypeId::of::<C>,
        }
    }
}

/// A link-time registration (see [`crate::register_plugin!`]).
pub struct Registration(pub PluginEntry);
inventory::collect!(Registration);

/// Registers a plugin config type with the built-in registry.
#[macro_export]
macro_rules! register_plugin {
    ($config:ty) => {
        $crate::inventory::submit! { $crate::registry::Registration($crate::registry::PluginEntry::of::<$config>()) }
    };
}

/// Two plugins claim the same kind and name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("two {kind} plugins are registered as `{name}`; plugin type names must be unique")]
pub struct DuplicatePlugin {
    /// Kind noun.
    pub kind: &'static str,
    /// Name.
    pub name: &'static str,
}

/// The plugins available to a pipeline.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: BTreeMap<(PluginKind, &'static str), PluginEntry>,
}

impl Registry {
    /// A registry with nothing in it.
    pub fn empty() -> Self {
        Registry::default()
    }

    /// Every plugin registered with [`crate::register_plugin!`] in the linked crates. The runner
    /// calls each plugin crate's `link()` first so the linker keeps them.
    pub fn from_inventory() -> Result<Self, DuplicatePlugin> {
        let mut r = Registry::empty();
        for reg in inventory::iter::<Registration> {
            r.insert(reg.0)?;
        }
        Ok(r)
    }

    /// Adds an entry. Adding the same config type again is a no-op; a different plugin with the
    /// same kind and name is an error.
    pub fn insert(&mut self, entry: PluginEntry) -> Result<(), DuplicatePlugin> {
        let key = (entry.kind, entry.type_name);
        if let Some(existing) = self.entries.get(&key) {
            if (existing.config_type)() == (entry.config_type)() {
                return Ok(());
            }
            return Err(DuplicatePlugin {
                kind: entry.kind.noun(),
                name: entry.type_name,
            });
        }
        self.entries.insert(key, entry);
        Ok(())
    }

    /// Adds a plugin by its config type (for embedders and tests).
    pub fn with<C: PluginConfig>(mut self) -> Result<Self, DuplicatePlugin> {
        self.insert(PluginEntry::of::<C>())?;
        Ok(self)
    }

    /// Looks up a plugin.
    pub fn get(&self, kind: PluginKind, name: &str) -> Option<&PluginEntry> {
        self.entries
            .iter()
            .find(|((k, n), _)| *k == kind && *n == name)
            .map(|(_, e)| e)
    }

    /// Every plugin, sorted by kind and name.
    pub fn entries(&self) -> impl Iterator<Item = &PluginEntry> {
        self.entries.values()
    }

    /// Builds one component, turning every failure into a located error.
    pub fn build(
        &self,
        spec: &ComponentSpec,
        scope: BuildScope<'_>,
        warnings: &mut Vec<ConfigError>,
    ) -> Result<Built, ConfigError> {
        let file = scope.file;
        let Some(entry) = self.get(spec.kind, &spec.type_name) else {
            let names: Vec<&str> = self
                .entries()
                .filter(|e| e.kind == spec.kind)
                .map(|e| e.type_name)
                .collect();
            let mut msg = format!("unknown {} type `{}`", spec.kind.noun(), spec.type_name);
            if let Some(s) = did_you_mean(&spec.type_name, names.iter().copied()) {
                msg.push_str(&format!(", did you mean `{s}`?"));
            }
            msg.push_str(&format!(
                " (known {}s: {})",
                spec.kind.noun(),
                names.join(", ")
            ));
            return Err(file.error(spec.type_location, format!("{}.type", spec.path), msg));
        };
        let cx = BuildContext {
            pipeline: scope.pipeline.clone(),
            component: Arc::from(spec.name.as_str()),
            options: spec.options,
            is_dlq: spec.is_dlq,
            data_dir: scope.data_dir.cloned(),
            warnings: Warnings::default(),
            telemetry: crate::telemetry::ComponentTelemetry::new(
                scope.telemetry,
                scope.pipeline,
                &spec.name,
                spec.component_kind(),
                &spec.type_name,
            ),
        };
        let built = (entry.build)(spec, &cx);
        warnings.extend(
            cx.warnings
                .take()
                .into_iter()
                .map(|w| locate(spec, file, w)),
        );
        built.map_err(|e| match e {
            ComponentError::Options(d) => file.error(
                d.location.unwrap_or(spec.location),
                d.path.unwrap_or_else(|| spec.path.clone()),
                spec.config.hide_expanded(&d.message),
            ),
            ComponentError::Build(b) => locate(spec, file, b),
        })
    }
}

/// A build error or warning placed at the option it names, with values that came from
/// `${VAR}` shown as their reference.
fn locate(spec: &ComponentSpec, file: &SourceFile, b: BuildError) -> ConfigError {
    let node = spec.config.locate(&b.path);
    let path = if b.path.is_empty() {
        spec.path.clone()
    } else if b.path.starts_with('[') {
        format!("{}{}", spec.path, b.path)
    } else {
        format!("{}.{}", spec.path, b.path)
    };
    let loc = if b.path.is_empty() {
        spec.location
    } else {
        node.location
    };
    file.error(loc, path, spec.config.hide_expanded(&b.message))
}
