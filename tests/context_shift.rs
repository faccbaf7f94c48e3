//! Context shift: re-rotating the cached keys of the tokens kept after a shift gives the
//! logits that evaluating those tokens again at their new positions gives, and generation
//! past a full context goes on.
//!
//! The exact comparison needs a one-layer copy of the tiny model: with one layer a token's
//! keys and values depend on the token and its position only, so recomputing the kept tokens
//! must reproduce the shifted cache (up to the rounding of the rotation). With more layers the
//! kept tokens' deeper keys still carry what they attended to before the shift, in llama.cpp
//! as here, and no recomputation reproduces that.

use std::path::{Path, PathBuf};

use bitnet_formats::{GgufFile, GgufWriter, TensorSource};
use bitnet_gguf::engine::generate::{generate_with, GenerateParams, LongRun};
use bitnet_gguf::engine::model::{KvType, LoadOptions, Model};
use bitnet_gguf::engine::sampler::SamplerConfig;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-bitnet-b1.58.gguf")
}

/// The tiny model with its first layer only.
fn one_layer_copy(dir: &Path) -> PathBuf {
    let file = GgufFile::open(tiny()).unwrap();
    let mut w = GgufWriter::new(file.dialect());
    *w.metadata_mut() = file.metadata().clone();
    let key = file
        .metadata()
        .keys()
        .find(|k| k.ends_with(".block_count"))
        .unwrap()
        .to_string();
    w.set(key, 1u32);
    for t in file.tensors() {
        if t.name.starts_with("blk.") && !t.name.starts_with("blk.0.") {
            continue;
        }
        let data = TensorSource::Borrowed(file.tensor_data(t));
        w.add_tensor_raw(t.name.clone(), &t.ne, t.raw_type, t.nbytes, data)
            .unwrap();
    }
    let out = dir.join("one-layer.gguf");
    w.write(&out).unwrap();
    out
}

fn tokens(model: &Model, n: usize) -> Vec<u32> {
    let vocab = model.tokenizer().vocab_size() as u32;
    // Varied ids past the special tokens at the start of the vocabulary.
    (0..n as u32)
        .map(|i| 10 + (i * 37) % (vocab - 10))
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn shifted_cache_gives_the_logits_of_recomputed_kept_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = one_layer_copy(dir.path());
    for kv_type in [KvType::F32, KvType::F16] {
        let opts = LoadOptions {
            kv_type,
            ..Default::default()
        };
        let model = Model::load(&path, &opts).unwrap();
        let ids = tokens(&model, 40);
        let next = ids[7];
        let keep = 5;
        let mut shifted = model.new_session(40);
        shifted.forward(&ids).unwrap();
        assert_eq!(
            shifted.shift_context(keep),
            17,
            "half of the 35 after the kept 5"
        );
        let kept: Vec<u32> = ids[..keep]
            .iter()
            .chain(&ids[keep + 17..])
            .copied()
            .collect();
        assert_eq!(shifted.tokens(), kept);
        let got = shifted.forward(&[next]).unwrap();

        let mut fresh = model.new_session(40);
        fresh.forward(&kept).unwrap();
        let want = fresh.forward(&[next]).unwrap();
        let range = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = max_diff(&got, &want);
        eprintln!("{kv_type:?}: shifted vs recomputed logits: max diff {diff}, largest {range}");
        assert!(
            diff <= 1e-3 * range.max(1.0),
            "{kv_type:?}: logits differ by {diff} (largest {range})"
        );
        // The logits after the unshifted sequence differ: the comparison can tell.
        let mut stale = model.new_session(41);
        stale.forward(&ids).unwrap();
        let before_shift = stale.forward(&[next]).unwrap();
        assert!(max_diff(&before_shift, &want) > 10.0 * diff.max(1e-6));
    }
}

#[test]
fn generation_past_a_full_context_shifts_and_keeps_the_start() {
    let model = Model::load(&tiny(), &LoadOptions::default()).unwrap();
    let prompt = tokens(&model, 20);
    let params = GenerateParams {
        max_tokens: Some(150),
        sampler: SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        },
        ..GenerateParams::default()
    };
    let mut session = model.new_session(32);
    let how = LongRun {
        shift_keep: Some(4),
        ignore_eos: true,
    };
    let stats = generate_with(&mut session, &prompt, &params, how, &mut |_| true).unwrap();
    assert_eq!(stats.generated_tokens, 150);
    assert!(session.n_past() <= 32);
    assert_eq!(&session.tokens()[..4], &prompt[..4], "the kept start stays");

    // Without a shift the same generation stops at the end of the context.
    let mut session = model.new_session(32);
    let how = LongRun {
        shift_keep: None,
        ignore_eos: true,
    };
    let stats = generate_with(&mut session, &prompt, &params, how, &mut |_| true).unwrap();
    assert_eq!(
        stats.generated_tokens, 13,
        "32 positions after a 20-token prompt, and one more"
    );
}
