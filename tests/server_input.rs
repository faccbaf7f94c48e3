//! Request validation: every duration, size and count a request carries is range-checked into a
//! 400 `{"error": …}` that names the field; fields that would change the output but are not
//! implemented are refused the same way, never ignored.

mod server_common;

use std::process::Command;
use std::time::Duration;

use bitnet_gguf::serve::http::client::{post_json, request};
use serde_json::{json, Value};
use server_common::start;

/// Posts a raw body; returns the status and the error message (Ollama's or OpenAI's shape).
fn error_of(addr: &str, path: &str, body: &str) -> (u16, String) {
    let r = request(addr, "POST", path, Some(body.as_bytes())).unwrap();
    let v: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{path} {body}: non-JSON body {:?}: {e}", r.text()));
    let msg = match &v["error"] {
        Value::String(s) => s.clone(),
        Value::Object(o) => o["message"].as_str().unwrap_or_default().to_string(),
        _ => String::new(),
    };
    (r.status, msg)
}

/// Asserts a 400 whose message names `field`.
fn refused(addr: &str, path: &str, body: &str, field: &str) {
    let (status, msg) = error_of(addr, path, body);
    assert_eq!(status, 400, "{path} {body}: {msg}");
    assert!(
        msg.contains(field),
        "{path} {body}: {msg:?} does not name {field}"
    );
}

const GEN: &str = "/api/generate";
const CHAT: &str = "/api/chat";
const OAI_CHAT: &str = "/v1/chat/completions";
const OAI_COMPL: &str = "/v1/completions";

