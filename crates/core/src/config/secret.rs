//! Secrets in configuration: written inline, through `${ENV}`, or as a `file:` reference, and
//! never shown by `Debug`, logs or `weir validate`.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

/// A password, token or key. `file:/run/secrets/kafka-password` reads the file (trailing newline
/// removed) when the component is built; anything else is the secret itself, usually `${ENV}`.
/// `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// A `file:` secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read secret file {path}: {reason}")]
pub struct SecretError {
    /// The referenced file.
    pub path: String,
    /// Why it could not be read.
    pub reason: String,
}

impl Secret {
    /// A secret given directly (tests, embedders).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's value: the text itself, or the content of the referenced file.
    pub fn reveal(&self) -> Result<String, SecretError> {
        match self.0.strip_prefix("file:") {
            Some(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| SecretError {
                    path: path.to_owned(),
                    reason: e.to_string(),
                }),
            None => Ok(self.0.clone()),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.strip_prefix("file:") {
            Some(path) => write!(f, "Secret(file:{path})"),
            None => f.write_str("Secret(<redacted>)"),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A secret: the value (usually `${ENV_VAR}`), or `file:/path` to read it from a file. Never logged."
        })
    }
}

/// Replaces every occurrence of each secret in `text` with `***`, for messages that may echo
/// configuration (client library errors).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(*s, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.reveal().unwrap(), "hunter2");
    }

    #[test]
    fn file_reference_is_read_and_trimmed() {
        let dir = std::env::temp_dir().join(format!("weir-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        let s = Secret::new(format!("file:{}", p.display()));
        assert_eq!(s.reveal().unwrap(), "s3cret");
        let missing = Secret::new("file:/nonexistent/weir/pw");
        let err = missing.reveal().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/weir/pw"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn redact_replaces_every_occurrence() {
        assert_eq!(
            redact("bad value hunter2 for hunter2", &["hunter2"]),
            "bad value *** for ***"
        );
    }
}
