//! The server shifts a slot's context instead of ending a reply that fills it: with the
//! committed tiny model (whose greedy continuation of this prompt has no end token for
//! hundreds of tokens) in 256-token slots, a reply of 600 tokens comes out whole.

mod server_common;

use std::path::PathBuf;

use bitnet_gguf::serve::http::client::post_json;
use bitnet_gguf::serve::http::engine;
use serde_json::json;
use server_common::start_with;

#[test]
fn a_reply_longer_than_the_slot_context_is_generated_whole() {
    let gguf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny-bitnet-b1.58.gguf");
    let s = start_with(1, 4, engine::loader(), Some(("tiny".to_string(), gguf)));
    let body = json!({"model": "tiny", "prompt": "It is a truth universally acknowledged, that 1",
                      "raw": true, "stream": false,
                      "options": {"temperature": 0, "num_predict": 600}});
    let r = post_json(&s.addr, "/api/generate", &body).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(v["eval_count"], 600, "{v}");
    assert_eq!(v["done_reason"], "length", "{v}");
    // The slot still answers the next request (its cache was shifted, not broken).
    let r = post_json(&s.addr, "/api/generate", &body).unwrap();
    assert_eq!(r.json().unwrap()["eval_count"], 600);
}
