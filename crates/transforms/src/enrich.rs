//! What the enrichments (`http`, `redis`) share: where an answer goes (`target`), which answers
//! drop the record, and the cache of answers by key.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use weir_core::path::{self, FieldPath, Root, Segment};
use weir_core::{BuildError, Flow, Record, TransformError};

/// Compiles `target`: a value path without wildcards (`value.customer`); `None` replaces the
/// value with the answer.
pub(crate) fn target(
    text: Option<&str>,
    example: &str,
) -> Result<Option<Vec<Segment>>, BuildError> {
    let Some(t) = text else {
        return Ok(None);
    };
    let fp = FieldPath::parse(t).map_err(|e| BuildError::at("target", e.to_string()))?;
    if fp.root != Root::Value || fp.has_wildcard() || fp.segments.is_empty() {
        return Err(BuildError::at(
            "target",
            format!("{t:?}: a value path without wildcards, e.g. {example}"),
        ));
    }
    Ok(Some(fp.segments))
}

/// An answer that drops the record, as in EventBridge Pipes: null, `{}` or `[]`.
pub(crate) fn is_empty(j: &Json) -> bool {
    match j {
        Json::Null => true,
        Json::Object(o) => o.is_empty(),
        Json::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Puts a (non-empty) answer into the record: at `target`, or as the new value, where an array
/// splits the record into one per item.
pub(crate) fn merge(
    record: &mut Record,
    target: Option<&[Segment]>,
    answer: Json,
) -> Result<Flow, TransformError> {
    match target {
        Some(segs) => {
            let v = record.value.json_mut()?;
            path::insert(v, segs, answer)
                .map_err(|e| TransformError::Fatal(format!("target: {e}")))?;
            Ok(Flow::Keep)
        }
        None => match answer {
            Json::Array(items) => Ok(Flow::Split(
                items.into_iter().map(|j| record.derive(j)).collect(),
            )),
            other => {
                record.value.set_json(other);
                Ok(Flow::Keep)
            }
        },
    }
}

/// Answers by key with when they were fetched, and the keys oldest first.
type Entries = (HashMap<String, (Instant, Json)>, VecDeque<String>);

/// Answers by key for `ttl`, at most `max` of them (the oldest go first).
pub(crate) struct TtlCache {
    ttl: Duration,
    max: usize,
    entries: Mutex<Entries>,
}

impl TtlCache {
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        TtlCache {
            ttl,
            max: max.max(1),
            entries: Mutex::default(),
        }
    }

    pub(crate) fn get(&self, k: &str) -> Option<Json> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.0
            .get(k)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, j)| j.clone())
    }

    pub(crate) fn put(&self, k: String, j: Json) {
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        if map.insert(k.clone(), (Instant::now(), j)).is_none() {
            order.push_back(k);
        }
        while map.len() > self.max {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_forgets_the_oldest_past_max_entries() {
        let c = TtlCache::new(Duration::from_secs(60), 2);
        c.put("a".into(), Json::from(1));
        c.put("b".into(), Json::from(2));
        c.put("a".into(), Json::from(3)); // an update, not a new entry
        c.put("c".into(), Json::from(4));
        assert_eq!(c.get("a"), None, "the oldest went first");
        assert_eq!(c.get("b"), Some(Json::from(2)));
        assert_eq!(c.get("c"), Some(Json::from(4)));
    }

    #[test]
    fn the_cache_forgets_answers_older_than_the_ttl() {
        let c = TtlCache::new(Duration::from_millis(30), 10);
        c.put("a".into(), Json::from(1));
        assert_eq!(c.get("a"), Some(Json::from(1)));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get("a"), None);
    }

    #[test]
    fn empty_answers_are_null_and_empty_containers() {
        for (j, empty) in [
            (Json::Null, true),
            (serde_json::json!({}), true),
            (serde_json::json!([]), true),
            (serde_json::json!(0), false),
            (serde_json::json!(""), false),
            (serde_json::json!({"a": null}), false),
        ] {
            assert_eq!(is_empty(&j), empty, "{j}");
        }
    }
}
