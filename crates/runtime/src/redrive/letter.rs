//! Dead letters as `weir dlq redrive` reads them: a Kafka DLQ record, or a line of a DLQ file
//! (the envelope the line sinks write), turned back into the record that failed; which letters
//! a redrive takes; and the headers that mark a redriven record.

use bytes::Bytes;
use serde_json::Value as Json;
use weir_core::{Header, Origin, Record};
use weir_engine::dead_letter::headers as errors;
use weir_transforms::filter::FilterTransform;

/// When the record was redriven (milliseconds since the Unix epoch).
pub const REDRIVE_AT: &str = "weir.redrive.at";
/// Where the dead letter was read: `<topic>/<partition>/<offset>` of the DLQ topic, or
/// `<file>:<line>` of the DLQ file (line numbers from 1).
pub const REDRIVE_FROM: &str = "weir.redrive.from";
/// How many times the record has been redriven, this time included.
pub const REDRIVE_COUNT: &str = "weir.redrive.count";

/// True for the headers a dead letter carries about its failure (`__connect.errors.*`,
/// `weir.errors.*`), which a redriven record leaves behind.
pub fn is_error_header(name: &str) -> bool {
    name.starts_with("__connect.errors.") || name.starts_with("weir.errors.")
}

/// How the dead-letter queue holds its letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LetterFormat {
    /// A Kafka topic: each message is the failed record (its key, value bytes, headers and
    /// timestamp) with the error headers added.
    Record,
    /// A file of JSON lines, each the envelope `{topic, partition, offset, timestamp, key,
    /// headers, value | value_base64}` with the error headers among its `headers`.
    Envelope,
}

/// What was read is not a dead letter Weir could have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotALetter(pub String);

fn header_text<'r>(r: &'r Record, name: &str) -> Option<&'r str> {
    std::str::from_utf8(r.header(name)?).ok()
}

/// The failed record's position in its source, from the error headers.
fn origin_from_headers(r: &Record) -> Option<Origin> {
    Some(Origin {
        topic: header_text(r, errors::TOPIC)?.into(),
        partition: header_text(r, errors::PARTITION)?.parse().ok()?,
        offset: header_text(r, errors::OFFSET)?.parse().ok()?,
    })
}

/// Turns what the DLQ's reader produced into the letter: the failed record with its error
/// headers, its origin (topic, partition, offset) the failed record's own.
pub fn decode(format: LetterFormat, read: Record) -> Result<Record, NotALetter> {
    match format {
        LetterFormat::Record => {
            let mut r = read;
            r.meta.origin = origin_from_headers(&r);
            Ok(r)
        }
        LetterFormat::Envelope => from_envelope(&read),
    }
}

fn from_envelope(line: &Record) -> Result<Record, NotALetter> {
    let json = line
        .value
        .decoded()
        .map_err(|e| NotALetter(format!("not an envelope: {e}")))?;
    let Some(obj) = json.as_object() else {
        return Err(NotALetter(
            "not an envelope: a JSON object with `value` and `headers` was expected".into(),
        ));
    };
    let mut r = match (obj.get("value"), obj.get("value_base64")) {
        (Some(v), _) => Record::from_bytes(serde_json::to_vec(v).expect("JSON serializes")),
        (None, Some(Json::String(b64))) => {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| NotALetter(format!("`value_base64` is not base64: {e}")))?;
            Record::from_bytes(bytes)
        }
        _ => {
            return Err(NotALetter(
                "not an envelope: it has neither `value` nor `value_base64` (was the DLQ written with `envelope: false`?)".into(),
            ));
        }
    };
    r.key = match obj.get("key") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(Bytes::from(s.clone())),
        Some(other) => Some(Bytes::from(other.to_string())),
    };
    match obj.get("headers") {
        None | Some(Json::Null) => {}
        Some(Json::Object(m)) => {
            for (name, v) in m {
                r.headers.push(Header {
                    name: name.clone(),
                    value: match v {
                        Json::Null => None,
                        Json::String(s) => Some(Bytes::from(s.clone())),
                        other => Some(Bytes::from(other.to_string())),
                    },
                });
            }
        }
        Some(_) => return Err(NotALetter("`headers` is not an object".into())),
    }
    r.timestamp = obj.get("timestamp").and_then(Json::as_i64);
    r.meta.origin = match (
        obj.get("topic").and_then(Json::as_str),
        obj.get("partition").and_then(Json::as_i64),
        obj.get("offset").and_then(Json::as_i64),
    ) {
        (Some(t), Some(p), Some(o)) => Some(Origin {
            topic: t.into(),
            partition: i32::try_from(p).map_err(|_| NotALetter(format!("partition {p}")))?,
            offset: o,
        }),
        _ => origin_from_headers(&r),
    };
    Ok(r)
}

