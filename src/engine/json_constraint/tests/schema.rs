//! The constraint end to end: a model that would rather write prose still closes a valid
//! object within budget, and schema shapes are enforced.

use super::*;

/// A byte-level vocabulary plus prose words; the "model" loves prose and never closes anything
/// by itself. Whatever it wants, the constraint must end in a complete object within budget,
/// with and without a schema (whose shortest object must fit the budget).
#[test]
fn a_prose_loving_model_still_closes_within_budget() {
    prose_loving_model(None, &[2, 3, 5, 8, 20, 64, 300, 2000]);
    let schema = person();
    let least = schema.as_ref().unwrap().min_len();
    prose_loving_model(schema, &[least, least + 1, least + 7, 300, 2000]);
}

fn prose_loving_model(schema: Option<Arc<Shape>>, budgets: &[usize]) {
    let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    for w in [
        " the", " and", "\":", "\",", "{\"", " of", "Emma", " was", "\\n", "é", "{", "[", "\"",
    ] {
        vocab.push(w.as_bytes().to_vec());
    }
    let prose: Vec<u32> = (256..vocab.len() as u32)
        .chain(b'a' as u32..=b'z' as u32)
        .collect();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for &budget in budgets {
        for _ in 0..8 {
            let mut c = JsonConstraint::with_schema(schema.clone());
            let mut text = Vec::new();
            let mut used = 0;
            while c.status() == JsonStatus::Prefix && used < budget {
                // Random logits that favour prose tokens.
                let mut logits: Vec<f32> = (0..vocab.len())
                    .map(|_| (next() % 1000) as f32 / 1000.0)
                    .collect();
                for &p in &prose {
                    logits[p as usize] += 3.0;
                }
                let mut sample = |l: &[f32]| crate::engine::sampler::argmax(l);
                let t = c
                    .pick(
                        &logits,
                        budget - used - 1,
                        &mut sample,
                        &|t| vocab[t as usize].clone(),
                        &|_| false,
                    )
                    .expect("some token is always allowed");
                used += 1;
                text.extend(&vocab[t as usize]);
                c.push(&vocab[t as usize]);
            }
            assert_eq!(c.status(), JsonStatus::Complete, "budget {budget}");
            let v: serde_json::Value = serde_json::from_slice(&text)
                .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&text)));
            assert!(v.is_object());
            if schema.is_some() {
                let age = v["age"].as_f64().unwrap();
                assert!(age.fract() == 0.0 && v["tags"].is_array(), "{v}");
            }
        }
    }
}

fn shape(schema: serde_json::Value) -> Option<Arc<Shape>> {
    Some(Arc::new(Shape::from_schema(&schema)))
}

fn person() -> Option<Arc<Shape>> {
    shape(serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "height": {"type": "number"},
            "married": {"type": "boolean"},
            "spouse": {"type": "null"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "home": {"type": "object", "properties": {"town": {"type": "string"}}},
            "extra": {},
            "notes": {"type": "object"}
        },
        "required": ["name", "age"]
    }))
}

