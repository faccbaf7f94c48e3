//! llama.cpp's vocabulary tests: tokenizers built from the metadata of real GGUF files
//! (Llama 3 byte-level BPE, Llama 2 SentencePiece) must reproduce every `.out` line and
//! decode back to the input.

use std::path::PathBuf;
use std::sync::OnceLock;

use bitnet_formats::GgufFile;
use bitnet_gguf::engine::tokenizer::{ModelKind, PreTokenizerKind, Tokenizer};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vocab")
        .join(name)
}

fn build(name: &str) -> Tokenizer {
    let file = GgufFile::open(fixture(name)).expect("open vocab gguf");
    let arch = file.architecture().unwrap_or("llama").to_string();
    Tokenizer::from_gguf(file.metadata(), &arch).expect("build tokenizer")
}

/// Each vocabulary is built once per test binary (the 128k-token one takes a moment).
fn load(name: &str) -> &'static Tokenizer {
    static BPE: OnceLock<Tokenizer> = OnceLock::new();
    static SPM: OnceLock<Tokenizer> = OnceLock::new();
    match name {
        "ggml-vocab-llama-bpe.gguf" => BPE.get_or_init(|| build(name)),
        "ggml-vocab-llama-spm.gguf" => SPM.get_or_init(|| build(name)),
        other => panic!("unknown vocab {other}"),
    }
}

/// The `.inp` strings (separated as llama.cpp's test-tokenizer-0 does) and `.out` ids.
fn cases(name: &str) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(fixture(&format!("{name}.inp"))).unwrap();
    let out = std::fs::read_to_string(fixture(&format!("{name}.out"))).unwrap();
    let sep = "\n__ggml_vocab_test__\n";
    let mut texts = Vec::new();
    let mut rest = inp.as_str();
    while let Some(pos) = rest.find(sep) {
        texts.push(rest[..pos].to_string());
        rest = &rest[pos + sep.len()..];
    }
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        texts.len(),
        ids.len(),
        "{name}: .inp and .out disagree in length"
    );
    assert!(texts.len() > 30);
    texts.into_iter().zip(ids).collect()
}

