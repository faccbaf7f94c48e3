//! Text held back because it could start a stop string is still sent when the generation ends
//! without the stop string completing (end of generation, token limit).

mod server_common;

use std::time::Duration;

use bitnet_gguf::serve::http::client::post_json;
use serde_json::json;
use server_common::start;

#[test]
fn held_back_text_is_released_at_the_end() {
    let s = start(1, 4, Duration::ZERO);
    // The fake model writes the alphabet, then end-of-generation; "yz" could be the start of
    // the stop string "yz!" until then.
    for (stop, want) in [
        ("yz!", "abcdefghijklmnopqrstuvwxyz"),
        ("z!", "abcdefghijklmnopqrstuvwxyz"),
        ("mn", "abcdefghijkl"),
    ] {
        for stream in [false, true] {
            let r = post_json(
                &s.addr,
                "/api/generate",
                &json!({"model": "fake", "prompt": "1.", "stream": stream, "options": {"stop": [stop]}}),
            )
            .unwrap();
            let mut text = String::new();
            for line in r.text().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                text.push_str(v["response"].as_str().unwrap_or(""));
            }
            assert_eq!(text, want, "stop {stop:?}, stream {stream}");
        }
    }
    // Token limit inside a possible stop string.
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "1.", "stream": false, "options": {"stop": ["cd!"], "num_predict": 4}}),
    )
    .unwrap();
    assert_eq!(r.json().unwrap()["response"], "abcd");
}
