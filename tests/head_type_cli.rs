//! `--head-type q8_0|q6_k` end to end: the committed tiny model's F16 tied head re-quantised
//! at load changes the logits a little (and only a little), a head of the asked type is left
//! alone, another quantised head is refused, and `perplexity` and `serve` take the flag.

mod cli_common;

use std::process::Stdio;

use cli_common::{bitnet_gguf, cli, ServeProcess, TINY};

const PROMPT: &str = "It is a truth universally acknowledged, that a single man in possession";
/// The opening of Pride and Prejudice (public domain): a few chunks of 64 tokens of the
/// kind of text the tiny model was trained on.
const TEXT: &str = "It is a truth universally acknowledged, that a single man in possession \
of a good fortune, must be in want of a wife. However little known the feelings or views of \
such a man may be on his first entering a neighbourhood, this truth is so well fixed in the \
minds of the surrounding families, that he is considered the rightful property of some one \
or other of their daughters. \"My dear Mr. Bennet,\" said his lady to him one day, \"have you \
heard that Netherfield Park is let at last?\" Mr. Bennet replied that he had not. \"But it \
is,\" returned she; \"for Mrs. Long has just been here, and she told me all about it.\" Mr. \
Bennet made no answer. \"Do you not want to know who has taken it?\" cried his wife \
impatiently. \"You want to tell me, and I have no objection to hearing it.\" This was \
invitation enough.";

fn ok(out: std::process::Output) -> (String, String) {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), err)
}

/// Every logit of every position of `PROMPT` (`eval --json` over the whole vocabulary),
/// and the stderr of the run.
fn logits(model: &str, extra: &[&str]) -> (Vec<Vec<f64>>, String) {
    let mut args = vec![
        "eval", "-m", model, "-p", PROMPT, "--json", "--top-k", "100000",
    ];
    args.extend_from_slice(extra);
    let (out, err) = ok(bitnet_gguf(&args));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let top = p["top"].as_array().unwrap();
            let mut row = vec![f64::NAN; top.len()];
            for t in top {
                row[t[0].as_u64().unwrap() as usize] = t[1].as_f64().unwrap();
            }
            row
        })
        .collect();
    (rows, err)
}

/// The largest difference between two runs' logits, and the largest logit of the first.
fn worst_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f64;
    let mut scale = 0f64;
    for (ra, rb) in a.iter().zip(b) {
        assert_eq!(ra.len(), rb.len());
        for (x, y) in ra.iter().zip(rb) {
            assert!(x.is_finite() && y.is_finite());
            worst = worst.max((x - y).abs());
            scale = scale.max(x.abs());
        }
    }
    (worst, scale)
}

#[test]
fn a_requantised_head_moves_the_logits_a_little() {
    let (plain, err) = logits(TINY, &[]);
    assert!(!err.contains("re-quantised"), "{err}");
    for (flag, ty) in [("q8_0", "Q8_0"), ("q6_k", "Q6_K")] {
        let (packed, err) = logits(TINY, &["--head-type", flag]);
        assert!(
            err.contains(&format!("re-quantised the F16 output head to {ty} in ")),
            "{err}"
        );
        let (worst, scale) = worst_difference(&plain, &packed);
        // The head changed (the logits are not the F16 head's)...
        assert!(worst > 0.0, "{flag}: the logits did not change");
        // ...by the head's rounding only: on this prompt Q8_0 moves a logit by at most
        // 0.19 and Q6_K by 0.39, against logits up to 14.3 (1.3 % and 2.7 %).
        assert!(worst < 0.05 * scale, "{flag}: {worst} against {scale}");
        // Where the F16 head's choice is clear, the greedy token stays the same.
        for (pos, (a, b)) in plain.iter().zip(&packed).enumerate() {
            let mut order: Vec<usize> = (0..a.len()).collect();
            order.sort_by(|&i, &j| a[j].total_cmp(&a[i]));
            if a[order[0]] - a[order[1]] > 2.0 * worst {
                let best = (0..b.len()).max_by(|&i, &j| b[i].total_cmp(&b[j]));
                assert_eq!(best, Some(order[0]), "{flag}: position {pos}");
            }
        }
    }
}

