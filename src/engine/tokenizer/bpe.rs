//! Byte-level BPE (GPT-2 / Llama 3): bytes map to printable characters, then ranked merges.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the other 68 bytes
/// to U+0100.. in byte order (space = `Ġ`, newline = `Ċ`).
pub fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let c = if printable {
            b
        } else {
            let c = next;
            next += 1;
            c
        };
        table[b as usize] = char::from_u32(c).expect("valid code point");
    }
    table
}

/// The inverse of [`byte_to_char_table`].
pub fn char_to_byte_map() -> HashMap<char, u8> {
    byte_to_char_table()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

/// Decodes a byte-level token text back to bytes. Characters outside the byte alphabet
/// (possible in hand-made vocabularies) are kept as their UTF-8.
pub fn decode_token_text(text: &str, map: &HashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match map.get(&c) {
            Some(&b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// Ranked merges keyed by the ids of the two parts.
pub struct Merges {
    /// `(left, right)` → `(rank, merged id)`.
    ranks: HashMap<(u32, u32), (u32, u32)>,
}

#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    prev: usize,
    next: usize,
    alive: bool,
}

const NONE: usize = usize::MAX;

impl Merges {
    /// Builds the merge table. A merge whose parts or result are not in the vocabulary can
    /// never fire and is dropped.
    pub fn new(merges: &[(String, String)], token_to_id: &HashMap<String, u32>) -> Merges {
        let mut ranks = HashMap::with_capacity(merges.len());
        let mut joined = String::new();
        for (rank, (left, right)) in merges.iter().enumerate() {
            let (Some(&l), Some(&r)) = (token_to_id.get(left), token_to_id.get(right)) else {
                continue;
            };
            joined.clear();
            joined.push_str(left);
            joined.push_str(right);
            let Some(&merged) = token_to_id.get(&joined) else {
                continue;
            };
            // The first (lowest) rank of a pair wins if a file lists it twice.
            ranks.entry((l, r)).or_insert((rank as u32, merged));
        }
        Merges { ranks }
    }

    /// Applies merges to a word given as its initial symbol ids, lowest rank first and
    /// leftmost first among equal ranks (llama.cpp's and Hugging Face's order).
    pub fn apply(&self, ids: &[u32], out: &mut Vec<u32>) {
        if ids.len() < 2 {
            out.extend_from_slice(ids);
            return;
        }
        let mut symbols: Vec<Symbol> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| Symbol {
                id,
                prev: if i == 0 { NONE } else { i - 1 },
                next: if i + 1 == ids.len() { NONE } else { i + 1 },
                alive: true,
            })
            .collect();
        // (rank, left position, left id, right id); Reverse makes it a min-heap.
        let mut heap: BinaryHeap<Reverse<(u32, usize, u32, u32)>> = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<_>, symbols: &[Symbol], left: usize| {
            if left == NONE {
                return;
            }
            let right = symbols[left].next;
            if right == NONE {
                return;
            }
            let (l, r) = (symbols[left].id, symbols[right].id);
            if let Some(&(rank, _)) = self.ranks.get(&(l, r)) {
                heap.push(Reverse((rank, left, l, r)));
            }
        };
        for i in 0..symbols.len() - 1 {
            push(&mut heap, &symbols, i);
        }
        while let Some(Reverse((_, left, l, r))) = heap.pop() {
            let right = symbols[left].next;
            // Stale entry: one side has been merged into something else since.
            if !symbols[left].alive
                || right == NONE
                || symbols[left].id != l
                || symbols[right].id != r
            {
                continue;
            }
            let (_, merged) = self.ranks[&(l, r)];
            symbols[left].id = merged;
            symbols[right].alive = false;
            let after = symbols[right].next;
            symbols[left].next = after;
            if after != NONE {
                symbols[after].prev = left;
            }
            push(&mut heap, &symbols, symbols[left].prev);
            push(&mut heap, &symbols, left);
        }
        let mut i = 0;
        while i != NONE {
            out.push(symbols[i].id);
            i = symbols[i].next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2() {
        let t = byte_to_char_table();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0xAD], '\u{143}');
        let distinct: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn merges_lowest_rank_first() {
        let vocab: HashMap<String, u32> = ["a", "b", "c", "ab", "bc", "abc"]
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), i as u32))
            .collect();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        let merges = Merges::new(&[pair("b", "c"), pair("a", "b"), pair("a", "bc")], &vocab);
        let mut out = Vec::new();
        merges.apply(&[0, 1, 2], &mut out);
        assert_eq!(out, [5]); // b+c first, then a+bc
        out.clear();
        merges.apply(&[0, 1, 0, 1], &mut out);
        assert_eq!(out, [3, 3]);
    }
}
