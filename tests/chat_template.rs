//! Chat templates rendered as transformers renders them. Expected outputs come from Jinja2
//! set up like `apply_chat_template` (tests/fixtures/chat/make_chat_cases.py) and from the
//! tiny model's Hugging Face reference prompt.

mod tokenizer_support;

use std::path::PathBuf;

use bitnet_formats::Metadata;
use bitnet_gguf::engine::chat::{ChatMessage, ChatTemplate, TemplateSource, BITNET_2B4T_TEMPLATE};
use serde_json::Value as Json;

fn chat_fixture(name: &str) -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/chat")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_jinja2_reference_case_renders_identically() {
    let doc = chat_fixture("chat_cases.json");
    let bos = doc["bos_token"].as_str().unwrap();
    let eos = doc["eos_token"].as_str().unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 16);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let template = ChatTemplate::from_source(case["template"].as_str().unwrap(), bos, eos)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let tools = case.get("tools").filter(|t| !t.is_null());
        let got = template.render_json(
            &case["messages"],
            case["add_generation_prompt"].as_bool().unwrap(),
            tools,
            None,
        );
        let expected = case["expected"].as_str().unwrap();
        match got {
            Ok(text) if text == expected => {}
            Ok(text) => failures.push(format!(
                "{name}:\n  got      {text:?}\n  expected {expected:?}"
            )),
            Err(e) => failures.push(format!("{name}: error {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn raise_exception_is_a_render_error_with_the_message() {
    let doc = chat_fixture("chat_cases.json");
    let t = ChatTemplate::from_source(doc["raise_exception_template"].as_str().unwrap(), "", "")
        .unwrap();
    let msgs = [ChatMessage::new("user", "a"), ChatMessage::new("user", "b")];
    let err = t.render(&msgs, true).unwrap_err();
    assert!(
        err.to_string().contains("Only one message, please"),
        "{err}"
    );
    assert!(t.render(&msgs[..1], true).is_ok());
}

#[test]
fn strftime_now_renders_the_current_date() {
    let t = ChatTemplate::from_source("{{ strftime_now('%Y') }}", "", "").unwrap();
    let year: i32 = t.render(&[], false).unwrap().parse().unwrap();
    assert!((2024..3000).contains(&year));
}

#[test]
fn syntax_errors_are_reported_at_construction() {
    let err = ChatTemplate::from_source("{% for m in messages %}", "", "").unwrap_err();
    assert!(err.to_string().contains("compile"), "{err}");
}

fn bitnet_metadata(template: Option<&str>) -> Metadata {
    let mut meta = tokenizer_support::tiny_metadata(false);
    if let Some(t) = template {
        meta.set("tokenizer.chat_template", t);
    }
    meta
}

const PLACEHOLDER: &str = "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{% if message['role'] == 'user' %}{{ 'Human: ' + message['content'] + '\\n\\nBITNETAssistant: ' + eos_token }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}";

#[test]
fn bitnet_placeholder_or_missing_template_is_replaced() {
    let msgs = [
        ChatMessage::new("system", "Be terse."),
        ChatMessage::new("user", "hi"),
        ChatMessage::new("assistant", "Hello."),
        ChatMessage::new("user", "2+2?"),
    ];
    let expected = "System: Be terse.<|eot_id|>User: hi<|eot_id|>Assistant: Hello.<|eot_id|>User: 2+2?<|eot_id|>Assistant: ";
    for meta in [bitnet_metadata(Some(PLACEHOLDER)), bitnet_metadata(None)] {
        let t = ChatTemplate::from_gguf(&meta, "bitnet-25").unwrap();
        assert_eq!(t.origin(), TemplateSource::BitnetBuiltin);
        assert_eq!(t.source(), BITNET_2B4T_TEMPLATE);
        assert_eq!(t.render(&msgs, true).unwrap(), expected);
        assert!(t.stop_strings().iter().any(|s| s == "<|eot_id|>"));
        assert!(t.stop_strings().iter().any(|s| s == "<|end_of_text|>"));
    }
    // A real embedded template is kept, and so is the placeholder for other architectures.
    let custom = "{% for m in messages %}{{ m.content }}{% endfor %}";
    let t = ChatTemplate::from_gguf(&bitnet_metadata(Some(custom)), "bitnet-b1.58").unwrap();
    assert_eq!(t.origin(), TemplateSource::Embedded);
    assert_eq!(t.render(&msgs, true).unwrap(), "Be terse.hiHello.2+2?");
    let t = ChatTemplate::from_gguf(&bitnet_metadata(Some(PLACEHOLDER)), "llama").unwrap();
    assert_eq!(t.origin(), TemplateSource::Embedded);
    assert_eq!(t.bos_token(), "<|begin_of_text|>");
    assert_eq!(t.eos_token(), "<|end_of_text|>");
}

#[test]
fn tiny_model_reference_chat_prompt_renders_and_tokenizes_exactly() {
    let reference = chat_fixture("chat_reference.json");
    let messages: Vec<ChatMessage> = serde_json::from_value(reference["messages"].clone()).unwrap();
    let meta = bitnet_metadata(Some(reference["chat_template"].as_str().unwrap()));
    let template = ChatTemplate::from_gguf(&meta, "bitnet-b1.58").unwrap();
    let text = template.render(&messages, true).unwrap();
    assert_eq!(text, reference["prompt_text"].as_str().unwrap());
    let tok = tokenizer_support::tiny(false);
    let ids = tok.encode(&text, false, true).unwrap();
    let expected: Vec<u32> = serde_json::from_value(reference["input_ids"].clone()).unwrap();
    assert_eq!(ids, expected);
}
