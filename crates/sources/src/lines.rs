//! Line-delimited JSON input shared by the `stdin` and `file` sources: one JSON document per line;
//! a line of UTF-8 text that is not JSON becomes a JSON string value, other bytes are kept as they
//! are; blank lines are skipped.

use std::sync::Arc;

use bytes::Bytes;
use serde::de::IgnoredAny;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use weir_core::{Origin, Record, SourceContext, SourceError};

/// True when `bytes` is one valid JSON document. serde_json does not check the UTF-8 of strings
/// it skips, so that is checked first: JSON text is UTF-8.
pub fn is_json(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok() && serde_json::from_slice::<IgnoredAny>(bytes).is_ok()
}

/// Turns one line (without its newline) into a record.
pub fn line_to_record(line: &[u8], topic: &Arc<str>, offset: i64) -> Option<Record> {
    let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
    if trimmed.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let mut r = if is_json(trimmed) {
        Record::from_bytes(Bytes::copy_from_slice(trimmed))
    } else {
        match std::str::from_utf8(trimmed) {
            Ok(text) => Record::from_json(serde_json::Value::String(text.to_owned())),
            // Not text: kept byte for byte, so a dead letter or a line sink (base64) loses nothing.
            Err(_) => Record::from_bytes(Bytes::copy_from_slice(trimmed)),
        }
    };
    r.meta.origin = Some(Origin {
        topic: topic.clone(),
        partition: 0,
        offset,
    });
    r.timestamp = Some(weir_core::time::now_millis());
    Some(r)
}

/// Reads records line by line, keeping the line number and the byte position after the last
/// whole line. A last line without its newline is held back while more may be appended
/// (`hold_partial`), and is a record otherwise.
pub struct LineReader<R> {
    reader: BufReader<R>,
    /// Bytes of the line being read (a partial line waits here for its newline).
    line: Vec<u8>,
    /// Line number of the next line.
    pub next_line: i64,
    /// Bytes consumed up to the end of the last whole line.
    pub position: u64,
}

/// What one call to [`LineReader::read_batch`] found.
#[derive(Debug)]
pub struct LineBatch {
    /// The records, in order.
    pub records: Vec<Record>,
    /// True when the input had nothing more to give (for now, when following a file).
    pub at_end: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader starting at `position` bytes and line `next_line`.
    pub fn new(inner: R, position: u64, next_line: i64) -> Self {
        LineReader {
            reader: BufReader::with_capacity(256 * 1024, inner),
            line: Vec::with_capacity(512),
            next_line,
            position,
        }
    }

    /// The bytes of a line still waiting for its newline.
    pub fn partial(&self) -> &[u8] {
        &self.line
    }

    /// Reads up to `max_batch` records, stopping early when no further whole line is already
    /// buffered (so a slow writer's lines are not held back). Cancel-safe: a partly read line
    /// stays in the reader.
    pub async fn read_batch(
        &mut self,
        topic: &Arc<str>,
        max_batch: usize,
        hold_partial: bool,
    ) -> std::io::Result<LineBatch> {
        let mut records = Vec::with_capacity(max_batch.min(1024));
        loop {
            let n = self.reader.read_until(b'\n', &mut self.line).await?;
            let complete = self.line.last() == Some(&b'\n');
            if n == 0 || !complete {
                // The end of the input for now: a partial line waits, unless nothing more comes.
                if !self.line.is_empty() && !hold_partial {
                    self.take_line(topic, &mut records);
                }
                return Ok(LineBatch {
                    records,
                    at_end: true,
                });
            }
            self.take_line(topic, &mut records);
            if records.len() >= max_batch || !self.reader.buffer().contains(&b'\n') {
                return Ok(LineBatch {
                    records,
                    at_end: false,
                });
            }
        }
    }

    /// Ends the current line (complete or not) as a record.
    fn take_line(&mut self, topic: &Arc<str>, records: &mut Vec<Record>) {
        self.position += self.line.len() as u64;
        let content = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
        if let Some(r) = line_to_record(content, topic, self.next_line) {
            records.push(r);
        }
        self.next_line += 1;
        self.line.clear();
    }

