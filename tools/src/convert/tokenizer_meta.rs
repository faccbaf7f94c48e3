//! `tokenizer.*` GGUF metadata from `tokenizer.json`, `tokenizer_config.json` and
//! `generation_config.json`, following llama.cpp's conventions so that
//! llama.cpp, Ollama and our own tokenizer agree with Hugging Face.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bitnet_formats::{Value, ValueType};
use serde_json::Value as Json;

use super::error::ConvertError;

/// llama.cpp token types.
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

/// The Llama 3 pre-tokeniser regex, as `tokenizer.json` spells it (`llama-bpe` in llama.cpp).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Falcon-E vocabularies have 32,768 tokens, Falcon3's 131,072.
const FALCON_E_MAX_VOCAB: usize = 65536;

/// Everything the tokenizer files tell us, ready to be written.
#[derive(Debug, Default)]
pub struct TokenizerMetadata {
    pub entries: Vec<(String, Value)>,
    pub warnings: Vec<String>,
    pub n_tokens: usize,
}

fn read_json(path: &Path) -> Result<Option<Json>, ConvertError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| ConvertError::Json {
                path: path.to_owned(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConvertError::io(path, e)),
    }
}

/// A special-token entry of `tokenizer_config.json`: a string or `{"content": ...}`.
fn token_string(v: Option<&Json>) -> Option<&str> {
    match v? {
        Json::String(s) => Some(s),
        Json::Object(o) => o.get("content").and_then(|c| c.as_str()),
        _ => None,
    }
}

/// Detects llama.cpp's pre-tokeniser name from the structure of `tokenizer.json`.
fn detect_pre(tok: &Json, vocab: &HashMap<String, u32>) -> Option<&'static str> {
    let pre = tok.get("pre_tokenizer")?;
    let list: Vec<&Json> = match pre.get("type").and_then(|t| t.as_str()) {
        Some("Sequence") => pre.get("pretokenizers")?.as_array()?.iter().collect(),
        Some(_) => vec![pre],
        None => return None,
    };
    let kinds: Vec<&str> = list
        .iter()
        .filter_map(|p| p.get("type").and_then(|t| t.as_str()))
        .collect();
    let split_regex = list
        .iter()
        .find(|p| p.get("type").and_then(|t| t.as_str()) == Some("Split"))
        .and_then(|p| p.get("pattern"))
        .and_then(|p| p.get("Regex"))
        .and_then(|r| r.as_str());
    match (kinds.as_slice(), split_regex) {
        (["Split", "ByteLevel"], Some(re)) if re == LLAMA3_REGEX => {
            // Falcon3 reuses the Llama 3 regex with its own vocabulary (131k tokens); Falcon-E
            // (Falcon Edge) shares it with a 32k vocabulary, which bitnet.cpp's converter names
            // `falcon_e` (same pre-tokenizer as Llama 3 in its llama.cpp).
            if vocab.contains_key(">>TITLE<<") {
                Some(if vocab.len() <= FALCON_E_MAX_VOCAB {
                    "falcon_e"
                } else {
                    "falcon3"
                })
            } else {
                Some("llama-bpe")
            }
        }
        (["ByteLevel"], None) => {
            let use_regex = list[0]
                .get("use_regex")
                .and_then(|u| u.as_bool())
                .unwrap_or(true);
            use_regex.then_some("gpt-2")
        }
        _ => None,
    }
}

/// Which TemplateProcessing special tokens `tokenizer.json` adds around a single sequence.
fn template_specials(tok: &Json) -> (Option<String>, Option<String>) {
    let Some(post) = tok.get("post_processor") else {
        return (None, None);
    };
    let procs: Vec<&Json> = match post.get("type").and_then(|t| t.as_str()) {
        Some("Sequence") => post
            .get("processors")
            .and_then(|p| p.as_array())
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => vec![post],
    };
    for p in procs {
        if p.get("type").and_then(|t| t.as_str()) != Some("TemplateProcessing") {
            continue;
        }
        let Some(single) = p.get("single").and_then(|s| s.as_array()) else {
            continue;
        };
        let special = |item: Option<&Json>| {
            item.and_then(|i| i.get("SpecialToken"))
                .and_then(|s| s.get("id"))
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        };
        return (special(single.first()), special(single.last()));
    }
    (None, None)
}

