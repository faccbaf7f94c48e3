//! Random JSON for every field of every route's body, against the fake model: no request may
//! get a 5xx (503 only from the queue limit) or lose its connection, and the server answers
//! normally afterwards. Seeded: the same requests on every run.

mod server_common;

use std::time::Duration;

use bitnet_gguf::serve::http::client::{post_json, request};
use serde_json::{json, Map, Value};
use server_common::{fake_loader, start_with};

const REQUESTS: usize = 10_000;

/// splitmix64: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const OPTION_NAMES: &[&str] = &[
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repeat_last_n",
    "temperature",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "num_ctx",
    "num_batch",
    "num_gpu",
    "num_thread",
    "use_mmap",
    "mirostat",
    "mirostat_tau",
    "tfs_z",
];

/// Strings that mean something to some field: durations, formats, roles, names, paths
/// (relative, so nothing outside the store's temp dir is touched), numbers in disguise.
const STRINGS: &[&str] = &[
    "",
    "fake",
    "FAKE",
    "x.",
    "json",
    "5m",
    "-1",
    "0",
    "1e300",
    "999999999999999999h",
    "NaN",
    "Infinity",
    "-0",
    "user",
    "system",
    "assistant",
    "tool",
    "developer",
    "text",
    "json_object",
    "json_schema",
    "float",
    "base64",
    "sha256:00",
    "library/fake:latest",
    "a/b/c:d",
    "no such file",
    "FROM fake\nPARAMETER temperature 1e300\n",
    "{{ .Prompt }}",
    "{{ if }",
    "\u{0}",
    "é",
];

fn number(rng: &mut Rng) -> Value {
    let specials = [
        json!(0),
        json!(1),
        json!(-1),
        json!(-2),
        json!(2),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1e300),
        json!(-1e300),
        json!(1e-300),
        json!(0.5),
        json!(-0.5),
        json!(4_000_000_000u64),
        json!(259),
        json!(1.5e19),
    ];
    match rng.below(3) {
        0 => rng.pick(&specials).clone(),
        1 => json!(rng.next() as i64 >> rng.below(64)),
        _ => json!((rng.next() as i64 >> rng.below(64)) as f64 / 7.0),
    }
}

fn value(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth >= 3 { 5 } else { 8 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => number(rng),
        3 => json!(rng.pick(STRINGS)),
        4 => json!("z".repeat(rng.below(20_000))),
        5 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth + 1)).collect()),
        6 => {
            let keys = [
                "role",
                "content",
                "type",
                "text",
                "schema",
                "properties",
                "x",
            ];
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                m.insert(rng.pick(&keys).to_string(), value(rng, depth + 1));
            }
            Value::Object(m)
        }
        _ => {
            // Something close to valid for the common nested fields.
            let o: Vec<(String, Value)> = (0..1 + rng.below(3))
                .map(|_| (rng.pick(OPTION_NAMES).to_string(), value(rng, depth + 1)))
                .collect();
            match rng.below(3) {
                0 => json!([{"role": rng.pick(STRINGS), "content": value(rng, depth + 1)}]),
                1 => json!({"type": rng.pick(STRINGS), "properties": {"a": value(rng, depth + 1)}}),
                _ => Value::Object(o.into_iter().collect()),
            }
        }
    }
}

