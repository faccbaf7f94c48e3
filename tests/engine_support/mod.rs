//! Shared helpers for the engine tests: loading the reference JSONs produced with
//! transformers and comparing our logits and greedy continuations against them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bitnet_gguf::engine::model::{LoadOptions, Model};
use serde_json::Value;

/// Logit tolerance from the fixtures' README: int8 activation rounding ties flip in any
/// independent implementation, moving logits by up to ~0.05.
pub const TOL: f32 = 0.1;

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn load_model(rel: &str) -> Model {
    let path = repo_path(rel);
    Model::load(&path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {}: {e:#}", path.display()))
}

pub struct RefPrompt {
    pub name: String,
    pub text: String,
    pub input_ids: Vec<u32>,
    /// The reference tokenised with BOS (plain prompts) or without (rendered chat).
    pub with_bos: bool,
    /// Per position: (ids, logits) of the reference top 20, best first.
    pub top20: Vec<(Vec<u32>, Vec<f32>)>,
    pub greedy_ids: Vec<u32>,
    pub greedy_gaps: Vec<f32>,
}

pub fn load_prompts(rel: &str) -> Vec<RefPrompt> {
    let path = repo_path(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let floats = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    v["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| RefPrompt {
            name: p["name"].as_str().unwrap().to_string(),
            text: p["prompt_text"].as_str().unwrap().to_string(),
            input_ids: ids(&p["input_ids"]),
            with_bos: p["note"]
                .as_str()
                .unwrap_or("")
                .contains("add_special_tokens=True"),
            top20: p["top20_per_position"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (ids(&t["ids"]), floats(&t["logits"])))
                .collect(),
            greedy_ids: ids(&p["greedy"]["new_ids"]),
            greedy_gaps: floats(&p["greedy"]["top1_minus_top2_logit_per_step"]),
        })
        .collect()
}

/// Argmax with ties broken by the lowest id (the reference's rule).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

pub struct Comparison {
    pub max_abs_diff: f32,
    pub top1_checked: usize,
    pub greedy_checked: usize,
}

/// Compares one prompt against its reference; panics with a precise message on mismatch.
pub fn check_prompt(model: &Model, p: &RefPrompt) -> Comparison {
    check_prompt_with(model, p, TOL)
}

/// [`check_prompt`] with another logit tolerance (also used as the top-2 gap threshold).
pub fn check_prompt_with(model: &Model, p: &RefPrompt, tol: f32) -> Comparison {
    let tok = model.tokenizer();
    let ids = tok
        .encode(&p.text, p.with_bos && tok.add_bos_default(), true)
        .unwrap();
    assert_eq!(ids, p.input_ids, "{}: token ids differ", p.name);
    let vocab = model.config().n_vocab;
    let mut session = model.new_session(model.default_n_ctx());
    let logits = session.forward_all(&p.input_ids).unwrap();
    assert_eq!(logits.len(), p.input_ids.len() * vocab);
    let mut max_abs_diff = 0.0f32;
    let mut top1_checked = 0;
    for (pos, (ids, ref_logits)) in p.top20.iter().enumerate() {
        let row = &logits[pos * vocab..(pos + 1) * vocab];
        for (&id, &r) in ids.iter().zip(ref_logits) {
            let d = (row[id as usize] - r).abs();
            max_abs_diff = max_abs_diff.max(d);
            assert!(
                d <= tol,
                "{}: position {pos}, token {id}: logit {} vs reference {r} (|Δ| = {d})",
                p.name,
                row[id as usize]
            );
        }
        if ref_logits[0] - ref_logits[1] > tol {
            top1_checked += 1;
            assert_eq!(
                argmax(row),
                ids[0],
                "{}: argmax differs at position {pos}",
                p.name
            );
        }
    }

    // Greedy continuation with the KV cache, compared up to the first low-gap step.
    let mut session = model.new_session(model.default_n_ctx());
    let mut logits = session.forward(&p.input_ids).unwrap();
    let mut greedy_checked = 0;
    for (step, (&want, &gap)) in p.greedy_ids.iter().zip(&p.greedy_gaps).enumerate() {
        if gap < tol {
            break;
        }
        let got = argmax(&logits);
        assert_eq!(got, want, "{}: greedy step {step} differs", p.name);
        greedy_checked += 1;
        if step + 1 < p.greedy_ids.len() {
            logits = session.forward(&[got]).unwrap();
        }
    }
    Comparison {
        max_abs_diff,
        top1_checked,
        greedy_checked,
    }
}