pub struct TokenizerInputs<'a> {
    pub dir: &'a Path,
    pub vocab_size: usize,
    pub config_bos: Option<u32>,
    pub config_eos: Option<u32>,
    pub config_pad: Option<u32>,
    /// Overrides pre-tokeniser detection.
    pub pre_override: Option<&'a str>,
}

/// Added tokens: (id, content, special).
type AddedTokens = Vec<(u32, String, bool)>;

/// The BPE vocabulary with the added tokens folded in, and the added tokens themselves.
fn read_vocab(
    vocab_json: &serde_json::Map<String, Json>,
    tok: &Json,
    terr: &dyn Fn(String) -> ConvertError,
) -> Result<(HashMap<String, u32>, AddedTokens), ConvertError> {
    let mut vocab: HashMap<String, u32> = HashMap::with_capacity(vocab_json.len());
    for (piece, id) in vocab_json {
        let id = id
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| terr(format!("bad id for {piece:?}")))?;
        vocab.insert(piece.clone(), id);
    }
    let mut added: AddedTokens = Vec::new();
    for a in tok
        .get("added_tokens")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        let id = a
            .get("id")
            .and_then(|i| i.as_u64())
            .and_then(|i| u32::try_from(i).ok());
        let content = a.get("content").and_then(|c| c.as_str());
        let (Some(id), Some(content)) = (id, content) else {
            return Err(terr("malformed added_tokens entry".into()));
        };
        let special = a.get("special").and_then(|s| s.as_bool()).unwrap_or(false);
        vocab.insert(content.to_owned(), id);
        added.push((id, content.to_owned(), special));
    }
    Ok((vocab, added))
}

/// One entry per id up to `n`: pieces, token types, and a warning for ids without a piece.
fn token_table(
    n: usize,
    vocab: &HashMap<String, u32>,
    added: &AddedTokens,
) -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens: Vec<Option<String>> = vec![None; n];
    let mut types = vec![TOKEN_NORMAL; n];
    for (piece, &id) in vocab {
        tokens[id as usize] = Some(piece.clone());
    }
    for (id, content, special) in added {
        tokens[*id as usize] = Some(content.clone());
        types[*id as usize] = if *special {
            TOKEN_CONTROL
        } else {
            TOKEN_USER_DEFINED
        };
    }
    let mut warnings = Vec::new();
    let mut n_pad = 0usize;
    let tokens: Vec<String> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            t.unwrap_or_else(|| {
                types[i] = TOKEN_USER_DEFINED;
                n_pad += 1;
                format!("[PAD{i}]")
            })
        })
        .collect();
    if n_pad > 0 {
        warnings.push(format!(
            "{n_pad} token ids have no tokenizer entry; written as [PAD<id>]"
        ));
    }
    (tokens, types, warnings)
}

fn read_merges(
    model: &Json,
    terr: &dyn Fn(String) -> ConvertError,
) -> Result<Vec<String>, ConvertError> {
    Ok(match model.get("merges").and_then(|m| m.as_array()) {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .map(|m| match m {
                Json::String(s) => Ok(s.clone()),
                Json::Array(pair) if pair.len() == 2 => {
                    match (pair[0].as_str(), pair[1].as_str()) {
                        (Some(a), Some(b)) => Ok(format!("{a} {b}")),
                        _ => Err(terr("malformed merge entry".into())),
                    }
                }
                _ => Err(terr("malformed merge entry".into())),
            })
            .collect::<Result<_, _>>()?,
    })
}

