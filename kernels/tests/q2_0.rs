//! Upstream Q2_0 matrices on the ternary kernels: 64-element scales that agree within each
//! 256-block run the per-block (or per-tensor) kernels; scales that differ inside a 256-block
//! are applied per 64 elements, each exactly, on every kernel path, bit for bit equal to the
//! definition `(Σ_g d_g · Σ_{k∈g} w·q) / act_scale` summed in group order.

mod common;

use bitnet_formats::codec::q2;
use bitnet_kernels::*;
use common::{simd_tables, Rng};

/// A Q2_0 blob (codes 0..=2 only) whose 64-block `i` gets `scale(i)`.
fn q2_blob(rng: &mut Rng, m: usize, k: usize, scale: impl Fn(usize) -> f32) -> Vec<u8> {
    let mut blob = Vec::new();
    for i in 0..m * k / 64 {
        blob.extend(half::f16::from_f32(scale(i)).to_le_bytes());
        blob.extend((0..16).map(|_| (0..4).fold(0u8, |b, _| (b << 2) | rng.below(3) as u8)));
    }
    blob
}

/// The definition, from the Q2_0 bytes themselves (not through the matrix).
fn reference(blob: &[u8], m: usize, k: usize, acts: &QuantizedActs) -> Vec<f32> {
    let mut w = vec![0f32; m * k];
    let mut d = vec![0f32; m * k / 64];
    for (i, b) in blob.chunks_exact(18).enumerate() {
        d[i] = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        for j in 0..64 {
            w[i * 64 + j] = q2::q2_code(&b[2..], j) as f32 - 1.0;
        }
    }
    let mut out = vec![0f32; acts.n_tokens * m];
    for t in 0..acts.n_tokens {
        for r in 0..m {
            let mut acc = 0f32;
            for g in 0..k / 64 {
                let dot: i32 = (0..64)
                    .map(|j| {
                        let c = g * 64 + j;
                        w[r * k + c] as i32 * acts.q[t * k + c] as i32
                    })
                    .sum();
                acc += d[r * k / 64 + g] * dot as f32;
            }
            out[t * m + r] = acc / acts.scale[t];
        }
    }
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn differing_64_scales_are_applied_exactly_on_every_path() {
    let mut rng = Rng(91);
    let rt0 = Runtime::detect();
    let mut tables = simd_tables();
    tables.push(bitnet_kernels::dispatch::table_for(KernelPath::Scalar));
    for (m, k, n) in [(7, 256, 1), (13, 512, 5), (40, 768, 19), (5, 1024, 33)] {
        // Every 64-block its own scale, a zero among them.
        let scale = |i: usize| {
            if i % 11 == 5 {
                0.0
            } else {
                half::f16::from_f32(0.125 + (i % 7) as f32 / 16.0).to_f32()
            }
        };
        let blob = q2_blob(&mut rng, m, k, scale);
        let w = TernaryMatrix::new(&TernaryFormat::Q2_0, &blob, m, k).unwrap();
        assert!(w.has_64_scales());
        assert_eq!(w.scale_at(0, 64), scale(1));
        let x = rng.f32s(n * k, 2.0);
        let mut acts = QuantizedActs::new();
        quantize_acts(&rt0, &x, k, &mut acts);
        let want = reference(&blob, m, k, &acts);
        for kt in &tables {
            let rt = rt0.with_kernels(kt);
            let mut out = vec![0f32; n * m];
            ternary_matmul(&rt, &w, &acts, &mut out);
            assert_eq!(bits(&out), bits(&want), "{} {m}x{k} n={n}", kt.path.name());
        }
    }
}

#[test]
fn scales_shared_per_256_run_the_block_and_tensor_kernels() {
    let mut rng = Rng(92);
    let (m, k) = (9, 512);
    let per_256 = |i: usize| half::f16::from_f32(0.25 + (i / 4 % 3) as f32 / 8.0).to_f32();
    let blob = q2_blob(&mut rng, m, k, per_256);
    let w = TernaryMatrix::new(&TernaryFormat::Q2_0, &blob, m, k).unwrap();
    assert!(w.has_block_scales() && !w.has_64_scales());
    assert_eq!(w.scale_at(1, 300), per_256(512 / 64 + 300 / 64));

    let mut blob = q2_blob(&mut rng, m, k, |_| 0.5);
    // An all-zero 64-block written with scale 0 (what the quantizer gives) keeps it uniform.
    blob[18 * 3..18 * 4].copy_from_slice(&[
        0, 0, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
        0x55, 0x55,
    ]);
    let w = TernaryMatrix::new(&TernaryFormat::Q2_0, &blob, m, k).unwrap();
    assert!(!w.has_block_scales());
    // Its outputs equal the TQ2_0 twin's (same codes, the same scale in every block).
    let t = bitnet_formats::codec::decode_ternary(&TernaryFormat::Q2_0, &blob, m, k).unwrap();
    let tq = bitnet_formats::codec::encode_ternary(&TernaryFormat::Tq2_0, &t).unwrap();
    let twin = TernaryMatrix::new(&TernaryFormat::Tq2_0, &tq, m, k).unwrap();
    let rt = Runtime::detect();
    let x = rng.f32s(3 * k, 1.0);
    let mut acts = QuantizedActs::new();
    quantize_acts(&rt, &x, k, &mut acts);
    let (mut a, mut b) = (vec![0f32; 3 * m], vec![0f32; 3 * m]);
    ternary_matmul(&rt, &w, &acts, &mut a);
    ternary_matmul(&rt, &twin, &acts, &mut b);
    assert_eq!(bits(&a), bits(&b));
}

#[test]
fn code_11_and_short_k_are_refused() {
    let mut rng = Rng(93);
    let mut blob = q2_blob(&mut rng, 2, 256, |_| 1.0);
    assert!(TernaryMatrix::new(&TernaryFormat::Q2_0, &blob[..18 * 4], 1, 256).is_ok());
    blob[2] |= 0b11;
    let err = TernaryMatrix::new(&TernaryFormat::Q2_0, &blob, 2, 256).unwrap_err();
    assert!(err.to_string().contains("code 3"), "{err}");
    let err = TernaryMatrix::new(&TernaryFormat::Q2_0, &blob, 4, 128).unwrap_err();
    assert!(err.to_string().contains("256"), "{err}");
}

/// Q1_0, and Q2_0 with code 11 (+2d), are not ternary: they run as dense block types, each
/// row dequantised by the codec and dotted with the f32 activations.
#[test]
fn q1_0_and_q2_0_with_code_11_run_dequantised() {
    let mut rng = Rng(94);
    let rt = Runtime::detect();
    let (m, k, n) = (6, 256, 3);
    let mut q2_bytes = q2_blob(&mut rng, m, k, |i| 0.25 + i as f32 / 64.0);
    q2_bytes[2] |= 0b11;
    q2_bytes[18 * 5 + 7] = 0xff;
    let q1_bytes: Vec<u8> = (0..m * k / 128)
        .flat_map(|i| {
            let d = half::f16::from_f32(0.5 + i as f32 / 32.0).to_le_bytes();
            d.into_iter()
                .chain((0..16).map(|_| rng.below(256) as u8))
                .collect::<Vec<_>>()
        })
        .collect();
    let x = rng.f32s(n * k, 1.0);
    for (ty, bytes) in [
        (bitnet_formats::TensorType::Q2_0, &q2_bytes),
        (bitnet_formats::TensorType::Q1_0, &q1_bytes),
    ] {
        let mut w = vec![0f32; m * k];
        bitnet_formats::codec::dequantize(ty, bytes, &[k as u64, m as u64], &mut w).unwrap();
        if ty == bitnet_formats::TensorType::Q2_0 {
            assert_eq!(w[0], 2.0 * 0.25, "code 11 is +2d");
        }
        let dense = DenseMatrix::new(ty, bytes, m, k).unwrap();
        let mut out = vec![0f32; n * m];
        dense_matmul(&rt, &dense, &x, n, &mut out);
        for t in 0..n {
            for r in 0..m {
                let want: f64 = (0..k)
                    .map(|c| w[r * k + c] as f64 * x[t * k + c] as f64)
                    .sum();
                let got = out[t * m + r] as f64;
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{ty} {t},{r}"
                );
            }
        }
    }
}
