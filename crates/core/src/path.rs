//! Field paths such as `value.card.number`, `value.items[*].sku` or `value["odd.key"]`, and the
//! operations the field transforms need on JSON: read, modify in place, remove, insert, project.

use std::fmt;

use serde_json::{Map, Value as Json};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
    /// Every element of an array or every value of an object (`[*]` or `*`).
    Any,
}

/// What a path starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// The record value.
    Value,
    /// A header by name.
    Header(String),
    /// The key.
    Key,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    /// Where it starts.
    pub root: Root,
    /// Steps below the root (only for `value`).
    pub segments: Vec<Segment>,
    text: String,
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A path that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field path {path:?}: {reason}")]
pub struct PathError {
    /// The path as written.
    pub path: String,
    /// Why.
    pub reason: String,
}

impl FieldPath {
    /// Parses `value.a.b`, `value.items[*].x`, `value.list[0]`, `value["a.b"]`, `headers.name`, `key`.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let err = |reason: &str| PathError {
            path: text.to_owned(),
            reason: reason.to_owned(),
        };
        let segs = segments(text).map_err(|r| err(&r))?;
        let mut it = segs.into_iter();
        let root = match it.next() {
            Some(Segment::Key(k)) if k == "value" => Root::Value,
            Some(Segment::Key(k)) if k == "key" => Root::Key,
            Some(Segment::Key(k)) if k == "headers" => match it.next() {
                Some(Segment::Key(name)) => Root::Header(name),
                _ => return Err(err("a header path is `headers.<name>`")),
            },
            _ => {
                return Err(err(
                    "paths start at `value`, `key` or `headers.<name>` (e.g. `value.card.number`)",
                ));
            }
        };
        let segments: Vec<Segment> = it.collect();
        if root != Root::Value && !segments.is_empty() {
            return Err(err("only `value` paths can go deeper"));
        }
        Ok(FieldPath {
            root,
            segments,
            text: text.to_owned(),
        })
    }

    /// True when the path contains `*`.
    pub fn has_wildcard(&self) -> bool {
        self.segments.contains(&Segment::Any)
    }
}

/// Parses dotted/bracketed segments (shared by field paths and JSONPath-like template variables).
pub fn parse_segments(text: &str) -> Result<Vec<Segment>, PathError> {
    segments(text).map_err(|reason| PathError {
        path: text.to_owned(),
        reason,
    })
}

fn segments(text: &str) -> Result<Vec<Segment>, String> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let mut expect_key = true;
    while i < b.len() {
        match b[i] {
            b'.' => {
                if expect_key {
                    return Err("empty segment".into());
                }
                i += 1;
                expect_key = true;
                if i == b.len() {
                    return Err("ends with `.`".into());
                }
            }
            b'[' => {
                let end = text[i..].find(']').ok_or("unclosed `[`")? + i;
                let inner = text[i + 1..end].trim();
                let seg = if inner == "*" {
                    Segment::Any
                } else if let Some(q) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    Segment::Key(q.to_owned())
                } else if let Some(q) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\''))
                {
                    Segment::Key(q.to_owned())
                } else {
                    Segment::Index(
                        inner.parse().map_err(|_| {
                            format!("`[{inner}]` is not an index, `*` or a quoted key")
                        })?,
                    )
                };
                out.push(seg);
                i = end + 1;
                expect_key = false;
            }
            _ => {
                if !expect_key {
                    return Err("expected `.` or `[` between segments".into());
                }
                let end = text[i..].find(['.', '[']).map_or(b.len(), |e| e + i);
                let key = &text[i..end];
                out.push(if key == "*" {
                    Segment::Any
                } else {
                    Segment::Key(key.to_owned())
                });
                i = end;
                expect_key = false;
            }
        }
    }
    if out.is_empty() {
        return Err("empty path".into());
    }
    Ok(out)
}

/// Every value the segments reach.
pub fn get_all<'a>(json: &'a Json, segs: &[Segment], out: &mut Vec<&'a Json>) {
    let Some((first, rest)) = segs.split_first() else {
        out.push(json);
        return;
    };
    match (first, json) {
        (Segment::Key(k), Json::Object(m)) => {
            if let Some(v) = m.get(k) {
                get_all(v, rest, out)
            }
        }
        (Segment::Index(i), Json::Array(a)) => {
            if let Some(v) = a.get(*i) {
                get_all(v, rest, out)
            }
        }
        (Segment::Any, Json::Array(a)) => a.iter().for_each(|v| get_all(v, rest, out)),
        (Segment::Any, Json::Object(m)) => m.values().for_each(|v| get_all(v, rest, out)),
        _ => {}
    }
}

