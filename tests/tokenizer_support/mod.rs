//! Shared by the tokenizer and chat tests: the tiny model's tokenizer as GGUF metadata.

#![allow(dead_code)]

use std::path::PathBuf;

use bitnet_formats::{Metadata, Value, ValueType};
use bitnet_gguf::engine::tokenizer::Tokenizer;
use serde_json::Value as Json;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tokenizer")
        .join(name)
}

pub fn read_json(name: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// `tokenizer.*` metadata as a converter writes it for this tokenizer. `with_pre` adds
/// `tokenizer.ggml.pre = llama-bpe`; without it the architecture must select Llama 3's rule.
pub fn tiny_metadata(with_pre: bool) -> Metadata {
    let tj = read_json("tokenizer.json");
    let vocab = tj["model"]["vocab"].as_object().unwrap();
    let added = tj["added_tokens"].as_array().unwrap();
    let n = vocab.len().max(
        added
            .iter()
            .map(|t| t["id"].as_u64().unwrap() as usize + 1)
            .max()
            .unwrap_or(0),
    );
    let mut tokens = vec![String::new(); n];
    let mut types = vec![1i32; n];
    for (text, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = text.clone();
    }
    for t in added {
        let id = t["id"].as_u64().unwrap() as usize;
        tokens[id] = t["content"].as_str().unwrap().to_string();
        types[id] = if t["special"].as_bool().unwrap() {
            3
        } else {
            4
        };
    }
    let merges: Vec<String> = tj["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            Json::Array(pair) => format!(
                "{} {}",
                pair[0].as_str().unwrap(),
                pair[1].as_str().unwrap()
            ),
            Json::String(s) => s.clone(),
            _ => panic!("bad merge"),
        })
        .collect();
    let mut meta = Metadata::new();
    meta.set("general.architecture", "bitnet-b1.58");
    meta.set("tokenizer.ggml.model", "gpt2");
    if with_pre {
        meta.set("tokenizer.ggml.pre", "llama-bpe");
    }
    meta.set("tokenizer.ggml.tokens", Value::strings(tokens));
    meta.set(
        "tokenizer.ggml.token_type",
        Value::array_of(ValueType::I32, types.into_iter().map(Value::I32)),
    );
    meta.set("tokenizer.ggml.merges", Value::strings(merges));
    meta.set("tokenizer.ggml.bos_token_id", 4080u32);
    meta.set("tokenizer.ggml.eos_token_id", 4081u32);
    meta.set("tokenizer.ggml.padding_token_id", 4081u32);
    meta.set("tokenizer.ggml.add_bos_token", true);
    meta
}

pub fn tiny(with_pre: bool) -> Tokenizer {
    Tokenizer::from_gguf(&tiny_metadata(with_pre), "bitnet-b1.58").unwrap()
}
