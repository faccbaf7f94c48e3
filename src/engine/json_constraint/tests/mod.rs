use super::*;
use std::sync::Arc;

fn status(s: &[u8]) -> JsonStatus {
    JsonValidator::new().push_bytes(s)
}

#[test]
fn complete_objects() {
    for s in [
        r#"{}"#,
        r#"{"a":1}"#,
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
        " ",
        " {}",
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
            .is_none_or(|v| !v.is_object() || s.trim() != s));
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
    assert!(v.accepts(format!("\"{}\"", " ".repeat(50)).as_bytes()));
    // The run restarts after a non-blank byte.
    let mut s = vec![b' '; MAX_WHITESPACE_RUN];
    s.extend_from_slice(b"\"k\"");
    s.extend(vec![b' '; MAX_WHITESPACE_RUN]);
    assert!(v.accepts(&s));
    // One line break per run, then indentation.
    assert!(v.accepts(b"\n    \"k\"\n  :\n 1"));
    assert!(!v.accepts(b"\n\n"));
    assert!(!v.accepts(b" \n \r"));
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
    let any = usize::MAX;
    assert!(!token_allowed(&v, b"", true, any));
    assert!(!token_allowed(&v, b"", false, any));
    assert!(token_allowed(&v, b"}", false, any));
    v.push_bytes(b"}");
    assert!(token_allowed(&v, b"", true, any));
    assert!(!token_allowed(&v, b"\n", false, any));
}

#[test]
fn constrained_sample_prefers_the_sampler_and_masks_the_rest() {
    // Greedy sampler over 4 "tokens"; only token 2 is allowed.
    let logits = [3.0, 2.0, 1.0, 0.0];
    let mut calls = 0;
    let mut greedy = |l: &[f32]| {
        calls += 1;
        crate::engine::sampler::argmax(l)
    };
    let got = constrained_sample(&logits, &mut greedy, &mut |t| t == 2);
    assert_eq!(got, Some(2));
    assert_eq!(calls, 3);
    // The top choice is taken directly when allowed.
    let mut greedy = |l: &[f32]| crate::engine::sampler::argmax(l);
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

/// The byte the shortest completion starts with (the policy `completion_len` counts).
fn next_closing_byte(v: &JsonValidator) -> u8 {
    let closer = || match v.stack.last().map(|f| f.container) {
        Some(Container::Object) => b'}',
        Some(Container::Array) => b']',
        None => unreachable!("nothing open"),
    };
    match v.lex {
        // A schema key is written out exactly (escapes included) and then closed.
        Lex::Str { key: true, len, .. } if v.expected_key().is_some() => {
            let k = v.expected_key().unwrap();
            k.get(len).copied().unwrap_or(b'"')
        }
        Lex::Str {
            escape: Escape::Backslash,
            need_low,
            ..
        } => {
            if need_low {
                b'u'
            } else {
                b'n'
            }
        }
        Lex::Str {
            escape: Escape::Unicode { left, .. },
            need_low: true,
            ..
        } => b"DC00"[4 - left as usize],
        Lex::Str {
            escape: Escape::Unicode { .. },
            ..
        } => b'0',
        Lex::Str { utf8_left: 1.., .. } => 0x80,
        Lex::Str { need_low: true, .. } => b'\\',
        Lex::Str { .. } => b'"',
        Lex::Num(p, ..) if !p.can_end() => b'0',
        // A finished number ends at the next structural byte: a comma when the schema still
        // owes members after it.
        Lex::Num(..) => {
            let count = v.stack.last().map_or(0, |f| f.count);
            match v.members() {
                Some(m) if count + 1 < m.len() => b',',
                _ => closer(),
            }
        }
        Lex::Lit(w, i) => w[i],
        Lex::None => match v.expect {
            Expect::TopValue => b'{',
            Expect::Key => b'"',
            Expect::Colon => b':',
            Expect::Value => match v.slot_shape().as_deref() {
                Some(Shape::Str) => b'"',
                Some(Shape::Boolean) => b't',
                Some(Shape::Null) => b'n',
                Some(Shape::Array(_)) => b'[',
                Some(Shape::Object(_) | Shape::AnyObject) => b'{',
                _ => b'0',
            },
            Expect::KeyOrEnd | Expect::CommaOrEnd => {
                let count = v.stack.last().map_or(0, |f| f.count);
                match v.members() {
                    Some(m) if count < m.len() => {
                        if v.expect == Expect::KeyOrEnd {
                            b'"'
                        } else {
                            b','
                        }
                    }
                    _ => closer(),
                }
            }
            Expect::ValueOrEnd => closer(),
            Expect::Done => unreachable!("complete"),
        },
    }
}

/// Completes `v` one closing byte at a time, checking that each byte shortens the remaining
/// completion by exactly one (what lets the budget rule always find an allowed token).
fn close(v: &JsonValidator) -> Vec<u8> {
    let mut v = v.clone();
    let mut out = Vec::new();
    while v.status() == JsonStatus::Prefix {
        let need = v.completion_len();
        let b = next_closing_byte(&v);
        out.push(b);
        assert_ne!(
            v.push_bytes(&[b]),
            JsonStatus::Invalid,
            "closing with {b:?}"
        );
        assert_eq!(v.completion_len(), need - 1, "after {:?}", out);
    }
    out
}

#[test]
fn completion_len_is_the_length_of_a_closing_text() {
    let prefixes: Vec<&[u8]> = vec![
        b"",
        b"{",
        b"{\"",
        b"{\"ke",
        b"{\"k\\",
        b"{\"k\\u0",
        b"{\"k\\uD8",
        b"{\"k\\uD83D",
        b"{\"k\\uD83D\\",
        b"{\"k\\uD83D\\u",
        b"{\"k\\uD83D\\uD",
        b"{\"k\\uD83D\\uDE",
        b"{\"k\\uD83D\\uDE0",
        b"{\"k\"",
        b"{\"k\":",
        b"{\"k\": \"va",
        b"{\"k\": \"\xc3",
        b"{\"k\": \"\xf0\x9f",
        b"{\"k\":-",
        b"{\"k\":1.",
        b"{\"k\":1e",
        b"{\"k\":1e+",
        b"{\"k\":12",
        b"{\"k\":tr",
        b"{\"k\":nul",
        b"{\"k\":[",
        b"{\"k\":[1,",
        b"{\"k\":[1, {\"x\": [[\"a",
        b"{\"k\":{},",
        b"{\"k\":{}}",
    ];
    for p in prefixes {
        let mut v = JsonValidator::new();
        assert_eq!(
            v.push_bytes(p),
            if p == b"{\"k\":{}}" {
                JsonStatus::Complete
            } else {
                JsonStatus::Prefix
            }
        );
        let tail = close(&v);
        assert_eq!(
            tail.len(),
            v.completion_len(),
            "{:?}",
            String::from_utf8_lossy(p)
        );
        let mut whole = p.to_vec();
        whole.extend(&tail);
        let v: serde_json::Value = serde_json::from_slice(&whole)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&whole)));
        assert!(v.is_object());
    }
    let mut bad = JsonValidator::new();
    bad.push_bytes(b"x");
    assert_eq!(bad.completion_len(), usize::MAX);
}

