//! `quantize_file` on small GGUFs built in the test: every target, transcoding chains, dense
//! re-quantisation of the embeddings, metadata rewriting, overwrite protection.

use std::path::{Path, PathBuf};

use bitnet_formats::codec::{
    self, decode_ternary, meta::ternary_format_from_metadata, weight_quant_absmean, TernaryTensor,
};
use bitnet_formats::{Dialect, GgufFile, GgufWriter, TensorSource, TensorType, Value};
use bitnet_tools::quantize::{quantize_file, QuantizeError, QuantizeOptions, Target, TensorAction};

/// Deterministic pseudo-random floats in (-1, 1).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

const WEIGHTS: &[(&str, u64, u64)] = &[
    ("blk.0.attn_q.weight", 256, 64),
    ("blk.0.ffn_up.weight", 256, 128),
];
const SCALE: f32 = 0.8347202; // the ternary magnitude of the f32 model; not exact in f16

/// Codes of weight `i` of the test model.
fn codes_of(i: usize, n: usize) -> Vec<i8> {
    noise(n, 100 + i as u64)
        .iter()
        .map(|&v| {
            if v > 0.3 {
                1
            } else if v < -0.3 {
                -1
            } else {
                0
            }
        })
        .collect()
}

/// A tiny `bitnet-b1.58` F32 model whose projection weights are ternary-scaled, like the
/// converter's f32 output.
fn write_model(dir: &Path, ternary_scaled: bool) -> PathBuf {
    let mut w = GgufWriter::new(Dialect::Upstream);
    w.set("general.architecture", "bitnet-b1.58");
    w.set("general.name", "tiny");
    w.set("bitnet-b1.58.block_count", 1u32);
    w.set("bitnet-b1.58.embedding_length", 256u32);
    w.set("general.file_type", 0u32);
    w.set("tokenizer.ggml.tokens", Value::strings(["a", "b"]));
    w.add_tensor(
        "token_embd.weight",
        &[256, 8],
        TensorType::F32,
        TensorSource::Owned(f32_bytes(&noise(2048, 1))),
    )
    .unwrap();
    w.add_tensor(
        "blk.0.attn_norm.weight",
        &[256],
        TensorType::F32,
        TensorSource::Owned(f32_bytes(&[1.0; 256])),
    )
    .unwrap();
    for (i, &(name, k, m)) in WEIGHTS.iter().enumerate() {
        let n = (k * m) as usize;
        let x: Vec<f32> = if ternary_scaled {
            codes_of(i, n).iter().map(|&c| c as f32 * SCALE).collect()
        } else {
            noise(n, 200 + i as u64)
        };
        w.add_tensor(
            name,
            &[k, m],
            TensorType::F32,
            TensorSource::Owned(f32_bytes(&x)),
        )
        .unwrap();
    }
    let path = dir.join(if ternary_scaled {
        "model-f32.gguf"
    } else {
        "raw-f32.gguf"
    });
    w.write(&path).unwrap();
    path
}

fn weight(file: &GgufFile, name: &str) -> TernaryTensor {
    let info = file.tensor(name).unwrap();
    let (rows, cols) = (info.rows() as usize, info.cols() as usize);
    let fmt = ternary_format_from_metadata(file.metadata(), name, info.ty, rows, cols).unwrap();
    decode_ternary(&fmt, file.tensor_data(info), rows, cols).unwrap()
}

fn run(input: &Path, output: &Path, target: Target) -> bitnet_tools::quantize::QuantizeReport {
    let mut opts = QuantizeOptions::new(target);
    opts.force = true;
    quantize_file(input, output, &opts, &mut |_| {}).unwrap()
}