/// Which letters a redrive takes. Empty lists take every value; all the given criteria must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Letters of this pipeline (`weir.errors.pipeline`); `None` takes every pipeline's.
    pub pipeline: Option<String>,
    /// Stages that failed (`__connect.errors.stage`: `sink`, `transform`).
    pub stages: Vec<String>,
    /// Components that failed (`weir.errors.component`: the sink's or transform's name).
    pub components: Vec<String>,
    /// Error classes (`__connect.errors.class.name`), in full (`weir.sink.Fatal`) or by their
    /// last part (`RetriesExhausted`).
    pub classes: Vec<String>,
    /// Letters dead-lettered at or after this time (milliseconds since the epoch).
    pub since: Option<i64>,
    /// Letters dead-lettered before this time.
    pub until: Option<i64>,
}

/// Why a letter was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Another pipeline's (or not written by Weir).
    Pipeline,
    /// Another stage, component or error class.
    Failure,
    /// Outside the time range.
    Time,
    /// The pattern does not match.
    Pattern,
    /// Its origin topic is not one the pipeline reads (redriving to the input topic).
    Topic,
}

/// A compiled selection.
pub struct Selector {
    pub(crate) selection: Selection,
    pub(crate) pattern: Option<FilterTransform>,
    /// With `--to input`: the topics a letter's origin must be one of.
    pub(crate) topics: Option<TopicRule>,
}

/// The input topics of a Kafka source: a list, or a pattern.
pub enum TopicRule {
    /// `topics:`.
    List(Vec<String>),
    /// `topic_pattern:` (anchored at the start, as the source subscribes).
    Pattern(regex::Regex),
}

impl TopicRule {
    fn allows(&self, topic: &str) -> bool {
        match self {
            TopicRule::List(l) => l.iter().any(|t| t == topic),
            TopicRule::Pattern(p) => p.is_match(topic),
        }
    }
}

impl Selector {
    /// Takes the letter, or says why not. Looks at the letter with its error headers.
    pub fn judge(&self, letter: &mut Record) -> Result<(), Skip> {
        let s = &self.selection;
        if let Some(p) = &s.pipeline
            && header_text(letter, errors::PIPELINE) != Some(p.as_str())
        {
            return Err(Skip::Pipeline);
        }
        let one_of = |list: &[String], name: &str, class: bool| {
            list.is_empty()
                || header_text(letter, name).is_some_and(|v| {
                    list.iter().any(|want| {
                        want == v || class && v.rsplit('.').next() == Some(want.as_str())
                    })
                })
        };
        if !one_of(&s.stages, errors::STAGE, false)
            || !one_of(&s.components, errors::COMPONENT, false)
            || !one_of(&s.classes, errors::CLASS, true)
        {
            return Err(Skip::Failure);
        }
        if s.since.is_some() || s.until.is_some() {
            let at = header_text(letter, errors::TIMESTAMP)
                .and_then(|t| t.parse::<i64>().ok())
                .or(letter.timestamp);
            let inside = at.is_some_and(|at| {
                s.since.is_none_or(|since| at >= since) && s.until.is_none_or(|until| at < until)
            });
            if !inside {
                return Err(Skip::Time);
            }
        }
        if let Some(f) = &self.pattern
            && !f.matches(letter).unwrap_or(false)
        {
            return Err(Skip::Pattern);
        }
        if let Some(rule) = &self.topics
            && !letter
                .meta
                .origin
                .as_ref()
                .is_some_and(|o| rule.allows(&o.topic))
        {
            return Err(Skip::Topic);
        }
        Ok(())
    }
}

