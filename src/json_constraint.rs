//! JSON-constrained decoding (Ollama's `format: "json"`, OpenAI's `response_format`).
//!
//! [`JsonValidator`] is an incremental validator over output bytes: a small pushdown machine
//! that knows whether the bytes so far are a prefix of a JSON object, a complete object, or
//! can no longer become one. [`constrained_sample`] uses it to pick the next token: it asks the
//! sampler first and only rejects what would break the JSON, so the usual case (the model's top
//! choices are valid) costs one validation per step instead of a scan of the whole vocabulary.

/// Longest run of whitespace accepted between tokens, so a model cannot loop on blanks forever.
pub const MAX_WHITESPACE_RUN: usize = 20;
/// Deepest nesting accepted (serde_json and most parsers refuse beyond 128).
pub const MAX_DEPTH: usize = 64;
/// Sampler draws rejected before the vocabulary is scanned once to mask every invalid token.
const MAX_REJECTIONS: usize = 16;

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

/// What the structural level expects next (outside strings, numbers and literals).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    TopValue,
    KeyOrEnd,
    Key,
    Colon,
    Value,
    ValueOrEnd,
    CommaOrEnd,
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    None,
    Backslash,
    /// Inside `\uXXXX`: hex digits still to read and the value so far.
    Unicode {
        left: u8,
        value: u16,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NumPhase {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

impl NumPhase {
    fn can_end(self) -> bool {
        matches!(
            self,
            NumPhase::Zero | NumPhase::Int | NumPhase::Frac | NumPhase::ExpDigits
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lex {
    None,
    Str {
        key: bool,
        escape: Escape,
        /// UTF-8 continuation bytes still expected.
        utf8_left: u8,
        /// A `\uD800`–`\uDBFF` escape was read; the next thing must be a low-surrogate escape.
        need_low: bool,
    },
    Num(NumPhase),
    Lit(&'static [u8], usize),
}

/// Incremental validator of a JSON object, fed byte by byte (cheap to clone for look-ahead).
#[derive(Clone, Debug)]
pub struct JsonValidator {
    stack: Vec<Container>,
    expect: Expect,
    lex: Lex,
    whitespace_run: usize,
    invalid: bool,
}

impl Default for JsonValidator {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonValidator {
    /// A validator whose top-level value must be an object (what `format: "json"` asks for).
    pub fn new() -> Self {
        JsonValidator {
            stack: Vec::new(),
            expect: Expect::TopValue,
            lex: Lex::None,
            whitespace_run: 0,
            invalid: false,
        }
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
            Lex::Str { .. } => return self.push_string(b),
            Lex::Num(phase) => {
                if let Some(next) = number_step(phase, b) {
                    self.lex = Lex::Num(next);
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
            return self.expect != Expect::Done && self.whitespace_run <= MAX_WHITESPACE_RUN;
        }
        self.whitespace_run = 0;
        match self.expect {
            Expect::TopValue => b == b'{' && self.open(Container::Object),
            Expect::KeyOrEnd | Expect::Key => {
                if b == b'"' {
                    self.lex = string_start(true);
                    true
                } else {
                    self.expect == Expect::KeyOrEnd && b == b'}' && self.close(Container::Object)
                }
            }
            Expect::Colon => {
                self.expect = Expect::Value;
                b == b':'
            }
            Expect::ValueOrEnd if b == b']' => self.close(Container::Array),
            Expect::Value | Expect::ValueOrEnd => self.start_value(b),
            Expect::CommaOrEnd => match (self.stack.last(), b) {
                (Some(Container::Object), b',') => {
                    self.expect = Expect::Key;
                    true
                }
                (Some(Container::Array), b',') => {
                    self.expect = Expect::Value;
                    true
                }
                (Some(Container::Object), b'}') => self.close(Container::Object),
                (Some(Container::Array), b']') => self.close(Container::Array),
                _ => false,
            },
            Expect::Done => false,
        }
    }

    fn start_value(&mut self, b: u8) -> bool {
        self.lex = match b {
            b'{' => return self.open(Container::Object),
            b'[' => return self.open(Container::Array),
            b'"' => string_start(false),
            b'-' => Lex::Num(NumPhase::Minus),
            b'0' => Lex::Num(NumPhase::Zero),
            b'1'..=b'9' => Lex::Num(NumPhase::Int),
            b't' => Lex::Lit(b"true", 1),
            b'f' => Lex::Lit(b"false", 1),
            b'n' => Lex::Lit(b"null", 1),
            _ => return false,
        };
        true
    }

    fn open(&mut self, c: Container) -> bool {
        if self.stack.len() >= MAX_DEPTH {
            return false;
        }
        self.stack.push(c);
        self.expect = match c {
            Container::Object => Expect::KeyOrEnd,
            Container::Array => Expect::ValueOrEnd,
        };
        true
    }

    fn close(&mut self, c: Container) -> bool {
        if self.stack.pop() != Some(c) {
            return false;
        }
        self.value_done();
        true
    }

    fn value_done(&mut self) {
        self.expect = if self.stack.is_empty() {
            Expect::Done
        } else {
            Expect::CommaOrEnd
        };
    }

    fn push_string(&mut self, b: u8) -> bool {
        let Lex::Str {
            key,
            escape,
            utf8_left,
            need_low,
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
                if left > 1 {
                    set(
                        self,
                        Escape::Unicode {
                            left: left - 1,
                            value,
                        },
                        0,
                        need_low,
                    );
                    return true;
                }
                let is_high = (0xD800..0xDC00).contains(&value);
                let is_low = (0xDC00..0xE000).contains(&value);
                if need_low != is_low {
                    return false;
                }
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
                    0x20..=0x7F => {}
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

fn string_start(key: bool) -> Lex {
    Lex::Str {
        key,
        escape: Escape::None,
        utf8_left: 0,
        need_low: false,
    }
}

/// Next number phase after `b`, or `None` when `b` is not part of the number.
fn number_step(phase: NumPhase, b: u8) -> Option<NumPhase> {
    use NumPhase::*;
    let digit = b.is_ascii_digit();
    Some(match (phase, b) {
        (Minus, b'0') => Zero,
        (Minus, _) if digit => Int,
        (Int, _) if digit => Int,
        (Zero | Int, b'.') => Dot,
        (Dot | Frac, _) if digit => Frac,
        (Zero | Int | Frac, b'e' | b'E') => Exp,
        (Exp, b'+' | b'-') => ExpSign,
        (Exp | ExpSign | ExpDigits, _) if digit => ExpDigits,
        _ => return None,
    })
}

/// Picks a token the constraint allows: draws from `sample` (the configured sampler, so its
/// top-k / top-p / temperature filtering applies), rejecting and masking disallowed picks; after
/// [`MAX_REJECTIONS`] rejections it masks every disallowed token once and draws again. Returns
/// `None` when no token of the vocabulary is allowed.
pub fn constrained_sample(
    logits: &[f32],
    sample: &mut dyn FnMut(&[f32]) -> u32,
    allowed: &mut dyn FnMut(u32) -> bool,
) -> Option<u32> {
    let first = sample(logits);
    if allowed(first) {
        return Some(first);
    }
    let mut masked = logits.to_vec();
    let mask = |masked: &mut Vec<f32>, t: u32| {
        if let Some(l) = masked.get_mut(t as usize) {
            *l = f32::NEG_INFINITY;
        }
    };
    mask(&mut masked, first);
    for _ in 0..MAX_REJECTIONS {
        let t = sample(&masked);
        if masked
            .get(t as usize)
            .is_none_or(|&l| l == f32::NEG_INFINITY)
        {
            break; // everything the sampler would consider is masked
        }
        if allowed(t) {
            return Some(t);
        }
        mask(&mut masked, t);
    }
    let mut any = false;
    for (id, l) in masked.iter_mut().enumerate() {
        if *l == f32::NEG_INFINITY || l.is_nan() {
            continue;
        }
        if allowed(id as u32) {
            any = true;
        } else {
            *l = f32::NEG_INFINITY;
        }
    }
    if !any {
        return None;
    }
    let t = sample(&masked);
    allowed(t).then_some(t)
}

/// Whether the token with these bytes may come next. End-of-generation is allowed only once the
/// object is complete; tokens without text (control tokens) never.
pub fn token_allowed(v: &JsonValidator, bytes: &[u8], end_of_generation: bool) -> bool {
    if end_of_generation {
        v.is_complete()
    } else {
        !bytes.is_empty() && v.accepts(bytes)
    }
}

#[cfg(test)]
#[path = "json_constraint_tests.rs"]
mod tests;