#[test]
fn every_ternary_target_keeps_the_codes() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_model(dir.path(), true);
    for (target, ty, file_type) in [
        (Target::I2s(Default::default()), TensorType::I2_S, 40),
        (Target::I2s(codec::I2sLayout::Arm), TensorType::I2_S, 40),
        (Target::Tl1, TensorType::TL1, 38),
        (Target::Tl2, TensorType::TL2, 39),
        (Target::Tq1_0, TensorType::TQ1_0, 36),
        (Target::Tq2_0, TensorType::TQ2_0, 37),
    ] {
        let out = dir.path().join("out.gguf");
        let report = run(&input, &out, target);
        let f = GgufFile::open(&out).unwrap();
        assert_eq!(
            f.metadata().get_u32("general.file_type"),
            Some(file_type),
            "{target:?}"
        );
        assert_eq!(f.metadata().get_str("general.name"), Some("tiny"));
        assert!(f.metadata().contains("tokenizer.ggml.tokens"));
        for (i, &(name, k, m)) in WEIGHTS.iter().enumerate() {
            assert_eq!(f.tensor(name).unwrap().ty, ty, "{target:?} {name}");
            let t = weight(&f, name);
            assert_eq!(t.codes, codes_of(i, (k * m) as usize), "{target:?} {name}");
            let scale = t.per_tensor_scale().unwrap();
            if target.is_ternary() && matches!(target, Target::Tq1_0 | Target::Tq2_0) {
                assert_eq!(scale, half::f16::from_f32(SCALE).to_f32());
            } else {
                assert_eq!(scale, SCALE, "{target:?}: I2_S/TL keep the f32 scale");
            }
        }
        let tq = matches!(target, Target::Tq1_0 | Target::Tq2_0);
        assert_eq!(report.max_scale_rel_error > 0.0, tq, "{target:?}");
        // Embeddings default to F16, norms stay F32.
        assert_eq!(f.tensor("token_embd.weight").unwrap().ty, TensorType::F16);
        assert_eq!(
            f.tensor("blk.0.attn_norm.weight").unwrap().ty,
            TensorType::F32
        );
        if tq {
            // Upstream ids only (TQ1_0 34, TQ2_0 35): nothing in the bitnet-only range.
            assert!(f.tensors().iter().all(|t| t.raw_type < 36), "{target:?}");
            assert_eq!(f.architecture(), Some("bitnet"));
            assert_eq!(f.metadata().get_str("bitnet.hidden_act"), Some("relu2"));
            assert_eq!(f.metadata().get_u32("bitnet.block_count"), Some(1));
        } else {
            assert_eq!(f.architecture(), Some("bitnet-b1.58"));
            assert!(f.dialect().is_bitnet(), "{target:?}");
        }
    }
}

#[test]
fn transcoding_chain_returns_the_original_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut path = write_model(dir.path(), true);
    let chain = [
        Target::I2s(Default::default()),
        Target::Tq2_0,
        Target::Tl2,
        Target::Tl1,
        Target::Tq1_0,
        Target::I2s(codec::I2sLayout::Arm),
        Target::I2s(Default::default()),
    ];
    for (step, target) in chain.into_iter().enumerate() {
        let out = dir.path().join(format!("step{step}.gguf"));
        let report = run(&path, &out, target);
        if step > 0 {
            for t in report
                .tensors
                .iter()
                .filter(|t| t.name.starts_with("blk.0.attn_q"))
            {
                assert_eq!(t.action, TensorAction::Transcode, "{target:?}");
            }
        }
        path = out;
    }
    let f = GgufFile::open(&path).unwrap();
    for (i, &(name, k, m)) in WEIGHTS.iter().enumerate() {
        let t = weight(&f, name);
        assert_eq!(t.codes, codes_of(i, (k * m) as usize));
        assert_eq!(
            t.per_tensor_scale().unwrap(),
            half::f16::from_f32(SCALE).to_f32()
        );
    }
    // Back to floats: code · scale.
    let out = dir.path().join("back-f32.gguf");
    run(&path, &out, Target::F32);
    let f = GgufFile::open(&out).unwrap();
    let info = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(info.ty, TensorType::F32);
    let mut x = vec![0f32; 256 * 64];
    codec::dequantize(TensorType::F32, f.tensor_data(info), &info.ne, &mut x).unwrap();
    let s = half::f16::from_f32(SCALE).to_f32();
    let expected: Vec<f32> = codes_of(0, 256 * 64)
        .iter()
        .map(|&c| c as f32 * s)
        .collect();
    assert_eq!(x, expected);
}

