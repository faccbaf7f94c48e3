//! The kernels against the reference implementations' golden vectors (docs/testing.md,
//! 'Golden vectors'; docs/formats/i2s.md, 'Activations' and 'The dot product'; docs/formats/tq.md).

mod common;

use bitnet_kernels::{
    quantize_acts, ternary_matmul, I2sLayout, QuantizedActs, Runtime, TernaryFormat, TernaryMatrix,
};
use common::*;

fn check_i2s_kernel_case(id: &str) {
    let rt = Runtime::detect();
    let (ashape, act) = npy_f32(&format!("{id}.act_f32.npy"));
    let (n, k) = (ashape[0], ashape[1]);
    let (oshape, want_out) = npy_f32(&format!("{id}.out_f32.npy"));
    let m = oshape[1];
    let want_q: Vec<i8> = fixture(&format!("{id}.act_q8_i8.bin"))
        .into_iter()
        .map(|b| b as i8)
        .collect();
    let (_, want_scale) = npy_f32(&format!("{id}.act_scale_f32.npy"));
    let (_, want_sum) = npy_i32(&format!("{id}.act_sum_i32.npy"));
    let (_, want_dot) = npy_i32(&format!("{id}.dot_raw_i32.npy"));
    let blob = fixture(&format!("{id}.tensor_blob.bin"));

    let mut acts = QuantizedActs::new();
    quantize_acts(&rt, &act, k, &mut acts);
    assert_eq!(acts.n_tokens, n);
    assert_eq!(acts.q, want_q, "{id}: int8 activations");
    let scale_bits: Vec<u32> = acts.scale.iter().map(|s| s.to_bits()).collect();
    let want_bits: Vec<u32> = want_scale.iter().map(|s| s.to_bits()).collect();
    assert_eq!(scale_bits, want_bits, "{id}: activation scales");
    assert_eq!(acts.sum, want_sum, "{id}: activation sums");

    let w = TernaryMatrix::new(&TernaryFormat::I2s(I2sLayout::X86), &blob, m, k).unwrap();
    assert!(w.is_zero_copy());
    for t in 0..n {
        for r in 0..m {
            assert_eq!(
                w.raw_dot(&rt, r, acts.row(t)),
                want_dot[t * m + r],
                "{id}: raw dot t{t} r{r}"
            );
        }
    }
    let mut out = vec![0f32; n * m];
    ternary_matmul(&rt, &w, &acts, &mut out);
    for (i, (g, e)) in out.iter().zip(&want_out).enumerate() {
        assert_eq!(g.to_bits(), e.to_bits(), "{id}: out[{i}] {g} != {e}");
    }
}

#[test]
fn i2s_kernel_8x256_t3_bit_exact() {
    check_i2s_kernel_case("i2s_kernel_x86_8x256_t3");
}

#[test]
fn i2s_kernel_32x512_t2_bit_exact() {
    check_i2s_kernel_case("i2s_kernel_x86_32x512_t2");
}

#[test]
fn worked_example_of_the_spec() {
    // docs/formats/i2s.md, 'The dot product': token 0, row 0 of i2s_kernel_x86_8x256_t3.
    let (_, out) = npy_f32("i2s_kernel_x86_8x256_t3.out_f32.npy");
    assert!((out[0] - -14.771173).abs() < 1e-5);
}

/// Decoded values (value * scale) must equal the reference dequantisation.
fn check_decoded(fmt: TernaryFormat, id: &str, want_file: &str) {
    let blob = fixture(&format!("{id}.tensor_blob.bin"));
    let (shape, want) = npy_f32(&format!("{id}.{want_file}"));
    let (m, k) = (shape[0], shape[1]);
    let w = TernaryMatrix::new(&fmt, &blob, m, k).unwrap();
    let mut row = vec![0f32; k];
    for r in 0..m {
        w.row_to_f32(r, &mut row);
        for c in 0..k {
            let e = want[r * k + c];
            if matches!(
                fmt,
                TernaryFormat::I2s(_) | TernaryFormat::Tl1(_) | TernaryFormat::Tl2(_)
            ) {
                // I2_S/TL fixtures give the ternary-scaled input: compare signs and magnitude.
                assert_eq!(
                    w.value(r, c) as f32,
                    e.signum() * (e != 0.0) as i32 as f32,
                    "{id} ({r},{c})"
                );
            } else {
                assert_eq!(
                    row[c].to_bits(),
                    e.to_bits(),
                    "{id} ({r},{c}): {} != {e}",
                    row[c]
                );
            }
        }
    }
}

#[test]
fn decodes_every_i2s_layout() {
    check_decoded(
        TernaryFormat::I2s(I2sLayout::X86),
        "i2s_x86_4x128",
        "ternary_scaled_f32.npy",
    );
    check_decoded(
        TernaryFormat::I2s(I2sLayout::Arm),
        "i2s_arm_4x128",
        "ternary_scaled_f32.npy",
    );
    check_decoded(
        TernaryFormat::I2s(I2sLayout::RowInterleaved),
        "i2s_x86_1x4_4x128",
        "ternary_scaled_f32.npy",
    );
}

