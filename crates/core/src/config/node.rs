//! A YAML document as a tree of nodes that remember where they were written.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A position in a YAML file (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

/// One YAML node with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub location: Location,
    /// What it holds.
    pub kind: NodeKind,
    /// True when `${VAR}` expansion produced this scalar: its text may then be read as a number
    /// or boolean where the option wants one.
    pub interpolated: bool,
    /// The scalar as written before `${VAR}` expansion (`${SECRET}`): errors about the value
    /// show this, never the value, which may be a secret.
    pub reference: Option<Box<str>>,
}

/// The content of a node. Scalars are typed by YAML 1.2 core rules (so `NO` stays a string).
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null` or empty.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A node at a location.
    pub fn new(location: Location, kind: NodeKind) -> Self {
        Node {
            location,
            kind,
            interpolated: false,
            reference: None,
        }
    }

    /// The string if this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a scalar, as a key or a message would show it.
    pub fn scalar_text(&self) -> Option<String> {
        Some(match &self.kind {
            NodeKind::Null => "null".into(),
            NodeKind::Bool(b) => b.to_string(),
            NodeKind::Int(i) => i.to_string(),
            NodeKind::UInt(u) => u.to_string(),
            NodeKind::Float(f) => f.to_string(),
            NodeKind::Str(s) => s.clone(),
            NodeKind::Seq(_) | NodeKind::Map(_) => return None,
        })
    }

    /// A short name of the node's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) | NodeKind::UInt(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// The value under a key, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The deepest node reached by a relative YAML path such as `patterns[0].value.amount`,
    /// stopping at the last segment that exists. Used to place errors found after parsing.
    pub fn locate(&self, path: &str) -> &Node {
        let mut node = self;
        for seg in split_path(path) {
            let next = match (&node.kind, seg) {
                (NodeKind::Seq(items), PathSeg::Index(i)) => items.get(i),
                (NodeKind::Map(_), PathSeg::Key(k)) => node.get(k),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// `message` with every value that `${VAR}` expansion put in this subtree replaced by the
    /// reference it came from, so an error never shows a secret's value.
    pub fn hide_expanded(&self, message: &str) -> String {
        let mut out = message.to_owned();
        let mut stack = vec![self];
        while let Some(n) = stack.pop() {
            match &n.kind {
                NodeKind::Str(value) => {
                    if let Some(reference) = &n.reference
                        && !value.is_empty()
                        && out.contains(value.as_str())
                    {
                        out = out.replace(value.as_str(), reference);
                    }
                }
                NodeKind::Seq(items) => stack.extend(items),
                NodeKind::Map(entries) => stack.extend(entries.iter().flat_map(|(k, v)| [k, v])),
                _ => {}
            }
        }
        out
    }

    /// Converts to JSON (for plugin options that take free-form data, and for `weir validate`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            NodeKind::Null => J::Null,
            NodeKind::Bool(b) => J::Bool(*b),
            NodeKind::Int(i) => J::from(*i),
            NodeKind::UInt(u) => J::from(*u),
            NodeKind::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            NodeKind::Str(s) => J::String(s.clone()),
            NodeKind::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

#[derive(Debug, PartialEq)]
enum PathSeg<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> impl Iterator<Item = PathSeg<'_>> {
    path.split('.').filter(|s| !s.is_empty()).flat_map(|part| {
        let mut segs = Vec::new();
        let (head, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !head.is_empty() {
            segs.push(PathSeg::Key(head));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                segs.push(PathSeg::Index(i));
            }
            rest = &rest[end + 1..];
        }
        segs
    })
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned: Spanned<NodeKind> = Spanned::deserialize(d)?;
        let loc = spanned.referenced;
        let location = Location {
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
            column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
        };
        Ok(Node::new(location, spanned.value))
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = NodeKind;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_none<E>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<NodeKind, E> {
        Ok(NodeKind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<NodeKind, E> {
        Ok(if v >= 0 {
            NodeKind::UInt(v as u64)
        } else {
            NodeKind::Int(v)
        })
    }
    fn visit_u64<E>(self, v: u64) -> Result<NodeKind, E> {
        Ok(NodeKind::UInt(v))
    }
    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<NodeKind, E> {
        i64::try_from(v)
            .map(|v| self.visit_i64::<E>(v).expect("infallible"))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<NodeKind, E> {
        u64::try_from(v)
            .map(NodeKind::UInt)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<NodeKind, E> {
        Ok(NodeKind::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v))
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<NodeKind, E> {
        String::from_utf8(v.to_vec())
            .map(NodeKind::Str)
            .map_err(|_| E::custom("binary values are not supported"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(NodeKind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(NodeKind::Map(entries))
    }
}

impl<'de> Deserialize<'de> for NodeKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_follows_keys_and_indexes_and_stops_at_the_deepest_existing_node() {
        let n: Node = serde_saphyr::from_str("a:\n  - {b: 1}\n  - {c: [x, y]}\n").unwrap();
        assert_eq!(
            n.locate("a[1].c[1]").location,
            Location {
                line: 3,
                column: 13
            }
        );
        assert_eq!(n.locate("a[1].nope").location, n.locate("a[1]").location);
        assert_eq!(n.locate("").location, n.location);
    }
}
