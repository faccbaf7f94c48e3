//! JSON-constrained decoding (Ollama's `format: "json"`, OpenAI's `response_format`).
//!
//! [`JsonValidator`] is an incremental validator over output bytes: a small pushdown machine
//! that knows whether the bytes so far are a prefix of a JSON object, a complete object, or
//! can no longer become one, and how many bytes at least are still needed to close it
//! ([`JsonValidator::completion_len`]). [`JsonConstraint`] uses it to pick each token: it asks
//! the sampler first and only rejects what would break the JSON, so the usual case (the model's
//! top choices are valid) costs one validation per step instead of a scan of the vocabulary.
//!
//! The output must be a complete object within the token budget, even from a model that would
//! rather write prose forever: strings, numbers, objects and arrays have length caps, and a
//! token is only allowed if the budget left after it still covers the shortest way to close
//! everything that is open (one token per byte: byte-level vocabularies have a token for every
//! byte the closing text needs). Near the end of the budget only closing moves remain.

use std::sync::Arc;

use lex::{number_step, string_start, Escape, Lex, NumPhase};
use schema::Shape;

/// Longest run of whitespace accepted between tokens, so a model cannot loop on blanks forever.
/// A run holds at most one line break (llama.cpp's JSON grammar: a space, or a newline and
/// indentation), so small models that love blank lines still write compact JSON.
pub const MAX_WHITESPACE_RUN: usize = 20;
/// Deepest nesting accepted (serde_json and most parsers refuse beyond 128).
pub const MAX_DEPTH: usize = 64;
/// Longest object key, in bytes of its JSON text between the quotes.
pub const MAX_KEY_BYTES: usize = 64;
/// Longest string value, in bytes of its JSON text between the quotes.
pub const MAX_STRING_BYTES: usize = 256;
/// Longest number, in bytes.
pub const MAX_NUMBER_BYTES: usize = 24;
/// Most members of one object.
pub const MAX_MEMBERS: usize = 32;
/// Most elements of one array.
pub const MAX_ITEMS: usize = 64;
/// Sampler draws rejected before the vocabulary is scanned once to mask every invalid token.
pub(crate) const MAX_REJECTIONS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonStatus {
    /// The bytes so far can still be extended to a valid JSON object.
    Prefix,
    /// The top-level object is closed; nothing may follow.
    Complete,
    /// No continuation makes these bytes valid JSON.
    Invalid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

/// An open object or array, how many members or elements it holds so far, and its schema
/// shape (`Object` or `Array`) when it has one.
#[derive(Clone, Debug, PartialEq)]
struct Frame {
    container: Container,
    count: usize,
    shape: Option<Arc<Shape>>,
}

/// What the structural level expects next (outside strings, numbers and literals).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Expect {
    #[default]
    TopValue,
    KeyOrEnd,
    Key,
    Colon,
    Value,
    ValueOrEnd,
    CommaOrEnd,
    Done,
}

/// Incremental validator of a JSON object, fed byte by byte (cheap to clone for look-ahead).
#[derive(Clone, Debug, Default)]
pub struct JsonValidator {
    /// Schema shape of the top-level object (`None`: any object).
    root: Option<Arc<Shape>>,
    stack: Vec<Frame>,
    expect: Expect,
    lex: Lex,
    whitespace_run: usize,
    line_break_in_run: bool,
    invalid: bool,
}

impl JsonValidator {
    /// A validator whose top-level value must be an object (what `format: "json"` asks for).
    pub fn new() -> Self {
        Self::default()
    }

    /// A validator that also enforces a schema's shape. The top-level value may be an object,
    /// an array, a string, a boolean or null; a top-level number (which only ends where
    /// something follows it) or an unconstrained schema gives an object.
    pub fn with_schema(shape: Option<Arc<Shape>>) -> Self {
        let root = shape.filter(|s| !matches!(**s, Shape::Any | Shape::Number | Shape::Integer));
        JsonValidator {
            root,
            ..Self::default()
        }
    }

