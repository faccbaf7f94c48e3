//! Reading the `tokenizer.ggml.*` metadata keys into plain data.

use bitnet_formats::{Array, Metadata, Value};

use super::pretokenize::PreTokenizerKind;
use super::TokenizerError;

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    pub fn from_gguf(code: i32) -> TokenKind {
        match code {
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            // 0 (undefined) and 1 (normal) and anything unknown decode as ordinary text.
            _ => TokenKind::Normal,
        }
    }
}

/// The tokenizer algorithm (`tokenizer.ggml.model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// `gpt2`: byte-level BPE with ranked merges (Llama 3, BitNet b1.58 2B4T, Falcon 3).
    BytePairBpe,
    /// `llama`: SentencePiece with scores and byte fallback (Llama 2, 1bitLLM).
    SentencePiece,
}

/// Everything the tokenizer needs, read from metadata and checked for consistency.
pub struct Vocab {
    pub model: ModelKind,
    pub pre: Option<PreTokenizerKind>,
    pub tokens: Vec<String>,
    pub kinds: Vec<TokenKind>,
    pub scores: Vec<f32>,
    /// `(left, right)` token texts, in rank order.
    pub merges: Vec<(String, String)>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    pub add_space_prefix: bool,
    pub ignore_merges: bool,
}

fn bad(key: &str, problem: impl Into<String>) -> TokenizerError {
    TokenizerError::BadMetadata {
        key: key.to_string(),
        problem: problem.into(),
    }
}

fn token_id(meta: &Metadata, key: &str, n_vocab: usize) -> Result<Option<u32>, TokenizerError> {
    let Some(value) = meta.get(key) else {
        return Ok(None);
    };
    // llama.cpp writes -1 (as i32) for "none" in some files; treat any negative as absent.
    if let Some(v) = value.as_i64() {
        if v < 0 {
            return Ok(None);
        }
    }
    let id = value
        .as_u64()
        .ok_or_else(|| bad(key, "is not an integer"))?;
    if id >= n_vocab as u64 {
        return Err(bad(
            key,
            format!("token id {id} is outside the vocabulary of {n_vocab}"),
        ));
    }
    Ok(Some(id as u32))
}

fn strings(meta: &Metadata, key: &str) -> Result<Option<Vec<String>>, TokenizerError> {
    let Some(value) = meta.get(key) else {
        return Ok(None);
    };
    let array = value
        .as_array()
        .ok_or_else(|| bad(key, "is not an array"))?;
    let mut out = Vec::with_capacity(array.len());
    for v in array.iter() {
        match v {
            Value::String(s) => out.push(s.clone()),
            _ => return Err(bad(key, "is not an array of strings")),
        }
    }
    Ok(Some(out))
}

