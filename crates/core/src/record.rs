//! The record that flows through a pipeline: key, lazily decoded value, headers, timestamp, metadata and ack.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value as Json;

use crate::ack::Ack;

/// Why a value could not be decoded as JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value is not valid JSON: {0}")]
pub struct DecodeError(pub String);

/// A record's value: the raw bytes as they arrived, decoded to JSON at most once and only when
/// someone needs the whole tree.
///
/// Stages that need only a few members read them from the bytes ([`crate::json`]): a filter
/// scans for the fields its patterns name, and masking, field exclusion and insertion splice the
/// bytes ([`Value::set_spliced`]). An unmodified value is written out as its original bytes, a
/// spliced one as its edited bytes, and only a value changed as a tree is serialized from JSON.
/// The original bytes are kept after any change so that a dead-letter queue can receive the
/// record exactly as the source produced it.
#[derive(Debug, Clone, Default)]
pub struct Value {
    raw: Option<Bytes>,
    /// The bytes after splices (valid JSON), when the value was edited without a tree.
    edited: Option<Bytes>,
    /// The decoded tree: a cache of the current bytes, or the value itself once `tree_modified`.
    json: Option<Arc<Json>>,
    /// The tree is the value (built or changed as JSON); the bytes are stale.
    tree_modified: bool,
    /// The current bytes are known to be valid JSON (a scan passed them, or they are a splice).
    checked: bool,
    /// The members of the current bytes' root object, from the scan that checked them.
    index: Option<crate::json::RootIndex>,
    /// Bytes a sink's converter encoded (Avro, say): written out instead of the value, while
    /// `raw` stays the source's original for dead letters.
    output: Option<Bytes>,
}

impl Value {
    /// A value from raw bytes (expected to hold JSON); nothing is parsed until asked.
    pub fn from_bytes(raw: impl Into<Bytes>) -> Self {
        Value {
            raw: Some(raw.into()),
            ..Value::default()
        }
    }

    /// A value built from JSON; it has no original bytes and serializes on output.
    pub fn from_json(json: Json) -> Self {
        Value {
            json: Some(Arc::new(json)),
            tree_modified: true,
            ..Value::default()
        }
    }

    /// The bytes the source produced, if the value came from bytes.
    pub fn original(&self) -> Option<&Bytes> {
        self.raw.as_ref()
    }

    /// The value's current bytes when it is held as bytes (unmodified or spliced), `None` when it
    /// is a tree (built or changed as JSON). Valid JSON only if the source's bytes were.
    pub fn bytes(&self) -> Option<&Bytes> {
        if self.tree_modified {
            None
        } else {
            self.edited.as_ref().or(self.raw.as_ref())
        }
    }

    /// True when the current bytes ([`Value::bytes`]) are known to be valid JSON: a scan
    /// validated them ([`Value::set_checked`]) or they are a splice of valid JSON. Later scans
    /// then only look for members, and line sinks write them without checking them again.
    pub fn is_checked(&self) -> bool {
        self.checked && self.bytes().is_some()
    }

    /// Records that a scan found the current bytes valid JSON, with the index of their root
    /// object's members if it made one.
    pub fn set_checked(&mut self, index: Option<crate::json::RootIndex>) {
        self.checked = true;
        self.index = index;
    }

    /// The index of the current bytes' root object, from the scan that checked them.
    pub fn index(&self) -> Option<&crate::json::RootIndex> {
        self.index.as_ref().filter(|_| self.is_checked())
    }

    /// True when the value was built or changed (as JSON or by splicing its bytes), so its
    /// output differs from the original bytes.
    pub fn is_modified(&self) -> bool {
        self.tree_modified || self.edited.is_some()
    }

    /// The decoded JSON if it has been decoded already.
    pub fn parsed(&self) -> Option<&Json> {
        self.json.as_deref()
    }

    /// Decodes the value (once) and returns it.
    pub fn json(&mut self) -> Result<&Json, DecodeError> {
        if self.json.is_none() {
            let raw = self.bytes().map_or(&b"null"[..], |b| &b[..]);
            let parsed: Json =
                serde_json::from_slice(raw).map_err(|e| DecodeError(e.to_string()))?;
            self.json = Some(Arc::new(parsed));
        }
        Ok(self.json.as_deref().expect("decoded above"))
    }

    /// Decodes the value (once) and returns it for modification; the value is then serialized on output.
    pub fn json_mut(&mut self) -> Result<&mut Json, DecodeError> {
        self.json()?;
        self.tree_modified = true;
        self.edited = None;
        self.output = None;
        let arc = self.json.as_mut().expect("decoded above");
        Ok(Arc::make_mut(arc))
    }