pub fn tokenizer_metadata(inp: &TokenizerInputs) -> Result<TokenizerMetadata, ConvertError> {
    let tok_path = inp.dir.join("tokenizer.json");
    let cfg_path = inp.dir.join("tokenizer_config.json");
    let cfg = read_json(&cfg_path)?.unwrap_or(Json::Null);
    let Some(tok) = read_json(&tok_path)? else {
        return spm_metadata(inp, &cfg);
    };
    let gen = read_json(&inp.dir.join("generation_config.json"))?.unwrap_or(Json::Null);
    let terr = |m: String| ConvertError::Tokenizer {
        path: tok_path.clone(),
        message: m,
    };

    let model = tok
        .get("model")
        .ok_or_else(|| terr("no \"model\" section".into()))?;
    let model_type = model.get("type").and_then(|t| t.as_str()).unwrap_or("");
    if model_type != "BPE" {
        return Err(terr(format!(
            "tokenizer model {model_type:?} is not supported (only byte-level BPE)"
        )));
    }
    if model.get("byte_fallback").and_then(|b| b.as_bool()) == Some(true) {
        return Err(terr(
            "SentencePiece-style BPE (byte_fallback) is not supported yet".into(),
        ));
    }
    let vocab_json = model
        .get("vocab")
        .and_then(|v| v.as_object())
        .ok_or_else(|| terr("no BPE vocab".into()))?;

    let (vocab, added) = read_vocab(vocab_json, &tok, &terr)?;

    let max_id = vocab.values().copied().max().map_or(0, |m| m as usize + 1);
    if max_id > inp.vocab_size {
        return Err(terr(format!(
            "tokenizer has ids up to {} but the model's vocab_size is {}",
            max_id - 1,
            inp.vocab_size
        )));
    }
    let (tokens, types, mut warnings) = token_table(inp.vocab_size, &vocab, &added);

    let merges = read_merges(model, &terr)?;

    let pre = match inp.pre_override {
        Some(p) => p.to_owned(),
        None => detect_pre(&tok, &vocab).map(str::to_owned).ok_or_else(|| {
            terr("unrecognised pre-tokenizer; pass --tokenizer-pre NAME (e.g. llama-bpe, gpt-2, falcon3) \
                  to name llama.cpp's equivalent"
                .into())
        })?,
    };

    let id_of = |s: Option<&str>| s.and_then(|s| vocab.get(s).copied());
    let mut entries: Vec<(String, Value)> = vec![
        ("tokenizer.ggml.model".into(), Value::from("gpt2")),
        ("tokenizer.ggml.pre".into(), Value::from(pre.as_str())),
        ("tokenizer.ggml.tokens".into(), Value::strings(tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            Value::array_of(ValueType::I32, types.iter().map(|&t| Value::I32(t))),
        ),
        ("tokenizer.ggml.merges".into(), Value::strings(merges)),
    ];

    let bos = id_of(token_string(cfg.get("bos_token"))).or(inp.config_bos);
    let eos = id_of(token_string(cfg.get("eos_token")))
        .or_else(|| gen.get("eos_token_id").and_then(first_id))
        .or(inp.config_eos);
    let pad = id_of(token_string(cfg.get("pad_token")))
        .or_else(|| gen.get("pad_token_id").and_then(first_id))
        .or(inp.config_pad);
    let unk = id_of(token_string(cfg.get("unk_token")));
    let eot = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>"]
        .iter()
        .find_map(|t| vocab.get(*t).copied());
    let eom = vocab.get("<|eom_id|>").copied();
    for (key, id) in [
        ("bos_token_id", bos),
        ("eos_token_id", eos),
        ("unknown_token_id", unk),
        ("padding_token_id", pad),
        ("eot_token_id", eot),
        ("eom_token_id", eom),
    ] {
        if let Some(id) = id {
            entries.push((format!("tokenizer.ggml.{key}"), Value::U32(id)));
        }
    }

    let (tpl_first, tpl_last) = template_specials(&tok);
    let bos_str = bos.and_then(|b| vocab.iter().find(|(_, &i)| i == b).map(|(s, _)| s.clone()));
    let eos_str = eos.and_then(|b| vocab.iter().find(|(_, &i)| i == b).map(|(s, _)| s.clone()));
    let add_bos = cfg
        .get("add_bos_token")
        .and_then(|b| b.as_bool())
        .unwrap_or_else(|| tpl_first.is_some() && tpl_first == bos_str);
    let add_eos = cfg
        .get("add_eos_token")
        .and_then(|b| b.as_bool())
        .unwrap_or_else(|| tpl_last.is_some() && tpl_last == eos_str && tpl_first != tpl_last);
    entries.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(add_bos)));
    entries.push(("tokenizer.ggml.add_eos_token".into(), Value::Bool(add_eos)));

    for (name, template) in chat_templates(inp.dir, &cfg)? {
        let key = match name {
            None => "tokenizer.chat_template".to_owned(),
            Some(n) => format!("tokenizer.chat_template.{n}"),
        };
        entries.push((key, Value::String(template)));
    }
    if !entries.iter().any(|(k, _)| k == "tokenizer.chat_template") {
        warnings.push(
            "no chat template in the checkpoint; chat falls back to the runtime default".into(),
        );
    }

    Ok(TokenizerMetadata {
        entries,
        warnings,
        n_tokens: inp.vocab_size,
    })
}

