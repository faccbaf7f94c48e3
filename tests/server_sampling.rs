//! OpenAI's `presence_penalty` / `frequency_penalty` (and the same Ollama options) reach the
//! engine's sampler: with the committed tiny model, greedy text changes when they are set and
//! stays the same when they are zero.

mod server_common;

use std::path::PathBuf;

use bitnet_gguf::serve::http::client::post_json;
use bitnet_gguf::serve::http::engine;
use serde_json::{json, Value};
use server_common::start_with;

#[test]
fn penalties_change_greedy_output() {
    let gguf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny-bitnet-b1.58.gguf");
    let s = start_with(1, 4, engine::loader(), Some(("tiny".to_string(), gguf)));
    let complete = |extra: Value| {
        let mut body = json!({"model": "tiny", "prompt": "It is a truth universally acknowledged, that",
                              "temperature": 0, "max_tokens": 48, "stop": []});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = post_json(&s.addr, "/v1/completions", &body).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.json().unwrap()["choices"][0]["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let plain = complete(json!({}));
    assert!(!plain.is_empty());
    assert_eq!(
        complete(json!({"presence_penalty": 0, "frequency_penalty": 0})),
        plain
    );
    let frequency = complete(json!({"frequency_penalty": 2.0}));
    let presence = complete(json!({"presence_penalty": 2.0}));
    assert_ne!(frequency, plain);
    assert_ne!(presence, plain);
    // The Ollama spelling goes the same way.
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "tiny", "prompt": "It is a truth universally acknowledged, that", "raw": true,
                "stream": false, "options": {"temperature": 0, "num_predict": 48, "stop": [],
                "frequency_penalty": 2.0}}),
    )
    .unwrap();
    assert_eq!(r.json().unwrap()["response"], frequency.as_str());
}