#[test]
fn strings_numbers_and_containers_are_capped() {
    // Key: MAX_KEY_BYTES bytes, then only the quote.
    let mut v = JsonValidator::new();
    v.push_bytes(b"{\"");
    assert_eq!(v.push_bytes(&[b'k'; MAX_KEY_BYTES]), JsonStatus::Prefix);
    assert!(!v.accepts(b"k"));
    assert!(!v.accepts(b"\\n"));
    assert!(v.accepts(b"\":1}"));
    // Value strings have their own, larger cap; a multi-byte character started before the cap
    // may finish.
    let mut v = JsonValidator::new();
    v.push_bytes(b"{\"k\":\"");
    v.push_bytes(&[b'a'; MAX_STRING_BYTES - 1]);
    assert!(v.accepts("é".as_bytes()));
    v.push_bytes(b"a");
    assert!(!v.accepts(b"a"));
    assert!(!v.accepts(" ".as_bytes()));
    assert!(v.accepts(b"\"}"));
    // Numbers: at the cap no more digits, but a pending exponent still gets its digit.
    let mut v = JsonValidator::new();
    v.push_bytes(b"{\"k\":");
    let digits = vec![b'1'; MAX_NUMBER_BYTES];
    v.push_bytes(&digits);
    assert!(!v.accepts(b"1"));
    assert!(v.accepts(b"}"));
    let mut v = JsonValidator::new();
    v.push_bytes(b"{\"k\":");
    v.push_bytes(&digits[..MAX_NUMBER_BYTES - 1]);
    v.push_bytes(b"e");
    assert!(!v.accepts(b"+"));
    assert!(v.accepts(b"5}"));
    // Objects: MAX_MEMBERS members; arrays: MAX_ITEMS elements.
    let mut s = String::from("{");
    for i in 0..MAX_MEMBERS {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("\"k{i}\":{i}"));
    }
    let mut v = JsonValidator::new();
    assert_eq!(v.push_bytes(s.as_bytes()), JsonStatus::Prefix);
    assert!(!v.accepts(b","));
    assert!(v.accepts(b"}"));
    let items = vec!["0"; MAX_ITEMS].join(",");
    let mut v = JsonValidator::new();
    v.push_bytes(format!("{{\"a\":[{items}").as_bytes());
    assert!(!v.accepts(b","));
    assert!(v.accepts(b"]}"));
}

#[test]
fn budget_leaves_only_closing_moves() {
    let mut v = JsonValidator::new();
    v.push_bytes(b"{\"k\": [\"ab");
    // Closing needs `"]}`: three tokens.
    assert_eq!(v.completion_len(), 3);
    assert!(token_allowed(&v, b"c", false, 3));
    assert!(!token_allowed(&v, b"c", false, 2));
    assert!(token_allowed(&v, b"\"", false, 2));
    assert!(!token_allowed(&v, b"\",", false, 2));
    assert!(token_allowed(&v, b"\"]", false, 1));
    assert!(!token_allowed(&v, b"\"]", false, 0));
    assert!(token_allowed(&v, b"\"]}", false, 0));
    // An empty budget for the very first token: only a whole object would do.
    let v = JsonValidator::new();
    assert!(!token_allowed(&v, b"{", false, 0));
    assert!(token_allowed(&v, b"{", false, 1));
    assert!(token_allowed(&v, b"{}", false, 0));
}

mod schema;