impl Vocab {
    pub fn from_gguf(meta: &Metadata, architecture: &str) -> Result<Vocab, TokenizerError> {
        let model_name = meta
            .get_str("tokenizer.ggml.model")
            .ok_or(TokenizerError::MissingKey("tokenizer.ggml.model"))?;
        let model = match model_name {
            "gpt2" => ModelKind::BytePairBpe,
            "llama" => ModelKind::SentencePiece,
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let tokens = strings(meta, "tokenizer.ggml.tokens")?
            .ok_or(TokenizerError::MissingKey("tokenizer.ggml.tokens"))?;
        let n = tokens.len();
        if n == 0 {
            return Err(bad("tokenizer.ggml.tokens", "is empty"));
        }
        if n > u32::MAX as usize / 2 {
            return Err(bad("tokenizer.ggml.tokens", "has too many entries"));
        }

        let mut kinds = per_token(
            meta,
            "tokenizer.ggml.token_type",
            n,
            Array::as_i32s,
            "an integer",
        )?
        .map_or_else(
            || vec![TokenKind::Normal; n],
            |codes| codes.into_iter().map(TokenKind::from_gguf).collect(),
        );
        let scores = per_token(meta, "tokenizer.ggml.scores", n, Array::as_f32s, "a float")?
            .unwrap_or_else(|| vec![0.0; n]);
        let merges = merges(meta)?;
        if model == ModelKind::BytePairBpe && merges.is_empty() {
            return Err(TokenizerError::MissingKey("tokenizer.ggml.merges"));
        }

        let pre = match model {
            ModelKind::BytePairBpe => Some(PreTokenizerKind::from_name(
                meta.get_str("tokenizer.ggml.pre"),
                architecture,
            )?),
            ModelKind::SentencePiece => None,
        };

        let specials = Specials::from_gguf(meta, &tokens, &mut kinds)?;
        let is_llama3_bpe = pre == Some(PreTokenizerKind::Llama3);
        let default_add_bos = match model {
            ModelKind::SentencePiece => true,
            ModelKind::BytePairBpe => is_llama3_bpe,
        };
        let add_bos = meta
            .get_bool("tokenizer.ggml.add_bos_token")
            .unwrap_or(default_add_bos);
        let add_eos = meta
            .get_bool("tokenizer.ggml.add_eos_token")
            .unwrap_or(false);
        let add_space_prefix = meta
            .get_bool("tokenizer.ggml.add_space_prefix")
            .unwrap_or(model == ModelKind::SentencePiece);

        Ok(Vocab {
            model,
            pre,
            tokens,
            kinds,
            scores,
            merges,
            bos: specials.bos,
            eos: specials.eos,
            eot: specials.eot,
            eom: specials.eom,
            unk: specials.unk,
            pad: specials.pad,
            add_bos,
            add_eos,
            add_space_prefix,
            ignore_merges: is_llama3_bpe,
        })
    }
}

/// The one-per-token array under `key`, checked to hold `n` values of the right type.
fn per_token<T>(
    meta: &Metadata,
    key: &str,
    n: usize,
    values: fn(&Array) -> Option<Vec<T>>,
    kind: &str,
) -> Result<Option<Vec<T>>, TokenizerError> {
    let Some(array) = meta.get_array(key) else {
        return Ok(None);
    };
    let values = values(array).ok_or_else(|| bad(key, format!("is not {kind} array")))?;
    if values.len() != n {
        return Err(bad(
            key,
            format!("has {} entries for {n} tokens", values.len()),
        ));
    }
    Ok(Some(values))
}

/// `tokenizer.ggml.merges`: each entry two token texts separated by a space.
fn merges(meta: &Metadata) -> Result<Vec<(String, String)>, TokenizerError> {
    Ok(match strings(meta, "tokenizer.ggml.merges")? {
        Some(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                // Byte-level tokens never contain a space (it is `Ġ`), so the first space
                // after the first character separates the pair.
                let split = m
                    .char_indices()
                    .skip(1)
                    .find(|&(_, c)| c == ' ')
                    .map(|(i, _)| i);
                match split {
                    Some(at) => Ok((m[..at].to_string(), m[at + 1..].to_string())),
                    None => Err(bad(
                        "tokenizer.ggml.merges",
                        format!("entry {i} ({m:?}) is not two tokens separated by a space"),
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    })
}

/// The special token ids a vocabulary declares.
struct Specials {
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
}

impl Specials {
    /// Reads the ids and marks the declared ones as control tokens where the file gives no
    /// token types.
    fn from_gguf(
        meta: &Metadata,
        tokens: &[String],
        kinds: &mut [TokenKind],
    ) -> Result<Specials, TokenizerError> {
        let bos = token_id(meta, "tokenizer.ggml.bos_token_id", tokens.len())?;
        let eos = token_id(meta, "tokenizer.ggml.eos_token_id", tokens.len())?;
        let mut eot = token_id(meta, "tokenizer.ggml.eot_token_id", tokens.len())?;
        let eom = token_id(meta, "tokenizer.ggml.eom_token_id", tokens.len())?;
        let unk = token_id(meta, "tokenizer.ggml.unknown_token_id", tokens.len())?;
        let pad = token_id(meta, "tokenizer.ggml.padding_token_id", tokens.len())?;
        if eot.is_none() {
            // Files converted without `eot_token_id` (the official BitNet 2B4T GGUF among
            // them) still end turns with `<|eot_id|>`.
            eot = tokens
                .iter()
                .position(|t| t == "<|eot_id|>" || t == "<|im_end|>" || t == "<end_of_turn>")
                .map(|i| i as u32);
        }
        // Without a token-type array the declared specials are still control tokens, so
        // they are matched in text and skipped when decoding.
        for id in [bos, eos, eot, eom, pad].into_iter().flatten() {
            if kinds[id as usize] == TokenKind::Normal
                && meta.get("tokenizer.ggml.token_type").is_none()
            {
                kinds[id as usize] = TokenKind::Control;
            }
        }
        Ok(Specials {
            bos,
            eos,
            eot,
            eom,
            unk,
            pad,
        })
    }
}
