//! Plugin registration: every built-in is linked in, names are unique, docs are current, and every
//! plugin's own example validates.

use weir_core::config::load_str;
use weir_core::registry::PluginKind;
use weir_core::{PluginConfig, Registry};
use weir_runtime::{MetricsRegistry, builtin_registry, docs};

#[test]
fn every_builtin_plugin_is_registered() {
    let r = builtin_registry().unwrap();
    let names = |k: PluginKind| {
        r.entries()
            .filter(|e| e.kind == k)
            .map(|e| e.type_name)
            .collect::<Vec<_>>()
    };
    // The lists the core, Kafka, HTTP and Redis issues promise.
    assert_eq!(
        names(PluginKind::Source),
        ["file", "generator", "kafka", "redis", "stdin"]
    );
    assert_eq!(
        names(PluginKind::Transform),
        [
            "fields", "filter", "http", "insert", "jq", "redis", "template"
        ]
    );
    assert_eq!(
        names(PluginKind::Sink),
        ["file", "http", "kafka", "log", "null", "redis", "stdout"]
    );
}

/// A second, different plugin that claims the name `null`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct ImpostorNull {}

impl PluginConfig for ImpostorNull {
    const TYPE: &'static str = "null";
    const SUMMARY: &'static str = "impostor";
    const EXAMPLE: &'static str = "type: \"null\"\n";
    type Output = dyn weir_core::Sink;
    fn build(
        self,
        _: &weir_core::BuildContext,
    ) -> Result<Box<dyn weir_core::Sink>, weir_core::BuildError> {
        Err(weir_core::BuildError::new("never built"))
    }
}

#[test]
fn duplicate_names_are_rejected_but_re_adding_the_same_type_is_not() {
    let r = Registry::empty()
        .with::<weir_sinks::null::NullSinkConfig>()
        .unwrap();
    let r = r
        .with::<weir_sinks::null::NullSinkConfig>()
        .expect("same type again is a no-op");
    let e = r.with::<ImpostorNull>().unwrap_err();
    assert!(
        e.to_string()
            .contains("two sink plugins are registered as `null`"),
        "{e}"
    );
}

#[test]
fn every_plugin_example_validates() {
    let r = builtin_registry().unwrap();
    for e in r.entries() {
        let component: String = e
            .example
            .lines()
            .map(|l| format!("        {l}\n"))
            .collect();
        let (source, transform, sink) = match e.kind {
            PluginKind::Source => (
                component.clone(),
                String::new(),
                "      - { type: \"null\" }\n".to_owned(),
            ),
            PluginKind::Transform => (
                "      type: stdin\n".to_owned(),
                format!("    transforms:\n      -\n{component}"),
                "      - { type: \"null\" }\n".to_owned(),
            ),
            PluginKind::Sink => (
                "      type: stdin\n".to_owned(),
                String::new(),
                format!("      -\n{component}"),
            ),
        };
        let source = if e.kind == PluginKind::Source {
            component.replace("        ", "      ")
        } else {
            source
        };
        let yaml =
            format!("pipelines:\n  example:\n    source:\n{source}{transform}    sinks:\n{sink}");
        let specs = load_str(e.type_name, &yaml, &|_| None)
            .unwrap_or_else(|err| panic!("{} example:\n{yaml}\n{err}", e.type_name));
        weir_runtime::build(specs, &r, &MetricsRegistry::default())
            .unwrap_or_else(|err| panic!("{} example:\n{yaml}\n{err}", e.type_name));
    }
}

#[test]
fn every_option_is_documented() {
    let r = builtin_registry().unwrap();
    for e in r.entries() {
        let (description, opts) = docs::options(e);
        assert!(
            !description.trim().is_empty(),
            "{} has no description",
            e.type_name
        );
        for o in opts {
            assert!(
                !o.description.trim().is_empty(),
                "{}.{} has no doc comment",
                e.type_name,
                o.name
            );
        }
    }
}

#[test]
fn typed_config_round_trip_from_yaml() {
    // A plugin author's view: the config struct is what the YAML says.
    let n = weir_core::config::load::parse_yaml(&weir_core::config::SourceFile::new(
        "t",
        "count: 5\nseed: 1\n",
    ))
    .unwrap();
    let c: weir_sources::generator::GeneratorSourceConfig =
        weir_core::config::from_node(&n, "").unwrap();
    assert_eq!((c.count, c.seed, c.anomaly_rate), (Some(5), Some(1), 0.03));
    assert_eq!(
        <weir_sources::generator::GeneratorSourceConfig as PluginConfig>::TYPE,
        "generator"
    );
}
