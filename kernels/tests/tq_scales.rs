//! TQ matrices whose 256-blocks all carry the same scale (what converting a BitNet
//! checkpoint gives) run the per-tensor kernels; their results still match the per-block
//! definition. Blocks that disagree keep per-block scales.

mod common;

use bitnet_kernels::*;
use common::Rng;

/// A TQ2_0 blob whose block `i` gets `scale(i)`; blocks for which `zero(i)` holds only zeros.
fn tq2_blob(
    rng: &mut Rng,
    m: usize,
    k: usize,
    scale: impl Fn(usize) -> f32,
    zero: impl Fn(usize) -> bool,
) -> Vec<u8> {
    let mut blob = Vec::new();
    for i in 0..m * k / 256 {
        if zero(i) {
            // TQ2_0 stores q + 1: code 1 (bits 01) is zero.
            blob.extend([0x55u8; 64]);
        } else {
            blob.extend((0..64).map(|_| (0..4).fold(0u8, |b, _| (b << 2) | rng.below(3) as u8)));
        }
        blob.extend(half::f16::from_f32(scale(i)).to_le_bytes());
    }
    blob
}

/// Σ_b d_b · Σ_{k in b} w·q / act_scale, in f64.
fn reference(
    w: &TernaryMatrix,
    blob_scale: impl Fn(usize, usize) -> f32,
    acts: &QuantizedActs,
) -> Vec<f64> {
    let (m, k, n) = (w.rows(), w.cols(), acts.n_tokens);
    let mut out = vec![0f64; n * m];
    for t in 0..n {
        for r in 0..m {
            let mut acc = 0f64;
            for c in 0..k {
                acc += blob_scale(r, c) as f64 * w.value(r, c) as f64 * acts.q[t * k + c] as f64;
            }
            out[t * m + r] = acc / acts.scale[t] as f64;
        }
    }
    out
}

fn check(w: &TernaryMatrix, blob_scale: impl Fn(usize, usize) -> f32, rng: &mut Rng) {
    let rt = Runtime::detect();
    let (m, k) = (w.rows(), w.cols());
    for n in [1usize, 3, 8, 19] {
        let x = rng.f32s(n * k, 1.5);
        let mut acts = QuantizedActs::new();
        quantize_acts(&rt, &x, k, &mut acts);
        let mut out = vec![0f32; n * m];
        ternary_matmul(&rt, w, &acts, &mut out);
        let want = reference(w, &blob_scale, &acts);
        for (i, (&o, &r)) in out.iter().zip(&want).enumerate() {
            assert!(
                (o as f64 - r).abs() <= 1e-5 * r.abs().max(1.0),
                "n={n} element {i}: {o} != {r}"
            );
        }
    }
}

#[test]
fn one_shared_scale_runs_per_tensor() {
    let mut rng = Rng(77);
    let (m, k) = (21, 768);
    let d = half::f16::from_f32(0.8125).to_f32();
    // Every block has the shared scale, except all-zero blocks written with scale 0.
    let zero = |i: usize| i % 7 == 3;
    let blob = tq2_blob(&mut rng, m, k, |i| if zero(i) { 0.0 } else { d }, zero);
    let w = TernaryMatrix::new(&TernaryFormat::Tq2_0, &blob, m, k).unwrap();
    assert!(!w.has_block_scales());
    check(&w, |_, _| d, &mut rng);
}

#[test]
fn differing_scales_stay_per_block() {
    let mut rng = Rng(78);
    let (m, k) = (13, 512);
    let nb = k / 256;
    let scale = |i: usize| half::f16::from_f32(0.25 + (i % 5) as f32 / 8.0).to_f32();
    let blob = tq2_blob(&mut rng, m, k, scale, |_| false);
    let w = TernaryMatrix::new(&TernaryFormat::Tq2_0, &blob, m, k).unwrap();
    assert!(w.has_block_scales());
    check(&w, |r, c| scale(r * nb + c / 256), &mut rng);

    // A zero scale on a block that has non-zero weights is a real per-block scale.
    let blob = tq2_blob(
        &mut rng,
        m,
        k,
        |i| if i == 4 { 0.0 } else { 0.5 },
        |_| false,
    );
    let w = TernaryMatrix::new(&TernaryFormat::Tq2_0, &blob, m, k).unwrap();
    assert!(w.has_block_scales());
    check(
        &w,
        |r, c| if r * nb + c / 256 == 4 { 0.0 } else { 0.5 },
        &mut rng,
    );
}
