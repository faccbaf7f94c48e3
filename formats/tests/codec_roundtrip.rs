//! Property tests: pack -> unpack is the identity for random codes in every ternary format and
//! every shape its constraints allow; transcoding chains keep the codes; the block types
//! round-trip through their own quantizers.

use bitnet_formats::codec::{
    self, decode_ternary, encode_ternary, tl_params, tq_scale_rel_error, I2sLayout, TernaryFormat,
    TernaryScales, TernaryTensor, TlParams,
};
use bitnet_formats::TensorType;
use proptest::prelude::*;

fn codes_strategy(n: usize) -> impl Strategy<Value = Vec<i8>> {
    proptest::collection::vec(-1i8..=1, n)
}

fn tensor(rows: usize, cols: usize, codes: Vec<i8>, scale: f32) -> TernaryTensor {
    TernaryTensor {
        rows,
        cols,
        codes,
        scales: TernaryScales::PerTensor(scale),
    }
}

fn round_trip(fmt: TernaryFormat, t: &TernaryTensor) {
    let bytes = encode_ternary(&fmt, t).unwrap();
    assert_eq!(
        Some(bytes.len()),
        fmt.payload_len(t.rows, t.cols),
        "{fmt:?}"
    );
    let back = decode_ternary(&fmt, &bytes, t.rows, t.cols).unwrap();
    assert_eq!(back.codes, t.codes, "{fmt:?}");
}

/// (rows, cols) pairs for I2_S: any rows, cols a multiple of the block (x86 128, ARM 64) or
/// rows a multiple of 4 for the row-interleaved layout.
fn i2s_shape() -> impl Strategy<Value = (I2sLayout, usize, usize)> {
    prop_oneof![
        (1usize..6, 1usize..5).prop_map(|(r, c)| (I2sLayout::X86, r, c * 128)),
        (1usize..6, 1usize..5).prop_map(|(r, c)| (I2sLayout::Arm, r, c * 64)),
        // Flat blocks may straddle rows: 3 x 64 is 192 elements, not a multiple of 128.
        (1usize..4, 1usize..4).prop_map(|(r, c)| (I2sLayout::X86, 2 * r, 64 * (2 * c - 1))),
        (1usize..4, 1usize..40).prop_map(|(r, c)| (I2sLayout::RowInterleaved, 4 * r, c)),
    ]
}

/// TL1 shapes and parameters: bm ∈ {32, 64}, BM = bm·a, M = BM·b, BK = (256/bm)·c, K = BK·d.
fn tl1_case() -> impl Strategy<Value = (TlParams, usize, usize)> {
    (
        prop_oneof![Just(32usize), Just(64)],
        1usize..3,
        1usize..3,
        1usize..5,
        1usize..4,
    )
        .prop_map(|(bm, a, b, c, d)| {
            let p = TlParams {
                bm_tile: bm * a,
                bk_tile: (256 / bm) * c,
                bm,
            };
            (p, p.bm_tile * b, p.bk_tile * d)
        })
}

