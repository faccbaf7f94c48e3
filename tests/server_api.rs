//! The HTTP layer against a fake model: routes, JSON shapes, NDJSON and SSE framing, errors,
//! concurrency, queue limits and cancellation on disconnect.

mod server_common;

use std::time::Duration;

use bitnet_gguf::serve::http::client::{post_json, request};
use serde_json::{json, Value};
use server_common::{open_stream, start};

const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz";

fn ndjson(body: &[u8]) -> Vec<Value> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.ends_with('\n'), "NDJSON must end with a newline");
    text.split_terminator('\n')
        .map(|l| {
            assert!(!l.trim().is_empty(), "blank NDJSON line");
            serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}"))
        })
        .collect()
}

/// SSE `data:` payloads; checks the framing on the way.
fn sse(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.ends_with("\n\n"));
    text.split_terminator("\n\n")
        .map(|ev| {
            ev.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("bad SSE event {ev:?}"))
                .to_string()
        })
        .collect()
}

#[test]
fn liveness_version_and_errors() {
    let s = start(2, 16, Duration::ZERO);
    let r = request(&s.addr, "GET", "/", None).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "Ollama is running"));
    let r = request(&s.addr, "HEAD", "/", None).unwrap();
    assert_eq!(r.status, 200);
    let v = request(&s.addr, "GET", "/api/version", None)
        .unwrap()
        .json()
        .unwrap();
    assert!(v["version"].as_str().unwrap().starts_with("0."));

    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "nope", "prompt": "x"}),
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json().unwrap(),
        json!({"error": "model 'nope' not found"})
    );
    let r = request(&s.addr, "POST", "/api/chat", Some(b"{not json")).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json().unwrap()["error"].is_string());
    let r = request(&s.addr, "POST", "/api/chat", None).unwrap();
    assert_eq!(
        (r.status, r.json().unwrap()["error"].as_str().unwrap()),
        (400, "missing request body")
    );
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "x", "options": {"top_k": "many"}}),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "x", "raw": true, "system": "s"}),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    let r = post_json(
        &s.addr,
        "/v1/chat/completions",
        &json!({"model": "fake", "messages": []}),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json().unwrap()["error"]["type"], "invalid_request_error");
    let r = post_json(
        &s.addr,
        "/v1/chat/completions",
        &json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json().unwrap()["error"]["message"],
        "model 'nope' not found"
    );
    let big = vec![b'x'; 2 << 20];
    assert_eq!(
        request(&s.addr, "POST", "/api/chat", Some(&big))
            .unwrap()
            .status,
        413
    );
    // Still serving after all of that.
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "x", "stream": false}),
    )
    .unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn generate_streamed_and_not() {
    let s = start(2, 16, Duration::ZERO);
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "hi."}),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/x-ndjson");
    let lines = ndjson(&r.body);
    let (last, chunks) = lines.split_last().unwrap();
    let text: String = chunks
        .iter()
        .map(|c| c["response"].as_str().unwrap())
        .collect();
    assert_eq!(text, ALPHABET);
    assert!(chunks
        .iter()
        .all(|c| c["done"] == false && c["model"] == "fake" && c["created_at"].is_string()));
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["response"], "");
    assert_eq!(last["eval_count"], 26);
    // Not raw: the fake template wraps the prompt as "user: hi.\nassistant:" after BOS.
    let prompt_len = 1 + "user: hi.\nassistant:".len() as u64;
    assert_eq!(last["prompt_eval_count"].as_u64(), Some(prompt_len));
    assert_eq!(
        last["context"].as_array().unwrap().len() as u64,
        prompt_len + 26
    );
    for k in ["total_duration", "prompt_eval_duration", "eval_duration"] {
        assert!(last[k].as_u64().is_some(), "{k} missing");
    }

    let r = post_json(&s.addr, "/api/generate", &json!({"model": "fake", "prompt": "x.", "raw": true, "stream": false, "options": {"num_predict": 5}})).unwrap();
    let v = r.json().unwrap();
    assert_eq!(
        (v["response"].as_str(), v["done_reason"].as_str()),
        (Some("abcde"), Some("length"))
    );
    assert_eq!(v["prompt_eval_count"], 3);
    assert!(v.get("context").is_none(), "no context in raw mode");

    let v = post_json(&s.addr, "/api/generate", &json!({"model": "fake"}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (v["done"].as_bool(), v["done_reason"].as_str()),
        (Some(true), Some("load"))
    );
    let v = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "keep_alive": 0}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["done_reason"], "unload");
    let ps = request(&s.addr, "GET", "/api/ps", None)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ps["models"], json!([]));
}