    /// The schema members of the innermost open object, if it has a schema.
    fn members(&self) -> Option<&[(Vec<u8>, Arc<Shape>)]> {
        match self.stack.last()?.shape.as_deref()? {
            Shape::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The schema shape of the value that starts next (`None`: unconstrained).
    fn slot_shape(&self) -> Option<Arc<Shape>> {
        let Some(top) = self.stack.last() else {
            return self.root.clone();
        };
        match top.shape.as_deref()? {
            Shape::Object(m) => m.get(top.count).map(|(_, s)| s.clone()),
            Shape::Array(item) => Some(item.clone()),
            _ => None,
        }
    }

    /// The key the schema expects for the member being written.
    fn expected_key(&self) -> Option<&[u8]> {
        let count = self.stack.last()?.count;
        self.members()?.get(count).map(|(k, _)| k.as_slice())
    }

    pub fn status(&self) -> JsonStatus {
        if self.invalid {
            JsonStatus::Invalid
        } else if self.expect == Expect::Done && self.lex == Lex::None {
            JsonStatus::Complete
        } else {
            JsonStatus::Prefix
        }
    }

    pub fn is_complete(&self) -> bool {
        self.status() == JsonStatus::Complete
    }

    /// Feeds bytes; returns the status afterwards. Once invalid, it stays invalid.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> JsonStatus {
        for &b in bytes {
            if self.invalid {
                break;
            }
            if !self.push(b) {
                self.invalid = true;
            }
        }
        self.status()
    }

    /// Whether appending `bytes` keeps the output a valid prefix (or completes it), without
    /// changing `self`.
    pub fn accepts(&self, bytes: &[u8]) -> bool {
        self.clone().push_bytes(bytes) != JsonStatus::Invalid
    }

    fn push(&mut self, b: u8) -> bool {
        match self.lex {
            Lex::Str {
                key: true,
                escape,
                utf8_left,
                need_low,
                len,
            } if self.expected_key().is_some() => {
                // A schema key is written exactly, byte for byte.
                let k = self.expected_key().unwrap_or_default();
                let closing = b == b'"' && escape == Escape::None && utf8_left == 0 && !need_low;
                let ok = if closing {
                    len == k.len()
                } else {
                    k.get(len) == Some(&b)
                };
                return ok && self.push_string(b);
            }
            Lex::Str { .. } => return self.push_string(b),
            Lex::Num(phase, len, integer) => {
                // At the cap only the digit a number still needs to be complete is taken.
                let fits =
                    |n: &NumPhase| len < MAX_NUMBER_BYTES || (!phase.can_end() && n.can_end());
                let allowed =
                    |n: &NumPhase| !integer || matches!(n, NumPhase::Zero | NumPhase::Int);
                if let Some(next) = number_step(phase, b).filter(fits).filter(allowed) {
                    self.lex = Lex::Num(next, len + 1, integer);
                    return true;
                }
                if !phase.can_end() {
                    return false;
                }
                self.lex = Lex::None;
                self.value_done();
                // The byte that ended the number is structural: fall through.
            }
            Lex::Lit(word, i) => {
                if word[i] != b {
                    return false;
                }
                if i + 1 == word.len() {
                    self.lex = Lex::None;
                    self.value_done();
                } else {
                    self.lex = Lex::Lit(word, i + 1);
                }
                return true;
            }
            Lex::None => {}
        }
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            self.whitespace_run += 1;
            if matches!(b, b'\n' | b'\r') {
                if self.line_break_in_run {
                    return false;
                }
                self.line_break_in_run = true;
            }
            // Like Ollama's JSON grammar, the object starts at once and nothing follows it.
            return !matches!(self.expect, Expect::TopValue | Expect::Done)
                && self.whitespace_run <= MAX_WHITESPACE_RUN;
        }
        self.whitespace_run = 0;
        self.line_break_in_run = false;
        match self.expect {
            Expect::TopValue => match self.root.as_deref() {
                None | Some(Shape::Object(_) | Shape::AnyObject) => {
                    b == b'{' && self.open(Container::Object, self.root.clone())
                }
                Some(_) => self.start_value(b),
            },
            Expect::KeyOrEnd | Expect::Key => {
                let count = self.stack.last().map_or(0, |f| f.count);
                let owed = self.members().map_or(0, |m| m.len().saturating_sub(count));
                if b == b'"' {
                    // A schema object takes no keys beyond its members.
                    if self.members().is_some() && owed == 0 {
                        return false;
                    }
                    self.lex = string_start(true);
                    true
                } else {
                    self.expect == Expect::KeyOrEnd
                        && b == b'}'
                        && owed == 0
                        && self.close(Container::Object)
                }
            }
            Expect::Colon => {
                self.expect = Expect::Value;
                b == b':'
            }
            Expect::ValueOrEnd if b == b']' => self.close(Container::Array),
            Expect::Value | Expect::ValueOrEnd => self.start_value(b),
            Expect::CommaOrEnd => {
                let Some(top) = self.stack.last() else {
                    return false;
                };
                let (limit, next, closer) = match top.container {
                    Container::Object => (MAX_MEMBERS, Expect::Key, b'}'),
                    Container::Array => (MAX_ITEMS, Expect::Value, b']'),
                };
                let (container, count) = (top.container, top.count);
                // A schema object has exactly its members: commas until all are written.
                let (more, may_close) = match self.members() {
                    Some(m) => (count < m.len(), count == m.len()),
                    None => (count < limit, true),
                };
                if b == b',' && more {
                    self.expect = next;
                    true
                } else {
                    b == closer && may_close && self.close(container)
                }
            }
            Expect::Done => false,
        }
    }