    /// Replaces the value with new JSON (the original bytes stay available for dead letters).
    pub fn set_json(&mut self, json: Json) {
        self.json = Some(Arc::new(json));
        self.tree_modified = true;
        self.edited = None;
        self.output = None;
    }

    /// Sets the JSON a source converter decoded from the original bytes (Avro, text): the
    /// original bytes stay for dead letters, and output is serialized from the JSON.
    pub fn set_decoded(&mut self, json: Json) {
        self.set_json(json);
    }

    /// Sets the value to `bytes`, an edit of its current bytes that is valid JSON (a splice);
    /// the original bytes stay for dead letters and any decoded tree is dropped.
    pub fn set_spliced(&mut self, bytes: impl Into<Bytes>) {
        self.edited = Some(bytes.into());
        self.json = None;
        self.tree_modified = false;
        self.checked = true;
        self.index = None;
        self.output = None;
    }

    /// Sets the bytes a sink converter encoded; they are what `to_bytes` returns from now on,
    /// while [`Value::original`] stays the source's bytes.
    pub fn set_output(&mut self, bytes: impl Into<Bytes>) {
        self.output = Some(bytes.into());
    }

    /// The bytes a sink converter encoded, if any.
    pub fn output(&self) -> Option<&Bytes> {
        self.output.as_ref()
    }

    /// Replaces the value with new raw bytes that become the value's output, unparsed.
    pub fn set_bytes(&mut self, raw: impl Into<Bytes>) {
        self.raw = Some(raw.into());
        self.edited = None;
        self.json = None;
        self.tree_modified = false;
        self.checked = false;
        self.index = None;
        self.output = None;
    }

    /// The decoded JSON without caching it: borrowed when already decoded.
    pub fn decoded(&self) -> Result<Cow<'_, Json>, DecodeError> {
        match (&self.json, self.bytes()) {
            (Some(j), _) => Ok(Cow::Borrowed(j)),
            (None, Some(raw)) => serde_json::from_slice(raw)
                .map(Cow::Owned)
                .map_err(|e| DecodeError(e.to_string())),
            (None, None) => Ok(Cow::Owned(Json::Null)),
        }
    }

    /// The bytes to write out: the converter's output, else the current bytes (original or
    /// spliced), else the JSON serialization.
    pub fn to_bytes(&self) -> Bytes {
        if let Some(out) = &self.output {
            return out.clone();
        }
        if let Some(b) = self.bytes() {
            return b.clone();
        }
        match &self.json {
            Some(json) => {
                Bytes::from(serde_json::to_vec(&**json).expect("JSON values always serialize"))
            }
            None => Bytes::from_static(b"null"),
        }
    }

    /// Appends the output bytes to `buf` without an intermediate allocation.
    pub fn write_to(&self, buf: &mut Vec<u8>) {
        if let Some(out) = &self.output {
            buf.extend_from_slice(out);
            return;
        }
        if let Some(b) = self.bytes() {
            buf.extend_from_slice(b);
            return;
        }
        match &self.json {
            Some(json) => {
                serde_json::to_writer(&mut *buf, &**json).expect("JSON values always serialize")
            }
            None => buf.extend_from_slice(b"null"),
        }
    }

    /// Approximate output length in bytes, for batching by bytes, without serializing: a value
    /// changed as a tree is estimated by its original size (serializing to measure would cost
    /// more than the batch limit it serves); a value built from JSON counts as 64 bytes.
    pub fn approx_size(&self) -> usize {
        self.output
            .as_ref()
            .or(self.edited.as_ref())
            .or(self.raw.as_ref())
            .map_or(64, |r| r.len())
    }
}

/// One record header. Kafka allows repeated names and null values; order is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub name: String,
    /// Header value; `None` is a null header.
    pub value: Option<Bytes>,
}

/// Where a record came from, when the source has positions (Kafka: topic, partition, offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Topic or stream name (shared, not copied per record).
    pub topic: Arc<str>,
    /// Partition number.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// Metadata that travels with a record but is not part of its payload.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Source position, when the source has one.
    pub origin: Option<Origin>,
    /// Tenant the record belongs to, when known.
    pub tenant: Option<Arc<str>>,
    /// Why the record failed, once it has (set on dead letters).
    pub error: Option<Arc<str>>,
    /// The key as JSON, when a key converter decoded it (Avro, JSON); filters and templates see
    /// this as `key` instead of the key's text.
    pub key_json: Option<Arc<Json>>,
}

