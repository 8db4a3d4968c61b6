//! The record as filters, templates and jq see it: EventBridge Pipes' Kafka event shape
//! `{topic, partition, offset, timestamp, key, headers, value}` with `value` decoded JSON.

use std::borrow::Cow;

use serde_json::{Map, Value as Json};

use crate::record::{DecodeError, Record};

/// The top-level fields of the event shape.
pub const EVENT_FIELDS: &[&str] = &[
    "topic",
    "partition",
    "offset",
    "timestamp",
    "key",
    "headers",
    "value",
];

/// A top-level field other than `value`, built on demand (cheap: no payload parsing).
/// Returns `None` when the record has no such field (e.g. no key, or no Kafka origin).
pub fn meta_field(record: &Record, name: &str) -> Option<Json> {
    let origin = record.meta.origin.as_ref();
    Some(match name {
        "topic" => Json::String(origin?.topic.to_string()),
        "partition" => Json::from(origin?.partition),
        "offset" => Json::from(origin?.offset),
        "timestamp" => Json::from(record.timestamp?),
        "key" => match &record.meta.key_json {
            Some(k) => (**k).clone(),
            None => Json::String(record.key_str()?.into_owned()),
        },
        "headers" => headers_json(record),
        _ => return None,
    })
}

/// Headers as an object of name → text (a repeated name keeps its last value; null headers are null).
pub fn headers_json(record: &Record) -> Json {
    let mut m = Map::new();
    for h in &record.headers {
        let v = h.value.as_deref().map_or(Json::Null, |b| {
            Json::String(String::from_utf8_lossy(b).into_owned())
        });
        m.insert(h.name.clone(), v);
    }
    Json::Object(m)
}

/// Looks up a top-level field, decoding the value (once) if it is `value`.
pub fn field<'r>(record: &'r mut Record, name: &str) -> Result<Option<Cow<'r, Json>>, DecodeError> {
    if name == "value" {
        return record.value.json().map(|j| Some(Cow::Borrowed(j)));
    }
    Ok(meta_field(record, name).map(Cow::Owned))
}

/// The whole event as one JSON object.
pub fn envelope(record: &mut Record) -> Result<Json, DecodeError> {
    let mut m = Map::new();
    for name in EVENT_FIELDS {
        if let Some(v) = field(record, name)? {
            m.insert((*name).to_owned(), v.into_owned());
        }
    }
    Ok(Json::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Header, Origin};
    use bytes::Bytes;
    use serde_json::json;

    #[test]
    fn envelope_has_pipes_shape() {
        let mut r = Record::from_bytes(&br#"{"id":7}"#[..]);
        r.key = Some(Bytes::from_static(b"k1"));
        r.timestamp = Some(1_700_000_000_000);
        r.headers.push(Header {
            name: "trace".into(),
            value: Some(Bytes::from_static(b"abc")),
        });
        r.meta.origin = Some(Origin {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
        });
        assert_eq!(
            envelope(&mut r).unwrap(),
            json!({"topic":"orders","partition":2,"offset":41,"timestamp":1_700_000_000_000i64,
                   "key":"k1","headers":{"trace":"abc"},"value":{"id":7}})
        );
    }

    #[test]
    fn missing_fields_are_absent_not_null() {
        let mut r = Record::from_json(json!(1));
        assert_eq!(envelope(&mut r).unwrap(), json!({"headers":{}, "value":1}));
    }
}
