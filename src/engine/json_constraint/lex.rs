//! The lexical states of the JSON validator: inside a string (with its escape and UTF-8
//! progress), a number (its grammar phase) or a literal.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Escape {
    None,
    Backslash,
    /// Inside `\uXXXX`: hex digits still to read and the value so far.
    Unicode {
        left: u8,
        value: u16,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NumPhase {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
    /// Two exponent digits: the most allowed, so every number stays within f64's range
    /// (serde_json refuses `1e400`).
    ExpDigits2,
}

impl NumPhase {
    pub(super) fn can_end(self) -> bool {
        matches!(
            self,
            NumPhase::Zero
                | NumPhase::Int
                | NumPhase::Frac
                | NumPhase::ExpDigits
                | NumPhase::ExpDigits2
        )
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Lex {
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
    /// Phase, length, and whether only an integer is allowed.
    Num(NumPhase, usize, bool),
    Lit(&'static [u8], usize),
}

pub(super) fn string_start(key: bool) -> Lex {
    Lex::Str {
        key,
        escape: Escape::None,
        utf8_left: 0,
        need_low: false,
        len: 0,
    }
}

/// Next number phase after `b`, or `None` when `b` is not part of the number.
pub(super) fn number_step(phase: NumPhase, b: u8) -> Option<NumPhase> {
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
        (Exp | ExpSign, _) if digit => ExpDigits,
        (ExpDigits, _) if digit => ExpDigits2,
        _ => return None,
    })
}