/// A record. Cloning is cheap (bytes and decoded JSON are shared) and clones share the ack, which
/// is how fan-out works: the source hears "done" only when every clone is finished.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Key bytes, if any.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Value,
    /// Headers in order.
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch, if known.
    pub timestamp: Option<i64>,
    /// Source position, tenant.
    pub meta: Meta,
    /// Completion handle; see [`Ack`].
    pub ack: Ack,
}

impl Record {
    /// A record with a raw (JSON) value and nothing else.
    pub fn from_bytes(value: impl Into<Bytes>) -> Self {
        Record {
            value: Value::from_bytes(value),
            ..Default::default()
        }
    }

    /// A record with a JSON value and nothing else.
    pub fn from_json(value: Json) -> Self {
        Record {
            value: Value::from_json(value),
            ..Default::default()
        }
    }

    /// A new record sharing this one's key, headers, timestamp, metadata and ack, with another value.
    /// Transforms that split a record into several use this so the source waits for all of them.
    pub fn derive(&self, value: Json) -> Record {
        Record {
            key: self.key.clone(),
            value: Value::from_json(value),
            headers: self.headers.clone(),
            timestamp: self.timestamp,
            meta: self.meta.clone(),
            ack: self.ack.clone(),
        }
    }

    /// The first header with this name, as bytes.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .and_then(|h| h.value.as_deref())
    }

    /// Sets a header, replacing every header of the same name.
    pub fn set_header(&mut self, name: impl Into<String>, value: impl Into<Bytes>) {
        let name = name.into();
        self.headers.retain(|h| h.name != name);
        self.headers.push(Header {
            name,
            value: Some(value.into()),
        });
    }

    /// The key as text (lossy UTF-8), as filters and templates see it.
    pub fn key_str(&self) -> Option<Cow<'_, str>> {
        self.key.as_deref().map(String::from_utf8_lossy)
    }

    /// Approximate size in bytes, for batching by bytes.
    pub fn approx_size(&self) -> usize {
        self.value.approx_size()
            + self.key.as_ref().map_or(0, |k| k.len())
            + self
                .headers
                .iter()
                .map(|h| h.name.len() + h.value.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>()
    }
}

/// A batch of records: the unit of channel traffic between pipeline stages.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// The records.
    pub records: Vec<Record>,
}

impl Batch {
    /// A batch from records.
    pub fn new(records: Vec<Record>) -> Self {
        Batch { records }
    }
    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn untouched_value_is_never_parsed_and_passes_through_byte_for_byte() {
        // Deliberately odd spacing: a re-serialization would normalise it.
        let raw = br#"{ "a" :1,"b":  [1,2] }"#;
        let v = Value::from_bytes(&raw[..]);
        assert!(v.parsed().is_none());
        assert_eq!(&v.to_bytes()[..], &raw[..]);
        let mut out = Vec::new();
        v.write_to(&mut out);
        assert_eq!(out, raw);
    }

    #[test]
    fn reading_does_not_reserialize_but_modifying_does() {
        let raw = br#"{ "a" :1 }"#;
        let mut v = Value::from_bytes(&raw[..]);
        assert_eq!(v.json().unwrap()["a"], 1);
        assert_eq!(
            &v.to_bytes()[..],
            &raw[..],
            "a read must not change the output bytes"
        );
        v.json_mut().unwrap()["b"] = json!(2);
        assert_eq!(
            serde_json::from_slice::<Json>(&v.to_bytes()).unwrap(),
            json!({"a":1,"b":2})
        );
        assert_eq!(
            v.original().unwrap().as_ref(),
            raw,
            "original bytes survive a modification"
        );
    }

    #[test]
    fn invalid_json_is_a_decode_error_not_a_panic() {
        let mut v = Value::from_bytes(&b"{nope"[..]);
        let err = v.json().unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        // Still writes its bytes untouched.
        assert_eq!(&v.to_bytes()[..], b"{nope");
    }

    #[test]
    fn clones_share_decoded_json_until_one_is_modified() {
        let mut a = Value::from_bytes(&br#"{"x":1}"#[..]);
        a.json().unwrap();
        let mut b = a.clone();
        b.json_mut().unwrap()["x"] = json!(2);
        assert_eq!(a.parsed().unwrap()["x"], 1);
        assert_eq!(b.parsed().unwrap()["x"], 2);
    }

    #[test]
    fn set_header_replaces_all_of_that_name() {
        let mut r = Record::from_json(json!(1));
        r.headers.push(Header {
            name: "a".into(),
            value: Some(Bytes::from_static(b"1")),
        });
        r.headers.push(Header {
            name: "a".into(),
            value: Some(Bytes::from_static(b"2")),
        });
        r.set_header("a", "3");
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.header("a"), Some(&b"3"[..]));
    }
}
