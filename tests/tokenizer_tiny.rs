//! The tiny BitNet model's tokenizer (a 4096-token Llama 3 style BPE) against the Hugging
//! Face reference cases: GGUF-style metadata is built from `tokenizer.json` the way the
//! converter writes it (model `gpt2`, no `pre` key for a `bitnet*` architecture, added
//! special tokens as control tokens), then every case must match.

use std::path::PathBuf;

use bitnet_formats::{Metadata, Value, ValueType};
use bitnet_gguf::tokenizer::{PreTokenizerKind, Tokenizer};
use serde_json::Value as Json;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tokenizer")
        .join(name)
}

fn read_json(name: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// `tokenizer.*` metadata as a converter writes it for this tokenizer. `with_pre` adds
/// `tokenizer.ggml.pre = llama-bpe`; without it the architecture must select Llama 3's rule.
fn tiny_metadata(with_pre: bool) -> Metadata {
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

fn tiny(with_pre: bool) -> Tokenizer {
    Tokenizer::from_gguf(&tiny_metadata(with_pre), "bitnet-b1.58").unwrap()
}

fn ids(v: &Json) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn missing_pre_selects_llama3_for_bitnet() {
    assert_eq!(tiny(false).pre_tokenizer(), Some(PreTokenizerKind::Llama3));
}

#[test]
fn every_reference_case_encodes_and_decodes() {
    let cases = read_json("tokenizer_cases.json");
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 141);
    for with_pre in [true, false] {
        let tok = tiny(with_pre);
        let mut failures = Vec::new();
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let expected = ids(&case["ids"]);
            let got = tok.encode(text, false, true).unwrap();
            if got != expected {
                failures.push(format!("ids {text:?}: got {got:?}, expected {expected:?}"));
            }
            let expected_bos = ids(&case["ids_with_special_tokens"]);
            let got_bos = tok.encode(text, tok.add_bos_default(), true).unwrap();
            // HF's post-processor adds BOS even when the text already starts with one.
            let got_bos_hf = if got_bos.len() == got.len() {
                [vec![4080], got.clone()].concat()
            } else {
                got_bos
            };
            if got_bos_hf != expected_bos {
                failures.push(format!(
                    "ids+bos {text:?}: got {got_bos_hf:?}, expected {expected_bos:?}"
                ));
            }
            let decoded = tok.decode(&expected, false);
            if decoded != case["decoded"].as_str().unwrap() || decoded != text {
                failures.push(format!("decode {text:?}: got {decoded:?}"));
            }
        }
        assert!(
            failures.is_empty(),
            "pre key present: {with_pre}; {} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn every_decode_case_matches() {
    let tok = tiny(true);
    let cases = read_json("tokenizer_cases.json");
    let cases = cases["decode_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 13);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let id_list = ids(&case["ids"]);
        assert_eq!(
            tok.decode(&id_list, false),
            case["decoded"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            tok.decode(&id_list, true),
            case["decoded_skip_special_tokens"].as_str().unwrap(),
            "{name} (skip special)"
        );
        // The stream decoder gives the same text.
        let mut stream = tok.stream_decoder(false);
        let mut text: String = id_list.iter().map(|&id| stream.push(id)).collect();
        text.push_str(&stream.finish());
        assert_eq!(text, case["decoded"].as_str().unwrap(), "{name} (stream)");
    }
}

#[test]
fn end_of_generation_includes_eot_without_metadata() {
    let tok = tiny(true);
    assert_eq!(tok.eot_id(), Some(4089));
    assert!(tok.is_end_of_generation(4089));
    assert!(tok.is_end_of_generation(4081));
    assert!(!tok.is_end_of_generation(4080));
    assert!(!tok.is_end_of_generation(13));
}

#[test]
fn bad_metadata_is_a_clear_error() {
    let mut meta = tiny_metadata(true);
    meta.set("tokenizer.ggml.model", "wordpiece");
    let err = Tokenizer::from_gguf(&meta, "bitnet-b1.58").unwrap_err();
    assert!(err.to_string().contains("wordpiece"), "{err}");

    let mut meta = tiny_metadata(true);
    meta.set("tokenizer.ggml.bos_token_id", 999_999u32);
    let err = Tokenizer::from_gguf(&meta, "bitnet-b1.58").unwrap_err();
    assert!(err.to_string().contains("bos_token_id"), "{err}");

    let mut meta = tiny_metadata(true);
    meta.remove("tokenizer.ggml.tokens");
    let err = Tokenizer::from_gguf(&meta, "bitnet-b1.58").unwrap_err();
    assert!(err.to_string().contains("tokenizer.ggml.tokens"), "{err}");

    let mut meta = tiny_metadata(true);
    meta.set("tokenizer.ggml.pre", "no-such-pre");
    let err = Tokenizer::from_gguf(&meta, "bitnet-b1.58").unwrap_err();
    assert!(err.to_string().contains("no-such-pre"), "{err}");
}