#[test]
fn chat_stop_strings_and_options() {
    let s = start(2, 16, Duration::ZERO);
    let body = json!({"model": "fake", "stream": false, "tools": [], "messages": [{"role": "user", "content": "yo"}],
                      "options": {"stop": ["def"], "temperature": 0, "mirostat": 0, "unknown_option": 1}});
    let v = post_json(&s.addr, "/api/chat", &body)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["message"], json!({"role": "assistant", "content": "abc"}));
    assert_eq!(v["done_reason"], "stop");

    let mut body = body;
    body["stream"] = json!(true);
    body["options"] = json!({"num_predict": 3});
    let lines = ndjson(&post_json(&s.addr, "/api/chat", &body).unwrap().body);
    assert!(lines.iter().all(|l| l["message"]["role"] == "assistant"));
    let text: String = lines
        .iter()
        .map(|l| l["message"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "abc");
    assert_eq!(lines.last().unwrap()["done_reason"], "length");

    let v = post_json(
        &s.addr,
        "/api/chat",
        &json!({"model": "fake", "messages": []}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["done_reason"], "load");
    assert_eq!(v["message"]["role"], "assistant");
    let ps = request(&s.addr, "GET", "/api/ps", None)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ps["models"][0]["name"], "fake");
    assert!(ps["models"][0]["expires_at"].is_string());
}

/// `/api/ps` reports the weights plus the KV cache actually written (the fake model: a
/// 1000-byte file, 10 bytes of cache per token), not the whole context of every slot.
#[test]
fn ps_size_counts_the_cache_written_not_the_context() {
    let s = start(4, 16, Duration::ZERO);
    let size = || {
        let ps = request(&s.addr, "GET", "/api/ps", None)
            .unwrap()
            .json()
            .unwrap();
        ps["models"][0]["size"].as_u64().unwrap()
    };
    assert_eq!(size(), 1000);
    let body = json!({"model": "fake", "prompt": "x.", "raw": true, "stream": false,
                      "options": {"num_predict": 3}});
    let v = post_json(&s.addr, "/api/generate", &body).unwrap();
    assert_eq!(v.status, 200, "{}", v.text());
    let kv = size() - 1000;
    assert!(kv % 10 == 0 && (30..=60).contains(&kv), "{kv} bytes of KV");
}

