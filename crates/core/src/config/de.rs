//! A serde `Deserializer` over located YAML nodes: every error carries the node's location and
//! YAML path, unknown options get a did-you-mean, and `${VAR}`-expanded scalars may be read as
//! numbers or booleans.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Error as _, IntoDeserializer, Visitor};

use super::error::did_you_mean;
use super::node::{Location, Node, NodeKind};

/// A deserialization error placed in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    /// What went wrong.
    pub message: String,
    /// Where, once known.
    pub location: Option<Location>,
    /// The YAML path, once known.
    pub path: Option<String>,
}

impl DeError {
    fn at(mut self, node: &Node, path: &str) -> Self {
        if self.location.is_none() {
            self.location = Some(node.location);
            self.path = Some(path.to_owned());
            // A value from `${VAR}` may be a secret: the message names the reference instead.
            self.message = node.hide_expanded(&self.message);
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            location: None,
            path: None,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut message = format!("unknown option `{field}`");
        if let Some(s) = did_you_mean(field, expected.iter().copied()) {
            message.push_str(&format!(", did you mean `{s}`?"));
        }
        if expected.is_empty() {
            message.push_str("; this takes no options");
        } else {
            message.push_str(&format!(" (expected one of: {})", expected.join(", ")));
        }
        de::Error::custom(message)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut message = format!("unknown value `{variant}`");
        if let Some(s) = did_you_mean(variant, expected.iter().copied()) {
            message.push_str(&format!(", did you mean `{s}`?"));
        }
        message.push_str(&format!(" (expected one of: {})", expected.join(", ")));
        de::Error::custom(message)
    }

    fn missing_field(field: &'static str) -> Self {
        de::Error::custom(format!("missing required option `{field}`"))
    }
}

/// Deserializes a typed value from a node; `path` is the node's YAML path for messages.
pub fn from_node<T: de::DeserializeOwned>(node: &Node, path: &str) -> Result<T, DeError> {
    T::deserialize(NodeDe {
        node,
        path: path.to_owned(),
    })
}

/// Appends a key to a YAML path.
pub fn child_key(path: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$');
    match (path.is_empty(), simple) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

/// Appends an index to a YAML path.
pub fn child_index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
}

impl<'a> NodeDe<'a> {
    fn interpolated_text(&self) -> Option<&'a str> {
        match &self.node.kind {
            NodeKind::Str(s) if self.node.interpolated => Some(s.trim()),
            _ => None,
        }
    }

    fn any<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.node;
        let result = match &node.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            NodeKind::Int(i) => visitor.visit_i64(*i),
            NodeKind::UInt(u) => visitor.visit_u64(*u),
            NodeKind::Float(f) if !f.is_finite() => Err(DeError::custom(
                "this number is beyond the range of a double (±1.7976931348623157e308); numbers must be finite",
            )),
            NodeKind::Float(f) => visitor.visit_f64(*f),
            NodeKind::Str(s) => visitor.visit_str(s),
            NodeKind::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter().enumerate(),
                path: &self.path,
            }),
            NodeKind::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                value: None,
                path: &self.path,
            }),
        };
        result.map_err(|e| e.at(node, &self.path))
    }

    fn number<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if let Some(text) = self.interpolated_text() {
            let node = self.node;
            let path = self.path.clone();
            let r = if let Ok(u) = text.parse::<u64>() {
                visitor.visit_u64(u)
            } else if let Ok(i) = text.parse::<i64>() {
                visitor.visit_i64(i)
            } else if let Ok(f) = text.parse::<f64>() {
                visitor.visit_f64(f)
            } else {
                Err(de::Error::custom(format!(
                    "expected a number; `{}` does not expand to one",
                    node.reference.as_deref().unwrap_or("${...}")
                )))
            };
            return r.map_err(|e: DeError| e.at(node, &path));
        }
        self.any(visitor)
    }
}

macro_rules! forward_number {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> { self.number(visitor) }
    )*};
}
macro_rules! forward_any {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> { self.any(visitor) }
    )*};
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    forward_number!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64);
    forward_any!(deserialize_any deserialize_seq deserialize_map deserialize_bytes deserialize_byte_buf
        deserialize_char);

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if let Some(text) = self.interpolated_text() {
            let b = match text {
                "true" | "True" | "TRUE" => true,
                "false" | "False" | "FALSE" => false,
                _ => {
                    return Err(DeError::custom(format!(
                        "expected true or false; `{}` does not expand to either",
                        self.node.reference.as_deref().unwrap_or("${...}")
                    ))
                    .at(self.node, &self.path));
                }
            };
            return visitor
                .visit_bool(b)
                .map_err(|e: DeError| e.at(self.node, &self.path));
        }
        self.any(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // A plain scalar that YAML typed as a number or boolean is still the text the user wrote
        // when the option wants a string (`group_id: 123`).
        match &self.node.kind {
            NodeKind::Bool(_) | NodeKind::Int(_) | NodeKind::UInt(_) | NodeKind::Float(_) => {
                let text = self.node.scalar_text().expect("scalar");
                visitor
                    .visit_string(text)
                    .map_err(|e: DeError| e.at(self.node, &self.path))
            }
            _ => self.any(visitor),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Null => visitor
                .visit_none()
                .map_err(|e: DeError| e.at(self.node, &self.path)),
            _ => {
                let (node, path) = (self.node, self.path.clone());
                visitor.visit_some(self).map_err(|e| e.at(node, &path))
            }
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.any(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path.clone());
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.at(node, &path))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, DeError> {
        self.any(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if matches!(self.node.kind, NodeKind::Null) {
            // An option written with no value (`source: { type: stdin }` has none, but `x:` alone
            // does) is an empty mapping, so all-default structs accept it.
            return visitor
                .visit_map(MapDe {
                    entries: [].iter(),
                    value: None,
                    path: &self.path,
                })
                .map_err(|e| e.at(self.node, &self.path));
        }
        if !matches!(self.node.kind, NodeKind::Map(_)) {
            return Err(DeError::custom(format!(
                "expected a mapping of options, found {}",
                self.node.type_name()
            ))
            .at(self.node, &self.path));
        }
        self.any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let node = self.node;
        let path = self.path.clone();
        let r = match &node.kind {
            NodeKind::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            NodeKind::Map(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                let key = k.scalar_text().unwrap_or_default();
                let vpath = child_key(&path, &key);
                visitor.visit_enum(EnumDe {
                    key,
                    value: v,
                    path: vpath,
                })
            }
            _ => Err(DeError::custom(format!(
                "expected one of the listed values, found {}",
                node.type_name()
            ))),
        };
        r.map_err(|e| e.at(node, &path))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqDe<'a, I> {
    items: I,
    path: &'a str,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> de::SeqAccess<'de> for SeqDe<'a, I> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => {
                let path = child_index(self.path, i);
                seed.deserialize(NodeDe {
                    node,
                    path: path.clone(),
                })
                .map(Some)
                .map_err(|e| e.at(node, &path))
            }
        }
    }
}

