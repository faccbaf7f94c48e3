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

/// An open object or array and how many members or elements it holds so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Frame {
    container: Container,
    count: usize,
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

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Lex {
    #[default]
    None,
    Str {
        key: bool,
        escape: Escape,
        /// UTF-8 continuation bytes still expected.
        utf8_left: u8,
        /// A `\uD800`–`\uDBFF` escape was read; the next thing must be a low-surrogate escape.
        need_low: bool,
        /// Bytes of JSON text since the opening quote.
        len: usize,
    },
    Num(NumPhase, usize),
    Lit(&'static [u8], usize),
}

/// Incremental validator of a JSON object, fed byte by byte (cheap to clone for look-ahead).
#[derive(Clone, Debug, Default)]
pub struct JsonValidator {
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

    /// Length of the shortest text that completes the object (0 when complete, `usize::MAX`
    /// when invalid): close the open string (a key also needs `:0`), finish the number or
    /// literal, then one `}` or `]` per open container.
    pub fn completion_len(&self) -> usize {
        if self.invalid {
            return usize::MAX;
        }
        let closers = self.stack.len();
        let open = match self.lex {
            Lex::Str {
                key,
                escape,
                utf8_left,
                need_low,
                ..
            } => {
                // A low-surrogate escape `\uDC00` still owed after the current character.
                let low_owed = 6;
                let body = match escape {
                    Escape::Backslash if need_low => low_owed - 1,
                    Escape::Backslash => 1,
                    Escape::Unicode { left, value } => {
                        let read = 4 - left as u32;
                        let high = !need_low
                            && read >= 2
                            && (0xD8..=0xDB).contains(&(value >> (4 * (read - 2))));
                        left as usize + if high { low_owed } else { 0 }
                    }
                    Escape::None => utf8_left as usize + if need_low { low_owed } else { 0 },
                };
                body + 1 + if key { 2 } else { 0 }
            }
            Lex::Num(phase, _) => usize::from(!phase.can_end()),
            Lex::Lit(word, i) => word.len() - i,
            Lex::None => match self.expect {
                Expect::TopValue => 2,
                Expect::Key => 4,
                Expect::Colon => 2,
                Expect::Value => 1,
                Expect::KeyOrEnd | Expect::ValueOrEnd | Expect::CommaOrEnd | Expect::Done => 0,
            },
        };
        open + closers
    }

    fn push(&mut self, b: u8) -> bool {
        match self.lex {
            Lex::Str { .. } => return self.push_string(b),
            Lex::Num(phase, len) => {
                // At the cap only the digit a number still needs to be complete is taken.
                let fits =
                    |n: &NumPhase| len < MAX_NUMBER_BYTES || (!phase.can_end() && n.can_end());
                if let Some(next) = number_step(phase, b).filter(fits) {
                    self.lex = Lex::Num(next, len + 1);
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
            Expect::CommaOrEnd => {
                let Some(top) = self.stack.last() else {
                    return false;
                };
                let (limit, next, closer) = match top.container {
                    Container::Object => (MAX_MEMBERS, Expect::Key, b'}'),
                    Container::Array => (MAX_ITEMS, Expect::Value, b']'),
                };
                if b == b',' && top.count < limit {
                    self.expect = next;
                    true
                } else {
                    b == closer && self.close(top.container)
                }
            }
            Expect::Done => false,
        }
    }

    fn start_value(&mut self, b: u8) -> bool {
        self.lex = match b {
            b'{' => return self.open(Container::Object),
            b'[' => return self.open(Container::Array),
            b'"' => string_start(false),
            b'-' => Lex::Num(NumPhase::Minus, 1),
            b'0' => Lex::Num(NumPhase::Zero, 1),
            b'1'..=b'9' => Lex::Num(NumPhase::Int, 1),
            b't' => Lex::Lit(b"true", 1),
            b'f' => Lex::Lit(b"false", 1),
            b'n' => Lex::Lit(b"null", 1),
            _ => return false,
        };
        true
    }

    fn open(&mut self, container: Container) -> bool {
        if self.stack.len() >= MAX_DEPTH {
            return false;
        }
        self.stack.push(Frame {
            container,
            count: 0,
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
                let cap = if key { MAX_KEY_BYTES } else { MAX_STRING_BYTES };
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

fn string_start(key: bool) -> Lex {
    Lex::Str {
        key,
        escape: Escape::None,
        utf8_left: 0,
        need_low: false,
        len: 0,
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

/// Whether the token with these bytes may come next when `remaining` more tokens may follow
/// it. End-of-generation is allowed only once the object is complete; tokens without text
/// (control tokens) never; others must keep the output a valid prefix that the remaining
/// tokens can still close (see the module comment).
pub fn token_allowed(
    v: &JsonValidator,
    bytes: &[u8],
    end_of_generation: bool,
    remaining: usize,
) -> bool {
    if end_of_generation {
        return v.is_complete();
    }
    if bytes.is_empty() {
        return false;
    }
    let mut next = v.clone();
    match next.push_bytes(bytes) {
        JsonStatus::Invalid => false,
        JsonStatus::Complete => true,
        JsonStatus::Prefix => next.completion_len() <= remaining,
    }
}

/// One constrained generation's state, shared by the CLI's loop and the server's scheduler.
#[derive(Clone, Debug, Default)]
pub struct JsonConstraint {
    validator: JsonValidator,
}

impl JsonConstraint {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn status(&self) -> JsonStatus {
        self.validator.status()
    }

    /// Picks the next token (see [`constrained_sample`]). `remaining` is how many tokens may
    /// still follow this one (token limit and context); `piece` gives a token's output bytes
    /// (empty for control tokens). `None` when no token is allowed.
    pub fn pick(
        &self,
        logits: &[f32],
        remaining: usize,
        sample: &mut dyn FnMut(&[f32]) -> u32,
        piece: &dyn Fn(u32) -> Vec<u8>,
        end_of_generation: &dyn Fn(u32) -> bool,
    ) -> Option<u32> {
        let v = &self.validator;
        constrained_sample(logits, sample, &mut |t| {
            token_allowed(v, &piece(t), end_of_generation(t), remaining)
        })
    }

    /// Records an emitted token's bytes; returns the status afterwards.
    pub fn push(&mut self, bytes: &[u8]) -> JsonStatus {
        self.validator.push_bytes(bytes)
    }
}

#[cfg(test)]
#[path = "json_constraint_tests.rs"]
mod tests;
