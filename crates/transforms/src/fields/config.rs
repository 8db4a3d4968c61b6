//! Options of the `fields` transform.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use weir_core::path::{FieldPath, Projection, Root};
use weir_core::{BuildContext, BuildError, PluginConfig, Transform};

use super::FieldsTransform;

/// Removes, renames, masks and hashes fields by path (PII filtering). Paths start at `value`
/// (`value.card.number`), may use `[*]` or `*` to reach every array element or object value, and
/// `headers.<name>` or `key` for `exclude`. Operations run in the order include, exclude, rename,
/// mask, hash.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldsTransformConfig {
    /// Keep only these value paths (everything else is removed).
    #[serde(default)]
    pub include: Vec<String>,
    /// Remove these paths (`value.…`, `headers.<name>` or `key`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Move a value path to another (`value.from: value.to`); no wildcards.
    #[serde(default)]
    pub rename: IndexMap<String, String>,
    /// Replace the values at these paths with `mask_with`.
    #[serde(default)]
    pub mask: Vec<String>,
    /// The replacement for masked values.
    #[serde(default = "default_mask_with")]
    pub mask_with: Json,
    /// For masked strings, keep this many trailing characters and fill the rest with the first
    /// character of `mask_with` (`4` shows a card's last four digits).
    #[serde(default)]
    pub keep_last: usize,
    /// Replace the values at these paths with the hex SHA-256 of `hash_salt` followed by the value.
    #[serde(default)]
    pub hash: Vec<String>,
    /// Salt for `hash` (required with `hash`; take it from the environment: `${HASH_SALT}`).
    #[serde(default)]
    pub hash_salt: Option<String>,
}

fn default_mask_with() -> Json {
    Json::String("****".into())
}

fn value_path(list: &str, i: usize, text: &str) -> Result<FieldPath, BuildError> {
    let p = FieldPath::parse(text)
        .map_err(|e| BuildError::at(format!("{list}[{i}]"), e.to_string()))?;
    if p.root != Root::Value {
        return Err(BuildError::at(
            format!("{list}[{i}]"),
            format!("`{list}` takes value paths such as `value.card.number`, not {text:?}"),
        ));
    }
    Ok(p)
}

impl PluginConfig for FieldsTransformConfig {
    const TYPE: &'static str = "fields";
    const SUMMARY: &'static str =
        "Include, exclude, rename, mask or hash fields by path (PII filtering)";
    const EXAMPLE: &'static str = r#"type: fields
exclude: [value.card.cvv, headers.internal]
mask: [value.card.number]
keep_last: 4
hash: [value.customer.email]
hash_salt: "${HASH_SALT:-change-me}"
"#;
    type Output = dyn Transform;

    fn build(self, _cx: &BuildContext) -> Result<Box<dyn Transform>, BuildError> {
        if self.include.is_empty()
            && self.exclude.is_empty()
            && self.rename.is_empty()
            && self.mask.is_empty()
            && self.hash.is_empty()
        {
            return Err(BuildError::new(
                "nothing to do: give at least one of include, exclude, rename, mask, hash",
            ));
        }
        let include = if self.include.is_empty() {
            None
        } else {
            let mut proj = Projection::default();
            for (i, t) in self.include.iter().enumerate() {
                proj.add(&value_path("include", i, t)?.segments);
            }
            Some(proj)
        };
        let exclude = self
            .exclude
            .iter()
            .enumerate()
            .map(|(i, t)| {
                FieldPath::parse(t)
                    .map_err(|e| BuildError::at(format!("exclude[{i}]"), e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let mut rename = Vec::new();
        for (from, to) in &self.rename {
            let f = FieldPath::parse(from).map_err(|e| BuildError::at("rename", e.to_string()))?;
            let t = FieldPath::parse(to).map_err(|e| BuildError::at("rename", e.to_string()))?;
            if f.root != Root::Value || t.root != Root::Value {
                return Err(BuildError::at(
                    "rename",
                    "rename takes value paths on both sides",
                ));
            }
            if f.has_wildcard() || t.has_wildcard() {
                return Err(BuildError::at(
                    "rename",
                    format!("`{from}: {to}`: rename cannot use a wildcard"),
                ));
            }
            rename.push((f.segments, t.segments));
        }
        let mask = self
            .mask
            .iter()
            .enumerate()
            .map(|(i, t)| value_path("mask", i, t).map(|p| p.segments))
            .collect::<Result<_, _>>()?;
        let hash: Vec<_> = self
            .hash
            .iter()
            .enumerate()
            .map(|(i, t)| value_path("hash", i, t).map(|p| p.segments))
            .collect::<Result<_, _>>()?;
        let salt = match (&self.hash_salt, hash.is_empty()) {
            (Some(s), _) => s.clone().into_bytes(),
            (None, true) => Vec::new(),
            (None, false) => {
                return Err(BuildError::at(
                    "hash",
                    "`hash` needs `hash_salt` (unsalted hashes of emails or card numbers are easy to reverse)",
                ));
            }
        };
        let mut t = FieldsTransform {
            splice: None,
            include,
            exclude,
            rename,
            mask,
            mask_with: self.mask_with,
            keep_last: self.keep_last,
            hash,
            salt,
        };
        t.splice = super::SplicePlan::new(&t);
        Ok(Box::new(t))
    }
}

weir_core::register_plugin!(FieldsTransformConfig);
