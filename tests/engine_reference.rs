//! The engine against the transformers references of the three fixture models (docs/testing.md,
//! 'Reference models', 'Tolerances'): token ids equal; logits within 0.1 of the reference at every
//! position's reference top 20; the same argmax wherever the reference's top-2 gap exceeds 0.1; the
//! same greedy continuation (with the KV cache) up to the first step whose gap is below 0.1.

mod engine_support;

use bitnet_gguf::engine::model::{KvType, LoadOptions, Model};
use bitnet_tools::convert::{convert, ConvertOptions, WeightType};
use engine_support::{
    check_prompt_with, load_model, load_prompts, repo_path, Comparison, RefPrompt, TOL,
};

const TINY_PROMPTS: &str = "tests/fixtures/tiny-reference/tiny-bitnet-b1.58.prompts.json";

fn check_all(label: &str, model: &Model, prompts_rel: &str) -> f32 {
    check_all_with(label, model, prompts_rel, TOL)
}

fn check_all_with(label: &str, model: &Model, prompts_rel: &str, tol: f32) -> f32 {
    let prompts = load_prompts(prompts_rel);
    assert!(!prompts.is_empty());
    let mut worst = 0.0f32;
    for p in &prompts {
        let Comparison {
            max_abs_diff,
            top1_checked,
            greedy_checked,
        } = check_prompt_with(model, p, tol);
        eprintln!(
            "{label} {}: max |Δlogit| {max_abs_diff:.4}, {top1_checked} argmax checks, \
             {greedy_checked} greedy steps equal",
            p.name
        );
        worst = worst.max(max_abs_diff);
    }
    eprintln!("{label}: worst |Δlogit| {worst:.4}");
    worst
}

/// Converts a committed HF checkpoint with our converter into a temporary GGUF.
fn convert_fixture(dir: &str, ty: WeightType, tmp: &tempfile::TempDir) -> Model {
    let out = tmp
        .path()
        .join(format!("{}-{ty:?}.gguf", dir.replace('/', "_")));
    let opts = ConvertOptions {
        weight_type: ty,
        ..ConvertOptions::new(repo_path(dir), &out)
    };
    convert(&opts, &mut |_| {}).unwrap_or_else(|e| panic!("converting {dir}: {e}"));
    Model::load(&out, &LoadOptions::default()).unwrap_or_else(|e| panic!("loading {dir}: {e:#}"))
}

#[test]
fn default_tiny_model_matches_transformers() {
    let model = load_model("models/tiny-bitnet-b1.58.gguf");
    check_all("tiny (committed I2_S)", &model, TINY_PROMPTS);
}

/// The f16 KV cache: stored keys and values are rounded to f16, which moves the small
/// fixture models' logits by up to ~0.2 (int8 activation rounding amplifies it), so the
/// bound is looser than [`TOL`]; argmax and greedy steps are still compared wherever the
/// reference's top-2 gap exceeds it.
#[test]
fn f16_kv_cache_stays_near_transformers() {
    let path = repo_path("models/tiny-bitnet-b1.58.gguf");
    let f16 = LoadOptions {
        kv_type: KvType::F16,
        ..Default::default()
    };
    let model = Model::load(&path, &f16).unwrap();
    assert_eq!(model.kv_type(), KvType::F16);
    let worst_f16 = check_all_with("tiny, f16 cache", &model, TINY_PROMPTS, 0.3);
    let worst_f32 = check_all(
        "tiny, f32 cache",
        &load_model("models/tiny-bitnet-b1.58.gguf"),
        TINY_PROMPTS,
    );
    assert_ne!(
        worst_f16, worst_f32,
        "the f16 cache changed no logit: is it used?"
    );
}