#[test]
fn decodes_tq_formats() {
    check_decoded(
        TernaryFormat::Tq2_0,
        "tq2_0_4x256_ternary",
        "dequant_f32.npy",
    );
    check_decoded(TernaryFormat::Tq2_0, "tq2_0_2x256_ties", "dequant_f32.npy");
    check_decoded(
        TernaryFormat::Tq2_0,
        "tq2_0_kernel_4x512_t2",
        "dequant_f32.npy",
    );
    check_decoded(TernaryFormat::Tq1_0, "tq1_0_8x512_randn", "dequant_f32.npy");
    check_decoded(TernaryFormat::Tq1_0, "tq1_0_2x256_ties", "dequant_f32.npy");
    check_decoded(
        TernaryFormat::Tq1_0,
        "tq1_0_kernel_4x512_t2",
        "dequant_f32.npy",
    );
}

/// The upstream TQ dot against Q8_K activations, recomputed from our decoded weights: per
/// block `sumf += (Σ t·q) as f32 * (d_w * d_a)` must reproduce `out_f32` exactly.
fn check_tq_kernel(fmt: TernaryFormat, id: &str) {
    let blob = fixture(&format!("{id}.tensor_blob.bin"));
    let (oshape, want) = npy_f32(&format!("{id}.out_f32.npy"));
    let (n, m) = (oshape[0], oshape[1]);
    let q8k = fixture(&format!("{id}.act_q8K_blocks.bin"));
    let k = q8k.len() / n / 292 * 256;
    let w = TernaryMatrix::new(&fmt, &blob, m, k).unwrap();
    for t in 0..n {
        for r in 0..m {
            let mut sumf = 0f32;
            for b in 0..k / 256 {
                let blk = &q8k[(t * (k / 256) + b) * 292..];
                let da = f32::from_le_bytes([blk[0], blk[1], blk[2], blk[3]]);
                let mut isum = 0i32;
                for j in 0..256 {
                    isum += w.value(r, b * 256 + j) as i32 * blk[4 + j] as i8 as i32;
                }
                sumf += isum as f32 * (w.scale_at(r, b * 256) * da);
            }
            assert_eq!(
                sumf.to_bits(),
                want[t * m + r].to_bits(),
                "{id} t{t} r{r}: {sumf} != {}",
                want[t * m + r]
            );
        }
    }
}

#[test]
fn tq_kernel_cases_match_upstream_dot() {
    check_tq_kernel(TernaryFormat::Tq2_0, "tq2_0_kernel_4x512_t2");
    check_tq_kernel(TernaryFormat::Tq1_0, "tq1_0_kernel_4x512_t2");
}

/// With our activation rule, the TQ matmul is within int8-quantisation error of the float
/// product of the dequantised weights and the raw activations.
#[test]
fn tq_matmul_close_to_float_product() {
    let rt = Runtime::detect();
    for (fmt, id) in [
        (TernaryFormat::Tq2_0, "tq2_0_kernel_4x512_t2"),
        (TernaryFormat::Tq1_0, "tq1_0_kernel_4x512_t2"),
    ] {
        let blob = fixture(&format!("{id}.tensor_blob.bin"));
        let (ashape, act) = npy_f32(&format!("{id}.act_f32.npy"));
        let (dshape, deq) = npy_f32(&format!("{id}.dequant_f32.npy"));
        let (n, k, m) = (ashape[0], ashape[1], dshape[0]);
        let w = TernaryMatrix::new(&fmt, &blob, m, k).unwrap();
        let mut acts = QuantizedActs::new();
        quantize_acts(&rt, &act, k, &mut acts);
        let mut out = vec![0f32; n * m];
        ternary_matmul(&rt, &w, &acts, &mut out);
        for t in 0..n {
            let amax = act[t * k..(t + 1) * k]
                .iter()
                .fold(0f32, |a, &b| a.max(b.abs()));
            for r in 0..m {
                let exact: f64 = (0..k)
                    .map(|c| deq[r * k + c] as f64 * act[t * k + c] as f64)
                    .sum();
                let wsum: f64 = (0..k).map(|c| deq[r * k + c].abs() as f64).sum();
                // Each activation is off by at most half a quantisation step.
                let bound = wsum * (amax as f64 / 127.0) * 0.5 + 1e-4;
                assert!(
                    (out[t * m + r] as f64 - exact).abs() <= bound,
                    "{id} t{t} r{r}: {} vs {exact}",
                    out[t * m + r]
                );
            }
        }
    }
}

#[test]
fn decodes_tl_formats_through_the_codecs() {
    use bitnet_kernels::TlParams;
    let p = |bm_tile, bk_tile, bm| TlParams {
        bm_tile,
        bk_tile,
        bm,
    };
    check_decoded(
        TernaryFormat::Tl1(p(64, 128, 32)),
        "tl1_64x256",
        "ternary_scaled_f32.npy",
    );
    check_decoded(
        TernaryFormat::Tl2(p(32, 96, 32)),
        "tl2_64x256",
        "ternary_scaled_f32.npy",
    );
    check_decoded(
        TernaryFormat::Tl2(p(32, 192, 32)),
        "tl2_32x384",
        "ternary_scaled_f32.npy",
    );
}