/// TL2 shapes: BM = 32·a, M = BM·b, BK = 24·c, K = BK·d + K2 with K2 ∈ {0, 32, ..., 256},
/// K ≥ 256, K2 < BK unless K2 = 0 is forced by the remainder.
fn tl2_case() -> impl Strategy<Value = (TlParams, usize, usize)> {
    (1usize..3, 1usize..3, 1usize..9, 0usize..12, 0usize..9)
        .prop_map(|(a, b, c, d, k2)| {
            let p = TlParams {
                bm_tile: 32 * a,
                bk_tile: 24 * c,
                bm: 32,
            };
            (p, p.bm_tile * b, p.bk_tile * d + 32 * k2)
        })
        .prop_filter("valid TL2 shape", |(p, m, k)| {
            tl_params::check_tl2(p, *m, *k).is_ok()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn i2s_round_trips((layout, rows, cols) in i2s_shape(), seed in any::<u64>(), scale in 1e-4f32..10.0) {
        let codes = pseudo_codes(rows * cols, seed);
        round_trip(TernaryFormat::I2s(layout), &tensor(rows, cols, codes, scale));
    }

    #[test]
    fn tq_round_trips(rows in 1usize..4, blocks in 1usize..4, seed in any::<u64>(), scale in 1e-3f32..10.0) {
        let cols = blocks * 256;
        let t = tensor(rows, cols, pseudo_codes(rows * cols, seed), scale);
        round_trip(TernaryFormat::Tq1_0, &t);
        round_trip(TernaryFormat::Tq2_0, &t);
    }

    #[test]
    fn tl1_round_trips((p, rows, cols) in tl1_case(), seed in any::<u64>()) {
        let t = tensor(rows, cols, pseudo_codes(rows * cols, seed), 0.5);
        round_trip(TernaryFormat::Tl1(p), &t);
    }

    #[test]
    fn tl2_round_trips((p, rows, cols) in tl2_case(), seed in any::<u64>()) {
        let t = tensor(rows, cols, pseudo_codes(rows * cols, seed), 0.5);
        round_trip(TernaryFormat::Tl2(p), &t);
    }

    #[test]
    fn small_shapes_with_proptest_codes(codes in codes_strategy(2 * 256)) {
        let t = tensor(2, 256, codes, 0.75);
        for fmt in [
            TernaryFormat::I2s(I2sLayout::X86),
            TernaryFormat::I2s(I2sLayout::Arm),
            TernaryFormat::Tq1_0,
            TernaryFormat::Tq2_0,
        ] {
            round_trip(fmt, &t);
        }
    }
}

/// Deterministic codes from a seed (xorshift), cheaper than a proptest vector for big shapes.
fn pseudo_codes(n: usize, seed: u64) -> Vec<i8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 3) as i8 - 1
        })
        .collect()
}

#[test]
fn transcoding_chain_i2s_tq2_tl2_i2s_keeps_the_codes() {
    // 2B4T-like shape with automatically chosen TL2 parameters.
    let (rows, cols) = (64, 768);
    let scale = 0.8347202f32; // not representable in f16
    let codes = pseudo_codes(rows * cols, 7);
    let original = tensor(rows, cols, codes.clone(), scale);
    let i2s = encode_ternary(&TernaryFormat::I2s(I2sLayout::X86), &original).unwrap();

    let t = decode_ternary(&TernaryFormat::I2s(I2sLayout::X86), &i2s, rows, cols).unwrap();
    let tq2 = encode_ternary(&TernaryFormat::Tq2_0, &t).unwrap();
    let t = decode_ternary(&TernaryFormat::Tq2_0, &tq2, rows, cols).unwrap();
    assert_eq!(t.codes, codes);
    let tl2_params = tl_params::tl2_params_for(rows, cols).unwrap();
    let tl2 = encode_ternary(&TernaryFormat::Tl2(tl2_params), &t).unwrap();
    let t = decode_ternary(&TernaryFormat::Tl2(tl2_params), &tl2, rows, cols).unwrap();
    assert_eq!(t.codes, codes);
    let back = encode_ternary(&TernaryFormat::I2s(I2sLayout::X86), &t).unwrap();
    let t = decode_ternary(&TernaryFormat::I2s(I2sLayout::X86), &back, rows, cols).unwrap();
    assert_eq!(t.codes, codes, "codes survive the whole chain");

    // The packed codes are identical; only the scale changed, by TQ's f16 rounding.
    let n = rows * cols / 4;
    assert_eq!(back[..n], i2s[..n]);
    let new_scale = t.per_tensor_scale().unwrap();
    assert_eq!(new_scale, half::f16::from_f32(scale).to_f32());
    let rel = tq_scale_rel_error(&original);
    assert!(rel > 0.0 && rel < 4.9e-4, "relative f16 scale error {rel}");
    assert_eq!(((new_scale - scale) / scale).abs(), rel);
}