#[test]
fn every_ternary_type_gives_the_same_logits() {
    // The same codes in every layout: I2_S (both layouts), TL1 and TL2 must agree exactly;
    // TQ1_0/TQ2_0 round the scale to f16 per 256-block (docs/formats/tq.md, 'Scale precision'), so
    // they get the reference tolerance only.
    let tmp = tempfile::tempdir().unwrap();
    let dir = "models/tiny-bitnet-b1.58";
    let base = load_model("models/tiny-bitnet-b1.58.gguf");
    let prompt = &load_prompts(TINY_PROMPTS)[0];
    let want = base
        .new_session(256)
        .forward_all(&prompt.input_ids)
        .unwrap();
    for ty in [
        WeightType::I2s(bitnet_formats::codec::I2sLayout::Arm),
        WeightType::Tl1,
        WeightType::Tl2,
        WeightType::Tq2_0,
        WeightType::Tq1_0,
        WeightType::F32,
    ] {
        let model = convert_fixture(dir, ty, &tmp);
        let got = model
            .new_session(256)
            .forward_all(&prompt.input_ids)
            .unwrap();
        let max = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{ty:?}: max |Δlogit| vs I2_S {max:.5}");
        match ty {
            WeightType::Tq1_0 | WeightType::Tq2_0 => {
                // f16 block scales move every matrix by up to 2^-11 relative, which flips a
                // few int8 activation rounding ties downstream (up to 0.11 from the reference at
                // one position of the long prompt).
                assert!(max < 0.25, "{ty:?} logits differ from I2_S by {max}");
            }
            // Float weights take the dequantised-activation path: same values, other rounding.
            WeightType::F32 => assert!(max < TOL, "{ty:?} logits differ from I2_S by {max}"),
            _ => assert_eq!(max, 0.0, "{ty:?} logits differ from I2_S"),
        }
    }
}

#[test]
fn bitnet_1bitllm_layout_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let model = convert_fixture(
        "tests/fixtures/hf/1bitllm-bitnet-style",
        WeightType::I2s(Default::default()),
        &tmp,
    );
    assert_eq!(
        model.config().arch,
        bitnet_gguf::engine::model::Arch::Bitnet
    );
    assert_eq!(
        model.config().activation,
        bitnet_gguf::engine::model::Activation::Silu
    );
    check_all(
        "1bitllm-bitnet-style",
        &model,
        "tests/fixtures/tiny-reference/1bitllm-bitnet-style.prompts.json",
    );
}

/// Position and hidden-dimension elements of the one exact int8 rounding tie in the llama
/// fixture's `mixed` prompt (see [`llama_packed_layout_matches_transformers`]).
const LLAMA_TIE_POS: usize = 17;
const LLAMA_TIE_ELEMENT: usize = 252;
const LLAMA_NEAR_TIE_ELEMENT: usize = 248;

#[test]
fn llama_packed_layout_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = "tests/fixtures/hf/hf1bitllm-llama-packed";
    let ty = WeightType::I2s(Default::default());
    let model = convert_fixture(dir, ty, &tmp);
    assert_eq!(model.config().arch, bitnet_gguf::engine::model::Arch::Llama);
    assert!(!model.config().tied_output);
    let prompts_rel = "tests/fixtures/tiny-reference/hf1bitllm-llama-packed.prompts.json";

    // Why the `mixed` prompt cannot meet 0.1 after position 16: at position 17 (token 250)
    // the input of layer 0's q/k/v projections, rms_norm(embedding) quantised per token, has
    // element 252 at x·scale = 92.5 exactly (and element 248 at exactly −49.5). Round-half-even
    // gives 92 and −50; transformers, whose f32 RMSNorm (mean, rsqrt) differs from ours in the
    // last bit, lands just above 92.5 and quantises element 252 to 93 (element 248 to −50 like
    // us). An independent f32 re-implementation of the HF graph reproduces our logits to 1e-5
    // at every position when it rounds these two as we do, and the reference's to 1.2e-5 when
    // element 252 goes to 93; it is not attention, RoPE, the KV cache or prompt batching. This
    // random, untrained model amplifies that ±1 change of one int8 activation to 0.1–0.36 in
    // the logits of every later position (through that position's keys and values). So: the
    // strict tolerance before the tie, the tie checked to be real, the wider one after it.
    let gguf_path = tmp
        .path()
        .join(format!("{}-{ty:?}.gguf", dir.replace('/', "_")));
    check_llama_tie(&model, &gguf_path, &load_prompts(prompts_rel));
    let vocab = model.config().n_vocab;
    for p in load_prompts(prompts_rel) {
        let logits = model.new_session(256).forward_all(&p.input_ids).unwrap();
        let strict = if p.name == "mixed" {
            LLAMA_TIE_POS
        } else {
            p.top20.len()
        };
        for (pos, (ids, ref_logits)) in p.top20.iter().enumerate().take(strict) {
            for (&id, &r) in ids.iter().zip(ref_logits) {
                let d = (logits[pos * vocab + id as usize] - r).abs();
                assert!(
                    d <= TOL,
                    "{}: position {pos} (before the rounding tie), token {id}: |Δ| = {d}",
                    p.name
                );
            }
        }
    }
    check_all_with("hf1bitllm-llama-packed", &model, prompts_rel, 0.4);
}

