//! Line-delimited JSON input shared by the `stdin` and `file` sources: one JSON document per line;
//! a line that is not JSON becomes a JSON string value; blank lines are skipped.

use std::sync::Arc;

use bytes::Bytes;
use serde::de::IgnoredAny;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use weir_core::{Origin, Record, SourceContext, SourceError};

/// Turns one line (without its newline) into a record.
pub fn line_to_record(line: &[u8], topic: &Arc<str>, offset: i64) -> Option<Record> {
    let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
    if trimmed.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let mut r = if serde_json::from_slice::<IgnoredAny>(trimmed).is_ok() {
        Record::from_bytes(Bytes::copy_from_slice(trimmed))
    } else {
        Record::from_json(serde_json::Value::String(
            String::from_utf8_lossy(trimmed).into_owned(),
        ))
    };
    r.meta.origin = Some(Origin {
        topic: topic.clone(),
        partition: 0,
        offset,
    });
    r.timestamp = Some(now_millis());
    Some(r)
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How reading ended.
#[derive(Debug, PartialEq, Eq)]
pub enum LinesEnd {
    /// End of input.
    Eof,
    /// Shutdown was requested.
    Shutdown,
}

/// Reads lines until EOF or shutdown, sending a batch whenever `max_batch` lines are collected or
/// no further complete line is already buffered (so a slow producer's lines are not held back).
/// `next_offset` is the line number of the next line and is advanced.
pub async fn read_lines<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    cx: &SourceContext,
    topic: &Arc<str>,
    next_offset: &mut i64,
    max_batch: usize,
) -> Result<LinesEnd, SourceError> {
    let mut batch = Vec::with_capacity(max_batch.min(1024));
    let mut line = Vec::with_capacity(512);
    loop {
        line.clear();
        let n = tokio::select! {
            biased;
            _ = cx.shutdown.cancelled() => {
                flush(cx, &mut batch).await?;
                return Ok(LinesEnd::Shutdown);
            }
            n = reader.read_until(b'\n', &mut line) => n.map_err(|e| SourceError::Read(e.to_string()))?,
        };
        if n == 0 {
            flush(cx, &mut batch).await?;
            return Ok(LinesEnd::Eof);
        }
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        if let Some(r) = line_to_record(content, topic, *next_offset) {
            batch.push(r);
        }
        *next_offset += 1;
        if batch.len() >= max_batch || !reader.buffer().contains(&b'\n') {
            flush(cx, &mut batch).await?;
        }
    }
}

async fn flush(cx: &SourceContext, batch: &mut Vec<Record>) -> Result<(), SourceError> {
    if batch.is_empty() {
        return Ok(());
    }
    cx.send(std::mem::take(batch))
        .await
        .map_err(|_| SourceError::Closed)?;
    Ok(())
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
}