/// A checkpoint with only a SentencePiece `tokenizer.model`: llama.cpp's `llama` vocabulary
/// keys, `add_bos_token`/`add_eos_token` from `tokenizer_config.json` (SentencePiece's
/// defaults, true and false, otherwise) and the chat template.
fn spm_metadata(inp: &TokenizerInputs, cfg: &Json) -> Result<TokenizerMetadata, ConvertError> {
    let model = inp.dir.join("tokenizer.model");
    if !model.is_file() {
        return Err(ConvertError::MissingFile {
            path: inp.dir.join("tokenizer.json"),
            what: "tokenizer (tokenizer.json or a SentencePiece tokenizer.model)",
        });
    }
    let mut entries = super::spm::spm_entries(&model, inp.vocab_size)?;
    let flag = |key: &str, default: bool| cfg.get(key).and_then(|b| b.as_bool()).unwrap_or(default);
    entries.push((
        "tokenizer.ggml.add_bos_token".into(),
        Value::Bool(flag("add_bos_token", true)),
    ));
    entries.push((
        "tokenizer.ggml.add_eos_token".into(),
        Value::Bool(flag("add_eos_token", false)),
    ));
    let mut warnings = Vec::new();
    let templates = chat_templates(inp.dir, cfg)?;
    if templates.is_empty() {
        warnings.push(
            "no chat template in the checkpoint; chat falls back to the runtime default".into(),
        );
    }
    for (name, template) in templates {
        let key = match name {
            None => "tokenizer.chat_template".to_owned(),
            Some(n) => format!("tokenizer.chat_template.{n}"),
        };
        entries.push((key, Value::String(template)));
    }
    Ok(TokenizerMetadata {
        entries,
        warnings,
        n_tokens: inp.vocab_size,
    })
}

fn first_id(v: &Json) -> Option<u32> {
    match v {
        Json::Number(n) => n.as_u64().and_then(|i| u32::try_from(i).ok()),
        Json::Array(a) => a.first().and_then(first_id),
        _ => None,
    }
}

/// The chat templates of the checkpoint: `chat_template.jinja` (newer transformers) wins over
/// `chat_template.json`, which wins over `tokenizer_config.json`'s `chat_template` (a string,
/// or a list of named templates). `None` is the default template.
fn chat_templates(dir: &Path, cfg: &Json) -> Result<Vec<(Option<String>, String)>, ConvertError> {
    let jinja: PathBuf = dir.join("chat_template.jinja");
    match std::fs::read_to_string(&jinja) {
        Ok(t) => return Ok(vec![(None, t)]),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ConvertError::io(&jinja, e)),
    }
    let from_json = read_json(&dir.join("chat_template.json"))?;
    let source = from_json
        .as_ref()
        .and_then(|j| j.get("chat_template"))
        .or_else(|| cfg.get("chat_template"));
    Ok(match source {
        Some(Json::String(s)) => vec![(None, s.clone())],
        Some(Json::Array(list)) => list
            .iter()
            .filter_map(|t| {
                let name = t.get("name")?.as_str()?;
                let tpl = t.get("template")?.as_str()?.to_owned();
                Some(((name != "default").then(|| name.to_owned()), tpl))
            })
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_llama_bpe_and_gpt2() {
        let vocab = HashMap::new();
        let llama3: Json = serde_json::json!({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}});
        assert_eq!(detect_pre(&llama3, &vocab), Some("llama-bpe"));
        let gpt2: Json =
            serde_json::json!({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}});
        assert_eq!(detect_pre(&gpt2, &vocab), Some("gpt-2"));
        let mut falcon: HashMap<String, u32> = HashMap::from([(">>TITLE<<".to_owned(), 0)]);
        assert_eq!(detect_pre(&llama3, &falcon), Some("falcon_e"));
        falcon.extend((1..70_000).map(|i| (format!("t{i}"), i)));
        assert_eq!(detect_pre(&llama3, &falcon), Some("falcon3"));
        let other: Json = serde_json::json!({"pre_tokenizer": {"type": "Whitespace"}});
        assert_eq!(detect_pre(&other, &vocab), None);
    }
}
