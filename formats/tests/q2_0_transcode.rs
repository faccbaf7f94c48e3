//! Transcoding between the ternary formats and upstream Q2_0: lossless both ways where the
//! scales allow, refused with a message naming the problem where they do not.

use bitnet_formats::codec::{
    decode_ternary, encode_ternary, q2, tl_params, I2sLayout, TernaryFormat, TernaryScales,
    TernaryTensor,
};

fn codes(rows: usize, cols: usize, seed: u64) -> Vec<i8> {
    let mut s = seed;
    (0..rows * cols)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % 3) as i8 - 1
        })
        .collect()
}

#[test]
fn every_ternary_format_round_trips_through_q2_0() {
    let (rows, cols) = (64, 256);
    // An f16-exact scale: Q2_0 and TQ store f16, I2_S and TL f32.
    let scale = half::f16::from_f32(0.8347).to_f32();
    let t = TernaryTensor {
        rows,
        cols,
        codes: codes(rows, cols, 5),
        scales: TernaryScales::PerTensor(scale),
    };
    let formats = [
        TernaryFormat::I2s(I2sLayout::X86),
        TernaryFormat::I2s(I2sLayout::Arm),
        TernaryFormat::Tq1_0,
        TernaryFormat::Tq2_0,
        TernaryFormat::Tl1(tl_params::tl1_params_for(rows, cols).unwrap()),
        TernaryFormat::Tl2(tl_params::tl2_params_for(rows, cols).unwrap()),
    ];
    for fmt in formats {
        let original = encode_ternary(&fmt, &t).unwrap();
        let decoded = decode_ternary(&fmt, &original, rows, cols).unwrap();
        let q2_bytes = encode_ternary(&TernaryFormat::Q2_0, &decoded).unwrap();
        // The same bytes ggml's reference quantizer writes for the dequantised weights.
        let mut reference = vec![0u8; q2_bytes.len()];
        q2::quantize_q2_0(&decoded.dequantize(), &mut reference);
        assert_eq!(q2_bytes, reference, "{fmt:?}");
        let back = decode_ternary(&TernaryFormat::Q2_0, &q2_bytes, rows, cols).unwrap();
        assert_eq!(back.codes, t.codes, "{fmt:?}");
        assert_eq!(encode_ternary(&fmt, &back).unwrap(), original, "{fmt:?}");
    }
}

#[test]
fn scales_that_do_not_fit_are_refused() {
    let (rows, cols) = (2, 256);
    let mut x: Vec<f32> = codes(rows, cols, 9).iter().map(|&c| c as f32).collect();
    x[..64].iter_mut().for_each(|v| *v *= 0.5); // the first 64-block has its own scale
    x[0] = 0.5;
    let mut bytes = vec![0u8; rows * cols / 64 * q2::Q2_0_BLOCK_BYTES];
    q2::quantize_q2_0(&x, &mut bytes);
    let err = decode_ternary(&TernaryFormat::Q2_0, &bytes, rows, cols).unwrap_err();
    assert!(err.to_string().contains("scales 0.5 and 1"), "{err}");

    // Per-256 scales that differ fit TQ2_0 but not I2_S's one scale.
    let mut x: Vec<f32> = codes(rows, cols, 10).iter().map(|&c| c as f32).collect();
    x[256..].iter_mut().for_each(|v| *v *= 0.25);
    x[256] = 0.25;
    q2::quantize_q2_0(&x, &mut bytes);
    let t = decode_ternary(&TernaryFormat::Q2_0, &bytes, rows, cols).unwrap();
    assert!(encode_ternary(&TernaryFormat::Tq2_0, &t).is_ok());
    let err = encode_ternary(&TernaryFormat::I2s(I2sLayout::X86), &t).unwrap_err();
    assert!(err.to_string().contains("per-block scales"), "{err}");

    // Code 11 (+2d) is not ternary.
    bytes[2] = 0b11;
    let err = decode_ternary(&TernaryFormat::Q2_0, &bytes, rows, cols).unwrap_err();
    assert!(err.to_string().contains("code 2 at element 0"), "{err}");
}