#[test]
fn a_zero_token_limit_generates_nothing() {
    let s = start(1, 16, Duration::ZERO);
    let v = post_json(&s.addr, "/api/generate", &json!({"model": "fake", "prompt": "x.", "raw": true, "stream": false, "options": {"num_predict": 0}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (v["response"].as_str(), v["done_reason"].as_str()),
        (Some(""), Some("length"))
    );
    // Ollama omits zero counts.
    assert!(v.get("eval_count").is_none(), "{v}");
    let v = post_json(
        &s.addr,
        "/v1/chat/completions",
        &json!({"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 0);
}

#[test]
fn openai_shapes_and_sse() {
    let s = start(2, 16, Duration::ZERO);
    let msgs = json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]);
    let v = post_json(
        &s.addr,
        "/v1/chat/completions",
        &json!({"model": "fake", "messages": msgs, "max_tokens": 4}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "abcd");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(
        v["usage"]["total_tokens"].as_u64(),
        Some(v["usage"]["prompt_tokens"].as_u64().unwrap() + 4)
    );

    let body = json!({"model": "fake", "messages": msgs, "stream": true, "stream_options": {"include_usage": true}, "max_completion_tokens": 3});
    let r = post_json(&s.addr, "/v1/chat/completions", &body).unwrap();
    assert_eq!(r.content_type, "text/event-stream");
    let events = sse(&r.body);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let id = chunks[0]["id"].clone();
    assert!(chunks
        .iter()
        .all(|c| c["id"] == id && c["object"] == "chat.completion.chunk"));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "abc");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);

    let v = post_json(
        &s.addr,
        "/v1/completions",
        &json!({"model": "fake", "prompt": "1 2", "max_tokens": 2, "stop": "zz"}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["choices"][0]["text"], "ab");
    assert_eq!(v["object"], "text_completion");
    let events = sse(&post_json(
        &s.addr,
        "/v1/completions",
        &json!({"model": "fake", "prompt": "1", "stream": true, "max_tokens": 2}),
    )
    .unwrap()
    .body);
    assert_eq!(events.last().unwrap(), "[DONE]");

    let v = request(&s.addr, "GET", "/v1/models", None)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "fake");
    assert_eq!(
        request(&s.addr, "GET", "/v1/models/fake", None)
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        request(&s.addr, "GET", "/v1/models/other", None)
            .unwrap()
            .status,
        404
    );
}

#[test]
fn embeddings_all_shapes() {
    let s = start(1, 16, Duration::ZERO);
    let v = post_json(
        &s.addr,
        "/api/embed",
        &json!({"model": "fake", "input": ["ab", "c"]}),
    )
    .unwrap()
    .json()
    .unwrap();
    let e = v["embeddings"].as_array().unwrap();
    assert_eq!(e.len(), 2);
    let norm: f64 = e[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap().powi(2))
        .sum();
    assert!((norm - 1.0).abs() < 1e-5);
    assert_eq!(v["prompt_eval_count"], 5); // BOS + 2, BOS + 1
    let v = post_json(
        &s.addr,
        "/api/embeddings",
        &json!({"model": "fake", "prompt": "ab"}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["embedding"].as_array().unwrap().len(), 3);
    let v = post_json(
        &s.addr,
        "/v1/embeddings",
        &json!({"model": "fake", "input": "ab", "encoding_format": "base64"}),
    )
    .unwrap()
    .json()
    .unwrap();
    let b64 = v["data"][0]["embedding"].as_str().unwrap();
    assert_eq!(b64.len(), 16); // 3 floats = 12 bytes
    let v = post_json(
        &s.addr,
        "/v1/embeddings",
        &json!({"model": "fake", "input": ["ab"]}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 3);
    assert_eq!(
        post_json(
            &s.addr,
            "/v1/embeddings",
            &json!({"model": "fake", "input": "a", "encoding_format": "hex"})
        )
        .unwrap()
        .status,
        400
    );
}

#[test]
fn tokenize_detokenize_metrics_health() {
    let s = start(1, 16, Duration::ZERO);
    let v = post_json(
        &s.addr,
        "/tokenize",
        &json!({"model": "fake", "content": "ab"}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["tokens"], json!([100, 101]));
    let v = post_json(
        &s.addr,
        "/detokenize",
        &json!({"model": "fake", "tokens": [100, 101]}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["content"], "ab");
    assert_eq!(
        post_json(
            &s.addr,
            "/detokenize",
            &json!({"model": "fake", "tokens": [100000]})
        )
        .unwrap()
        .status,
        400
    );
    assert_eq!(
        request(&s.addr, "GET", "/health", None)
            .unwrap()
            .json()
            .unwrap()["status"],
        "ok"
    );
    post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "x.", "stream": false}),
    )
    .unwrap();
    let m = request(&s.addr, "GET", "/metrics", None).unwrap().text();
    assert!(m.contains("bitnet_tokens_predicted_total 26"), "{m}");
    assert!(m.contains("# TYPE bitnet_requests_deferred gauge"));
}

#[test]
fn concurrent_streams_are_all_well_formed() {
    let s = start(4, 64, Duration::from_millis(1));
    let addr = s.addr.clone();
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let n = 3 + i % 5;
                let r = post_json(&addr, "/api/generate", &json!({"model": "fake", "prompt": format!("{i}."), "options": {"num_predict": n}})).unwrap();
                assert_eq!(r.status, 200);
                let lines = ndjson(&r.body);
                let text: String = lines.iter().map(|l| l["response"].as_str().unwrap()).collect();
                assert_eq!(text, &ALPHABET[..n]);
                assert_eq!(lines.last().unwrap()["eval_count"].as_u64(), Some(n as u64));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // The scheduler lowers the gauge after it sent a stream's last line, so a client can see
    // its reply complete a moment before that: wait (bounded) for the gauge to settle.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = request(&s.addr, "GET", "/metrics", None).unwrap().text();
        if m.contains("bitnet_requests_processing 0") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "requests still counted as processing 5 s after every reply ended:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn full_queue_answers_503_and_server_recovers() {
    let s = start(1, 1, Duration::from_millis(30));
    // Occupies the only slot for ~26 steps.
    let (code, _, slot_holder) = open_stream(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "a."}),
    );
    assert_eq!(code, 200);
    // Fills the queue (one waiting request allowed).
    let addr = s.addr.clone();
    let waiting = std::thread::spawn(move || {
        post_json(
            &addr,
            "/api/generate",
            &json!({"model": "fake", "prompt": "b.", "stream": false}),
        )
        .unwrap()
        .status
    });
    // Wait until the second request is queued behind the first.
    let mut queued = false;
    for _ in 0..500 {
        let m = request(&s.addr, "GET", "/metrics", None).unwrap().text();
        if m.contains("bitnet_requests_deferred 1") {
            queued = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(queued, "the second request never showed up in the queue");
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "c.", "stream": false}),
    )
    .unwrap();
    assert_eq!(
        r.status, 503,
        "a request beyond the queue bound must get 503"
    );
    assert!(r.json().unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("busy"));
    drop(slot_holder);
    assert_eq!(waiting.join().unwrap(), 200);
}