#[test]
fn raw_float_weights_are_ternarised_with_abs_mean() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_model(dir.path(), false);
    let out = dir.path().join("i2s.gguf");
    run(&input, &out, Target::I2s(Default::default()));
    let f = GgufFile::open(&out).unwrap();
    let (codes, scale) = weight_quant_absmean(&noise(256 * 64, 200));
    let t = weight(&f, "blk.0.attn_q.weight");
    assert_eq!(t.codes, codes);
    assert_eq!(t.per_tensor_scale().unwrap(), scale);
}

#[test]
fn embeddings_take_the_requested_dense_type() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_model(dir.path(), true);
    for ty in [
        TensorType::Q8_0,
        TensorType::Q6_K,
        TensorType::Q4_0,
        TensorType::BF16,
        TensorType::F32,
    ] {
        let out = dir.path().join("e.gguf");
        let mut opts = QuantizeOptions::new(Target::Tq2_0);
        opts.embed_type = Some(ty);
        opts.force = true;
        quantize_file(&input, &out, &opts, &mut |_| {}).unwrap();
        let f = GgufFile::open(&out).unwrap();
        let info = f.tensor("token_embd.weight").unwrap();
        assert_eq!(info.ty, ty);
        let mut x = vec![0f32; 2048];
        codec::dequantize(ty, f.tensor_data(info), &info.ne, &mut x).unwrap();
        // Same bytes as quantizing the original floats directly.
        assert_eq!(
            f.tensor_data(info),
            codec::quantize(ty, &noise(2048, 1), &info.ne)
                .unwrap()
                .as_slice()
        );
        let err = x
            .iter()
            .zip(noise(2048, 1))
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 0.15, "{ty}: {err}");
    }
}

#[test]
fn refuses_to_overwrite_without_force_and_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_model(dir.path(), true);
    let out = dir.path().join("exists.gguf");
    std::fs::write(&out, b"keep me").unwrap();
    let opts = QuantizeOptions::new(Target::Tq2_0);
    let e = quantize_file(&input, &out, &opts, &mut |_| {}).unwrap_err();
    assert!(matches!(e, QuantizeError::OutputExists(_)), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");

    let mut opts = opts;
    opts.force = true;
    let mut seen = Vec::new();
    let mut total = 0;
    quantize_file(&input, &out, &opts, &mut |p| match p {
        bitnet_tools::quantize::Progress::Start { bytes, .. } => total = bytes,
        bitnet_tools::quantize::Progress::Tensor { name, bytes } => {
            seen.push((name.to_string(), bytes))
        }
    })
    .unwrap();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen.iter().map(|s| s.1).sum::<u64>(), total);
}

#[test]
fn impossible_shapes_fail_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = GgufWriter::new(Dialect::Upstream);
    w.set("general.architecture", "bitnet");
    // K = 128 fits I2_S but not TQ (256-element blocks) or TL2 (K >= 256).
    let x: Vec<f32> = codes_of(0, 128 * 32)
        .iter()
        .map(|&c| c as f32 * 0.5)
        .collect();
    w.add_tensor(
        "blk.0.attn_k.weight",
        &[128, 32],
        TensorType::F32,
        TensorSource::Owned(f32_bytes(&x)),
    )
    .unwrap();
    let input = dir.path().join("k128.gguf");
    w.write(&input).unwrap();
    for target in [Target::Tq2_0, Target::Tl2] {
        let out = dir.path().join("o.gguf");
        let e =
            quantize_file(&input, &out, &QuantizeOptions::new(target), &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("blk.0.attn_k.weight"), "{e}");
        assert!(!out.exists());
    }
    run(
        &input,
        &dir.path().join("ok.gguf"),
        Target::I2s(Default::default()),
    );
}