/// The single value a wildcard-free path reaches.
pub fn get<'a>(json: &'a Json, segs: &[Segment]) -> Option<&'a Json> {
    let mut cur = json;
    for s in segs {
        cur = match (s, cur) {
            (Segment::Key(k), Json::Object(m)) => m.get(k)?,
            (Segment::Index(i), Json::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Calls `f` on every value the segments reach; returns how many.
pub fn for_each_mut(json: &mut Json, segs: &[Segment], f: &mut dyn FnMut(&mut Json)) -> usize {
    let Some((first, rest)) = segs.split_first() else {
        f(json);
        return 1;
    };
    match (first, json) {
        (Segment::Key(k), Json::Object(m)) => m.get_mut(k).map_or(0, |v| for_each_mut(v, rest, f)),
        (Segment::Index(i), Json::Array(a)) => {
            a.get_mut(*i).map_or(0, |v| for_each_mut(v, rest, f))
        }
        (Segment::Any, Json::Array(a)) => a.iter_mut().map(|v| for_each_mut(v, rest, f)).sum(),
        (Segment::Any, Json::Object(m)) => m.values_mut().map(|v| for_each_mut(v, rest, f)).sum(),
        _ => 0,
    }
}

/// Removes every value the segments reach (object entries and array elements).
pub fn remove(json: &mut Json, segs: &[Segment]) -> Vec<Json> {
    let mut removed = Vec::new();
    remove_into(json, segs, &mut removed);
    removed
}

fn remove_into(json: &mut Json, segs: &[Segment], removed: &mut Vec<Json>) {
    let Some((last, parent)) = segs.split_last() else {
        return;
    };
    for_each_mut(json, parent, &mut |p| match (last, p) {
        (Segment::Key(k), Json::Object(m)) => removed.extend(m.shift_remove(k)),
        (Segment::Index(i), Json::Array(a)) if *i < a.len() => removed.push(a.remove(*i)),
        (Segment::Any, Json::Object(m)) => {
            removed.extend(std::mem::take(m).into_iter().map(|(_, v)| v))
        }
        (Segment::Any, Json::Array(a)) => removed.append(a),
        _ => {}
    });
}

/// A value could not be set at a path (a step goes through a value that is not an object).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InsertError(String);

/// Sets the value at a wildcard-free path, creating objects on the way. Fails when a step
/// would go through a non-object.
pub fn insert(json: &mut Json, segs: &[Segment], value: Json) -> Result<(), InsertError> {
    insert_at(json, segs, value).map_err(InsertError)
}

fn insert_at(json: &mut Json, segs: &[Segment], value: Json) -> Result<(), String> {
    let Some((last, parents)) = segs.split_last() else {
        *json = value;
        return Ok(());
    };
    let mut cur = json;
    for s in parents {
        cur = match (s, cur) {
            (Segment::Key(k), Json::Object(m)) => m
                .entry(k.clone())
                .or_insert_with(|| Json::Object(Map::new())),
            (Segment::Key(k), v @ Json::Null) => {
                *v = Json::Object(Map::new());
                v.as_object_mut()
                    .expect("just set")
                    .entry(k.clone())
                    .or_insert_with(|| Json::Object(Map::new()))
            }
            (Segment::Index(i), Json::Array(a)) => {
                let len = a.len();
                a.get_mut(*i)
                    .ok_or_else(|| format!("index {i} is past the end of an array of {len}"))?
            }
            (s, other) => return Err(format!("cannot step into {} with {s:?}", kind(other))),
        };
    }
    match (last, cur) {
        (Segment::Key(k), Json::Object(m)) => {
            m.insert(k.clone(), value);
            Ok(())
        }
        (Segment::Key(k), v @ Json::Null) => {
            let mut m = Map::new();
            m.insert(k.clone(), value);
            *v = Json::Object(m);
            Ok(())
        }
        (Segment::Index(i), Json::Array(a)) if *i < a.len() => {
            a[*i] = value;
            Ok(())
        }
        (s, other) => Err(format!("cannot set {s:?} in {}", kind(other))),
    }
}

fn kind(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A tree of paths, for keeping only some fields (`include`).
#[derive(Debug, Default, Clone)]
pub struct Projection {
    keep_all: bool,
    children: Vec<(Segment, Projection)>,
}

impl Projection {
    /// Adds a path to keep.
    pub fn add(&mut self, segs: &[Segment]) {
        let Some((first, rest)) = segs.split_first() else {
            self.keep_all = true;
            return;
        };
        let child = match self.children.iter().position(|(s, _)| s == first) {
            Some(i) => &mut self.children[i].1,
            None => {
                self.children.push((first.clone(), Projection::default()));
                &mut self.children.last_mut().expect("pushed").1
            }
        };
        child.add(rest);
    }

    /// The parts of `json` the paths reach, in their original structure; `None` when none match.
    pub fn apply(&self, json: &Json) -> Option<Json> {
        if self.keep_all {
            return Some(json.clone());
        }
        match json {
            Json::Object(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    let mut merged: Option<Json> = None;
                    for (seg, child) in &self.children {
                        let hit =
                            matches!(seg, Segment::Any) || matches!(seg, Segment::Key(s) if s == k);
                        if hit && let Some(p) = child.apply(v) {
                            merged = Some(match merged {
                                Some(prev) => merge(prev, p),
                                None => p,
                            });
                        }
                    }
                    if let Some(v) = merged {
                        out.insert(k.clone(), v);
                    }
                }
                (!out.is_empty()).then_some(Json::Object(out))
            }
            Json::Array(a) => {
                let mut out = Vec::new();
                for (i, v) in a.iter().enumerate() {
                    for (seg, child) in &self.children {
                        let hit = matches!(seg, Segment::Any)
                            || matches!(seg, Segment::Index(j) if *j == i);
                        if hit && let Some(p) = child.apply(v) {
                            out.push(p);
                            break;
                        }
                    }
                }
                (!out.is_empty()).then_some(Json::Array(out))
            }
            _ => None,
        }
    }
}

fn merge(a: Json, b: Json) -> Json {
    match (a, b) {
        (Json::Object(mut x), Json::Object(y)) => {
            for (k, v) in y {
                // In place, so a merged key keeps its position.
                match x.get_mut(&k) {
                    Some(old) => *old = merge(std::mem::take(old), v),
                    None => {
                        x.insert(k, v);
                    }
                }
            }
            Json::Object(x)
        }
        (_, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Vec<Segment> {
        FieldPath::parse(s).unwrap().segments
    }

    #[test]
    fn parses_roots_wildcards_indexes_and_quoted_keys() {
        assert_eq!(
            p("value.a[*].b"),
            vec![
                Segment::Key("a".into()),
                Segment::Any,
                Segment::Key("b".into())
            ]
        );
        assert_eq!(
            p("value[\"x.y\"][2]"),
            vec![Segment::Key("x.y".into()), Segment::Index(2)]
        );
        assert_eq!(
            FieldPath::parse("headers.trace").unwrap().root,
            Root::Header("trace".into())
        );
        for bad in [
            "",
            "card.number",
            "value..a",
            "value.a[",
            "value.a[x]",
            "headers",
            "key.x",
            "value.",
        ] {
            assert!(FieldPath::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn wildcard_reaches_every_array_element() {
        let mut j = json!({"items":[{"sku":"a","n":1},{"sku":"b"},{"n":3}]});
        let n = for_each_mut(&mut j, &p("value.items[*].sku"), &mut |v| *v = json!("X"));
        assert_eq!(n, 2);
        assert_eq!(j, json!({"items":[{"sku":"X","n":1},{"sku":"X"},{"n":3}]}));
    }

    #[test]
    fn remove_and_insert() {
        let mut j = json!({"a":{"b":1,"c":2},"l":[1,2,3]});
        assert_eq!(remove(&mut j, &p("value.a.b")), vec![json!(1)]);
        insert(&mut j, &p("value.x.y"), json!(true)).unwrap();
        assert_eq!(j, json!({"a":{"c":2},"l":[1,2,3],"x":{"y":true}}));
        assert!(insert(&mut j, &p("value.l.z"), json!(1)).is_err());
    }

    #[test]
    fn projection_keeps_structure() {
        let mut pr = Projection::default();
        pr.add(&p("value.id"));
        pr.add(&p("value.items[*].sku"));
        let j = json!({"id":1,"secret":2,"items":[{"sku":"a","price":3},{"price":4}]});
        assert_eq!(pr.apply(&j).unwrap(), json!({"id":1,"items":[{"sku":"a"}]}));
    }
}
