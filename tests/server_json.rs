//! `format: "json"` (Ollama) and `response_format` (OpenAI) through the server: with a fake
//! model that only ever wants to write the alphabet, and with the committed tiny model, every
//! reply's content parses as one JSON object; unknown formats are refused.

mod server_common;

use std::path::PathBuf;
use std::time::Duration;

use bitnet_gguf::serve::http::client::post_json;
use bitnet_gguf::serve::http::engine;
use serde_json::{json, Map, Value};
use server_common::{start, start_with};

fn object(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        other => panic!("not a JSON object: {text:?} ({other:?})"),
    }
}

/// The concatenated `response` / `message.content` of an NDJSON stream, and its last line.
fn ndjson_text(body: &[u8], field: &str) -> (String, Value) {
    let mut text = String::new();
    let mut last = Value::Null;
    for line in String::from_utf8(body.to_vec()).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let piece = if field == "response" {
            &v["response"]
        } else {
            &v["message"]["content"]
        };
        text.push_str(piece.as_str().unwrap_or(""));
        last = v;
    }
    (text, last)
}

/// The concatenated deltas of an SSE stream.
fn sse_text(body: &[u8]) -> String {
    let mut text = String::new();
    for ev in String::from_utf8(body.to_vec())
        .unwrap()
        .split_terminator("\n\n")
    {
        let data = ev.strip_prefix("data: ").unwrap();
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        if let Some(c) = v["choices"].get(0) {
            let piece = c["delta"]["content"].as_str().or(c["text"].as_str());
            text.push_str(piece.unwrap_or(""));
        }
    }
    text
}