#[test]
fn schema_members_types_and_order_are_enforced() {
    let ok = br#"{"name": "Emma", "age": 21, "height": 1.6, "married": false, "spouse": null, "tags": ["a", "b"], "home": {"town": "Highbury"}, "extra": [1, {"x": 2}], "notes": {"any": 1}}"#;
    let mut v = JsonValidator::with_schema(person());
    assert_eq!(v.push_bytes(ok), JsonStatus::Complete);
    for bad in [
        &br#"{}"#[..],                            // members missing
        br#"{"age": 21"#,                          // wrong order
        br#"{"nam": 1"#,                           // wrong key
        br#"{"names"#,                             // key too long
        br#"{"name": 5"#,                          // string expected
        br#"{"name": "E", "age": 2.5"#,            // integer expected
        br#"{"name": "E", "age": 1e3"#,            // integer expected
        br#"{"name": "E", "age": 1, "height": "x""#,
        br#"{"name": "E", "age": 1, "height": 1, "married": null"#,
        br#"{"name": "E", "age": 1, "height": 1, "married": true, "spouse": 0"#,
        br#"{"name": "E", "age": 1, "height": 1, "married": true, "spouse": null, "tags": [1"#,
        br#"{"name": "E", "age": 1, "height": 1, "married": true, "spouse": null, "tags": [], "home": {}"#,
        br#"{"name": "E", "age": 1, "height": 1, "married": true, "spouse": null, "tags": [], "home": {"town": "x"}, "extra": 1, "notes": []"#,
    ] {
        let mut v = JsonValidator::with_schema(person());
        assert_eq!(v.push_bytes(bad), JsonStatus::Invalid, "{}", String::from_utf8_lossy(bad));
    }
    // After the last member only the closing brace.
    let mut v = JsonValidator::with_schema(shape(serde_json::json!({"properties": {"a": {}}})));
    v.push_bytes(br#"{"a": 1"#);
    assert!(!v.accepts(b","));
    assert!(v.accepts(b"}"));
    // A top-level string, array, boolean or null schema gives that value; a number schema
    // (a number never ends at the top level) an object; an unknown construct is unconstrained.
    let mut v = JsonValidator::with_schema(shape(serde_json::json!({"type": "string"})));
    assert!(!v.accepts(b"{"));
    assert_eq!(v.push_bytes(br#""x y""#), JsonStatus::Complete);
    assert!(!v.accepts(b" "));
    let mut v = JsonValidator::with_schema(shape(serde_json::json!({"type": "array"})));
    assert_eq!(v.push_bytes(br#"[1, "a"]"#), JsonStatus::Complete);
    let mut v = JsonValidator::with_schema(shape(serde_json::json!({"type": "boolean"})));
    assert_eq!(v.push_bytes(b"false"), JsonStatus::Complete);
    let mut v = JsonValidator::with_schema(shape(serde_json::json!({"type": "number"})));
    assert_eq!(v.push_bytes(br#"{"x": [true]}"#), JsonStatus::Complete);
    let mut v =
        JsonValidator::with_schema(shape(serde_json::json!({"anyOf": [{"type": "string"}]})));
    assert_eq!(v.push_bytes(br#"{"x": 1}"#), JsonStatus::Complete);
    // Keys needing escapes are written in their JSON form.
    let mut v = JsonValidator::with_schema(shape(
        serde_json::json!({"properties": {"say \"hi\"": {"type": "integer"}}}),
    ));
    assert_eq!(v.push_bytes(br#"{"say \"hi\"":1}"#), JsonStatus::Complete);
}

#[test]
fn schema_completion_covers_every_owed_member() {
    let prefixes: Vec<&[u8]> = vec![
        b"",
        b"{",
        br#"{""#,
        br#"{"na"#,
        br#"{"name""#,
        br#"{"name":"#,
        br#"{"name": "Em"#,
        br#"{"name": "Emma""#,
        br#"{"name": "Emma","#,
        br#"{"name": "Emma", "age": -"#,
        br#"{"name": "Emma", "age": 3, "height": 1."#,
        br#"{"name": "E", "age": 1, "height": 1, "married": tr"#,
        br#"{"name": "E", "age": 1, "height": 1, "married": true, "spouse": null, "tags": ["#,
        br#"{"name": "E", "age": 1, "height": 1, "married": true, "spouse": null, "tags": ["a", "b"#,
        br#"{"name": "E", "age": 1, "height": 1, "married": true, "spouse": null, "tags": [], "home": {"#,
        br#"{"name": "E", "age": 1, "height": 1, "married": true, "spouse": null, "tags": [], "home": {"town": "H"#,
        br#"{"name": "E", "age": 1, "height": 1, "married": true, "spouse": null, "tags": [], "home": {"town": "H"}, "extra": {"q": [1"#,
    ];
    for p in prefixes {
        let mut v = JsonValidator::with_schema(person());
        assert_eq!(
            v.push_bytes(p),
            JsonStatus::Prefix,
            "{}",
            String::from_utf8_lossy(p)
        );
        let tail = close(&v);
        assert_eq!(tail.len(), v.completion_len());
        let mut whole = p.to_vec();
        whole.extend(&tail);
        let value: serde_json::Value = serde_json::from_slice(&whole)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&whole)));
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["name", "age", "height", "married", "spouse", "tags", "home", "extra", "notes"]
        );
        // `-0` is an integer to JSON Schema (serde_json reads it as a float).
        let age = value["age"].as_f64().unwrap();
        assert_eq!(age.fract(), 0.0);
        assert!(value["name"].is_string() && value["home"]["town"].is_string());
    }
}
