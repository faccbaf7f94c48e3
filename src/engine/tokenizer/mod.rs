//! The tokenizer, built from a GGUF file's `tokenizer.*` metadata alone.
//!
//! Two algorithms, as llama.cpp implements them: byte-level BPE (`tokenizer.ggml.model` =
//! `gpt2`; Llama 3 and BitNet b1.58 2B4T) and SentencePiece-style scored merges with byte
//! fallback (`llama`; Llama 2 and the 1bitLLM models). Special-token strings in the text are
//! matched first (leftmost-longest), then every stretch of plain text is tokenised.

mod bpe;
mod pretokenize;
mod special;
mod spm;
mod stream;
mod vocab;

use std::collections::HashMap;

use bitnet_formats::Metadata;

pub use pretokenize::PreTokenizerKind;
pub use special::Fragment;
pub use stream::{StreamDecoder, Utf8Stream};
pub use vocab::{ModelKind, TokenKind, Vocab};

use bpe::Merges;
use pretokenize::PreTokenizer;
use special::SpecialMatcher;

/// Why a tokenizer could not be built, or a text not encoded.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer metadata is missing the key `{0}`")]
    MissingKey(&'static str),
    #[error("tokenizer metadata key `{key}` {problem}")]
    BadMetadata { key: String, problem: String },
    #[error("unsupported tokenizer model `{0}` (supported: gpt2, llama)")]
    UnsupportedModel(String),
    #[error(
        "unsupported pre-tokenizer `{0}` (supported: llama-bpe, llama3, falcon3, gpt2, default)"
    )]
    UnsupportedPreTokenizer(String),
    #[error("cannot encode text: {0}")]
    Encode(String),
    #[error("tokenizer: {0}")]
    Internal(String),
}

/// Texts that end a turn in the vocabularies we meet, whatever the metadata declares.
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
];