/// Recomputes the quantised layer-0 attention input of the tie position from the GGUF with
/// the engine's own kernels and checks that the two elements sit on a .5 boundary.
fn check_llama_tie(model: &Model, path: &std::path::Path, prompts: &[RefPrompt]) {
    use bitnet_formats::{codec::dequantize, GgufFile};
    use bitnet_kernels::{quantize_acts, rms_norm, DenseMatrix, QuantizedActs};
    let rt = model.runtime();
    let mixed = prompts.iter().find(|p| p.name == "mixed").unwrap();
    let token = mixed.input_ids[LLAMA_TIE_POS] as usize;
    let file = GgufFile::open(path).unwrap();
    let d = model.config().n_embd;
    let embd = file.tensor("token_embd.weight").unwrap();
    let embd_m = DenseMatrix::new(
        embd.ty,
        file.tensor_data(embd),
        embd.rows() as usize,
        embd.cols() as usize,
    )
    .unwrap();
    let mut x = vec![0.0f32; d];
    embd_m.row_to_f32(rt, token, &mut x);
    let norm = file.tensor("blk.0.attn_norm.weight").unwrap();
    let mut w = vec![0.0f32; d];
    dequantize(norm.ty, file.tensor_data(norm), &norm.ne, &mut w).unwrap();
    let mut h = vec![0.0f32; d];
    rms_norm(rt, &x, &w, model.config().eps, &mut h);
    let mut acts = QuantizedActs::new();
    quantize_acts(rt, &h, d, &mut acts);
    let scaled = |i: usize| h[i] * acts.scale[0];
    let tie = scaled(LLAMA_TIE_ELEMENT);
    let near = scaled(LLAMA_NEAR_TIE_ELEMENT);
    eprintln!("llama tie at position {LLAMA_TIE_POS}: x·scale = {tie}, {near}");
    assert!(
        (tie - 92.5).abs() <= 1e-5,
        "element {LLAMA_TIE_ELEMENT}: {tie}"
    );
    assert!(
        (near + 49.5).abs() <= 1e-5,
        "element {LLAMA_NEAR_TIE_ELEMENT}: {near}"
    );
    // Every other element is far from a boundary, so these two are the whole story.
    for (i, &v) in h.iter().enumerate() {
        let s = v * acts.scale[0];
        if i != LLAMA_TIE_ELEMENT && i != LLAMA_NEAR_TIE_ELEMENT {
            assert!(((s - s.floor()) - 0.5).abs() > 1e-4, "element {i}: {s}");
        }
    }
}

/// The committed model with its (tied) embedding/output matrix re-quantised by `quantize
/// --embed-type`: the head then runs the integer Q6_K / Q8_0 / Q4_0 loops against int8
/// activations. The weights' rounding moves the logits, so the bounds are per type: worst
/// |Δ| measured 0.175 / 0.270 / 1.215, and 0.184 / 0.274 / 1.210 when the same files' heads
/// were widened to f32 instead (the int8 activations add nothing visible). Argmax and greedy
/// steps are still compared where the reference's top-2 gap exceeds the bound.
#[test]
fn quantised_heads_stay_near_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let src = repo_path("models/tiny-bitnet-b1.58.gguf");
    for (ty, tol) in [("q8_0", 0.25f32), ("q6_k", 0.35), ("q4_0", 1.5)] {
        let out = tmp.path().join(format!("tiny-{ty}.gguf"));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet-gguf"))
            .args(["quantize", "--type", "i2_s", "--embed-type", ty])
            .arg(&src)
            .arg(&out)
            .output()
            .expect("running bitnet-gguf quantize");
        assert!(
            status.status.success(),
            "{ty}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let model = Model::load(&out, &LoadOptions::default()).unwrap();
        let worst = check_all_with(&format!("tiny, {ty} head"), &model, TINY_PROMPTS, tol);
        assert!(worst > 0.0, "{ty}: no logit moved: is the head quantised?");
    }
}