    fn start_value(&mut self, b: u8) -> bool {
        let shape = self.slot_shape();
        if shape.as_ref().is_some_and(|s| !s.starts_with(b)) {
            return false;
        }
        let integer = shape.as_deref() == Some(&Shape::Integer);
        // Containers keep their schema shape; an any-object or any-value has none.
        let container_shape = shape.filter(|s| matches!(**s, Shape::Object(_) | Shape::Array(_)));
        self.lex = match b {
            b'{' => return self.open(Container::Object, container_shape),
            b'[' => return self.open(Container::Array, container_shape),
            b'"' => string_start(false),
            b'-' => Lex::Num(NumPhase::Minus, 1, integer),
            b'0' => Lex::Num(NumPhase::Zero, 1, integer),
            b'1'..=b'9' => Lex::Num(NumPhase::Int, 1, integer),
            b't' => Lex::Lit(b"true", 1),
            b'f' => Lex::Lit(b"false", 1),
            b'n' => Lex::Lit(b"null", 1),
            _ => return false,
        };
        true
    }

    fn open(&mut self, container: Container, shape: Option<Arc<Shape>>) -> bool {
        if self.stack.len() >= MAX_DEPTH {
            return false;
        }
        let shape = shape.filter(|s| matches!(**s, Shape::Object(_) | Shape::Array(_)));
        self.stack.push(Frame {
            container,
            count: 0,
            shape,
        });
        self.expect = match container {
            Container::Object => Expect::KeyOrEnd,
            Container::Array => Expect::ValueOrEnd,
        };
        true
    }

    fn close(&mut self, c: Container) -> bool {
        if self.stack.pop().map(|f| f.container) != Some(c) {
            return false;
        }
        self.value_done();
        true
    }

    /// A value ended: it counts as one member or element of the enclosing container.
    fn value_done(&mut self) {
        self.expect = match self.stack.last_mut() {
            None => Expect::Done,
            Some(top) => {
                top.count += 1;
                Expect::CommaOrEnd
            }
        };
    }

    fn push_string(&mut self, b: u8) -> bool {
        let Lex::Str {
            key,
            escape,
            utf8_left,
            need_low,
            len,
        } = self.lex
        else {
            unreachable!("push_string outside a string");
        };
        let set = |s: &mut Self, escape, utf8_left, need_low| {
            s.lex = Lex::Str {
                key,
                escape,
                utf8_left,
                need_low,
                len: len + 1,
            };
        };
        match escape {
            Escape::Backslash => {
                if need_low && b != b'u' {
                    return false;
                }
                match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                        set(self, Escape::None, 0, false)
                    }
                    b'u' => set(self, Escape::Unicode { left: 4, value: 0 }, 0, need_low),
                    _ => return false,
                }
                true
            }
            Escape::Unicode { left, value } => {
                let Some(d) = (b as char).to_digit(16) else {
                    return false;
                };
                let value = (value << 4) | d as u16;
                // Check surrogates as early as the digits tell: a low surrogate (DC00–DFFF)
                // only right after a high one, which must then be followed by one.
                let ok = match 5 - left {
                    1 => !need_low || value == 0xD,
                    2 => need_low == (0xDC..=0xDF).contains(&value),
                    _ => true,
                };
                if !ok {
                    return false;
                }
                if left > 1 {
                    let escape = Escape::Unicode {
                        left: left - 1,
                        value,
                    };
                    set(self, escape, 0, need_low);
                    return true;
                }
                let is_high = (0xD800..0xDC00).contains(&value);
                set(self, Escape::None, 0, is_high);
                true
            }
            Escape::None => {
                if utf8_left > 0 {
                    if !(0x80..=0xBF).contains(&b) {
                        return false;
                    }
                    set(self, Escape::None, utf8_left - 1, false);
                    return true;
                }
                if need_low {
                    // Only the backslash of the low-surrogate escape may follow.
                    if b != b'\\' {
                        return false;
                    }
                    set(self, Escape::Backslash, 0, true);
                    return true;
                }
                let cap = match (key, self.expected_key()) {
                    (true, Some(_)) => usize::MAX, // the schema's key decides
                    (true, None) => MAX_KEY_BYTES,
                    (false, _) => MAX_STRING_BYTES,
                };
                if b != b'"' && len >= cap {
                    return false; // full: only the closing quote
                }
                match b {
                    b'"' => {
                        self.lex = Lex::None;
                        if key {
                            self.expect = Expect::Colon;
                        } else {
                            self.value_done();
                        }
                    }
                    b'\\' => set(self, Escape::Backslash, 0, false),
                    0x00..=0x1F => return false,
                    0x20..=0x7F => set(self, Escape::None, 0, false),
                    0xC2..=0xDF => set(self, Escape::None, 1, false),
                    0xE0..=0xEF => set(self, Escape::None, 2, false),
                    0xF0..=0xF4 => set(self, Escape::None, 3, false),
                    _ => return false,
                }
                true
            }
        }
    }
}

mod closing;
mod lex;
mod pick;
pub mod schema;

pub use pick::{constrained_sample, token_allowed, JsonConstraint};

#[cfg(test)]
mod tests;
