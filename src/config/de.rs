//! serde `Deserializer` over the span-aware tree, so `#[derive(Deserialize)]`
//! structs in `raw.rs` get typed fields and `deny_unknown_fields`, while each
//! error keeps the position and YAML path of the innermost node it concerns.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::error::{ConfigError, Pos};
use super::suggest;
use super::yaml::{is_null_text, Kind, Node};

/// Deserializes `T` from a node; `path` is the node's YAML path.
pub fn from_node<'a, T: de::Deserialize<'a>>(node: &'a Node, path: &str) -> Result<T, ConfigError> {
    T::deserialize(NodeDe {
        node,
        path: path.to_string(),
    })
    .map_err(|e| {
        ConfigError::new(
            e.pos.unwrap_or(node.pos),
            e.path.unwrap_or_else(|| path.to_string()),
            e.message,
        )
    })
}

#[derive(Debug)]
pub struct DeError {
    pos: Option<Pos>,
    path: Option<String>,
    message: String,
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
            pos: None,
            path: None,
            message: msg.to_string(),
        }
    }

    /// serde's message (which lists the expected keys), and the nearest of
    /// them when the key looks like a typo of it.
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let serde = de::value::Error::unknown_field(field, expected);
        Self::custom(format!("{serde}{}", suggest::hint(field, expected)))
    }

    /// The same for a word that is not one of an enum's (`auth: requird`).
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let serde = de::value::Error::unknown_variant(variant, expected);
        Self::custom(format!("{serde}{}", suggest::hint(variant, expected)))
    }
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
}

impl NodeDe<'_> {
    /// Pins an error to this node unless an inner node claimed it already.
    fn at(&self, mut e: DeError) -> DeError {
        if e.pos.is_none() {
            e.pos = Some(self.node.pos);
            e.path = Some(self.path.clone());
        }
        e
    }
}

/// A plain scalar as YAML 1.2's core schema reads it.
enum Plain<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
}

fn resolve(s: &str) -> Plain<'_> {
    if is_null_text(s) {
        return Plain::Null;
    }
    match s {
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        _ => {}
    }
    if let Ok(u) = s.parse::<u64>() {
        return Plain::UInt(u);
    }
    if let Ok(i) = s.parse::<i64>() {
        return Plain::Int(i);
    }
    let numeric = s
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    if numeric && s.bytes().any(|b| b.is_ascii_digit()) {
        if let Ok(f) = s.parse::<f64>() {
            return Plain::Float(f);
        }
    }
    Plain::Str(s)
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            Kind::Scalar { value, plain: true } => match resolve(value) {
                Plain::Null => visitor.visit_unit(),
                Plain::Bool(b) => visitor.visit_bool(b),
                Plain::Int(i) => visitor.visit_i64(i),
                Plain::UInt(u) => visitor.visit_u64(u),
                Plain::Float(f) => visitor.visit_f64(f),
                Plain::Str(s) => visitor.visit_borrowed_str(s),
            },
            Kind::Scalar {
                value,
                plain: false,
            } => visitor.visit_borrowed_str(value),
            Kind::Seq(items) => visitor.visit_seq(Items {
                items: items.iter(),
                path: self.path.clone(),
                index: 0,
            }),
            Kind::Map(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                path: self.path.clone(),
                value: None,
            }),
        };
        result.map_err(|e| self.at(e))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    /// Strings accept any scalar as text (`name: 123` is the name "123").
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Scalar { value, .. } => visitor.visit_borrowed_str(value).map_err(|e| self.at(e)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Scalar { value, .. } => {
                let de: de::value::StrDeserializer<'_, DeError> =
                    value.as_str().into_deserializer();
                visitor.visit_enum(de).map_err(|e| self.at(e))
            }
            _ => Err(self.at(de::Error::custom("expected one of the listed words"))),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct ignored_any
    }
}

struct Items<'a> {
    items: std::slice::Iter<'a, Node>,
    path: String,
    index: usize,
}

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        seed.deserialize(NodeDe { node, path }).map(Some)
    }
}

struct Entries<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    path: String,
    value: Option<(&'a Node, String)>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let path = if self.path.is_empty() {
            key.key_text().to_string()
        } else {
            format!("{}.{}", self.path, key.key_text())
        };
        self.value = Some((value, path.clone()));
        seed.deserialize(NodeDe { node: key, path }).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (node, path) = self
            .value
            .take()
            .expect("serde asks for a value after its key");
        seed.deserialize(NodeDe { node, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        port: u16,
        name: String,
        on: Option<bool>,
    }

    #[test]
    fn unknown_key_points_at_the_key() {
        let root = yaml::parse("port: 1\nname: x\nnmae: y\n").unwrap();
        let err = from_node::<Sample>(&root, "").unwrap_err();
        assert_eq!((err.pos.line, err.pos.col), (3, 1), "{err:?}");
        assert!(err.message.contains("nmae"), "{err:?}");
    }

    #[test]
    fn type_error_points_at_the_value() {
        let root = yaml::parse("port: lots\nname: x\n").unwrap();
        let err = from_node::<Sample>(&root, "").unwrap_err();
        assert_eq!(
            (err.pos.line, err.pos.col, err.path.as_str()),
            (1, 7, "port"),
            "{err:?}"
        );
    }

    #[test]
    fn missing_key_points_at_the_mapping() {
        let root = yaml::parse("outer:\n  name: x\n").unwrap();
        let inner = &root.as_map().unwrap()[0].1;
        let err = from_node::<Sample>(inner, "outer").unwrap_err();
        assert_eq!((err.pos.line, err.pos.col), (2, 3), "{err:?}");
        assert!(err.message.contains("port"), "{err:?}");
    }

    #[test]
    fn quoted_numbers_are_strings_and_plain_scalars_resolve() {
        let root = yaml::parse("port: \"80\"\nname: 123\n").unwrap();
        assert!(from_node::<Sample>(&root, "").is_err());
        let root = yaml::parse("port: 80\nname: 123\non: true\n").unwrap();
        let s = from_node::<Sample>(&root, "").unwrap();
        assert_eq!((s.port, s.name.as_str(), s.on), (80, "123", Some(true)));
    }
}
