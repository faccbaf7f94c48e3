//! The public matmuls give the same answers on every kernel path this CPU supports, each
//! path on its own runtime.

mod common;

use bitnet_formats::TensorType;
use bitnet_kernels::*;
use common::{simd_paths, simd_tables, Rng};

fn run_all(rt: &Runtime, rng_seed: u64) -> (Vec<f32>, Vec<f32>, QuantizedActs) {
    let mut rng = Rng(rng_seed);
    let (tern, acts) = ternary_outputs(rt, &mut rng);
    (tern, dense_outputs(rt, &mut rng), acts)
}

/// Ternary matmuls on assorted shapes, checked against the definition; all outputs, and
/// the last activations.
fn ternary_outputs(rt: &Runtime, rng: &mut Rng) -> (Vec<f32>, QuantizedActs) {
    let path = rt.path();
    let mut tern = Vec::new();
    let mut acts_last = QuantizedActs::new();
    // Shapes: K with and without a partial 128-block; token counts around the 4-token group
    // and the 16-token tile.
    for (m, k, n) in [
        (8, 256, 1),
        (37, 384, 5),
        (64, 300, 3),
        (20, 512, 17),
        (300, 1280, 2),
        // Odd block counts (a 128-block left over after the 256-element pairs) with whole
        // 2-row × 8-token tiles, and a lone last row.
        (13, 384, 19),
        (9, 640, 8),
        (6, 2688, 33),
        // The AMX GEMM's shapes: 32-row groups with rows left over, one and several 16-token
        // groups with tokens left over, an odd block count.
        (77, 640, 16),
        (96, 384, 49),
        (45, 1280, 37),
        // Fifteen tokens past a group (padded to one more on AMX) and one (not padded).
        (40, 512, 31),
        (35, 384, 33),
        // Fewer tokens than one group: 5 and 15 are padded to one on AMX, 4 is not.
        (70, 640, 5),
        (33, 384, 15),
        (64, 256, 4),
        // The AVX2 GEMM's column chunks: three uneven ones, an odd token count.
        (64, 4352, 19),
        // Decode over several chunks whose row counts are not multiples of four (each
        // four-row call takes one row from each quarter of its chunk).
        (1003, 256, 1),
        // K with a partial last 128-block (activations padded with zeros to whole blocks)
        // on every kernel: the GEMM, the tiles and the mat-vec; an even and an odd padded
        // block count.
        (40, 200, 20),
        (33, 330, 17),
        (70, 1000, 33),
        (501, 330, 1),
        // A server's batched decode step: 2 to 7 tokens, every row against all of them
        // four tokens per call (a partial last group), rows from the chunk's quarters.
        (1003, 256, 2),
        (501, 330, 3),
        (67, 512, 5),
        (130, 256, 7),
    ] {
        let x = rng.f32s(n * k, 1.0);
        let codes = rng.ternary(m * k);
        let w = TernaryMatrix::from_ternary(&codes, m, k, 0.8125).unwrap();
        let mut acts = QuantizedActs::new();
        quantize_acts(rt, &x, k, &mut acts);
        let mut out = vec![0f32; n * m];
        ternary_matmul(rt, &w, &acts, &mut out);
        // Against the definition, per element.
        for t in 0..n {
            for r in 0..m {
                let dot: i32 = (0..k)
                    .map(|c| codes[r * k + c] as i32 * acts.q[t * k + c] as i32)
                    .sum();
                let want = dot as f32 / acts.scale[t] * 0.8125;
                assert_eq!(
                    out[t * m + r].to_bits(),
                    want.to_bits(),
                    "{} ternary m={m} k={k} t={t} r={r}",
                    path.name()
                );
            }
        }
        tern.extend(out);
        acts_last = acts;
    }
    // TQ2_0 through a payload (per-block scales): a short prompt (the block tiles), and
    // prompts long enough for the GEMMs, one 256-block at a time, with rows left over after
    // the 32-row groups, tokens left over after the token groups, and a mixed call (a
    // per-tensor matrix beside the per-block one).
    for (m, k, n) in [
        (16, 512, 6),
        (77, 512, 37),
        (32, 768, 16),
        (40, 256, 50),
        (33, 2048, 17),
    ] {
        let mut blob = Vec::new();
        for _ in 0..m * k / 256 {
            let qs: Vec<u8> = (0..64)
                .map(|_| (0..4).fold(0u8, |b, _| (b << 2) | rng.below(3) as u8))
                .collect();
            blob.extend(qs);
            // Full-precision f16 scales: the block terms round, so their order shows.
            let d = 0.3 + rng.below(10_000) as f32 / 3700.0;
            blob.extend(half::f16::from_f32(d).to_le_bytes());
        }
        let w = TernaryMatrix::new(&TernaryFormat::Tq2_0, &blob, m, k).unwrap();
        assert!(w.has_block_scales());
        let plain = TernaryMatrix::from_ternary(&rng.ternary(48 * k), 48, k, 0.75).unwrap();
        let x = rng.f32s(n * k, 2.0);
        let mut acts = QuantizedActs::new();
        quantize_acts(rt, &x, k, &mut acts);
        let (mut out, mut both, mut other) =
            (vec![0f32; n * m], vec![0f32; n * m], vec![0f32; n * 48]);
        ternary_matmul(rt, &w, &acts, &mut out);
        ternary_matmul_many(rt, &mut [(&w, &mut both), (&plain, &mut other)], &acts);
        assert_eq!(bits(&out), bits(&both), "{} tq2_0 m={m} n={n}", path.name());
        tern.extend(out);
        tern.extend(other);
    }

    (tern, acts_last)
}

