//! `filter`: keeps records that match any of a list of EventBridge event patterns, matched against
//! Pipes' Kafka event shape `{topic, partition, offset, timestamp, key, headers, value}`.

mod config;
mod number;
pub mod pattern;

use std::borrow::Cow;

use serde_json::Value as Json;
use weir_core::event::meta_field;
use weir_core::{Flow, Record, Transform, TransformError};

pub use config::FilterTransformConfig;
pub use pattern::{Pattern, PatternError};

/// The compiled filter.
pub struct FilterTransform {
    patterns: Vec<Pattern>,
    needs_value: bool,
}

impl FilterTransform {
    /// Compiles patterns; errors carry the index (`patterns[i]…`) of the bad one.
    pub fn new(patterns: &[Json]) -> Result<Self, PatternError> {
        let patterns = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Pattern::compile(p).map_err(|e| PatternError {
                    path: if e.path.is_empty() {
                        format!("patterns[{i}]")
                    } else {
                        format!("patterns[{i}].{}", e.path)
                    },
                    message: e.message,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let needs_value = patterns
            .iter()
            .any(|p| p.top_fields().any(|f| f == "value"));
        Ok(FilterTransform {
            patterns,
            needs_value,
        })
    }

    /// True when the record matches any pattern.
    pub fn matches(&self, record: &mut Record) -> Result<bool, TransformError> {
        if self.needs_value {
            record.value.json()?;
        }
        Ok(self.matches_parsed(record))
    }

    /// True when the record matches any pattern, for a record whose value was parsed already
    /// (an unparsed value is then seen as absent). For records shared between readers, as the
    /// `sse` sink's ring holds them.
    pub fn matches_parsed(&self, r: &Record) -> bool {
        let lookup = |k: &str| -> Option<Cow<'_, Json>> {
            if k == "value" {
                r.value.parsed().map(Cow::Borrowed)
            } else {
                meta_field(r, k).map(Cow::Owned)
            }
        };
        self.patterns.iter().any(|p| p.matches_with(&lookup))
    }
}

impl Transform for FilterTransform {
    fn apply(&self, record: &mut Record) -> Result<Flow, TransformError> {
        Ok(if self.matches(record)? {
            Flow::Keep
        } else {
            Flow::Drop
        })
    }
}

#[cfg(test)]
mod tests;