#[test]
fn every_ternary_pair_transcodes_losslessly() {
    let (rows, cols) = (64, 256);
    let codes = pseudo_codes(rows * cols, 11);
    let t = tensor(rows, cols, codes.clone(), 0.5); // exact in f16
    let fmts = [
        TernaryFormat::I2s(I2sLayout::X86),
        TernaryFormat::I2s(I2sLayout::Arm),
        TernaryFormat::I2s(I2sLayout::RowInterleaved),
        TernaryFormat::Tq1_0,
        TernaryFormat::Tq2_0,
        TernaryFormat::Tl1(TlParams {
            bm_tile: 64,
            bk_tile: 128,
            bm: 32,
        }),
        TernaryFormat::Tl2(TlParams {
            bm_tile: 32,
            bk_tile: 96,
            bm: 32,
        }),
    ];
    for a in &fmts {
        let bytes_a = encode_ternary(a, &t).unwrap();
        let ta = decode_ternary(a, &bytes_a, rows, cols).unwrap();
        for b in &fmts {
            let bytes_b = encode_ternary(b, &ta).unwrap();
            let tb = decode_ternary(b, &bytes_b, rows, cols).unwrap();
            assert_eq!(tb.codes, codes, "{a:?} -> {b:?}");
            assert_eq!(tb.dequantize(), t.dequantize(), "{a:?} -> {b:?}");
        }
    }
}

#[test]
fn tq_blocks_with_different_scales_cannot_become_i2s() {
    let rows = 1;
    let cols = 512;
    let t = TernaryTensor {
        rows,
        cols,
        codes: vec![1; 512],
        scales: TernaryScales::PerBlock(vec![1.0, 2.0]),
    };
    let bytes = encode_ternary(&TernaryFormat::Tq2_0, &t).unwrap();
    let back = decode_ternary(&TernaryFormat::Tq2_0, &bytes, rows, cols).unwrap();
    assert_eq!(back, t);
    assert!(encode_ternary(&TernaryFormat::I2s(I2sLayout::X86), &back).is_err());
}

#[test]
fn block_types_round_trip_through_their_quantizers() {
    // Values exactly representable by each type survive quantize -> dequantize.
    let ne = [256u64, 2];
    let mut x = vec![0f32; 512];
    for (i, v) in x.iter_mut().enumerate() {
        *v = ((i % 15) as f32 - 7.0) * 0.25;
    }
    for ty in [TensorType::F32, TensorType::F16, TensorType::BF16] {
        let q = codec::quantize(ty, &x, &ne).unwrap();
        let mut out = vec![0f32; 512];
        codec::dequantize(ty, &q, &ne, &mut out).unwrap();
        assert_eq!(out, x, "{ty}");
    }
    for ty in [
        TensorType::Q8_0,
        TensorType::Q4_0,
        TensorType::Q4_1,
        TensorType::Q5_0,
        TensorType::Q5_1,
        TensorType::Q6_K,
    ] {
        let q = codec::quantize(ty, &x, &ne).unwrap();
        let mut out = vec![0f32; 512];
        codec::dequantize(ty, &q, &ne, &mut out).unwrap();
        let err = out
            .iter()
            .zip(&x)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err <= 0.25, "{ty}: max error {err}");
    }
}

#[test]
fn unsupported_types_name_the_type() {
    let e = codec::quantize(TensorType::IQ2_XXS, &[0.0; 256], &[256]).unwrap_err();
    assert!(e.to_string().contains("IQ2_XXS"), "{e}");
    let e = codec::dequantize(TensorType::IQ1_S, &[0; 50], &[256], &mut [0.0; 256]).unwrap_err();
    assert!(e.to_string().contains("IQ1_S"), "{e}");
    let e = e.for_tensor("blk.0.attn_q.weight");
    assert!(e.to_string().contains("blk.0.attn_q.weight"), "{e}");
}

