//! `ternary_matmul_many` (several matrices, one parallel region) gives exactly what separate
//! `ternary_matmul` calls give, for a mix of per-tensor and per-block scales and of sizes
//! that make a task's row range span two matrices.

mod common;

use bitnet_kernels::*;
use common::Rng;

fn tq2_blob(rng: &mut Rng, m: usize, k: usize) -> Vec<u8> {
    let mut blob = Vec::new();
    for _ in 0..m * k / 256 {
        blob.extend((0..64).map(|_| (0..4).fold(0u8, |b, _| (b << 2) | rng.below(3) as u8)));
        blob.extend(half::f16::from_f32(0.25 + rng.below(100) as f32 / 64.0).to_le_bytes());
    }
    blob
}

#[test]
fn many_equals_one_by_one() {
    let rt = Runtime::new(RuntimeOptions {
        threads: Some(2),
        ..Default::default()
    })
    .unwrap();
    let mut rng = Rng(2024);
    let k = 768;
    let tq_blob = tq2_blob(&mut rng, 24, k);
    let mats = [
        TernaryMatrix::from_ternary(&rng.ternary(37 * k), 37, k, 0.75).unwrap(),
        TernaryMatrix::new(&TernaryFormat::Tq2_0, &tq_blob, 24, k).unwrap(),
        TernaryMatrix::from_ternary(&rng.ternary(301 * k), 301, k, 1.5).unwrap(),
        TernaryMatrix::from_ternary(&rng.ternary(5 * k), 5, k, 0.5).unwrap(),
    ];
    for n in [1, 3, 8, 19] {
        let x = rng.f32s(n * k, 1.0);
        let mut acts = QuantizedActs::new();
        quantize_acts(&rt, &x, k, &mut acts);
        let want: Vec<Vec<f32>> = mats
            .iter()
            .map(|w| {
                let mut o = vec![0f32; n * w.rows()];
                ternary_matmul(&rt, w, &acts, &mut o);
                o
            })
            .collect();
        let mut got: Vec<Vec<f32>> = mats.iter().map(|w| vec![f32::NAN; n * w.rows()]).collect();
        let mut jobs: Vec<(&TernaryMatrix, &mut [f32])> = mats
            .iter()
            .zip(got.iter_mut())
            .map(|(w, o)| (w, o.as_mut_slice()))
            .collect();
        ternary_matmul_many(&rt, &mut jobs, &acts);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let gb: Vec<u32> = g.iter().map(|v| v.to_bits()).collect();
            let wb: Vec<u32> = w.iter().map(|v| v.to_bits()).collect();
            assert_eq!(gb, wb, "matrix {i}, {n} tokens");
        }
    }
}

/// A matrix detached from its payload and attached again is the same matrix: zero-copy
/// (I2_S) and repacked with per-block scales (TQ2_0), and so are dense ones.
#[test]
fn detached_matrices_attach_to_the_same_results() {
    let rt = Runtime::detect();
    let mut rng = Rng(77);
    let (m, k, n) = (40, 512, 5);
    let codes = rng.ternary(m * k);
    // I2_S x86 payload (the kernel layout itself: per 128-block, byte i holds elements
    // i, 32 + i, 64 + i, 96 + i from the high bits down), then the f32 scale.
    let mut blob = vec![0u8; m * k / 4];
    for (e, &c) in codes.iter().enumerate() {
        let (r, col) = (e / k, e % k);
        let (blk, j) = (col / 128, col % 128);
        blob[r * k / 4 + blk * 32 + j % 32] |= ((c + 1) as u8) << (6 - 2 * (j / 32));
    }
    blob.extend(0.5f32.to_le_bytes());
    let x = rng.f32s(n * k, 1.0);
    let mut acts = QuantizedActs::new();
    quantize_acts(&rt, &x, k, &mut acts);
    let tq_blob = tq2_blob(&mut rng, m, k);
    for (fmt, payload) in [
        (TernaryFormat::I2s(I2sLayout::X86), &blob),
        (TernaryFormat::Tq2_0, &tq_blob),
    ] {
        let w = TernaryMatrix::new(&fmt, payload, m, k).unwrap();
        let mut want = vec![0f32; n * m];
        ternary_matmul(&rt, &w, &acts, &mut want);
        let (zero_copy, repacked) = (w.is_zero_copy(), w.repack_bytes());
        assert_eq!(zero_copy, matches!(fmt, TernaryFormat::I2s(_)), "{fmt:?}");
        let detached = w.detach();
        let again = detached.attach(payload);
        assert_eq!(again.is_zero_copy(), zero_copy, "{fmt:?}");
        assert_eq!(again.repack_bytes(), repacked, "{fmt:?}");
        let mut got = vec![f32::NAN; n * m];
        ternary_matmul(&rt, &again, &acts, &mut got);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "{fmt:?}");
    }
    let f32b: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let dense = DenseMatrix::new(bitnet_formats::TensorType::F32, &f32b, n, k).unwrap();
    let again = dense.detach().attach(&f32b);
    let (mut a, mut b) = (vec![0f32; k], vec![1f32; k]);
    for r in 0..n {
        dense.row_to_f32(&rt, r, &mut a);
        again.row_to_f32(&rt, r, &mut b);
        assert_eq!(a, b);
    }
}