#[test]
fn disconnect_mid_stream_frees_the_slot() {
    let s = start(1, 8, Duration::from_millis(20));
    let (code, first, reader) = open_stream(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "a."}),
    );
    assert_eq!(code, 200);
    let first: Value = serde_json::from_str(first.trim()).unwrap();
    assert_eq!(first["response"], "a");
    drop(reader); // client goes away after one token
    let v = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "b.", "stream": false}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["response"], ALPHABET);
    // The abandoned generation stopped early instead of running to its end.
    let m = request(&s.addr, "GET", "/metrics", None).unwrap().text();
    let predicted: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("bitnet_tokens_predicted_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        predicted < 26 + 26,
        "cancelled stream kept generating: {predicted} tokens"
    );
}

#[test]
fn keep_alive_expiry_unloads_the_model() {
    let s = start(1, 8, Duration::ZERO);
    let v = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "x.", "stream": false, "keep_alive": "200ms"}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["done"], true);
    let mut unloaded = false;
    for _ in 0..100 {
        let ps = request(&s.addr, "GET", "/api/ps", None)
            .unwrap()
            .json()
            .unwrap();
        if ps["models"].as_array().unwrap().is_empty() {
            unloaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(unloaded, "the model stayed loaded after its keep_alive");
    // Negative keep_alive = forever; the next request loads it again.
    post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "keep_alive": -1}),
    )
    .unwrap();
    let ps = request(&s.addr, "GET", "/api/ps", None)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ps["models"][0]["name"], "fake");
    assert!(ps["models"][0]["expires_at"]
        .as_str()
        .unwrap()
        .starts_with("2318-"));
    assert_eq!(
        post_json(
            &s.addr,
            "/api/generate",
            &json!({"model": "fake", "keep_alive": "soon"})
        )
        .unwrap()
        .status,
        400
    );
}