/// Dense matmuls of every dense type, checked against an f64 product; all outputs.
fn dense_outputs(rt: &Runtime, rng: &mut Rng) -> Vec<f32> {
    let path = rt.path();
    let mut dense = Vec::new();
    // Small, a decode-sized F16 head over several chunks (four-row calls, row counts not
    // multiples of four), K = 13 · 32 (32-blocks with a short last 256-block), and a prompt
    // over several widened row blocks (64 rows each at this K) with a partial last one.
    // Then a batch of 18 tokens, past the one-row-by-four-tokens range.
    for (m, k, n) in [
        (33, 512, 5),
        (1003, 256, 3),
        (37, 416, 3),
        (150, 2048, 4),
        (70, 256, 18),
    ] {
        let wf = rng.f32s(m * k, 0.1);
        let x = rng.f32s(n * k, 1.0);
        let f32b: Vec<u8> = wf.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f16b: Vec<u8> = wf
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let bf16b: Vec<u8> = wf
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        let mut q8 = Vec::new();
        for b in wf.chunks(32) {
            let amax = b.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            q8.extend(half::f16::from_f32(d).to_le_bytes());
            q8.extend(b.iter().map(|v| (v / d).round() as i8 as u8));
        }
        // Q6_K: random blocks (any byte pattern is a valid block), small f16 scales.
        let mut q6 = Vec::new();
        for _ in 0..m * k / 256 {
            q6.extend((0..208).map(|_| rng.below(256) as u8));
            q6.extend(half::f16::from_f32(1e-3 * (1 + rng.below(64)) as f32).to_le_bytes());
        }
        let mut q4 = Vec::new();
        for _ in 0..m * k / 32 {
            q4.extend(half::f16::from_f32(1e-2 * (1 + rng.below(64)) as f32).to_le_bytes());
            q4.extend((0..16).map(|_| rng.below(256) as u8));
        }
        for (ty, bytes) in [
            (TensorType::Q4_0, &q4),
            (TensorType::F32, &f32b),
            (TensorType::F16, &f16b),
            (TensorType::BF16, &bf16b),
            (TensorType::Q8_0, &q8),
            (TensorType::Q6_K, &q6),
        ] {
            if !k.is_multiple_of(ty.block_len() as usize) {
                continue;
            }
            let w = DenseMatrix::new(ty, bytes, m, k).unwrap();
            let mut first_token = Vec::new();
            for nt in [1, n] {
                let mut out = vec![0f32; nt * m];
                dense_matmul(rt, &w, &x, nt, &mut out);
                let mut row = vec![0f32; k];
                for r in 0..m {
                    w.row_to_f32(rt, r, &mut row);
                    for t in 0..nt {
                        let exact: f64 = row
                            .iter()
                            .zip(&x[t * k..])
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum();
                        let mag: f64 = row
                            .iter()
                            .zip(&x[t * k..])
                            .map(|(a, b)| (*a as f64 * *b as f64).abs())
                            .sum();
                        // Quantised rows meet int8 activations (one scale per 256-block):
                        // each x is off by at most half a step, absmax / 254.
                        let int8 =
                            matches!(ty, TensorType::Q6_K | TensorType::Q8_0 | TensorType::Q4_0);
                        let quant: f64 = if int8 {
                            row.chunks(256)
                                .zip(x[t * k..(t + 1) * k].chunks(256))
                                .map(|(wb, xb)| {
                                    let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
                                    let w1: f64 = wb.iter().map(|v| v.abs() as f64).sum();
                                    w1 * amax as f64 / 254.0 * (1.0 + 1e-5)
                                })
                                .sum()
                        } else {
                            0.0
                        };
                        let got = out[t * m + r] as f64;
                        assert!(
                            (got - exact).abs()
                                <= quant + 2.0 * k as f64 * f32::EPSILON as f64 * mag,
                            "{} {ty} n={nt}: {got} vs {exact}",
                            path.name()
                        );
                        if int8 {
                            // The bound is not vacuous: the error is well below |exact|
                            // scale on random data.
                            assert!(quant < 0.05 * mag.max(1e-30) + 1e-3, "{quant} vs {mag}");
                        }
                    }
                }
                // F16 and BF16 rows give the same bits dotted in place (decode) as widened
                // (a prompt): the conversion is exact and the dots add in the same order.
                // So do the tokens of a batched decode step (one row against four tokens),
                // each against its own one-token matmul.
                if matches!(ty, TensorType::F16 | TensorType::BF16) {
                    if nt == 1 {
                        first_token = out.clone();
                    } else {
                        assert_eq!(bits(&out[..m]), bits(&first_token), "{ty} n={nt}");
                        let mut alone = vec![0f32; m];
                        for t in 1..nt {
                            dense_matmul(rt, &w, &x[t * k..(t + 1) * k], 1, &mut alone);
                            let got = &out[t * m..(t + 1) * m];
                            assert_eq!(bits(got), bits(&alone), "{ty} n={nt} token {t}");
                        }
                    }
                }
                dense.extend(out);
            }
        }
    }
    dense
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every SIMD table this CPU can run (each supported path, and the variant tables of
/// `tables_under_test`), each on its own runtime over one two-thread pool, against the
/// portable one.
#[test]
fn every_path_agrees() {
    let scalar = Runtime::new(RuntimeOptions {
        threads: Some(2),
        path: Some(KernelPath::Scalar),
        ..Default::default()
    })
    .unwrap();
    let (tern0, dense0, acts0) = run_all(&scalar, 99);
    let supported = simd_paths();
    let tables = simd_tables();
    assert!(supported
        .iter()
        .all(|p| tables.iter().any(|k| k.path == *p)));
    for kernels in tables {
        let name = kernels.path.name();
        eprintln!("checking {name} ({:?})", kernels.act_layout);
        let (tern, dense, acts) = run_all(&scalar.with_kernels(kernels), 99);
        assert_eq!(acts, acts0, "{name}: quantised activations differ");
        assert_eq!(
            bits(&tern),
            bits(&tern0),
            "{name}: ternary matmul differs from scalar"
        );
        assert_eq!(dense.len(), dense0.len());
    }
}

#[test]
fn rejects_bad_payloads() {
    let blob = vec![0xFFu8; 64 * 4 + 32];
    assert!(matches!(
        TernaryMatrix::new(&TernaryFormat::I2s(I2sLayout::X86), &blob, 2, 128),
        Err(KernelError::Corrupt { .. })
    ));
    assert!(matches!(
        TernaryMatrix::new(&TernaryFormat::I2s(I2sLayout::X86), &blob[..40], 2, 128),
        Err(KernelError::TooShort { .. })
    ));
    assert!(matches!(
        TernaryMatrix::new(&TernaryFormat::Tq2_0, &blob, 1, 128),
        Err(KernelError::BadShape { .. })
    ));
    assert!(DenseMatrix::new(TensorType::Q8_0, &blob, 4, 31).is_err());
}