struct MapDe<'a, I> {
    entries: I,
    value: Option<(&'a Node, String)>,
    path: &'a str,
}

impl<'de, 'a, I: Iterator<Item = &'a (Node, Node)>> de::MapAccess<'de> for MapDe<'a, I> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            None => Ok(None),
            Some((k, v)) => {
                let path = child_key(self.path, &k.scalar_text().unwrap_or_default());
                self.value = Some((v, path.clone()));
                seed.deserialize(NodeDe {
                    node: k,
                    path: path.clone(),
                })
                .map(Some)
                .map_err(|e| e.at(k, &path))
            }
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (node, path) = self.value.take().expect("next_value after next_key");
        seed.deserialize(NodeDe {
            node,
            path: path.clone(),
        })
        .map_err(|e| e.at(node, &path))
    }
}

struct EnumDe<'a> {
    key: String,
    value: &'a Node,
    path: String,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumDe<'a> {
    type Error = DeError;
    type Variant = NodeDe<'a>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'a>), DeError> {
        let v = seed.deserialize(self.key.as_str().into_deserializer())?;
        Ok((
            v,
            NodeDe {
                node: self.value,
                path: self.path,
            },
        ))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'_> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        match self.node.kind {
            NodeKind::Null => Ok(()),
            _ => Err(DeError::custom("this value takes no options").at(self.node, &self.path)),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, DeError> {
        self.any(visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.any(visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        count: u32,
        #[serde(default)]
        name: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        items: Vec<Inner>,
        mode: Mode,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Fast,
        Safe,
    }

    fn parse(y: &str) -> Node {
        serde_saphyr::from_str(y).unwrap()
    }

    #[test]
    fn unknown_option_names_location_path_and_suggestion() {
        let n = parse("items:\n  - count: 1\n  - cuont: 2\nmode: fast\n");
        let e = from_node::<Outer>(&n, "root").unwrap_err();
        assert_eq!(e.location, Some(Location { line: 3, column: 5 }));
        assert_eq!(e.path.as_deref(), Some("root.items[1].cuont"));
        assert!(e.message.contains("did you mean `count`"), "{}", e.message);
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let n = parse("items:\n  - count: lots\nmode: fast\n");
        let e = from_node::<Outer>(&n, "").unwrap_err();
        assert_eq!(
            e.location,
            Some(Location {
                line: 2,
                column: 12
            })
        );
        assert_eq!(e.path.as_deref(), Some("items[0].count"));
        assert!(e.message.contains("invalid type"), "{}", e.message);
    }

    #[test]
    fn missing_option_points_at_the_mapping() {
        let n = parse("items:\n  - name: x\nmode: fast\n");
        let e = from_node::<Outer>(&n, "").unwrap_err();
        assert_eq!(e.path.as_deref(), Some("items[0]"));
        assert!(
            e.message.contains("missing required option `count`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_enum_value_suggests() {
        let n = parse("items: []\nmode: sfae\n");
        let e = from_node::<Outer>(&n, "").unwrap_err();
        assert_eq!(e.path.as_deref(), Some("mode"));
        assert!(
            e.message.contains("expected one of: fast, safe"),
            "{}",
            e.message
        );
    }

    #[test]
    fn interpolated_text_reads_as_number_but_plain_text_does_not() {
        let mut n = parse("items:\n  - count: '7'\nmode: safe\n");
        assert!(
            from_node::<Outer>(&n, "").is_err(),
            "a quoted string is not a number"
        );
        if let NodeKind::Map(e) = &mut n.kind
            && let NodeKind::Seq(items) = &mut e[0].1.kind
            && let NodeKind::Map(fields) = &mut items[0].kind
        {
            fields[0].1.interpolated = true;
        }
        assert_eq!(from_node::<Outer>(&n, "").unwrap().items[0].count, 7);
    }

    #[test]
    fn numbers_are_accepted_where_text_is_wanted() {
        let n = parse("count: 1\nname: 123\n");
        assert_eq!(
            from_node::<Inner>(&n, "").unwrap().name.as_deref(),
            Some("123")
        );
    }
}
