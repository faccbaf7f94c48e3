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
