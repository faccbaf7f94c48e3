//! Pre-tokenisation for byte-level BPE: the regex that splits text into words before merges.
//!
//! The GGUF key `tokenizer.ggml.pre` names the regex (llama.cpp's `LLAMA_VOCAB_PRE_TYPE_*`).

use bitnet_formats::arch::Arch;
use fancy_regex::Regex;

use super::TokenizerError;

/// Llama 3's split regex, with the case-insensitive contractions spelled out in ASCII the way
/// llama.cpp does: `(?i:'s)` would also match Unicode case folds such as `'ſ`.
const LLAMA3: &str = concat!(
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])",
    r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// GPT-2's split regex (`tokenizer.ggml.pre` = `gpt2`, and the generic fallback).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Which split rule a BPE vocabulary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizerKind {
    /// Llama 3 (`llama-bpe`, `llama3`, `llama-v3`, `falcon3`, `falcon_e`).
    Llama3,
    /// GPT-2 (`gpt2`, `default`).
    Gpt2,
}

impl PreTokenizerKind {
    /// Maps a `tokenizer.ggml.pre` value to a split rule. A missing value means Llama 3 for the
    /// BitNet architectures (Microsoft's converter omits the key for the Llama 3 vocabulary of
    /// BitNet b1.58 2B4T) and GPT-2 otherwise, as llama.cpp's generic default.
    pub fn from_name(pre: Option<&str>, architecture: &str) -> Result<Self, TokenizerError> {
        match pre {
            None | Some("") => {
                if Arch::is_bitnet_family_name(architecture) {
                    Ok(PreTokenizerKind::Llama3)
                } else {
                    Ok(PreTokenizerKind::Gpt2)
                }
            }
            Some("llama-bpe" | "llama3" | "llama-v3" | "falcon3" | "falcon_e" | "falcon-e") => {
                Ok(PreTokenizerKind::Llama3)
            }
            Some("gpt2" | "gpt-2" | "default") => Ok(PreTokenizerKind::Gpt2),
            Some(other) => Err(TokenizerError::UnsupportedPreTokenizer(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PreTokenizerKind::Llama3 => "llama-bpe",
            PreTokenizerKind::Gpt2 => "gpt2",
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            PreTokenizerKind::Llama3 => LLAMA3,
            PreTokenizerKind::Gpt2 => GPT2,
        }
    }
}

/// A compiled split rule.
pub struct PreTokenizer {
    kind: PreTokenizerKind,
    regex: Regex,
}

impl PreTokenizer {
    pub fn new(kind: PreTokenizerKind) -> Result<Self, TokenizerError> {
        let regex = Regex::new(kind.pattern())
            .map_err(|e| TokenizerError::Internal(format!("pre-tokenizer regex: {e}")))?;
        Ok(PreTokenizer { kind, regex })
    }

    pub fn kind(&self) -> PreTokenizerKind {
        self.kind
    }

    /// Splits `text` into words. Text between matches (which the patterns above never leave)
    /// is kept as its own word, as the Hugging Face `Split` pre-tokenizer with `Isolated` does.
    pub fn split<'t>(&self, text: &'t str, out: &mut Vec<&'t str>) -> Result<(), TokenizerError> {
        let mut last = 0;
        for m in self.regex.find_iter(text) {
            let m = m.map_err(|e| TokenizerError::Encode(format!("pre-tokenizer: {e}")))?;
            if m.start() > last {
                out.push(&text[last..m.start()]);
            }
            if m.end() > m.start() {
                out.push(m.as_str());
            }
            last = m.end();
        }
        if last < text.len() {
            out.push(&text[last..]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(kind: PreTokenizerKind, text: &str) -> Vec<String> {
        let p = PreTokenizer::new(kind).unwrap();
        let mut out = Vec::new();
        p.split(text, &mut out).unwrap();
        out.into_iter().map(String::from).collect()
    }

    #[test]
    fn llama3_splits_like_the_reference_regex() {
        assert_eq!(
            split(PreTokenizerKind::Llama3, "Hello, y'all!  12345\n\n x"),
            ["Hello", ",", " y", "'all", "!", " ", " ", "123", "45", "\n\n", " x"]
        );
    }

    #[test]
    fn trailing_spaces_keep_the_last_one_for_the_next_word() {
        assert_eq!(split(PreTokenizerKind::Llama3, "a   b"), ["a", "  ", " b"]);
        assert_eq!(split(PreTokenizerKind::Gpt2, "a   b"), ["a", "  ", " b"]);
    }

    #[test]
    fn missing_pre_defaults_by_architecture() {
        assert_eq!(
            PreTokenizerKind::from_name(None, "bitnet-25").unwrap(),
            PreTokenizerKind::Llama3
        );
        assert_eq!(
            PreTokenizerKind::from_name(None, "gpt2").unwrap(),
            PreTokenizerKind::Gpt2
        );
        assert!(PreTokenizerKind::from_name(Some("mystery"), "llama").is_err());
    }
}
