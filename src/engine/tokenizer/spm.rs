//! SentencePiece-style BPE over scored pieces (Llama 2), as llama.cpp's `llm_tokenizer_spm`:
//! start from characters, repeatedly merge the adjacent pair whose joined text is the
//! highest-scoring vocabulary entry, and spell leftovers as `<0xNN>` byte tokens.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// SentencePiece's visible space.
pub const SPACE_MARK: char = '\u{2581}';

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: usize,
    next: usize,
}

const NONE: usize = usize::MAX;

struct Bigram {
    score: f32,
    left: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Highest score first; among equal scores the leftmost pair first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Tokenises one fragment that has already had spaces replaced by `▁`.
pub fn encode(
    text: &str,
    token_to_id: &HashMap<String, u32>,
    scores: &[f32],
    byte_tokens: &[Option<u32>; 256],
    out: &mut Vec<u32>,
) {
    if text.is_empty() {
        return;
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (start, c) in text.char_indices() {
        let i = symbols.len();
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: if i == 0 { NONE } else { i - 1 },
            next: i + 1,
        });
    }
    if let Some(last) = symbols.last_mut() {
        last.next = NONE;
    }
    let lookup = |start: usize, len: usize| token_to_id.get(&text[start..start + len]).copied();
    let mut heap = BinaryHeap::new();
    let try_add = |heap: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left: usize| {
        if left == NONE {
            return;
        }
        let right = symbols[left].next;
        if right == NONE {
            return;
        }
        let size = symbols[left].len + symbols[right].len;
        if let Some(id) = lookup(symbols[left].start, size) {
            heap.push(Bigram {
                score: scores.get(id as usize).copied().unwrap_or(0.0),
                left,
                size,
            });
        }
    };
    for i in 0..symbols.len() {
        try_add(&mut heap, &symbols, i);
    }
    while let Some(bigram) = heap.pop() {
        let left = bigram.left;
        let right = symbols[left].next;
        // Stale: one side changed since the pair was queued.
        if symbols[left].len == 0
            || right == NONE
            || symbols[right].len == 0
            || symbols[left].len + symbols[right].len != bigram.size
        {
            continue;
        }
        symbols[left].len += symbols[right].len;
        symbols[right].len = 0;
        let after = symbols[right].next;
        symbols[left].next = after;
        if after != NONE {
            symbols[after].prev = left;
        }
        try_add(&mut heap, &symbols, symbols[left].prev);
        try_add(&mut heap, &symbols, left);
    }
    let mut i = 0;
    while i != NONE {
        let s = symbols[i];
        match lookup(s.start, s.len) {
            Some(id) => out.push(id),
            None => {
                for &b in &text.as_bytes()[s.start..s.start + s.len] {
                    // A byte with no token is dropped, as llama.cpp does.
                    if let Some(id) = byte_tokens[b as usize] {
                        out.push(id);
                    }
                }
            }
        }
        i = s.next;
    }
}

/// `<0x0A>` → 0x0A.
pub fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
