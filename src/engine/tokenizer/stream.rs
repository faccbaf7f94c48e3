//! Incremental detokenisation for streaming output: a UTF-8 character split over several
//! byte tokens is held back until it is complete.

use super::Tokenizer;

/// Bytes arriving in pieces turned into text as soon as it is valid UTF-8: an incomplete
/// character at the end waits for the next piece; invalid bytes become U+FFFD at once, as a
/// lossy decode of all bytes would make them.
#[derive(Clone, Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes; returns the text that became complete (possibly empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        self.drain_complete()
    }

    /// Bytes held back waiting for the rest of a character.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.pending
    }

    /// Flushes whatever is left; an incomplete character becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }

    fn drain_complete(&mut self) -> String {
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, tail) = rest.split_at(e.valid_up_to());
                    // `valid_up_to` promises this prefix decodes.
                    out.push_str(std::str::from_utf8(valid).expect("valid prefix"));
                    match e.error_len() {
                        // Invalid bytes: replace them now, like the lossy decode would.
                        Some(len) => {
                            out.push('\u{FFFD}');
                            rest = &tail[len..];
                        }
                        // A truncated character at the end: wait for more bytes.
                        None => {
                            rest = tail;
                            break;
                        }
                    }
                }
            }
        }
        let start = self.pending.len() - rest.len();
        self.pending.drain(..start);
        out
    }
}

/// Turns generated ids into text as they arrive. Concatenating every `push` result and then
/// `finish` gives the same text as `Tokenizer::decode` of all ids (without the
/// SentencePiece leading-space strip, since generated text continues a prompt).
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    skip_special: bool,
    bytes: Utf8Stream,
}

impl<'t> StreamDecoder<'t> {
    pub fn new(tokenizer: &'t Tokenizer, skip_special: bool) -> Self {
        StreamDecoder {
            tokenizer,
            skip_special,
            bytes: Utf8Stream::new(),
        }
    }

    /// Adds one token; returns the text that became complete (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        if self.skip_special && self.tokenizer.is_control(id) {
            return String::new();
        }
        self.bytes.push(self.tokenizer.piece(id))
    }

    /// Bytes held back waiting for the rest of a character.
    pub fn pending_bytes(&self) -> &[u8] {
        self.bytes.pending_bytes()
    }

    /// Flushes whatever is left; an incomplete character becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        self.bytes.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Stream;

    #[test]
    fn a_split_character_waits_for_its_last_byte() {
        let e = "é".as_bytes();
        let mut s = Utf8Stream::new();
        assert_eq!(s.push(&e[..1]), "");
        assert_eq!(s.pending_bytes(), &e[..1]);
        assert_eq!(s.push(&e[1..]), "é");
        assert_eq!(s.push(&[b'a', 0xff, b'b']), "a\u{FFFD}b");
        assert_eq!(s.push(&e[..1]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }
}
