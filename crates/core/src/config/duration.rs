//! Human-readable durations in configuration: `100ms`, `1s`, `1m 30s`.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written for people: `250ms`, `5s`, `1m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        HumanDuration(Duration::from_millis(ms))
    }
    /// From seconds.
    pub const fn from_secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Duration {
        d.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 100ms, 5s or 1m")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(v.trim())
                    .map(HumanDuration)
                    .map_err(|e| {
                        E::custom(format!(
                            "invalid duration {v:?}: {e} (write e.g. 100ms, 5s, 1m)"
                        ))
                    })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                if v == 0 {
                    Ok(HumanDuration(Duration::ZERO))
                } else {
                    Err(E::custom(format!(
                        "a bare number is ambiguous: write {v}ms or {v}s"
                    )))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "a duration cannot be {v}: write e.g. 100ms or 5s"
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "a bare number is ambiguous: write {v}s or {v}ms"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration: a number and a unit (ms, s, m, h), e.g. `100ms`, `5s`, `1m 30s`.",
            "pattern": "^\\s*[0-9]+\\s*(ns|us|ms|s|sec|m|min|h|hr|d)(\\s*[0-9]+\\s*(ns|us|ms|s|sec|m|min|h|hr|d))*\\s*$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Node, de::from_node};

    fn parse(y: &str) -> Result<HumanDuration, String> {
        let n: Node = serde_saphyr::from_str(y).unwrap();
        from_node::<HumanDuration>(&n, "").map_err(|e| e.message)
    }

    #[test]
    fn parses_units_and_rejects_ambiguous_numbers() {
        assert_eq!(parse("100ms").unwrap().0, Duration::from_millis(100));
        assert_eq!(parse("1m 30s").unwrap().0, Duration::from_secs(90));
        assert!(parse("5").unwrap_err().contains("write 5ms or 5s"));
        assert!(parse("soon").unwrap_err().contains("invalid duration"));
    }
}
