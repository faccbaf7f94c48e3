//! Finding special-token strings inside text (`Hi<|eot_id|>` → `Hi`, 4089).

use super::vocab::TokenKind;

/// One piece of the input after special-token matching.
#[derive(Debug, PartialEq, Eq)]
pub enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

struct Entry {
    text: String,
    id: u32,
    /// Control and unknown tokens are matched only when special parsing is on; user-defined
    /// (added, non-special) tokens always, as llama.cpp does.
    needs_parse_special: bool,
}

/// Leftmost-longest matcher over the control, user-defined and unknown tokens, like the
/// Hugging Face added-vocabulary split.
pub struct SpecialMatcher {
    /// Entries grouped by their first byte, longest first.
    by_first_byte: Vec<Vec<Entry>>,
    count: usize,
}

impl SpecialMatcher {
    pub fn new(tokens: &[String], kinds: &[TokenKind]) -> Self {
        let mut by_first_byte: Vec<Vec<Entry>> = (0..256).map(|_| Vec::new()).collect();
        let mut count = 0;
        for (id, (text, kind)) in tokens.iter().zip(kinds).enumerate() {
            let needs_parse_special = match kind {
                TokenKind::Control | TokenKind::Unknown => true,
                TokenKind::UserDefined => false,
                _ => continue,
            };
            let Some(&first) = text.as_bytes().first() else {
                continue;
            };
            by_first_byte[first as usize].push(Entry {
                text: text.clone(),
                id: id as u32,
                needs_parse_special,
            });
            count += 1;
        }
        for bucket in &mut by_first_byte {
            // Longest first; on equal text keep the lowest id first.
            bucket.sort_by(|a, b| b.text.len().cmp(&a.text.len()).then(a.id.cmp(&b.id)));
        }
        SpecialMatcher {
            by_first_byte,
            count,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn match_at(&self, rest: &[u8], parse_special: bool) -> Option<&Entry> {
        let bucket = &self.by_first_byte[*rest.first()? as usize];
        bucket.iter().find(|e| {
            (parse_special || !e.needs_parse_special) && rest.starts_with(e.text.as_bytes())
        })
    }

    /// Splits `text` into raw text and special-token fragments.
    pub fn split<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let mut out = Vec::new();
        if self.is_empty() {
            if !text.is_empty() {
                out.push(Fragment::Text(text));
            }
            return out;
        }
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if self.by_first_byte[bytes[i] as usize].is_empty() {
                i += 1;
                continue;
            }
            match self.match_at(&bytes[i..], parse_special) {
                Some(entry) => {
                    if i > start {
                        out.push(Fragment::Text(&text[start..i]));
                    }
                    out.push(Fragment::Token(entry.id));
                    i += entry.text.len();
                    start = i;
                }
                None => i += 1,
            }
        }
        if start < bytes.len() {
            out.push(Fragment::Text(&text[start..]));
        }
        out
    }
}