    /// Emits a held-back partial line as a record (the file it came from is finished).
    pub fn finish(&mut self, topic: &Arc<str>) -> Vec<Record> {
        let mut records = Vec::new();
        if !self.line.is_empty() {
            self.take_line(topic, &mut records);
        }
        records
    }

    /// The underlying reader, e.g. to seek a file after it was truncated.
    pub fn get_mut(&mut self) -> &mut BufReader<R> {
        &mut self.reader
    }

    /// Forgets buffered and partial data and restarts counting at `position`, `next_line`.
    pub fn reset(&mut self, position: u64, next_line: i64) {
        self.line.clear();
        self.position = position;
        self.next_line = next_line;
    }
}

/// Reads a stream to its end (or to shutdown), sending batches: stdin's loop.
pub async fn read_to_end<R: AsyncRead + Unpin>(
    reader: &mut LineReader<R>,
    cx: &SourceContext,
    topic: &Arc<str>,
    max_batch: usize,
) -> Result<(), SourceError> {
    loop {
        let batch = tokio::select! {
            biased;
            _ = cx.shutdown.cancelled() => return Ok(()),
            b = reader.read_batch(topic, max_batch, false) => b.map_err(|e| SourceError::Read(e.to_string()))?,
        };
        if !batch.records.is_empty() {
            cx.send(batch.records)
                .await
                .map_err(|_| SourceError::Closed)?;
        }
        if batch.at_end {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_stay_raw_and_other_lines_become_strings() {
        let t: Arc<str> = "t".into();
        let r = line_to_record(br#"{"a": 1}"#, &t, 0).unwrap();
        assert_eq!(r.value.original().unwrap().as_ref(), br#"{"a": 1}"#);
        assert!(r.value.parsed().is_none(), "valid JSON is not kept parsed");
        let s = line_to_record(b"hello world\r", &t, 1).unwrap();
        assert_eq!(s.value.parsed().unwrap(), &serde_json::json!("hello world"));
        assert!(line_to_record(b"   ", &t, 2).is_none());
        assert_eq!(s.meta.origin.unwrap().offset, 1);
    }

    #[test]
    fn a_json_line_with_invalid_utf8_in_a_string_is_not_json_and_keeps_its_bytes() {
        let t: Arc<str> = "t".into();
        let line = b"{\"a\":1,\"s\":\"\xff\xfe\"}";
        assert!(!is_json(line));
        let r = line_to_record(line, &t, 0).unwrap();
        assert_eq!(r.value.original().unwrap().as_ref(), line);
        assert!(r.value.decoded().is_err(), "decoding it is an error");
    }

    #[tokio::test]
    async fn a_partial_last_line_waits_for_its_newline_when_held_and_is_a_record_otherwise() {
        let t: Arc<str> = "t".into();
        let mut held = LineReader::new(&b"{\"id\":1}\n{\"id\":2,\"card\":"[..], 0, 0);
        let b = held.read_batch(&t, 10, true).await.unwrap();
        assert_eq!(b.records.len(), 1);
        let b = held.read_batch(&t, 10, true).await.unwrap();
        assert!(b.records.is_empty() && b.at_end, "{b:?}");
        assert_eq!(held.position, 9, "only the whole line is consumed");
        assert_eq!(held.partial(), b"{\"id\":2,\"card\":");
        let mut not_held = LineReader::new(&b"{\"id\":1}\nlast"[..], 0, 0);
        let mut got = not_held.read_batch(&t, 10, false).await.unwrap().records;
        let b = not_held.read_batch(&t, 10, false).await.unwrap();
        assert!(b.at_end);
        got.extend(b.records);
        assert_eq!(got.len(), 2);
        assert_eq!(*got[1].value.decoded().unwrap(), serde_json::json!("last"));
        assert_eq!(not_held.position, 13);
    }
}
