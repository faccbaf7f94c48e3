//! The committed tiny model GGUF (models/tiny-bitnet-b1.58.gguf, from our converter): its
//! tokenizer and chat template, built from the file's metadata, reproduce the Hugging Face
//! reference tokenisation and chat prompt.

use std::path::PathBuf;

use bitnet_formats::GgufFile;
use bitnet_gguf::engine::chat::{ChatMessage, ChatTemplate};
use bitnet_gguf::engine::tokenizer::Tokenizer;
use serde_json::Value as Json;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> Json {
    let path = root().join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Json) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

fn open() -> GgufFile {
    GgufFile::open(root().join("models/tiny-bitnet-b1.58.gguf")).expect("open tiny model")
}

#[test]
fn tiny_gguf_tokenizer_matches_every_reference_case() {
    let file = open();
    let arch = file.architecture().unwrap().to_string();
    let tok = Tokenizer::from_gguf(file.metadata(), &arch).unwrap();
    assert_eq!(tok.vocab_size(), 4096);
    assert_eq!(tok.bos_id(), Some(4080));
    assert!(tok.add_bos_default());
    assert!(tok.is_end_of_generation(4089));
    assert!(tok.is_end_of_generation(4081));

    let doc = fixture("tokenizer/tokenizer_cases.json");
    let mut failures = Vec::new();
    for case in doc["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let got = tok.encode(text, false, true).unwrap();
        if got != ids(&case["ids"]) {
            failures.push(format!("{text:?}: {got:?}"));
        }
        if tok.decode(&got, false) != text {
            failures.push(format!("decode {text:?}"));
        }
    }
    for case in doc["decode_cases"].as_array().unwrap() {
        let id_list = ids(&case["ids"]);
        if tok.decode(&id_list, false) != case["decoded"].as_str().unwrap()
            || tok.decode(&id_list, true) != case["decoded_skip_special_tokens"].as_str().unwrap()
        {
            failures.push(format!("decode case {}", case["name"]));
        }
    }
    for p in fixture("tokenizer/prompt_ids.json")["prompts"]
        .as_array()
        .unwrap()
    {
        let expected = ids(&p["input_ids"]);
        let with_bos = expected.first() == Some(&4080);
        let got = tok
            .encode(p["prompt_text"].as_str().unwrap(), with_bos, true)
            .unwrap();
        if got != expected {
            failures.push(format!("prompt {}: {got:?}", p["name"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tiny_gguf_chat_template_gives_the_reference_prompt() {
    let file = open();
    let arch = file.architecture().unwrap().to_string();
    let template = ChatTemplate::from_gguf(file.metadata(), &arch).unwrap();
    let reference = fixture("chat/chat_reference.json");
    let messages: Vec<ChatMessage> = serde_json::from_value(reference["messages"].clone()).unwrap();
    let text = template.render(&messages, true).unwrap();
    assert_eq!(text, reference["prompt_text"].as_str().unwrap());
    let tok = Tokenizer::from_gguf(file.metadata(), &arch).unwrap();
    assert_eq!(
        tok.encode(&text, false, true).unwrap(),
        ids(&reference["input_ids"])
    );
}