#[test]
fn huge_keep_alive_values_are_400s_not_panics() {
    let s = start(1, 16, Duration::ZERO);
    for ka in [
        "1e300",
        "\"999999999999999999h\"",
        "18446744073709551616",
        "\"1e300s\"",
        "-1e300",
        "true",
    ] {
        for path in [GEN, CHAT, "/api/embed"] {
            let body = format!(r#"{{"model":"fake","keep_alive":{ka}}}"#);
            let (status, msg) = error_of(&s.addr, path, &body);
            // -1e300 is "forever" like any negative number.
            if ka == "-1e300" {
                assert_eq!(status, 200, "{path} {body}: {msg}");
            } else {
                assert_eq!(status, 400, "{path} {body}: {msg}");
                assert!(msg.contains("keep_alive"), "{msg}");
            }
        }
    }
    // The server is still there.
    let r = request(&s.addr, "GET", "/api/version", None).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn option_ranges_are_checked_and_named() {
    let s = start(1, 16, Duration::ZERO);
    let bad_options = [
        ("num_ctx", "1e300"),
        ("num_ctx", "-5"),
        ("num_ctx", "18446744073709551616"),
        ("num_predict", "-3"),
        ("num_predict", "1e300"),
        ("num_predict", "2.5"),
        ("top_k", "-1"),
        ("top_k", "1e300"),
        ("seed", "1e300"),
        ("seed", "0.5"),
        ("num_keep", "-7"),
        ("num_keep", "1e300"),
        ("repeat_last_n", "-2"),
        ("temperature", "-0.5"),
        ("temperature", "1e300"),
        ("temperature", "\"NaN\""),
        ("top_p", "1.5"),
        ("top_p", "-0.1"),
        ("min_p", "2"),
        ("typical_p", "-1"),
        ("repeat_penalty", "-1"),
        ("presence_penalty", "1e300"),
        ("num_batch", "1e300"),
    ];
    for (name, value) in bad_options {
        for path in [GEN, CHAT] {
            let body = format!(
                r#"{{"model":"fake","prompt":"x.","messages":[{{"role":"user","content":"x."}}],"stream":false,"options":{{"{name}":{value}}}}}"#
            );
            refused(&s.addr, path, &body, name);
        }
    }
    // Ollama's documented negative limits still work: -1 = no limit, -2 = fill the context.
    for n in [-1, -2] {
        let v = post_json(
            &s.addr,
            GEN,
            &json!({"model": "fake", "prompt": "x.", "raw": true, "stream": false, "options": {"num_predict": n}}),
        )
        .unwrap();
        assert_eq!(v.status, 200, "{}", v.text());
        assert_eq!(v.json().unwrap()["response"], "abcdefghijklmnopqrstuvwxyz");
    }
}

#[test]
fn openai_ranges_are_checked_and_named() {
    let s = start(1, 16, Duration::ZERO);
    let msgs = r#""messages":[{"role":"user","content":"x."}],"prompt":"x.""#;
    for (name, value) in [
        ("max_tokens", "-1"),
        ("max_tokens", "1e300"),
        ("max_completion_tokens", "-5"),
        ("temperature", "-1"),
        ("temperature", "1e300"),
        ("top_p", "3"),
        ("seed", "1e300"),
        ("top_k", "-4"),
        ("n", "18446744073709551616"),
        ("frequency_penalty", "\"x\""),
    ] {
        for path in [OAI_CHAT, OAI_COMPL] {
            let body = format!(r#"{{"model":"fake",{msgs},"{name}":{value}}}"#);
            refused(&s.addr, path, &body, name);
        }
    }
}

#[test]
fn unimplemented_output_fields_are_refused() {
    let s = start(1, 16, Duration::ZERO);
    let p = r#""model":"fake","prompt":"x.""#;
    refused(
        &s.addr,
        OAI_COMPL,
        &format!(r#"{{{p},"echo":true}}"#),
        "echo",
    );
    refused(
        &s.addr,
        OAI_COMPL,
        &format!(r#"{{{p},"suffix":"end"}}"#),
        "suffix",
    );
    refused(
        &s.addr,
        OAI_COMPL,
        &format!(r#"{{{p},"best_of":3}}"#),
        "best_of",
    );
    refused(
        &s.addr,
        OAI_COMPL,
        &format!(r#"{{{p},"logit_bias":{{"5":100}}}}"#),
        "logit_bias",
    );
    // The neutral values of those fields are fine.
    let r = request(
        &s.addr,
        "POST",
        OAI_COMPL,
        Some(
            format!(r#"{{{p},"echo":false,"suffix":null,"best_of":1,"logit_bias":{{}}}}"#)
                .as_bytes(),
        ),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn malformed_bodies_get_json_errors_naming_the_field() {
    let s = start(1, 16, Duration::ZERO);
    // OpenAI: messages must be an array, not "[] is too short".
    let (status, msg) = error_of(&s.addr, OAI_CHAT, r#"{"model":"fake","messages":"hi"}"#);
    assert_eq!(status, 400);
    assert!(msg.contains("messages") && msg.contains("array"), "{msg}");
    // Ollama: a wrong type names its field.
    refused(
        &s.addr,
        CHAT,
        r#"{"model":"fake","messages":"hi"}"#,
        "messages",
    );
    refused(
        &s.addr,
        GEN,
        r#"{"model":"fake","prompt":"x","stream":"yes"}"#,
        "stream",
    );
    refused(
        &s.addr,
        GEN,
        r#"{"model":"fake","prompt":"x","context":[1,-2]}"#,
        "context",
    );
    // Token ids outside the vocabulary (the fake has 259).
    refused(
        &s.addr,
        GEN,
        r#"{"model":"fake","prompt":"x","context":[1,4000000000],"stream":false}"#,
        "context",
    );
    refused(
        &s.addr,
        GEN,
        r#"{"model":"fake","prompt":"x","context":[259],"stream":false}"#,
        "context",
    );
    // A body over the limit gets a JSON error too.
    let big = format!(r#"{{"model":"fake","prompt":"{}"}}"#, "a".repeat(2 << 20));
    let (status, msg) = error_of(&s.addr, GEN, &big);
    assert_eq!(status, 413);
    assert!(!msg.is_empty());
}

#[test]
fn a_top_level_string_schema_yields_a_string() {
    let s = start(1, 16, Duration::ZERO);
    let v = post_json(
        &s.addr,
        GEN,
        &json!({"model": "fake", "prompt": "x.", "raw": true, "stream": false,
                "format": {"type": "string"}, "options": {"num_predict": 40}}),
    )
    .unwrap()
    .json()
    .unwrap();
    let out = v["response"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{out:?}: {e}"));
    assert!(parsed.is_string(), "{out:?}");
}

#[test]
fn serve_refuses_a_huge_keep_alive_flag() {
    for ka in ["1e300", "999999999999999999h", "5x"] {
        let out = Command::new(env!("CARGO_BIN_EXE_bitnet-gguf"))
            .args(["serve", "--keep-alive", ka, "--port", "1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{ka}: {err}");
        assert!(err.contains("keep-alive"), "{ka}: {err}");
    }
}
