//! The tiny BitNet model's tokenizer (a 4096-token Llama 3 style BPE) against the Hugging
//! Face reference cases: GGUF-style metadata is built from `tokenizer.json` the way the
//! converter writes it (model `gpt2`, no `pre` key for a `bitnet*` architecture, added
//! special tokens as control tokens), then every case must match.

mod tokenizer_support;

use bitnet_gguf::engine::tokenizer::{PreTokenizerKind, Tokenizer};
use serde_json::Value as Json;
use tokenizer_support::{read_json, tiny, tiny_metadata};

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

#[test]
fn long_and_pathological_inputs_round_trip() {
    let tok = tiny(true);
    let inputs = [
        " ".repeat(50_000),
        format!("{}a", " ".repeat(50_000)),
        "\n".repeat(50_000),
        " \n".repeat(20_000),
        "7".repeat(30_000),
        "!".repeat(30_000),
        "a".repeat(30_000),
        "é".repeat(20_000),
        "<|eot_id".repeat(5_000),
        "\u{FFFD}\u{0}\u{1b}".repeat(5_000),
    ];
    for text in &inputs {
        let ids = tok.encode(text, false, true).unwrap();
        assert!(!ids.is_empty());
        assert_eq!(
            &tok.decode(&ids, false),
            text,
            "round trip of {:?}...",
            &text[..10]
        );
    }
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tokenizer>();
    check::<bitnet_gguf::engine::chat::ChatTemplate>();
    check::<bitnet_gguf::engine::sampler::Sampler>();
}
