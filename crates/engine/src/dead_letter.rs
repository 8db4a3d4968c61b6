//! Dead-letter records: the original key, value and headers plus error-context headers, using
//! Kafka Connect's `__connect.errors.*` names where they exist.

use weir_core::Record;

/// Why a record is being dead-lettered.
#[derive(Debug, Clone)]
pub struct StageFailure {
    /// `transform`, `sink` (or `decode`, `enrich`…).
    pub stage: &'static str,
    /// Component name.
    pub component: String,
    /// Error class, e.g. `weir.sink.Fatal`.
    pub class: String,
    /// Error message.
    pub message: String,
    /// Attempts made.
    pub attempts: u32,
}

/// Header names added to dead-lettered records.
pub mod headers {
    /// Origin topic.
    pub const TOPIC: &str = "__connect.errors.topic";
    /// Origin partition.
    pub const PARTITION: &str = "__connect.errors.partition";
    /// Origin offset.
    pub const OFFSET: &str = "__connect.errors.offset";
    /// Pipeline (Kafka Connect's connector name).
    pub const CONNECTOR: &str = "__connect.errors.connector.name";
    /// Stage that failed.
    pub const STAGE: &str = "__connect.errors.stage";
    /// Error class.
    pub const CLASS: &str = "__connect.errors.class.name";
    /// Error message.
    pub const MESSAGE: &str = "__connect.errors.exception.message";
    /// Pipeline name.
    pub const PIPELINE: &str = "weir.errors.pipeline";
    /// Component name.
    pub const COMPONENT: &str = "weir.errors.component";
    /// Attempts made.
    pub const ATTEMPTS: &str = "weir.errors.attempts";
    /// When the record was dead-lettered, in milliseconds since the Unix epoch (what
    /// `weir dlq redrive --since/--until` select on).
    pub const TIMESTAMP: &str = "weir.errors.timestamp";
}

/// Turns a failed record into its dead letter: original value bytes restored when the source gave
/// bytes, key and existing headers untouched, error headers added. The ack travels with it.
pub fn dead_letter(mut record: Record, pipeline: &str, f: &StageFailure) -> Record {
    if let Some(orig) = record.value.original().cloned() {
        record.value.set_bytes(orig);
    }
    if let Some(o) = record.meta.origin.clone() {
        record.set_header(headers::TOPIC, o.topic.to_string());
        record.set_header(headers::PARTITION, o.partition.to_string());
        record.set_header(headers::OFFSET, o.offset.to_string());
    }
    record.set_header(headers::CONNECTOR, pipeline.to_owned());
    record.set_header(headers::STAGE, f.stage.to_owned());
    record.set_header(headers::CLASS, f.class.clone());
    let mut msg = weir_core::redact::urls(&f.message).into_owned();
    if msg.len() > 4096 {
        let mut cut = 4096;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    record.meta.error = Some(format!("{} `{}`: {}", f.stage, f.component, msg).into());
    record.set_header(headers::MESSAGE, msg);
    record.set_header(headers::PIPELINE, pipeline.to_owned());
    record.set_header(headers::COMPONENT, f.component.clone());
    record.set_header(headers::ATTEMPTS, f.attempts.to_string());
    record.set_header(
        headers::TIMESTAMP,
        weir_core::time::now_millis().to_string(),
    );
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_core::{Header, Origin};

    #[test]
    fn keeps_original_bytes_key_headers_and_adds_context() {
        let mut r = Record::from_bytes(&br#"{"a": 1}"#[..]);
        r.key = Some("k".into());
        r.headers.push(Header {
            name: "mine".into(),
            value: Some("x".into()),
        });
        r.meta.origin = Some(Origin {
            topic: "orders".into(),
            partition: 3,
            offset: 42,
        });
        r.value.json_mut().unwrap()["a"] = json!(2);
        let f = StageFailure {
            stage: "sink",
            component: "webhook".into(),
            class: "weir.sink.Fatal".into(),
            message: "400 bad".into(),
            attempts: 1,
        };
        let d = dead_letter(r, "p1", &f);
        assert_eq!(
            &d.value.to_bytes()[..],
            br#"{"a": 1}"#,
            "original bytes, not the modified value"
        );
        assert_eq!(d.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(d.header("mine"), Some(&b"x"[..]));
        assert_eq!(d.header(headers::TOPIC), Some(&b"orders"[..]));
        assert_eq!(d.header(headers::PARTITION), Some(&b"3"[..]));
        assert_eq!(d.header(headers::OFFSET), Some(&b"42"[..]));
        assert_eq!(d.header(headers::STAGE), Some(&b"sink"[..]));
        assert_eq!(d.header(headers::MESSAGE), Some(&b"400 bad"[..]));
        assert_eq!(d.header(headers::COMPONENT), Some(&b"webhook"[..]));
        let at: i64 = std::str::from_utf8(d.header(headers::TIMESTAMP).unwrap())
            .unwrap()
            .parse()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!((now - 60_000..=now).contains(&at), "{at} is when it failed");
        assert_eq!(d.meta.error.as_deref(), Some("sink `webhook`: 400 bad"));
    }
}