#[test]
fn a_quantised_head_is_left_alone_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let q6 = dir.path().join("q6.gguf");
    let f32 = dir.path().join("f32.gguf");
    let (q6, f32) = (q6.to_str().unwrap(), f32.to_str().unwrap());
    for (out, embed) in [(q6, "q6_k"), (f32, "f32")] {
        let args = [
            "quantize",
            TINY,
            out,
            "--type",
            "i2_s",
            "--embed-type",
            embed,
        ];
        ok(bitnet_gguf(&args));
    }
    // Asking for the type the head has already changes nothing, and says so.
    let (plain, _) = logits(q6, &[]);
    let (same, err) = logits(q6, &["--head-type", "q6_k"]);
    assert!(err.contains("Q6_K in the file already"), "{err}");
    assert_eq!(plain, same);
    // A second rounding of a quantised head is refused, naming the file and its type.
    let out = bitnet_gguf(&["eval", "-m", q6, "-p", PROMPT, "--head-type", "q8_0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(q6) && err.contains("the output head is Q6_K in the file"),
        "{err}"
    );
    // An F32 head is re-quantised like an F16 one.
    let (_, err) = logits(f32, &["--head-type", "q8_0"]);
    assert!(
        err.contains("re-quantised the F32 output head to Q8_0"),
        "{err}"
    );
}

#[test]
fn a_bad_head_type_is_a_usage_error() {
    for verb in ["run", "chat", "eval", "perplexity", "serve", "bench"] {
        let out = bitnet_gguf(&[verb, "-m", TINY, "--head-type", "q4_k"]);
        assert_eq!(out.status.code(), Some(2), "{verb}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--head-type") && err.contains("expected q8_0 or q6_k"),
            "{verb}: {err}"
        );
    }
}

/// The `PPL = …` figure of a `perplexity` run over `TEXT` in chunks of 64.
fn perplexity(text: &str, extra: &[&str]) -> (f64, String) {
    let mut args = vec!["perplexity", "-m", TINY, "-f", text, "-c", "64"];
    args.extend_from_slice(extra);
    let (out, err) = ok(bitnet_gguf(&args));
    let ppl = out
        .split("PPL = ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no PPL in {out}"));
    (ppl, err)
}

#[test]
fn perplexity_with_a_q6_k_head_stays_within_a_few_per_cent() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.txt");
    std::fs::write(&text, TEXT).unwrap();
    let text = text.to_str().unwrap();
    let (plain, _) = perplexity(text, &[]);
    let (q6, err) = perplexity(text, &["--head-type", "q6_k"]);
    assert!(err.contains("to Q6_K in "), "{err}");
    // English the model was trained on: far below the uniform 4096.
    assert!(plain > 1.0 && plain < 1000.0, "{plain}");
    assert!((q6 / plain - 1.0).abs() < 0.03, "q6_k {q6} against {plain}");
}

#[test]
fn serve_loads_its_model_with_the_head_requantised() {
    let store = tempfile::tempdir().unwrap();
    let mut serve = cli(&[
        "serve",
        "-m",
        TINY,
        "--alias",
        "tiny",
        "--head-type",
        "q6_k",
        "--threads",
        "1",
    ]);
    serve
        .env("BITNET_MODELS", store.path())
        .stderr(Stdio::piped());
    let mut server = ServeProcess::start(serve);
    let body = serde_json::json!({"model": "tiny", "prompt": "It is a truth", "stream": false,
                                  "raw": true, "options": {"num_predict": 4, "temperature": 0}});
    let reply =
        bitnet_gguf::serve::http::client::post_json(&server.addr, "/api/generate", &body).unwrap();
    let err = server.stop();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["eval_count"], 4);
    assert!(
        err.contains("re-quantised the F16 output head to Q6_K in "),
        "{err}"
    );
}
