//! Reading pipeline files and directories into [`PipelineSpec`]s.

use std::path::Path;

use super::env::interpolate;
use super::error::{ConfigError, ConfigErrors, SourceFile};
use super::node::{Location, Node};
use super::parse::Parser;
use super::spec::{ComponentSpec, PipelineSpec};

/// Where `${VAR}` values come from.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        // YAML 1.2 core booleans only: `NO`, `yes`, `on` stay strings (country codes, flags).
        strict_booleans: true,
    }
}

/// Parses one YAML text into a located tree (no interpolation).
pub fn parse_yaml(file: &SourceFile) -> Result<Node, ConfigError> {
    serde_saphyr::from_str_with_options::<Node>(&file.text, yaml_options()).map_err(|e| {
        let location = e
            .location()
            .map(|l| Location {
                line: u32::try_from(l.line()).unwrap_or(u32::MAX).max(1),
                column: u32::try_from(l.column()).unwrap_or(u32::MAX).max(1),
            })
            .unwrap_or(Location { line: 1, column: 1 });
        // serde-saphyr's message carries its own location and snippet; keep only the first line.
        let full = e.to_string();
        let first = full.lines().next().unwrap_or("invalid YAML").trim();
        let message = first.strip_prefix("error: ").unwrap_or(first);
        let message = user_message(strip_location_prefix(message));
        if message.contains("budget breached") {
            return file.error(location, "", format!("the document is too large or expands too much through anchors and aliases ({message}); pipeline files this big are refused"));
        }
        file.error(location, "", format!("invalid YAML: {message}"))
    })
}

/// The YAML library's message in a pipeline author's terms, without hints about the library's
/// own options.
fn user_message(m: &str) -> std::borrow::Cow<'_, str> {
    if let Some(rest) = m.strip_prefix("duplicate mapping key") {
        let key = rest
            .strip_prefix(": ")
            .and_then(|r| r.split(", set DuplicateKeyPolicy").next())
            .map(|k| format!(" `{k}`"))
            .unwrap_or_default();
        return format!("duplicate key{key}: a key may appear only once in a mapping").into();
    }
    if let Some(rest) = m.strip_prefix("non-finite float ") {
        let number = rest.split(" rejected").next().unwrap_or(rest);
        return format!(
            "{number} is beyond the range of a double (±1.7976931348623157e308); numbers must be finite"
        )
        .into();
    }
    if let Some(rest) = m.strip_suffix(" by configured policy") {
        return rest.to_owned().into();
    }
    if m.starts_with("!!binary scalar is not valid UTF-8") {
        return "a !!binary value that is not UTF-8 text cannot be used as text".into();
    }
    m.into()
}

fn strip_location_prefix(m: &str) -> &str {
    // "line 3 column 3: illegal ..." → "illegal ..."
    if m.starts_with("line ")
        && let Some((_, rest)) = m.split_once(": ")
    {
        return rest;
    }
    m
}

/// Loads pipelines from YAML text, expanding `${VAR}` through `env`.
pub fn load_str(
    name: &str,
    text: &str,
    env: EnvLookup<'_>,
) -> Result<Vec<PipelineSpec>, ConfigErrors> {
    let (pipelines, errors) = load_str_partial(name, text, env);
    if errors.is_empty() {
        Ok(pipelines)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Like [`load_str`], but returns the pipelines that parsed alongside every error, so a caller can
/// go on to build them and report all problems at once.
pub fn load_str_partial(
    name: &str,
    text: &str,
    env: EnvLookup<'_>,
) -> (Vec<PipelineSpec>, Vec<ConfigError>) {
    parse_with(name, text, env, Vec::new(), |p, root| p.file(root))
}

/// Loads one pipeline given as an API body (YAML or JSON, which is YAML too): `name:` plus the
/// keys a pipeline has in a file, with `${VAR}` expanded through `env`. Errors point into the
/// body, named `source_name`.
pub fn load_pipeline_body(
    source_name: &str,
    text: &str,
    env: EnvLookup<'_>,
) -> (Option<PipelineSpec>, Vec<ConfigError>) {
    parse_with(source_name, text, env, None, |p, root| p.body(root))
}

/// Loads a file of transforms alone (`transforms:` and a list, or just the list), as
/// `weir dlq redrive --transform` takes them, with `${VAR}` expanded through `env`. Returns the
/// file (to locate build errors in it), the transforms that parsed and every error.
pub fn load_transforms(
    name: &str,
    text: &str,
    env: EnvLookup<'_>,
) -> (SourceFile, Vec<ComponentSpec>, Vec<ConfigError>) {
    let (specs, errors) = parse_with(name, text, env, Vec::new(), |p, root| {
        p.transforms_file(root)
    });
    (SourceFile::new(name, text), specs, errors)
}

/// Parses YAML, expands `${VAR}`, then reads the document with `read`; a document that is not
/// YAML gives `empty`. Errors of every step, located in the document.
fn parse_with<T>(
    name: &str,
    text: &str,
    env: EnvLookup<'_>,
    empty: T,
    read: impl FnOnce(&mut Parser<'_>, &Node) -> T,
) -> (T, Vec<ConfigError>) {
    let file = SourceFile::new(name, text);
    let mut root = match parse_yaml(&file) {
        Ok(r) => r,
        Err(e) => return (empty, vec![e]),
    };
    let mut missing = Vec::new();
    interpolate(&mut root, "", env, &mut missing);
    let mut errors: Vec<ConfigError> = missing
        .into_iter()
        .map(|m| file.error(m.node.location, m.path, m.message))
        .collect();
    let mut parser = Parser {
        file: &file,
        errors: Vec::new(),
    };
    let out = read(&mut parser, &root);
    errors.extend(parser.errors);
    (out, errors)
}

/// Loads a file, or every `*.yaml` / `*.yml` file in a directory (sorted by name). Pipeline names
/// must be unique across all files.
pub fn load_path(path: &Path, env: EnvLookup<'_>) -> Result<Vec<PipelineSpec>, ConfigErrors> {
    let (pipelines, errors) = load_path_partial(path, env);
    if errors.is_empty() {
        Ok(pipelines)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Like [`load_path`], returning what parsed alongside every error.
pub fn load_path_partial(path: &Path, env: EnvLookup<'_>) -> (Vec<PipelineSpec>, Vec<ConfigError>) {
    let io_err = |p: &Path, e: std::io::Error| {
        (
            Vec::new(),
            vec![ConfigError {
                file: p.display().to_string().into(),
                location: Location { line: 1, column: 1 },
                path: String::new(),
                message: format!("cannot read: {e}"),
                line_text: None,
            }],
        )
    };
    let files = if path.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(e) => e,
            Err(e) => return io_err(path, e),
        };
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return io_err(
                path,
                std::io::Error::other("the directory has no .yaml or .yml files"),
            );
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut all: Vec<PipelineSpec> = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                errors.extend(io_err(&f, e).1);
                continue;
            }
        };
        let (pipelines, errs) = load_str_partial(&f.display().to_string(), &text, env);
        errors.extend(errs);
        {
            {
                for p in pipelines {
                    if let Some(first) = all.iter().find(|q| q.name == p.name) {
                        errors.push(p.file.error(
                            p.location,
                            p.path.clone(),
                            format!(
                                "pipeline `{}` is already defined in {}",
                                p.name, first.file.name
                            ),
                        ));
                    } else {
                        all.push(p);
                    }
                }
            }
        }
    }
    (all, errors)
}