#[test]
fn rows_and_row_bytes() {
    assert_eq!(codec::row_bytes(TensorType::Q8_0, 64), Some(68));
    assert_eq!(codec::row_bytes(TensorType::Q6_K, 512), Some(420));
    assert_eq!(codec::row_bytes(TensorType::I2_S, 128), None);
    assert_eq!(codec::row_bytes(TensorType::Q8_0, 33), None);
    let x: Vec<f32> = (0..64).map(|i| i as f32 - 32.0).collect();
    let q = codec::quantize(TensorType::Q8_0, &x, &[64]).unwrap();
    let mut row = vec![0f32; 32];
    codec::dequantize_row(TensorType::Q8_0, &q[34..], &mut row).unwrap();
    let mut all = vec![0f32; 64];
    codec::dequantize(TensorType::Q8_0, &q, &[64], &mut all).unwrap();
    assert_eq!(row, all[32..]);
    assert!(codec::dequantize_row(TensorType::Q8_0, &q[33..], &mut row).is_err());
    // Every type with a codec row can do what its row says.
    for row in codec::table::rows() {
        assert!(row.can_dequantize(), "{}", row.ty);
    }
}

#[test]
fn tl2_bad_code_is_reported_in_its_own_row_tile() {
    // Three row tiles (decoded on separate threads where there are cores): a magnitude
    // index of 15 in the third tile's first three-part byte must name an element of that
    // tile, counted from the start of the tensor.
    use bitnet_formats::codec::tl2;
    let p = TlParams {
        bm_tile: 32,
        bk_tile: 96,
        bm: 32,
    };
    let (rows, cols) = (96, 288);
    let mut packed = tl2::pack_codes(&p, &pseudo_codes(rows * cols, 7), rows, cols).unwrap();
    assert!(tl2::unpack_codes(&p, &packed, rows, cols).is_ok());
    let (per_tile, _, _) = tl2::sections(&p, p.bm_tile, cols);
    packed[2 * per_tile] |= 0xF0;
    match tl2::unpack_codes(&p, &packed, rows, cols) {
        Err(codec::CodecError::InvalidCode { index, code: 15 }) => {
            assert!((64..96).contains(&(index / cols)), "row {}", index / cols)
        }
        other => panic!("expected a bad code in rows 64..96, got {other:?}"),
    }
}

#[test]
fn tl1_bad_code_is_reported_in_its_own_row_tile() {
    // As for TL2: three row tiles, a pair index of 15 in the third tile's first byte.
    use bitnet_formats::codec::tl1;
    let p = TlParams {
        bm_tile: 32,
        bk_tile: 64,
        bm: 32,
    };
    let (rows, cols) = (96, 128);
    let mut packed = tl1::pack_codes(&p, &pseudo_codes(rows * cols, 9), rows, cols).unwrap();
    assert_eq!(
        tl1::unpack_codes(&p, &packed, rows, cols).unwrap(),
        pseudo_codes(rows * cols, 9)
    );
    packed[2 * p.bm_tile * cols / 4] |= 0xF0;
    match tl1::unpack_codes(&p, &packed, rows, cols) {
        Err(codec::CodecError::InvalidCode { index, code: 15 }) => {
            assert!((64..96).contains(&(index / cols)), "row {}", index / cols)
        }
        other => panic!("expected a bad code in rows 64..96, got {other:?}"),
    }
}

#[test]
fn a_value_outside_ternary_is_refused_by_every_encoder() {
    // One bad value late in the tensor (past the first vectorised chunks), in every format.
    let (rows, cols) = (64, 768);
    let tl1 = TlParams {
        bm_tile: 32,
        bk_tile: 64,
        bm: 32,
    };
    let formats = [
        TernaryFormat::I2s(I2sLayout::X86),
        TernaryFormat::Tq1_0,
        TernaryFormat::Tq2_0,
        TernaryFormat::Tl1(tl1),
        TernaryFormat::Tl2(tl_params::tl2_params_for(rows, cols).unwrap()),
    ];
    for bad in [2i8, -2, i8::MIN] {
        let mut codes = pseudo_codes(rows * cols, 3);
        codes[40_001] = bad;
        let t = tensor(rows, cols, codes, 0.5);
        for fmt in &formats {
            match encode_ternary(fmt, &t) {
                Err(codec::CodecError::InvalidCode {
                    index: 40_001,
                    code,
                }) => {
                    assert_eq!(code, bad as i32, "{fmt:?}")
                }
                other => panic!("{fmt:?} with {bad} at 40001: {other:?}"),
            }
        }
    }
}
