//! Stream replies read into plain types: the entries of `XRANGE`, `XREADGROUP` and
//! `XAUTOCLAIM` (RESP2 and RESP3 shapes alike), and entry ids as numbers.

use redis::Value;

/// One stream entry: its id and its fields in order. `fields` is `None` for an entry still
/// pending in a group but deleted from the stream (trimmed), which `XREADGROUP ... 0` reports
/// as an id with no fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `<milliseconds>-<sequence>`.
    pub id: String,
    /// Field names and values.
    pub fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl Entry {
    /// The first value of field `name`.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .as_ref()?
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }
}

/// A reply that is not shaped as a stream reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected reply from Redis: {0}")]
pub struct ShapeError(pub String);

fn shape(what: &str, v: &Value) -> ShapeError {
    ShapeError(format!("{what}, got {v:?}"))
}

fn text(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.clone().into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        _ => None,
    }
}

fn items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

/// The entries of an `XRANGE` reply (or the entry list inside the others).
pub fn entries(v: &Value) -> Result<Vec<Entry>, ShapeError> {
    if let Value::Nil = v {
        return Ok(Vec::new());
    }
    let list = items(v).ok_or_else(|| shape("a list of entries", v))?;
    list.iter().map(entry).collect()
}

fn entry(v: &Value) -> Result<Entry, ShapeError> {
    let parts = items(v).ok_or_else(|| shape("an entry [id, fields]", v))?;
    let id = parts
        .first()
        .and_then(text)
        .ok_or_else(|| shape("an entry id", v))?;
    let id = String::from_utf8(id).map_err(|_| shape("a UTF-8 entry id", v))?;
    let fields = match parts.get(1) {
        None | Some(Value::Nil) => None,
        Some(Value::Map(pairs)) => Some(
            pairs
                .iter()
                .map(|(k, v)| Some((text(k)?, text(v)?)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| shape("field names and values", v))?,
        ),
        Some(f) => {
            let flat = items(f).ok_or_else(|| shape("a list of fields", f))?;
            if flat.len() % 2 != 0 {
                return Err(shape("fields in pairs", f));
            }
            Some(
                flat.chunks(2)
                    .map(|kv| Some((text(&kv[0])?, text(&kv[1])?)))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| shape("field names and values", f))?,
            )
        }
    };
    Ok(Entry { id, fields })
}

/// The streams of an `XREAD`/`XREADGROUP` reply with their entries; `Nil` (a `BLOCK` that
/// timed out) is no streams.
pub fn read_reply(v: &Value) -> Result<Vec<(String, Vec<Entry>)>, ShapeError> {
    let pairs: Vec<(&Value, &Value)> = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        other => {
            let list = items(other).ok_or_else(|| shape("a list of streams", other))?;
            list.iter()
                .map(|s| match items(s) {
                    Some([name, es]) => Ok((name, es)),
                    _ => Err(shape("a stream [name, entries]", s)),
                })
                .collect::<Result<_, _>>()?
        }
    };
    pairs
        .into_iter()
        .map(|(name, es)| {
            let name = text(name)
                .and_then(|n| String::from_utf8(n).ok())
                .ok_or_else(|| shape("a stream name", name))?;
            Ok((name, entries(es)?))
        })
        .collect()
}

/// An `XAUTOCLAIM` reply: the cursor to continue from (`0-0` when the scan is complete) and
/// the entries claimed (the ids of deleted entries, which Redis 7 lists third, are dropped:
/// Redis already removed them from the pending list).
pub fn autoclaim_reply(v: &Value) -> Result<(String, Vec<Entry>), ShapeError> {
    let parts = items(v).ok_or_else(|| shape("[cursor, entries, deleted]", v))?;
    let cursor = parts
        .first()
        .and_then(text)
        .and_then(|c| String::from_utf8(c).ok())
        .ok_or_else(|| shape("a cursor", v))?;
    let claimed = match parts.get(1) {
        Some(es) => entries(es)?,
        None => Vec::new(),
    };
    Ok((cursor, claimed))
}

/// An entry id's two numbers.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The id as one offset, `milliseconds × 1,000,000 + sequence`, so the decimal digits read as
/// the id (`1700000000000-5` is `1700000000000000005`). `None` when it does not fit: a sequence
/// of a million or more (only ids chosen by hand have those) or a time past the year 2262.
pub fn id_offset(id: &str) -> Option<i64> {
    let (ms, seq) = parse_id(id)?;
    if seq >= 1_000_000 {
        return None;
    }
    i64::try_from(ms.checked_mul(1_000_000)?.checked_add(seq)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn read_replies_in_both_protocols() {
        let es = Value::Array(vec![
            Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("value"), bulk("{}")]),
            ]),
            Value::Array(vec![bulk("2-0"), Value::Nil]),
        ]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("s"), es.clone()])]);
        let resp3 = Value::Map(vec![(bulk("s"), es)]);
        for v in [resp2, resp3] {
            let got = read_reply(&v).unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].0, "s");
            assert_eq!(got[0].1[0].field("value"), Some(&b"{}"[..]));
            assert_eq!(got[0].1[1].fields, None);
        }
        assert!(read_reply(&Value::Nil).unwrap().is_empty());
        assert!(read_reply(&Value::Int(3)).is_err());
    }

    #[test]
    fn ids_become_offsets_that_read_as_the_id() {
        assert_eq!(
            id_offset("1700000000000-5"),
            Some(1_700_000_000_000_000_005)
        );
        assert_eq!(id_offset("0-1"), Some(1));
        assert_eq!(id_offset("1-1000000"), None);
        assert_eq!(id_offset("nope"), None);
    }
}