#[test]
fn fake_model_output_is_forced_into_an_object() {
    let s = start(2, 16, Duration::ZERO);
    let a = &s.addr;
    // Without a format the fake model writes the alphabet.
    let r = post_json(
        a,
        "/api/generate",
        &json!({"model": "fake", "prompt": "1.", "stream": false}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(r["response"], "abcdefghijklmnopqrstuvwxyz");
    for format in [
        json!("json"),
        json!({"type": "object", "properties": {"a": {"type": "string"}}}),
    ] {
        let r = post_json(
            a,
            "/api/generate",
            &json!({"model": "fake", "prompt": "1.", "stream": false, "format": format}),
        )
        .unwrap();
        assert_eq!(r.status, 200);
        let v = r.json().unwrap();
        object(v["response"].as_str().unwrap());
        assert_eq!(v["done_reason"], "stop");
        let r = post_json(
            a,
            "/api/chat",
            &json!({"model": "fake", "messages": [{"role": "user", "content": "1."}], "format": format}),
        )
        .unwrap();
        let (text, last) = ndjson_text(&r.body, "content");
        object(&text);
        assert_eq!(last["done"], true);
    }
    // A small token limit still yields a whole object.
    let r = post_json(
        a,
        "/api/generate",
        &json!({"model": "fake", "prompt": "1.", "format": "json", "options": {"num_predict": 3}}),
    )
    .unwrap();
    let (text, last) = ndjson_text(&r.body, "response");
    object(&text);
    assert!(last["eval_count"].as_u64().unwrap() <= 3, "{last}");
    // A limit too small for any object ends as "length" with nothing written, not broken JSON.
    let v = post_json(
        a,
        "/api/generate",
        &json!({"model": "fake", "prompt": "1.", "format": "json", "stream": false,
                "options": {"num_predict": 1}}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(
        (v["response"].as_str(), v["done_reason"].as_str()),
        (Some(""), Some("length"))
    );
    // OpenAI: json_object and json_schema constrain, text does not.
    for (rf, want_json) in [
        (json!({"type": "json_object"}), true),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}),
            true,
        ),
        (json!({"type": "text"}), false),
    ] {
        for stream in [false, true] {
            let r = post_json(
                a,
                "/v1/chat/completions",
                &json!({"model": "fake", "messages": [{"role": "user", "content": "1."}],
                        "response_format": rf, "stream": stream}),
            )
            .unwrap();
            assert_eq!(r.status, 200);
            let text = if stream {
                sse_text(&r.body)
            } else {
                let v = r.json().unwrap();
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            if want_json {
                object(&text);
            } else {
                assert_eq!(text, "abcdefghijklmnopqrstuvwxyz");
            }
        }
    }
    let r = post_json(
        a,
        "/v1/completions",
        &json!({"model": "fake", "prompt": "1.", "response_format": {"type": "json_object"}}),
    )
    .unwrap();
    object(r.json().unwrap()["choices"][0]["text"].as_str().unwrap());
}

#[test]
fn unknown_formats_are_refused() {
    let s = start(1, 4, Duration::ZERO);
    for format in [json!("xml"), json!(5), json!(["json"])] {
        let r = post_json(
            &s.addr,
            "/api/generate",
            &json!({"model": "fake", "prompt": "1.", "format": format}),
        )
        .unwrap();
        assert_eq!(r.status, 400);
        let e = r.json().unwrap()["error"].as_str().unwrap().to_string();
        assert!(e.starts_with("invalid format: "), "{e}");
        let r = post_json(
            &s.addr,
            "/api/chat",
            &json!({"model": "fake", "messages": [{"role": "user", "content": "x"}], "format": format}),
        )
        .unwrap();
        assert_eq!(r.status, 400);
    }
    let r = post_json(
        &s.addr,
        "/v1/chat/completions",
        &json!({"model": "fake", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json().unwrap()["error"]["message"].is_string());
    // The server keeps serving.
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "1.", "format": ""}),
    )
    .unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn tiny_model_json_replies_parse() {
    let gguf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny-bitnet-b1.58.gguf");
    let s = start_with(2, 16, engine::loader(), Some(("tiny".to_string(), gguf)));
    let a = &s.addr;
    let prompts = [
        "Describe Emma as JSON.",
        "Who is Mr. Darcy?",
        "List three things about Highbury.",
    ];
    let mut parsed = 0;
    for (i, p) in prompts.iter().enumerate() {
        for (seed, temperature, num_predict) in [(1, 0.0, -1), (2, 0.8, 60), (3, 1.5, 16)] {
            let opts = json!({"seed": seed + 10 * i, "temperature": temperature, "num_predict": num_predict});
            let r = post_json(
                a,
                "/api/chat",
                &json!({"model": "tiny", "messages": [{"role": "user", "content": p}], "format": "json",
                        "stream": false, "options": opts}),
            )
            .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json().unwrap();
            object(v["message"]["content"].as_str().unwrap());
            assert_eq!(v["done_reason"], "stop", "{v}");
            let r = post_json(
                a,
                "/api/generate",
                &json!({"model": "tiny", "prompt": p, "format": "json", "options": opts}),
            )
            .unwrap();
            object(&ndjson_text(&r.body, "response").0);
            let r = post_json(
                a,
                "/v1/chat/completions",
                &json!({"model": "tiny", "messages": [{"role": "user", "content": p}], "seed": seed,
                        "temperature": temperature, "response_format": {"type": "json_object"},
                        "max_tokens": if num_predict < 0 { Value::Null } else { json!(num_predict) },
                        "stream": seed == 2}),
            )
            .unwrap();
            let text = if seed == 2 {
                sse_text(&r.body)
            } else {
                r.json().unwrap()["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            object(&text);
            parsed += 3;
        }
    }
    assert_eq!(parsed, 27);
}

#[test]
fn schema_shapes_the_reply() {
    let schema = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer"}, "friends": {"type": "array", "items": {"type": "string"}},
        "married": {"type": "boolean"}}, "required": ["name", "age"]});
    let check = |text: &str| {
        let m = object(text);
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(keys, ["name", "age", "friends", "married"], "{text}");
        assert!(m["name"].is_string() && m["friends"].is_array() && m["married"].is_boolean());
        assert_eq!(m["age"].as_f64().unwrap().fract(), 0.0, "{text}");
    };
    // The fake model, which only wants the alphabet.
    let s = start(1, 4, Duration::ZERO);
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "1.", "format": schema, "stream": false}),
    )
    .unwrap();
    check(r.json().unwrap()["response"].as_str().unwrap());
    // The tiny model, greedy and sampled, Ollama and OpenAI spellings.
    let gguf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny-bitnet-b1.58.gguf");
    let s = start_with(1, 4, engine::loader(), Some(("tiny".to_string(), gguf)));
    for (seed, temperature) in [(1, 0.0), (2, 0.8), (3, 1.5)] {
        let r = post_json(
            &s.addr,
            "/api/chat",
            &json!({"model": "tiny", "messages": [{"role": "user", "content": "Describe Emma."}],
                    "format": schema, "stream": false, "options": {"seed": seed, "temperature": temperature}}),
        )
        .unwrap();
        check(r.json().unwrap()["message"]["content"].as_str().unwrap());
        let r = post_json(
            &s.addr,
            "/v1/chat/completions",
            &json!({"model": "tiny", "messages": [{"role": "user", "content": "Describe Emma."}],
                    "seed": seed, "temperature": temperature, "max_tokens": 80,
                    "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}}),
        )
        .unwrap();
        check(
            r.json().unwrap()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap(),
        );
    }
}
