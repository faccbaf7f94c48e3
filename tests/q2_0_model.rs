//! The bundled tiny model as upstream Q2_0 (64-element scales) runs on the ternary kernels and
//! gives its TQ2_0 twin's logits: transcoded from the committed I2_S file, and quantised from
//! float weights by the `quantize_row_q2_0_ref` rule. Both twins hold the same codes and the
//! same f16 scales, so the logits (and any perplexity computed from them) are equal bit for bit.

mod engine_support;

use std::path::Path;

use bitnet_formats::{GgufFile, TensorType};
use bitnet_gguf::engine::model::{LoadOptions, Model};
use bitnet_tools::convert::{convert, ConvertOptions, WeightType};
use bitnet_tools::quantize::{quantize_file, QuantizeOptions, Target};
use engine_support::{load_prompts, repo_path};

const TINY_PROMPTS: &str = "tests/fixtures/tiny-reference/tiny-bitnet-b1.58.prompts.json";

fn quantize(src: &Path, target: Target, out: &Path) -> Model {
    quantize_file(src, out, &QuantizeOptions::new(target), &mut |_| {})
        .unwrap_or_else(|e| panic!("quantize {target:?}: {e}"));
    Model::load(out, &LoadOptions::default()).unwrap_or_else(|e| panic!("load {target:?}: {e:#}"))
}

fn logits(model: &Model) -> Vec<u32> {
    let prompt = &load_prompts(TINY_PROMPTS)[0];
    let l = model
        .new_session(256)
        .forward_all(&prompt.input_ids)
        .unwrap();
    l.iter().map(|v| v.to_bits()).collect()
}

fn q2_projections(path: &Path) -> usize {
    let f = GgufFile::open(path).unwrap();
    f.tensors()
        .iter()
        .filter(|t| t.ty == TensorType::Q2_0)
        .count()
}

#[test]
fn q2_0_twin_of_the_tiny_model_gives_the_tq2_0_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let src = repo_path("models/tiny-bitnet-b1.58.gguf");
    let (q2, tq) = (tmp.path().join("q2.gguf"), tmp.path().join("tq.gguf"));
    let q2_model = quantize(&src, Target::Q2_0, &q2);
    let tq_model = quantize(&src, Target::Tq2_0, &tq);
    assert!(q2_projections(&q2) > 0, "no Q2_0 tensor written");
    assert_eq!(logits(&q2_model), logits(&tq_model));

    // From float weights (the F32 conversion): Q2_0 by ggml's reference quantizer.
    let f32_path = tmp.path().join("f32.gguf");
    let opts = ConvertOptions {
        weight_type: WeightType::F32,
        ..ConvertOptions::new(repo_path("models/tiny-bitnet-b1.58"), &f32_path)
    };
    convert(&opts, &mut |_| {}).unwrap();
    let (q2f, tqf) = (tmp.path().join("q2f.gguf"), tmp.path().join("tqf.gguf"));
    let q2f_model = quantize(&f32_path, Target::Q2_0, &q2f);
    let tqf_model = quantize(&f32_path, Target::Tq2_0, &tqf);
    assert!(q2_projections(&q2f) > 0, "no Q2_0 tensor written");
    assert_eq!(logits(&q2f_model), logits(&tqf_model));
}
