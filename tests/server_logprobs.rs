//! Log-probabilities on both APIs, streamed and not: Ollama's `logprobs`/`top_logprobs` on
//! /api/generate and /api/chat, OpenAI's on chat (`logprobs.content`) and completions
//! (`logprobs.{tokens,token_logprobs,top_logprobs,text_offset}`). The fake model's logits are
//! 1.0 for the next letter and 0.0 for the other 258 ids, so every chosen token has
//! log-probability 1 - ln(e + 258) and every other one -ln(e + 258).

mod server_common;

use std::time::Duration;

use bitnet_gguf::serve::http::client::post_json;
use serde_json::{json, Value};
use server_common::start;

fn chosen() -> f64 {
    1.0 - (std::f64::consts::E + 258.0).ln()
}
fn other() -> f64 {
    -(std::f64::consts::E + 258.0).ln()
}

fn close(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((got - want).abs() < 1e-4, "{got} != {want}");
}

/// Checks one Ollama / OpenAI-chat entry: `token`, `logprob`, `bytes`, `top_logprobs` with the
/// chosen letter first, then the lowest ids (which tie).
fn check_entry(e: &Value, letter: char, top: usize) {
    assert_eq!(e["token"], letter.to_string(), "{e}");
    assert_eq!(e["bytes"], json!([letter as u8]), "{e}");
    close(&e["logprob"], chosen());
    let t = e["top_logprobs"].as_array().unwrap();
    assert_eq!(t.len(), top, "{e}");
    if top > 0 {
        assert_eq!(t[0]["token"], letter.to_string());
        close(&t[0]["logprob"], chosen());
    }
    for x in t.iter().skip(1) {
        close(&x["logprob"], other());
        assert!(x["bytes"].is_array());
    }
}

fn ndjson(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sse(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[test]
fn ollama_generate_and_chat_report_logprobs() {
    let s = start(1, 16, Duration::ZERO);
    let body = json!({"model": "fake", "prompt": "x.", "raw": true, "stream": false,
                      "logprobs": true, "top_logprobs": 3, "options": {"num_predict": 4}});
    let v = post_json(&s.addr, "/api/generate", &body)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["response"], "abcd");
    let lp = v["logprobs"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(lp.len(), 4);
    for (e, c) in lp.iter().zip("abcd".chars()) {
        check_entry(e, c, 3);
    }
    // Streamed: the entries arrive with the chunks; all of them by the end.
    let mut body = body;
    body["stream"] = json!(true);
    let r = post_json(&s.addr, "/api/generate", &body).unwrap();
    let entries: Vec<Value> = ndjson(&r.body)
        .iter()
        .flat_map(|c| c["logprobs"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(entries.len(), 4);
    check_entry(&entries[3], 'd', 3);
    // Chat, and without top_logprobs.
    let body = json!({"model": "fake", "messages": [{"role": "user", "content": "x."}],
                      "stream": false, "logprobs": true});
    let v = post_json(&s.addr, "/api/chat", &body)
        .unwrap()
        .json()
        .unwrap();
    let lp = v["logprobs"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(lp.len(), 26);
    check_entry(&lp[25], 'z', 0);
    // Not asked: not there.
    let v = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "x.", "stream": false}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert!(v.get("logprobs").is_none(), "{v}");
    // Out of range.
    for n in [-1, 21] {
        let r = post_json(
            &s.addr,
            "/api/generate",
            &json!({"model": "fake", "prompt": "x.", "logprobs": true, "top_logprobs": n}),
        )
        .unwrap();
        assert_eq!(r.status, 400);
        assert!(r.text().contains("top_logprobs"), "{}", r.text());
    }
}

#[test]
fn openai_chat_reports_logprobs_content() {
    let s = start(1, 16, Duration::ZERO);
    let body = json!({"model": "fake", "messages": [{"role": "user", "content": "x."}],
                      "max_tokens": 5, "logprobs": true, "top_logprobs": 2});
    let v = post_json(&s.addr, "/v1/chat/completions", &body)
        .unwrap()
        .json()
        .unwrap();
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 5, "{v}");
    for (e, c) in content.iter().zip("abcde".chars()) {
        check_entry(e, c, 2);
    }
    let mut body = body;
    body["stream"] = json!(true);
    let r = post_json(&s.addr, "/v1/chat/completions", &body).unwrap();
    let entries: Vec<Value> = sse(&r.body)
        .iter()
        .flat_map(|c| {
            c["choices"][0]["logprobs"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(entries.len(), 5);
    check_entry(&entries[4], 'e', 2);
    // Off by default.
    body["stream"] = json!(false);
    body.as_object_mut().unwrap().remove("logprobs");
    body.as_object_mut().unwrap().remove("top_logprobs");
    let v = post_json(&s.addr, "/v1/chat/completions", &body)
        .unwrap()
        .json()
        .unwrap();
    assert!(v["choices"][0]["logprobs"].is_null(), "{v}");
}

#[test]
fn openai_completions_report_legacy_logprobs() {
    let s = start(1, 16, Duration::ZERO);
    let body = json!({"model": "fake", "prompt": "x.", "max_tokens": 3, "logprobs": 2});
    let v = post_json(&s.addr, "/v1/completions", &body)
        .unwrap()
        .json()
        .unwrap();
    let lp = &v["choices"][0]["logprobs"];
    assert_eq!(lp["tokens"], json!(["a", "b", "c"]), "{v}");
    assert_eq!(lp["text_offset"], json!([0, 1, 2]));
    for (i, c) in "abc".chars().enumerate() {
        close(&lp["token_logprobs"][i], chosen());
        let top = lp["top_logprobs"][i].as_object().unwrap();
        assert_eq!(top.len(), 2);
        close(&top[&c.to_string()], chosen());
    }
    let mut body = body;
    body["stream"] = json!(true);
    let r = post_json(&s.addr, "/v1/completions", &body).unwrap();
    let mut tokens = Vec::new();
    let mut offsets = Vec::new();
    for c in sse(&r.body) {
        let lp = &c["choices"][0]["logprobs"];
        tokens.extend(lp["tokens"].as_array().cloned().unwrap_or_default());
        offsets.extend(lp["text_offset"].as_array().cloned().unwrap_or_default());
    }
    assert_eq!(tokens, vec![json!("a"), json!("b"), json!("c")]);
    assert_eq!(offsets, vec![json!(0), json!(1), json!(2)]);
    let r = post_json(
        &s.addr,
        "/v1/completions",
        &json!({"model": "fake", "prompt": "x.", "logprobs": 50}),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("logprobs"), "{}", r.text());
}