fn check_all(name: &str) {
    let tok = load(name);
    let mut failures = Vec::new();
    let all = cases(name);
    for (text, expected) in &all {
        let ids = tok.encode(text, false, false).unwrap();
        if &ids != expected {
            failures.push(format!(
                "encode {text:?}\n  got      {ids:?}\n  expected {expected:?}"
            ));
            continue;
        }
        let decoded = tok.decode(&ids, false);
        if &decoded != text {
            failures.push(format!(
                "decode {ids:?}: got {decoded:?}, expected {text:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn llama3_bpe_matches_llama_cpp_on_every_case() {
    check_all("ggml-vocab-llama-bpe.gguf");
}

#[test]
fn llama2_spm_matches_llama_cpp_on_every_case() {
    check_all("ggml-vocab-llama-spm.gguf");
}

#[test]
fn llama3_vocab_properties() {
    let tok = load("ggml-vocab-llama-bpe.gguf");
    assert_eq!(tok.model_kind(), ModelKind::BytePairBpe);
    assert_eq!(tok.pre_tokenizer(), Some(PreTokenizerKind::Llama3));
    assert_eq!(tok.vocab_size(), 128256);
    assert_eq!(tok.bos_id(), Some(128000));
    assert!(tok.add_bos_default());
    // <|eot_id|> and <|end_of_text|> both end generation.
    assert!(tok.is_end_of_generation(128009));
    assert!(tok.is_end_of_generation(128001));
    assert!(!tok.is_end_of_generation(128000));
    // BOS is added once, and not in front of a text that already starts with it.
    assert_eq!(tok.encode("Hello", true, false).unwrap(), [128000, 9906]);
    assert_eq!(
        tok.encode("<|begin_of_text|>Hello", true, true).unwrap(),
        [128000, 9906]
    );
    // Special tokens are parsed only on request.
    assert_eq!(tok.encode("<|eot_id|>", false, true).unwrap(), [128009]);
    assert_ne!(tok.encode("<|eot_id|>", false, false).unwrap(), [128009]);
    assert_eq!(tok.decode(&[128000, 9906, 128009], true), "Hello");
    assert_eq!(
        tok.decode(&[128000, 9906, 128009], false),
        "<|begin_of_text|>Hello<|eot_id|>"
    );
}

#[test]
fn llama2_vocab_properties() {
    let tok = load("ggml-vocab-llama-spm.gguf");
    assert_eq!(tok.model_kind(), ModelKind::SentencePiece);
    assert_eq!(tok.vocab_size(), 32000);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    assert!(tok.add_bos_default());
    assert_eq!(
        tok.encode("Hello world", true, false).unwrap(),
        [1, 15043, 3186]
    );
    assert_eq!(tok.decode(&[1, 15043, 3186], true), "Hello world");
    // Unknown characters fall back to UTF-8 byte tokens and decode back.
    let ids = tok.encode("🦙", false, false).unwrap();
    assert!(ids.len() >= 4, "{ids:?}");
    assert_eq!(tok.decode(&ids, false), "🦙");
    // A lone byte token is invalid UTF-8: decoded lossily.
    let byte_f0 = tok.token_id("<0xF0>").unwrap();
    assert_eq!(tok.decode(&[15043, byte_f0], false), "Hello\u{FFFD}");
    assert_eq!(tok.token_bytes(byte_f0), [0xF0]);
}

#[test]
fn streaming_decode_holds_back_partial_characters() {
    let tok = load("ggml-vocab-llama-bpe.gguf");
    let text = "naïve 🦙 café — 日本語 ok";
    let ids = tok.encode(text, false, false).unwrap();
    let mut stream = tok.stream_decoder(false);
    let mut out = String::new();
    for &id in &ids {
        let piece = stream.push(id);
        assert!(
            !piece.contains('\u{FFFD}'),
            "partial character leaked: {piece:?}"
        );
        out.push_str(&piece);
    }
    out.push_str(&stream.finish());
    assert_eq!(out, text);

    // A truncated character at the end becomes U+FFFD only when flushed.
    let byte_f0 = tok.token_id("ð").unwrap();
    let mut stream = tok.stream_decoder(false);
    assert_eq!(stream.push(byte_f0), "");
    assert_eq!(stream.finish(), "\u{FFFD}");
}

/// Tokenizer metadata converted from a checkpoint directory holding only `model` as its
/// SentencePiece `tokenizer.model`.
fn convert_spm(model: &str, vocab_size: usize) -> Tokenizer {
    use bitnet_tools::convert::tokenizer_meta::{tokenizer_metadata, TokenizerInputs};
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/spm")
            .join(model),
        dir.path().join("tokenizer.model"),
    )
    .unwrap();
    let converted = tokenizer_metadata(&TokenizerInputs {
        dir: dir.path(),
        vocab_size,
        config_bos: None,
        config_eos: None,
        config_pad: None,
        pre_override: None,
    })
    .unwrap();
    let mut meta = bitnet_formats::Metadata::new();
    meta.set("general.architecture", "llama");
    for (k, v) in converted.entries {
        meta.set(k, v);
    }
    assert_eq!(meta.get_str("tokenizer.ggml.model"), Some("llama"));
    Tokenizer::from_gguf(&meta, "llama").expect("build tokenizer")
}

#[test]
fn spm_only_checkpoint_converts_to_the_llama_vocab_llama_cpp_tests() {
    let original = load("ggml-vocab-llama-spm.gguf");
    let tok = convert_spm("llama-spm.model", 32000);
    assert_eq!(tok.model_kind(), ModelKind::SentencePiece);
    assert_eq!(tok.bos_id(), Some(1));
    assert!(tok.add_bos_default());
    let all = cases("ggml-vocab-llama-spm.gguf");
    for (text, expected) in &all {
        assert_eq!(
            &tok.encode(text, false, false).unwrap(),
            expected,
            "{text:?}"
        );
        assert_eq!(&tok.decode(expected, false), text);
    }
    assert_eq!(tok.vocab_size(), original.vocab_size());
}

#[test]
fn trained_spm_model_converts_and_tokenizes_as_sentencepiece() {
    let cases: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spm/trained.cases.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // A model whose config declares more ids than the tokenizer has gets [PAD<id>] fillers.
    let tok = convert_spm("trained.model", 640);
    assert_eq!(tok.vocab_size(), 640);
    for case in cases.as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            tok.encode(text, false, false).unwrap(),
            expected,
            "{text:?}"
        );
    }
}
