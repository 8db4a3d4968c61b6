//! `filter`: keeps records that match any of a list of EventBridge event patterns, matched against
//! Pipes' Kafka event shape `{topic, partition, offset, timestamp, key, headers, value}`.

mod config;
mod number;
pub mod pattern;

use std::borrow::Cow;

use serde_json::Value as Json;
use weir_core::event::meta_field;
use weir_core::json::{ScanError, Slots, Wanted, scan_value};
use weir_core::{Flow, Record, Transform, TransformError};

pub use config::FilterTransformConfig;
pub use pattern::{Pattern, PatternError, Scanned, ValueView};

/// The compiled filter.
pub struct FilterTransform {
    patterns: Vec<Pattern>,
    needs_value: bool,
    /// The members of `value` the patterns read: a scan finds them without building a tree.
    wanted: Wanted,
}

impl FilterTransform {
    /// Compiles patterns; errors carry the index (`patterns[i]…`) of the bad one.
    pub fn new(patterns: &[Json]) -> Result<Self, PatternError> {
        let mut patterns = patterns
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
        let mut wanted = Wanted::new();
        for p in &mut patterns {
            p.want(&mut wanted);
        }
        Ok(FilterTransform {
            patterns,
            needs_value,
            wanted,
        })
    }

    /// True when the record matches any pattern. A value held as bytes is scanned for the
    /// members the patterns name, and validated whole, without building a tree: a value that is
    /// not JSON is the same error it is when decoded.
    pub fn matches(&self, record: &mut Record) -> Result<bool, TransformError> {
        if !self.needs_value || record.value.parsed().is_some() {
            return Ok(self.matches_parsed(record));
        }
        let mut slots = Slots::for_wanted(&self.wanted);
        match scan_value(&mut record.value, &self.wanted, slots.slots_mut()) {
            Some(Ok(_)) => {
                let doc = record.value.bytes().expect("scanned bytes");
                let view = ValueView::Scanned(Scanned {
                    doc,
                    slots: slots.slots(),
                });
                return Ok(self.matches_view(record, view));
            }
            // serde_json has the error message, or the meaning of its private keys.
            Some(Err(ScanError::Invalid | ScanError::Unsupported)) | None => {}
        }
        record.value.json()?;
        Ok(self.matches_parsed(record))
    }

    /// True when the record matches any pattern, for a record whose value was parsed already
    /// (an unparsed value is then seen as absent). For records shared between readers, as the
    /// `sse` sink's ring holds them.
    pub fn matches_parsed(&self, r: &Record) -> bool {
        self.matches_view(r, ValueView::Tree(r.value.parsed()))
    }

    fn matches_view(&self, r: &Record, value: ValueView<'_>) -> bool {
        let meta = |k: &str| -> Option<Cow<'_, Json>> { meta_field(r, k).map(Cow::Owned) };
        self.patterns.iter().any(|p| p.matches_event(value, &meta))
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
