//! Prompts longer than the context are cut from the front, as Ollama does, instead of failing:
//! chats lose their oldest messages first (system messages and the last message stay), and what
//! still does not fit keeps its start (BOS, system prompt) and its most recent tokens. The fake
//! model's tokenizer is one token per byte after a BOS, and the test server's context is 256.

mod server_common;

use std::time::Duration;

use bitnet_gguf::serve::http::client::post_json;
use serde_json::{json, Value};
use server_common::start;

const N_CTX: usize = 256;
const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz";

/// The fake template: one `role: content` line per message, then `assistant:`; plus the BOS.
fn rendered_len(msgs: &[(String, String)]) -> usize {
    1 + msgs
        .iter()
        .map(|(r, c)| r.len() + 2 + c.len() + 1)
        .sum::<usize>()
        + "assistant:".len()
}

fn detok(ids: &[Value]) -> String {
    ids.iter()
        .filter_map(|v| v.as_u64())
        .filter(|&i| i >= 3)
        .map(|i| (i - 3) as u8 as char)
        .collect()
}

fn conversation() -> Vec<(String, String)> {
    let mut msgs = vec![("system".to_string(), "S".repeat(40))];
    for i in 0..10 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        msgs.push((role.to_string(), format!("m{i}{}", "x".repeat(50))));
    }
    msgs.push(("user".to_string(), "last question.".to_string()));
    msgs
}

/// What Ollama keeps: the system message and as many of the latest messages as fit `budget`.
fn expected_chat_len(msgs: &[(String, String)], budget: usize) -> usize {
    let mut kept = msgs.to_vec();
    while rendered_len(&kept) > budget && kept.len() > 2 {
        kept.remove(1);
    }
    rendered_len(&kept)
}

#[test]
fn long_generate_prompts_keep_bos_system_and_the_end() {
    let s = start(1, 4, Duration::ZERO);
    let long = format!("{}end.", "x".repeat(1000));
    // Raw: the BOS and the last tokens; room for 30 new tokens.
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": long, "raw": true, "stream": false,
                "options": {"num_predict": 30}}),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(v["prompt_eval_count"], N_CTX - 30);
    assert_eq!(v["response"], ALPHABET);
    assert_eq!(v["done_reason"], "stop");
    // Templated with a system prompt: the system line stays at the front.
    let system = "S".repeat(40);
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": long, "system": system, "stream": false,
                "options": {"num_predict": 30}}),
    )
    .unwrap();
    let v = r.json().unwrap();
    assert_eq!(v["prompt_eval_count"], N_CTX - 30);
    let ctx = v["context"].as_array().unwrap();
    assert_eq!(ctx[0], 1, "BOS first");
    let text = detok(ctx);
    assert!(text.starts_with(&format!("system: {system}\n")), "{text}");
    assert!(
        text.ends_with(&format!("xxend.\nassistant:{ALPHABET}")),
        "{text}"
    );
    // No limit: a quarter of the context is left for the reply.
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": long, "raw": true, "stream": false}),
    )
    .unwrap();
    assert_eq!(r.json().unwrap()["prompt_eval_count"], N_CTX - N_CTX / 4);
    // num_keep overrides what is kept at the front.
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": long, "system": system, "stream": false,
                "options": {"num_predict": 30, "num_keep": 3}}),
    )
    .unwrap();
    let text = detok(r.json().unwrap()["context"].as_array().unwrap());
    assert!(text.starts_with("syxxx"), "{text}");
}

#[test]
fn long_chats_drop_the_oldest_messages_first() {
    let s = start(1, 4, Duration::ZERO);
    let msgs = conversation();
    assert!(rendered_len(&msgs) > N_CTX);
    let body: Vec<Value> = msgs
        .iter()
        .map(|(r, c)| json!({"role": r, "content": c}))
        .collect();
    let want = expected_chat_len(&msgs, N_CTX - 30);
    assert!(
        want > rendered_len(&[msgs[0].clone(), msgs[11].clone()]),
        "keeps some history"
    );
    let r = post_json(
        &s.addr,
        "/api/chat",
        &json!({"model": "fake", "messages": body, "stream": false, "options": {"num_predict": 30}}),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(v["prompt_eval_count"], want);
    assert_eq!(v["message"]["content"], ALPHABET);
    let r = post_json(
        &s.addr,
        "/v1/chat/completions",
        &json!({"model": "fake", "messages": body, "max_tokens": 30}),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], want);
    assert_eq!(v["choices"][0]["message"]["content"], ALPHABET);
    // One message too long by itself is cut from the front, streamed as usual.
    let huge = json!([{"role": "system", "content": "be brief"},
                      {"role": "user", "content": format!("{}?", "y".repeat(2000))}]);
    let r = post_json(
        &s.addr,
        "/api/chat",
        &json!({"model": "fake", "messages": huge, "options": {"num_predict": 30}}),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let lines: Vec<Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true, "{last}");
    assert_eq!(last["prompt_eval_count"], N_CTX - 30);
}

#[test]
fn long_openai_completion_prompts_are_truncated() {
    let s = start(1, 4, Duration::ZERO);
    let r = post_json(
        &s.addr,
        "/v1/completions",
        &json!({"model": "fake", "prompt": format!("{}.", "z".repeat(600)), "max_tokens": 40}),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], N_CTX - 40);
    assert_eq!(v["choices"][0]["text"], ALPHABET);
}