/// A tokenizer for one model. Cheap to share: `Send + Sync`, immutable after construction.
pub struct Tokenizer {
    model: ModelKind,
    tokens: Vec<String>,
    kinds: Vec<TokenKind>,
    /// The bytes each token decodes to (empty for unused tokens).
    pieces: Vec<Vec<u8>>,
    token_to_id: HashMap<String, u32>,
    scores: Vec<f32>,
    merges: Option<Merges>,
    pre: Option<PreTokenizer>,
    specials: SpecialMatcher,
    /// BPE: the token of each byte's character; SPM: the `<0xNN>` token.
    byte_tokens: [Option<u32>; 256],
    byte_chars: [char; 256],
    end_of_generation: Vec<bool>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    ignore_merges: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("model", &self.model)
            .field("vocab_size", &self.tokens.len())
            .field("pre", &self.pre.as_ref().map(|p| p.kind()))
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eot", &self.eot)
            .finish()
    }
}

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` keys. `architecture` is
    /// `general.architecture`; it picks the pre-tokenizer when `tokenizer.ggml.pre` is
    /// missing (Llama 3's for the `bitnet*` architectures).
    pub fn from_gguf(meta: &Metadata, architecture: &str) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_vocab(Vocab::from_gguf(meta, architecture)?)
    }

    pub fn from_vocab(vocab: Vocab) -> Result<Tokenizer, TokenizerError> {
        let n = vocab.tokens.len();
        let mut token_to_id = HashMap::with_capacity(n);
        for (id, text) in vocab.tokens.iter().enumerate() {
            // Later duplicates win, as in llama.cpp.
            token_to_id.insert(text.clone(), id as u32);
        }
        let byte_chars = bpe::byte_to_char_table();
        let char_to_byte = bpe::char_to_byte_map();
        let mut byte_tokens = [None; 256];
        let mut pieces = Vec::with_capacity(n);
        match vocab.model {
            ModelKind::BytePairBpe => {
                for (b, c) in byte_chars.iter().enumerate() {
                    byte_tokens[b] = token_to_id.get(c.to_string().as_str()).copied();
                }
                for (text, kind) in vocab.tokens.iter().zip(&vocab.kinds) {
                    pieces.push(match kind {
                        TokenKind::Normal | TokenKind::Byte => {
                            bpe::decode_token_text(text, &char_to_byte)
                        }
                        TokenKind::Control | TokenKind::UserDefined => text.as_bytes().to_vec(),
                        TokenKind::Unknown | TokenKind::Unused => Vec::new(),
                    });
                }
            }
            ModelKind::SentencePiece => {
                for (b, slot) in byte_tokens.iter_mut().enumerate() {
                    let hex = format!("<0x{b:02X}>");
                    *slot = token_to_id.get(&hex).copied().or_else(|| {
                        if b < 0x80 {
                            token_to_id.get(&(b as u8 as char).to_string()).copied()
                        } else {
                            None
                        }
                    });
                }
                for (text, kind) in vocab.tokens.iter().zip(&vocab.kinds) {
                    pieces.push(match kind {
                        TokenKind::Normal | TokenKind::UserDefined => {
                            text.replace(spm::SPACE_MARK, " ").into_bytes()
                        }
                        TokenKind::Byte => match spm::parse_byte_token(text) {
                            Some(b) => vec![b],
                            None => text.as_bytes().to_vec(),
                        },
                        TokenKind::Control => text.as_bytes().to_vec(),
                        // llama.cpp renders <unk> as U+2585.
                        TokenKind::Unknown => "\u{2585}".as_bytes().to_vec(),
                        TokenKind::Unused => Vec::new(),
                    });
                }
            }
        }
        let merges = match vocab.model {
            ModelKind::BytePairBpe => Some(Merges::new(&vocab.merges, &token_to_id)),
            ModelKind::SentencePiece => None,
        };
        let pre = match vocab.pre {
            Some(kind) => Some(PreTokenizer::new(kind)?),
            None => None,
        };
        let specials = SpecialMatcher::new(&vocab.tokens, &vocab.kinds);

        let mut end_of_generation = vec![false; n];
        for id in [vocab.eos, vocab.eot, vocab.eom].into_iter().flatten() {
            end_of_generation[id as usize] = true;
        }
        for (id, (text, kind)) in vocab.tokens.iter().zip(&vocab.kinds).enumerate() {
            if *kind == TokenKind::Control && END_OF_GENERATION_TEXTS.contains(&text.as_str()) {
                end_of_generation[id] = true;
            }
        }

        Ok(Tokenizer {
            model: vocab.model,
            tokens: vocab.tokens,
            kinds: vocab.kinds,
            pieces,
            token_to_id,
            scores: vocab.scores,
            merges,
            pre,
            specials,
            byte_tokens,
            byte_chars,
            end_of_generation,
            bos: vocab.bos,
            eos: vocab.eos,
            eot: vocab.eot,
            add_bos: vocab.add_bos,
            add_eos: vocab.add_eos,
            add_space_prefix: vocab.add_space_prefix,
            ignore_merges: vocab.ignore_merges,
        })
    }

    /// Encodes `text`. `add_bos` prepends the BOS token (if the vocabulary has one) unless
    /// the text already starts with it; `parse_special` turns control-token strings such as
    /// `<|eot_id|>` into their ids (user-defined tokens are always matched).
    pub fn encode(
        &self,
        text: &str,
        add_bos: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        let fragments = self.specials.split(text, parse_special);
        let mut prev_special = true;
        for fragment in &fragments {
            match *fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(t) => {
                    self.encode_text(t, prev_special, &mut out)?;
                    prev_special = false;
                }
            }
        }
        if add_bos {
            if let Some(bos) = self.bos {
                if out.first() != Some(&bos) {
                    out.insert(0, bos);
                }
            }
        }
        Ok(out)
    }

    /// Encodes with the metadata's defaults: BOS per `add_bos_default`, EOS per
    /// `tokenizer.ggml.add_eos_token`, special tokens parsed.
    pub fn encode_with_defaults(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = self.encode(text, self.add_bos, true)?;
        if self.add_eos {
            if let Some(eos) = self.eos {
                ids.push(eos);
            }
        }
        Ok(ids)
    }

    fn encode_text(
        &self,
        text: &str,
        after_special: bool,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        match self.model {
            ModelKind::BytePairBpe => self.encode_bpe(text, out),
            ModelKind::SentencePiece => {
                let mut escaped = String::with_capacity(text.len() + 3);
                if self.add_space_prefix && after_special {
                    escaped.push(spm::SPACE_MARK);
                }
                for c in text.chars() {
                    escaped.push(if c == ' ' { spm::SPACE_MARK } else { c });
                }
                spm::encode(
                    &escaped,
                    &self.token_to_id,
                    &self.scores,
                    &self.byte_tokens,
                    out,
                );
                Ok(())
            }
        }
    }

    fn encode_bpe(&self, text: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        let mut words = Vec::new();
        match &self.pre {
            Some(pre) => pre.split(text, &mut words)?,
            None => words.push(text),
        }
        let merges = self.merges.as_ref().expect("BPE tokenizer has merges");
        let mut encoded = String::new();
        let mut symbols = Vec::new();
        for word in words {
            encoded.clear();
            for &b in word.as_bytes() {
                encoded.push(self.byte_chars[b as usize]);
            }
            if self.ignore_merges {
                if let Some(&id) = self.token_to_id.get(&encoded) {
                    out.push(id);
                    continue;
                }
            }
            symbols.clear();
            for &b in word.as_bytes() {
                // A vocabulary without a byte's token cannot spell it; llama.cpp drops it too.
                if let Some(id) = self.byte_tokens[b as usize] {
                    symbols.push(id);
                }
            }
            merges.apply(&symbols, out);
        }
        Ok(())
    }

    /// Decodes ids to text. Byte sequences that are not valid UTF-8 become U+FFFD, one per
    /// maximal invalid subsequence (as `String::from_utf8_lossy` and Hugging Face do).
    /// `skip_special` leaves out control tokens (BOS, EOS, `<|eot_id|>`, ...). Ids outside the
    /// vocabulary decode to nothing.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut first = true;
        for &id in ids {
            if skip_special && self.is_control(id) {
                continue;
            }
            let piece = self.piece(id);
            if first && self.add_space_prefix && self.model == ModelKind::SentencePiece {
                // SentencePiece's dummy prefix: the first piece's leading space is not text.
                let normal = matches!(
                    self.kinds.get(id as usize),
                    Some(TokenKind::Normal | TokenKind::UserDefined)
                );
                if normal && piece.first() == Some(&b' ') {
                    bytes.extend_from_slice(&piece[1..]);
                    first = false;
                    continue;
                }
            }
            first = false;
            bytes.extend_from_slice(piece);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The raw bytes one token stands for (a piece of a UTF-8 character for byte tokens).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.piece(id).to_vec()
    }

    fn piece(&self, id: u32) -> &[u8] {
        self.pieces
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The token's text as stored in the vocabulary (`Ġthe`, `▁the`, `<|eot_id|>`).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a vocabulary entry given its stored text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    pub fn token_kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }

    /// Control tokens (and the unknown token) are "special": skipped by `skip_special`.
    pub fn is_control(&self, id: u32) -> bool {
        matches!(
            self.kinds.get(id as usize),
            Some(TokenKind::Control | TokenKind::Unknown)
        )
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The end-of-turn token (`<|eot_id|>`), from metadata or found by its text.
    pub fn eot_id(&self) -> Option<u32> {
        self.eot
    }

    /// Whether prompts get a BOS token (`tokenizer.ggml.add_bos_token`; default true for
    /// SentencePiece and Llama 3 BPE vocabularies).
    pub fn add_bos_default(&self) -> bool {
        self.add_bos
    }

    pub fn model_kind(&self) -> ModelKind {
        self.model
    }

    /// The BPE split rule in use (`None` for SentencePiece).
    pub fn pre_tokenizer(&self) -> Option<PreTokenizerKind> {
        self.pre.as_ref().map(|p| p.kind())
    }

    /// EOS, EOT, EOM and the well-known end-of-turn control tokens (`<|eot_id|>`,
    /// `<|end_of_text|>`, ...), whatever the metadata flags.
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation
            .get(id as usize)
            .copied()
            .unwrap_or(false)
    }

    /// Every end-of-generation id, ascending.
    pub fn end_of_generation_ids(&self) -> Vec<u32> {
        (0..self.end_of_generation.len() as u32)
            .filter(|&id| self.end_of_generation[id as usize])
            .collect()
    }

    /// An incremental decoder for generated tokens.
    pub fn stream_decoder(&self, skip_special: bool) -> StreamDecoder<'_> {
        StreamDecoder::new(self, skip_special)
    }
}