/// Each route with a valid body to start from and the fields its handler reads.
fn routes() -> Vec<(&'static str, &'static str, Value, Vec<&'static str>)> {
    let msgs = json!([{"role": "user", "content": "x."}]);
    vec![
        (
            "POST",
            "/api/generate",
            json!({"model": "fake", "prompt": "x.", "stream": false}),
            vec![
                "model",
                "prompt",
                "suffix",
                "system",
                "template",
                "context",
                "stream",
                "raw",
                "format",
                "options",
                "keep_alive",
                "images",
                "think",
                "logprobs",
                "top_logprobs",
            ],
        ),
        (
            "POST",
            "/api/chat",
            json!({"model": "fake", "messages": msgs, "stream": false}),
            vec![
                "model",
                "messages",
                "tools",
                "format",
                "options",
                "stream",
                "keep_alive",
                "think",
                "logprobs",
                "top_logprobs",
            ],
        ),
        (
            "POST",
            "/api/embed",
            json!({"model": "fake", "input": "x"}),
            vec![
                "model",
                "input",
                "truncate",
                "dimensions",
                "keep_alive",
                "options",
            ],
        ),
        (
            "POST",
            "/api/embeddings",
            json!({"model": "fake", "prompt": "x"}),
            vec!["model", "prompt", "keep_alive", "options"],
        ),
        (
            "POST",
            "/api/show",
            json!({"model": "fake"}),
            vec!["model", "name", "verbose"],
        ),
        (
            "POST",
            "/api/create",
            json!({"model": "made", "from": "fake"}),
            vec![
                "model",
                "name",
                "from",
                "files",
                "adapters",
                "template",
                "system",
                "parameters",
                "messages",
                "license",
                "quantize",
                "stream",
                "modelfile",
                "path",
            ],
        ),
        (
            "POST",
            "/api/copy",
            json!({"source": "fake", "destination": "copied"}),
            vec!["source", "destination"],
        ),
        (
            "DELETE",
            "/api/delete",
            json!({"model": "copied"}),
            vec!["model", "name"],
        ),
        (
            "POST",
            "/api/pull",
            json!({"model": "fake", "stream": false}),
            vec!["model", "name", "stream", "insecure"],
        ),
        (
            "POST",
            "/api/push",
            json!({"model": "fake"}),
            vec!["model", "name", "stream"],
        ),
        (
            "POST",
            "/v1/chat/completions",
            json!({"model": "fake", "messages": msgs}),
            vec![
                "model",
                "messages",
                "stream",
                "stream_options",
                "max_tokens",
                "max_completion_tokens",
                "temperature",
                "top_p",
                "seed",
                "stop",
                "frequency_penalty",
                "presence_penalty",
                "n",
                "response_format",
                "tools",
                "top_k",
                "min_p",
                "repeat_penalty",
                "repeat_last_n",
                "logprobs",
                "top_logprobs",
                "logit_bias",
                "user",
            ],
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "fake", "prompt": "x."}),
            vec![
                "model",
                "prompt",
                "stream",
                "stream_options",
                "max_tokens",
                "temperature",
                "top_p",
                "seed",
                "stop",
                "n",
                "echo",
                "suffix",
                "best_of",
                "logprobs",
                "logit_bias",
                "response_format",
            ],
        ),
        (
            "POST",
            "/v1/embeddings",
            json!({"model": "fake", "input": "x"}),
            vec!["model", "input", "encoding_format", "dimensions"],
        ),
        (
            "POST",
            "/tokenize",
            json!({"model": "fake", "content": "x"}),
            vec!["model", "content", "add_special", "with_pieces"],
        ),
        (
            "POST",
            "/detokenize",
            json!({"model": "fake", "tokens": [100]}),
            vec!["model", "tokens"],
        ),
        (
            "POST",
            "/apply-template",
            json!({"model": "fake", "messages": msgs}),
            vec!["model", "messages"],
        ),
    ]
}

#[test]
fn random_json_never_gets_a_5xx_or_a_dropped_connection() {
    // Nothing may reach out: a registry download would hit a closed port.
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    // The fake model runs; `show` and `create` read a real GGUF's metadata.
    let gguf =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-bitnet-b1.58.gguf");
    let s = start_with(
        2,
        64,
        fake_loader(Duration::ZERO),
        Some(("fake".into(), gguf)),
    );
    let routes = routes();
    let mut rng = Rng(0x5eed_2701);
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..REQUESTS {
        let (method, path, base, fields) = rng.pick(&routes).clone();
        let mut body = base.as_object().unwrap().clone();
        for _ in 0..1 + rng.below(3) {
            let field = *rng.pick(&fields);
            let v = if field == "options" && rng.below(2) == 0 {
                json!({ *rng.pick(OPTION_NAMES): value(&mut rng, 1) })
            } else {
                value(&mut rng, 0)
            };
            body.insert(field.to_string(), v);
        }
        let text = Value::Object(body).to_string();
        let r = request(&s.addr, method, path, Some(text.as_bytes()))
            .unwrap_or_else(|e| panic!("request {i}: {method} {path} {text:.300}: {e}"));
        let busy = r.status == 503 && r.text().contains("maximum pending requests");
        assert!(
            r.status < 500 || busy,
            "request {i}: {method} {path} {text:.300} -> {} {}",
            r.status,
            r.text()
        );
        *statuses.entry(r.status).or_insert(0usize) += 1;
    }
    // Both successes and refusals were exercised.
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > REQUESTS / 20,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > REQUESTS / 10,
        "{statuses:?}"
    );
    let v = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "x.", "raw": true, "stream": false}),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["response"], "abcdefghijklmnopqrstuvwxyz", "{statuses:?}");
}