/// The record to send again: the letter without its error headers, marked with where it was
/// read (`from`), when (`at`) and how many times it has been redriven.
pub fn redriven(mut letter: Record, from: String, at: i64) -> Record {
    let count = header_text(&letter, REDRIVE_COUNT)
        .and_then(|c| c.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    letter
        .headers
        .retain(|h| !is_error_header(&h.name) && !h.name.starts_with("weir.redrive."));
    letter.set_header(REDRIVE_AT, at.to_string());
    letter.set_header(REDRIVE_FROM, from);
    letter.set_header(REDRIVE_COUNT, count.to_string());
    letter.meta.error = None;
    letter
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A dead letter as the engine writes it, read back from a DLQ file line.
    fn file_letter(line: &str) -> Record {
        let line = Record::from_bytes(line.as_bytes().to_vec());
        decode(LetterFormat::Envelope, line).unwrap()
    }

    const LINE: &str = r#"{"topic":"orders","partition":2,"offset":41,"timestamp":1767225600000,"key":"card-1","headers":{"trace":"abc","__connect.errors.topic":"orders","__connect.errors.stage":"sink","__connect.errors.class.name":"weir.sink.RetriesExhausted","weir.errors.pipeline":"orders","weir.errors.component":"webhook","weir.errors.timestamp":"1767229200000"},"value":{"id":7,"amount":12.5}}"#;

    #[test]
    fn an_envelope_line_becomes_the_failed_record_and_loses_its_error_headers_when_redriven() {
        let letter = file_letter(LINE);
        assert_eq!(letter.key.as_deref(), Some(&b"card-1"[..]));
        assert_eq!(letter.timestamp, Some(1_767_225_600_000));
        let o = letter.meta.origin.clone().unwrap();
        assert_eq!((&*o.topic, o.partition, o.offset), ("orders", 2, 41));
        assert_eq!(
            serde_json::from_slice::<Json>(&letter.value.to_bytes()).unwrap(),
            json!({"id":7,"amount":12.5})
        );
        let r = redriven(letter, "dlq.ndjson:3".into(), 1_767_230_000_000);
        let names: Vec<&str> = r.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "trace",
                "weir.redrive.at",
                "weir.redrive.from",
                "weir.redrive.count"
            ]
        );
        assert_eq!(r.header(REDRIVE_FROM), Some(&b"dlq.ndjson:3"[..]));
        assert_eq!(r.header(REDRIVE_COUNT), Some(&b"1"[..]));
        // Redriven again (it failed once more): the count goes on.
        let mut again = r.clone();
        again.set_header("weir.errors.pipeline", "orders");
        let again = redriven(again, "dlq.ndjson:9".into(), 1_767_240_000_000);
        assert_eq!(again.header(REDRIVE_COUNT), Some(&b"2"[..]));
        assert_eq!(again.header("weir.errors.pipeline"), None);
    }

    #[test]
    fn binary_values_come_back_from_base64_and_lines_that_are_not_envelopes_are_refused() {
        let r = file_letter(r#"{"headers":{},"value_base64":"AAAAAAGA/wo="}"#);
        assert_eq!(&r.value.to_bytes()[..], &[0, 0, 0, 0, 1, 0x80, 0xff, b'\n']);
        for bad in [
            r#""just text""#,
            r#"{"headers":{}}"#,
            r#"{"value":1,"headers":[1]}"#,
        ] {
            let e = decode(
                LetterFormat::Envelope,
                Record::from_bytes(bad.as_bytes().to_vec()),
            );
            assert!(e.is_err(), "{bad}");
        }
    }

    fn selector(selection: Selection, pattern: Option<Json>) -> Selector {
        Selector {
            selection,
            pattern: pattern.map(|p| FilterTransform::new(&[p]).unwrap()),
            topics: None,
        }
    }

    #[test]
    fn selection_by_pipeline_stage_component_class_time_and_pattern() {
        let take = |s: Selection, p: Option<Json>| selector(s, p).judge(&mut file_letter(LINE));
        let base = Selection {
            pipeline: Some("orders".into()),
            ..Default::default()
        };
        assert_eq!(take(base.clone(), None), Ok(()));
        let other = Selection {
            pipeline: Some("payments".into()),
            ..Default::default()
        };
        assert_eq!(take(other, None), Err(Skip::Pipeline));
        let with = |f: fn(&mut Selection)| {
            let mut s = base.clone();
            f(&mut s);
            s
        };
        assert_eq!(take(with(|s| s.stages = vec!["sink".into()]), None), Ok(()));
        assert_eq!(
            take(with(|s| s.stages = vec!["transform".into()]), None),
            Err(Skip::Failure)
        );
        assert_eq!(
            take(with(|s| s.components = vec!["webhook".into()]), None),
            Ok(())
        );
        assert_eq!(
            take(with(|s| s.classes = vec!["RetriesExhausted".into()]), None),
            Ok(())
        );
        assert_eq!(
            take(
                with(|s| s.classes = vec!["weir.sink.RetriesExhausted".into()]),
                None
            ),
            Ok(())
        );
        assert_eq!(
            take(with(|s| s.classes = vec!["Fatal".into()]), None),
            Err(Skip::Failure)
        );
        // The time is when the record was dead-lettered (1767229200000), not its timestamp.
        assert_eq!(
            take(with(|s| s.since = Some(1_767_229_200_000)), None),
            Ok(())
        );
        assert_eq!(
            take(with(|s| s.until = Some(1_767_229_200_000)), None),
            Err(Skip::Time)
        );
        assert_eq!(
            take(with(|s| s.since = Some(1_767_225_600_001)), None),
            Ok(())
        );
        let pattern = json!({"value": {"amount": [{"numeric": [">", 10]}]}});
        assert_eq!(take(base.clone(), Some(pattern)), Ok(()));
        let pattern = json!({"headers": {"weir.errors.component": ["other"]}});
        assert_eq!(take(base, Some(pattern)), Err(Skip::Pattern));
    }
}
