//! The part of a JSON schema (Ollama's `format: {…}`, OpenAI's `json_schema`) that the
//! constraint enforces: the type of every value, and for objects with `properties` exactly
//! those members in the schema's order (what llama.cpp's schema converter does for required
//! properties; optional ones are written too, which the schema allows). Whatever is not
//! understood (`anyOf`, type lists, `$ref`, …) is left unconstrained.

use std::sync::Arc;

use serde_json::Value;

#[derive(Debug, PartialEq)]
pub enum Shape {
    Any,
    Str,
    Integer,
    Number,
    Boolean,
    Null,
    /// Elements of one shape.
    Array(Arc<Shape>),
    /// An object with any members.
    AnyObject,
    /// Exactly these members in this order; each key as its JSON text between the quotes.
    Object(Vec<(Vec<u8>, Arc<Shape>)>),
}

impl Shape {
    pub fn from_schema(v: &Value) -> Shape {
        let props = v.get("properties").and_then(Value::as_object);
        match (v.get("type").and_then(Value::as_str), props) {
            (Some("object") | None, Some(p)) => Shape::Object(
                p.iter()
                    .map(|(k, s)| (json_key(k), Arc::new(Shape::from_schema(s))))
                    .collect(),
            ),
            (Some("object"), None) => Shape::AnyObject,
            (Some("array"), _) => Shape::Array(Arc::new(
                v.get("items").map_or(Shape::Any, Shape::from_schema),
            )),
            (Some("string"), _) => Shape::Str,
            (Some("integer"), _) => Shape::Integer,
            (Some("number"), _) => Shape::Number,
            (Some("boolean"), _) => Shape::Boolean,
            (Some("null"), _) => Shape::Null,
            _ => Shape::Any,
        }
    }

    /// Length of the shortest value of this shape (`0`, `""`, `true`, `[]`, `{…}`).
    pub fn min_len(&self) -> usize {
        match self {
            Shape::Any | Shape::Integer | Shape::Number => 1,
            Shape::Str | Shape::Array(_) | Shape::AnyObject => 2,
            Shape::Boolean | Shape::Null => 4,
            Shape::Object(m) => 2 + rest_len(m, 0, false),
        }
    }

    /// Whether a value of this shape may start with `b`.
    pub fn starts_with(&self, b: u8) -> bool {
        match self {
            Shape::Any => true,
            Shape::Str => b == b'"',
            Shape::Integer | Shape::Number => b == b'-' || b.is_ascii_digit(),
            Shape::Boolean => b == b't' || b == b'f',
            Shape::Null => b == b'n',
            Shape::Array(_) => b == b'[',
            Shape::AnyObject | Shape::Object(_) => b == b'{',
        }
    }
}

/// Bytes needed to write members `from..` of an object: `"key":value` each, separated by
/// commas, with a comma before the first too when `comma_first`.
pub fn rest_len(members: &[(Vec<u8>, Arc<Shape>)], from: usize, comma_first: bool) -> usize {
    members
        .iter()
        .enumerate()
        .skip(from)
        .map(|(i, (k, v))| usize::from(i > from || comma_first) + k.len() + 3 + v.min_len())
        .sum()
}

fn json_key(k: &str) -> Vec<u8> {
    // Serialising a string cannot fail; the result is always quoted.
    let quoted = serde_json::to_string(k).expect("a string serialises");
    quoted.as_bytes()[1..quoted.len() - 1].to_vec()
}
