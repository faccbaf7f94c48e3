use super::*;

fn status(s: &[u8]) -> JsonStatus {
    JsonValidator::new().push_bytes(s)
}

#[test]
fn complete_objects() {
    for s in [
        r#"{}"#,
        r#" {"a":1}"#,
        r#"{"a": [1, -2.5e+3, 0, 0.25, 1E9, true, false, null], "b": {"c": "d"}}"#,
        r#"{"s": "q\"\\\/\b\f\n\r\t\u00e9 \uD83D\uDE00 é 😀"}"#,
        "{\n  \"k\" : [ ] ,\"m\":{}}",
        r#"{"n":-0.0e-0}"#,
    ] {
        assert_eq!(status(s.as_bytes()), JsonStatus::Complete, "{s}");
        assert!(serde_json::from_str::<serde_json::Value>(s).is_ok(), "{s}");
    }
}

#[test]
fn valid_prefixes() {
    for s in [
        "",
        " ",
        "{",
        r#"{""#,
        r#"{"a"#,
        r#"{"a":"#,
        r#"{"a": 1"#,
        r#"{"a": -"#,
        r#"{"a": 1."#,
        r#"{"a": 1e"#,
        r#"{"a": 1e-"#,
        r#"{"a": tr"#,
        r#"{"a": [1,"#,
        r#"{"a": "\"#,
        r#"{"a": "\u00"#,
        r#"{"a": "\uD83D"#,
        r#"{"a": "\uD83D\"#,
        r#"{"a": {"b": [{"#,
    ] {
        assert_eq!(status(s.as_bytes()), JsonStatus::Prefix, "{s}");
    }
    // An incomplete UTF-8 sequence inside a string is a prefix.
    assert_eq!(status(&"{\"a\":\"é".as_bytes()[..7]), JsonStatus::Prefix);
}

#[test]
fn invalid_prefixes() {
    for s in [
        "[",
        "1",
        "\"a\"",
        "x",
        "{a",
        "{\"a\" 1",
        "{\"a\":}",
        "{\"a\":1,}",
        "{\"a\":1]",
        "{\"a\":[1,]",
        "{\"a\":01",
        "{\"a\":-a",
        "{\"a\":1.e",
        "{\"a\":1.5e+}",
        "{\"a\":tru}",
        "{\"a\":nul1",
        "{\"a\":\"\\x\"",
        "{\"a\":\"\\u12g",
        "{\"a\":\"\\uDE00\"",
        "{\"a\":\"\\uD83Dx\"",
        "{\"a\":\"\\uD83D\\n\"",
        "{\"a\":\"line\nbreak\"}",
        "{} ",
        "{}{}",
        "{\"a\":1}}",
        "{\"a\":[}",
    ] {
        assert_eq!(status(s.as_bytes()), JsonStatus::Invalid, "{s:?}");
        assert!(serde_json::from_str::<serde_json::Value>(s)
            .ok()
            .is_none_or(|v| !v.is_object() || s.ends_with(' ')));
    }
    assert_eq!(status(b"{\"a\":\"\xff\"}"), JsonStatus::Invalid);
    assert_eq!(status(b"{\"a\":\"\xc3x"), JsonStatus::Invalid);
}

#[test]
fn whitespace_runs_are_bounded() {
    let mut v = JsonValidator::new();
    assert_eq!(v.push_bytes(b"{"), JsonStatus::Prefix);
    assert!(v.accepts(&[b' '; MAX_WHITESPACE_RUN]));
    assert!(!v.accepts(&[b' '; MAX_WHITESPACE_RUN + 1]));
    // Whitespace inside strings is content, not a run.
    assert!(v.accepts(format!("\"{}\"", " ".repeat(100)).as_bytes()));
    // The run restarts after a non-blank byte.
    let mut s = vec![b' '; MAX_WHITESPACE_RUN];
    s.extend_from_slice(b"\"k\"");
    s.extend(vec![b' '; MAX_WHITESPACE_RUN]);
    assert!(v.accepts(&s));
}

#[test]
fn nesting_depth_is_bounded() {
    let mut s = String::from("{\"a\":");
    s.push_str(&"[".repeat(MAX_DEPTH - 1));
    assert_eq!(status(s.as_bytes()), JsonStatus::Prefix);
    s.push('[');
    assert_eq!(status(s.as_bytes()), JsonStatus::Invalid);
}

#[test]
fn byte_by_byte_equals_whole() {
    let s = br#"{"a": [1, {"b": "c\u0041"}], "d": -12.5e3}"#;
    let mut v = JsonValidator::new();
    for (i, &b) in s.iter().enumerate() {
        let st = v.push_bytes(&[b]);
        let expect = if i + 1 == s.len() {
            JsonStatus::Complete
        } else {
            JsonStatus::Prefix
        };
        assert_eq!(st, expect, "at byte {i}");
    }
}

#[test]
fn end_of_generation_only_when_complete() {
    let mut v = JsonValidator::new();
    v.push_bytes(b"{\"a\":1");
    assert!(!token_allowed(&v, b"", true));
    assert!(!token_allowed(&v, b"", false));
    assert!(token_allowed(&v, b"}", false));
    v.push_bytes(b"}");
    assert!(token_allowed(&v, b"", true));
    assert!(!token_allowed(&v, b"\n", false));
}

#[test]
fn constrained_sample_prefers_the_sampler_and_masks_the_rest() {
    // Greedy sampler over 4 "tokens"; only token 2 is allowed.
    let logits = [3.0, 2.0, 1.0, 0.0];
    let mut calls = 0;
    let mut greedy = |l: &[f32]| {
        calls += 1;
        crate::sampler::argmax(l)
    };
    let got = constrained_sample(&logits, &mut greedy, &mut |t| t == 2);
    assert_eq!(got, Some(2));
    assert_eq!(calls, 3);
    // The top choice is taken directly when allowed.
    let mut greedy = |l: &[f32]| crate::sampler::argmax(l);
    assert_eq!(
        constrained_sample(&logits, &mut greedy, &mut |_| true),
        Some(0)
    );
    // Nothing allowed.
    assert_eq!(
        constrained_sample(&logits, &mut greedy, &mut |_| false),
        None
    );
    // Many rejections fall back to one full scan.
    let big: Vec<f32> = (0..1000).map(|i| -(i as f32)).collect();
    let mut checked = 0;
    let got = constrained_sample(&big, &mut greedy, &mut |t| {
        checked += 1;
        t == 900
    });
    assert_eq!(got, Some(900));
    assert!(checked < 1100, "{checked}");
}
