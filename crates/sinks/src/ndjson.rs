//! One JSON document per line: the record value as written, or the whole Pipes-shaped envelope.
//!
//! Every line is valid JSON, and a value that is not JSON is never lost: UTF-8 text is written as
//! a JSON string, other bytes (an Avro payload in a dead letter, or JSON with invalid UTF-8 in
//! a string) as base64, under `value_base64` in an envelope and as a base64 string otherwise.

use weir_core::Record;
use weir_core::event::{EVENT_FIELDS, meta_field};

/// Appends the record as one line: its value bytes (unmodified values are copied verbatim), or with
/// `envelope` the object `{topic, partition, offset, timestamp, key, headers, value}`.
pub fn write_line(record: &Record, envelope: bool, buf: &mut Vec<u8>) {
    if envelope {
        write_envelope(record, buf);
    } else if !write_value(record, buf) {
        write_base64(record, buf);
    }
    buf.push(b'\n');
}

/// Appends the record as the JSON object `{topic, partition, offset, timestamp, key, headers,
/// value}` (fields it does not have left out), on one line and without a newline. A value that
/// is JSON is written as it is, text as a JSON string, other bytes as base64 under
/// `value_base64`. Line sinks and the `http` sink write dead letters this way.
pub fn write_envelope(record: &Record, buf: &mut Vec<u8>) {
    buf.push(b'{');
    let mut first = true;
    for name in EVENT_FIELDS.iter().filter(|n| **n != "value") {
        if let Some(v) = meta_field(record, name) {
            if !first {
                buf.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *buf, name).expect("strings serialize");
            buf.push(b':');
            serde_json::to_writer(&mut *buf, &v).expect("JSON serializes");
        }
    }
    if !first {
        buf.push(b',');
    }
    let start = buf.len();
    buf.extend_from_slice(b"\"value\":");
    if !write_value(record, buf) {
        buf.truncate(start);
        buf.extend_from_slice(b"\"value_base64\":");
        write_base64(record, buf);
    }
    buf.push(b'}');
}

fn write_base64(record: &Record, buf: &mut Vec<u8>) {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(record.value.to_bytes());
    serde_json::to_writer(&mut *buf, &text).expect("strings serialize");
}

/// Writes the value as one line of JSON. Returns false (having written nothing) for bytes that
/// are not UTF-8, which the caller writes as base64.
fn write_value(record: &Record, buf: &mut Vec<u8>) -> bool {
    let start = buf.len();
    record.value.write_to(buf);
    let written = &buf[start..];
    // Bytes a scan already validated (or a splice of them) need only the one-line check.
    if record.value.is_checked() && record.value.output().is_none() && !written.contains(&b'\n') {
        return true;
    }
    // serde_json does not check the UTF-8 of strings it skips; JSON text is UTF-8.
    let utf8 = std::str::from_utf8(written).is_ok();
    if !written.contains(&b'\n') {
        // Checking is enough: valid JSON on one line is written as it is.
        if utf8 && serde_json::from_slice::<serde::de::IgnoredAny>(written).is_ok() {
            return true;
        }
    } else if let Ok(v) = serde_json::from_slice::<serde_json::Value>(written) {
        // Pretty-printed JSON would break the line format: compact it.
        buf.truncate(start);
        serde_json::to_writer(&mut *buf, &v).expect("JSON serializes");
        return true;
    }
    // Not JSON: text as a JSON string; other bytes are left to the caller (base64).
    let text = std::str::from_utf8(&buf[start..]).map(str::to_owned);
    buf.truncate(start);
    match text {
        Ok(text) => {
            serde_json::to_writer(&mut *buf, &text).expect("strings serialize");
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_core::Origin;

    #[test]
    fn value_lines_are_verbatim_and_envelopes_have_the_event_shape() {
        let mut r = Record::from_bytes(&br#"{"a": 1}"#[..]);
        let mut buf = Vec::new();
        write_line(&r, false, &mut buf);
        assert_eq!(buf, b"{\"a\": 1}\n");
        r.meta.origin = Some(Origin {
            topic: "t".into(),
            partition: 1,
            offset: 2,
        });
        buf.clear();
        write_line(&r, true, &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(
            v,
            json!({"topic":"t","partition":1,"offset":2,"headers":{},"value":{"a":1}})
        );
    }

    #[test]
    fn multi_line_values_are_compacted() {
        let r = Record::from_bytes(&b"{\n \"a\": 1\n}"[..]);
        let mut buf = Vec::new();
        write_line(&r, false, &mut buf);
        assert_eq!(buf, b"{\"a\":1}\n");
    }

    #[test]
    fn values_that_are_not_json_stay_whole_and_the_line_stays_one_line() {
        let mut buf = Vec::new();
        // Text with a newline: a JSON string.
        write_line(&Record::from_bytes(&b"not\njson"[..]), false, &mut buf);
        assert_eq!(buf, b"\"not\\njson\"\n");
        // Plain text is a JSON string too: every line is JSON.
        buf.clear();
        write_line(&Record::from_bytes(&b"a line"[..]), false, &mut buf);
        assert_eq!(buf, b"\"a line\"\n");
        // JSON with invalid UTF-8 inside a string is not JSON: base64, as binary is.
        buf.clear();
        let bad = b"{\"a\":1,\"s\":\"\xff\xfe\"}";
        write_line(&Record::from_bytes(&bad[..]), true, &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["value_base64"], json!("eyJhIjoxLCJzIjoi//4ifQ=="));
        buf.clear();
        write_line(&Record::from_bytes(&bad[..]), false, &mut buf);
        assert!(std::str::from_utf8(&buf).is_ok(), "{buf:?}");
        // In an envelope, text becomes a JSON string and binary becomes base64.
        buf.clear();
        write_line(&Record::from_bytes(&b"{not json"[..]), true, &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["value"], json!("{not json"));
        buf.clear();
        static AVRO: [u8; 8] = [0, 0, 0, 0, 1, 0x80, 0xff, b'\n'];
        let avro = &AVRO;
        write_line(&Record::from_bytes(&avro[..]), true, &mut buf);
        assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["value_base64"], json!("AAAAAAGA/wo="));
        assert!(v.get("value").is_none());
        buf.clear();
        write_line(&Record::from_bytes(&avro[..]), false, &mut buf);
        assert_eq!(buf, b"\"AAAAAAGA/wo=\"\n");
    }
}
