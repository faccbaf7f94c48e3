//! How much text at least is still needed to close the output: what the budget rule of the
//! module comment compares with the tokens left.

use super::lex::{Escape, Lex};
use super::schema::{self, Shape};
use super::{Expect, JsonValidator};

impl JsonValidator {
    /// Length of the shortest text that completes the object (0 when complete, `usize::MAX`
    /// when invalid): close the open string (a key also needs `:0`), finish the number or
    /// literal, then one `}` or `]` per open container.
    pub fn completion_len(&self) -> usize {
        if self.invalid {
            return usize::MAX;
        }
        let members = self.members();
        let count = self.stack.last().map_or(0, |f| f.count);
        // Schema members still owed after the one in progress.
        let owed = members.map_or(0, |m| schema::rest_len(m, count + 1, true));
        let slot_min = self.slot_shape().map_or(1, |s| s.min_len());
        let here = match self.lex {
            Lex::Str {
                key,
                escape,
                utf8_left,
                need_low,
                len,
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
                match (key, self.expected_key()) {
                    (true, Some(k)) => k.len().saturating_sub(len) + 2 + slot_min + owed,
                    (true, None) => body + 3,
                    (false, _) => body + 1 + owed,
                }
            }
            Lex::Num(phase, ..) => usize::from(!phase.can_end()) + owed,
            Lex::Lit(word, i) => word.len() - i + owed,
            Lex::None => match self.expect {
                Expect::TopValue => self.root.as_ref().map_or(2, |r| r.min_len()),
                Expect::KeyOrEnd => members.map_or(0, |m| schema::rest_len(m, 0, false)),
                Expect::Key => self
                    .expected_key()
                    .map_or(4, |k| k.len() + 3 + slot_min + owed),
                Expect::Colon => 1 + slot_min + owed,
                Expect::Value => slot_min + owed,
                Expect::CommaOrEnd => members.map_or(0, |m| schema::rest_len(m, count, true)),
                Expect::ValueOrEnd | Expect::Done => 0,
            },
        };
        // One closer per open container, and what each enclosing schema object still owes
        // after the member being written inside it.
        let parents: usize = self.stack[..self.stack.len().saturating_sub(1)]
            .iter()
            .map(|f| match f.shape.as_deref() {
                Some(Shape::Object(m)) => schema::rest_len(m, f.count + 1, true),
                _ => 0,
            })
            .sum();
        here + self.stack.len() + parents
    }
}
