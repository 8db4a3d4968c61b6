//! One JSON document per line: the record value as written, or the whole Pipes-shaped envelope.

use weir_core::Record;
use weir_core::event::{EVENT_FIELDS, meta_field};

/// Appends the record as one line: its value bytes (unmodified values are copied verbatim), or with
/// `envelope` the object `{topic, partition, offset, timestamp, key, headers, value}`.
pub fn write_line(record: &Record, envelope: bool, buf: &mut Vec<u8>) {
    if envelope {
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
        buf.extend_from_slice(b"\"value\":");
        write_value(record, buf);
        buf.extend_from_slice(b"}\n");
    } else {
        write_value(record, buf);
        buf.push(b'\n');
    }
}

fn write_value(record: &Record, buf: &mut Vec<u8>) {
    let start = buf.len();
    record.value.write_to(buf);
    // A raw value containing a newline (pretty-printed JSON) would break the line format.
    if buf[start..].contains(&b'\n') {
        let v = record
            .value
            .decoded()
            .map(|v| v.into_owned())
            .unwrap_or(serde_json::Value::Null);
        buf.truncate(start);
        serde_json::to_writer(&mut *buf, &v).expect("JSON serializes");
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
}
