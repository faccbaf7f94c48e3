//! Q2_0 and Q1_0, upstream ggml's low-bit block types (docs/formats/q2.md, 'Layout'). Q2_0:
//! 64 elements per block, an f16 `d` then 16 bytes of 2-bit codes, element `j` at byte
//! `j / 4`, bits `2 · (j % 4)`; value `(code − 1) · d`, so 00 = −d, 01 = 0, 10 = +d and
//! 11 = +2d. Q1_0: 128 elements per block, an f16 `d` then 16 bytes, element `j` at byte
//! `j / 8`, bit `j % 8`; 1 = +d, 0 = −d.
//!
//! The quantizers reproduce `quantize_row_q2_0_ref` / `quantize_row_q1_0_ref` of upstream
//! ggml byte for byte (scripts/ci/ggml-c-oracle.sh compares them with the C).

use half::f16;

use super::{CodecError, TernaryScales, TernaryTensor, QK_K};

pub const QK2_0: usize = 64;
pub const Q2_0_BLOCK_BYTES: usize = 2 + QK2_0 / 4;
pub const QK1_0: usize = 128;
pub const Q1_0_BLOCK_BYTES: usize = 2 + QK1_0 / 8;

/// `quantize_row_q2_0_ref`: `d = max|x|` (f32, then f16), `code = clamp(roundf(x · (1/d)) + 1,
/// 0, 3)`. With `d` the block's absmax, `|x · (1/d)|` rounds to at most 1, so this never
/// writes code 3.
pub fn quantize_q2_0(src: &[f32], out: &mut [u8]) {
    for (x, y) in src
        .chunks_exact(QK2_0)
        .zip(out.chunks_exact_mut(Q2_0_BLOCK_BYTES))
    {
        // `a > amax` as the C compares, so a NaN never becomes the maximum.
        let amax = x
            .iter()
            .fold(0f32, |m, &v| if v.abs() > m { v.abs() } else { m });
        let id = if amax > 0.0 { 1.0 / amax } else { 0.0 };
        y[..2].copy_from_slice(&f16::from_f32(amax).to_le_bytes());
        let qs = &mut y[2..];
        qs.fill(0);
        for (j, &v) in x.iter().enumerate() {
            // `(int)roundf(..)`: `as i32` saturates and maps NaN to 0 where C is undefined.
            let q = ((v * id).round() as i32 + 1).clamp(0, 3) as u8;
            qs[j / 4] |= q << (2 * (j % 4));
        }
    }
}

/// `dequantize_row_q2_0`: `(code − 1) · d`.
pub fn dequantize_q2_0(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes
        .chunks_exact(Q2_0_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK2_0))
    {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        for (j, o) in y.iter_mut().enumerate() {
            *o = (q2_code(&b[2..], j) as i32 - 1) as f32 * d;
        }
    }
}

/// The 2-bit code of element `j` of a Q2_0 block's 16 code bytes.
#[inline]
pub fn q2_code(qs: &[u8], j: usize) -> u8 {
    (qs[j / 4] >> (2 * (j % 4))) & 3
}

/// `quantize_row_q1_0_ref`: `d = Σ|x| / 128` (summed in f32 in element order), bit set where
/// `x >= 0` (so `-0.0` is +d and NaN is −d).
pub fn quantize_q1_0(src: &[f32], out: &mut [u8]) {
    for (x, y) in src
        .chunks_exact(QK1_0)
        .zip(out.chunks_exact_mut(Q1_0_BLOCK_BYTES))
    {
        let sum_abs = x.iter().fold(0f32, |s, &v| s + v.abs());
        let d = sum_abs / QK1_0 as f32;
        y[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        let qs = &mut y[2..];
        qs.fill(0);
        for (j, &v) in x.iter().enumerate() {
            if v >= 0.0 {
                qs[j / 8] |= 1 << (j % 8);
            }
        }
    }
}

/// `dequantize_row_q1_0`: `bit ? d : −d`.
pub fn dequantize_q1_0(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes
        .chunks_exact(Q1_0_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK1_0))
    {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        for (j, o) in y.iter_mut().enumerate() {
            *o = if (b[2 + j / 8] >> (j % 8)) & 1 == 1 {
                d
            } else {
                -d
            };
        }
    }
}

/// True when no element of a Q2_0 payload has code 3 (+2d): then the tensor is ternary.
pub fn q2_0_is_ternary(bytes: &[u8]) -> bool {
    bytes
        .chunks_exact(Q2_0_BLOCK_BYTES)
        .all(|b| b[2..].iter().all(|&q| q & (q >> 1) & 0x55 == 0))
}

/// A ternary Q2_0 payload as codes plus the scales ggml's TQ types and our per-tensor types
/// store: one per 256 elements when, in every 256-element run, the 64-blocks that hold a
/// non-zero code share one scale (all-zero blocks take any). Refuses code 3 (+2d, not
/// ternary) and 256-runs whose 64-block scales differ (that needs Q2_0's own scales).
pub fn decode_q2_0_ternary(
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> Result<TernaryTensor, CodecError> {
    let n = rows
        .checked_mul(cols)
        .filter(|_| cols.is_multiple_of(QK_K))
        .ok_or_else(|| {
            CodecError::shape(format!(
                "Q2_0 {rows} x {cols}: K must be a multiple of {QK_K} to hold ternary block scales"
            ))
        })?;
    let expected = n / QK2_0 * Q2_0_BLOCK_BYTES;
    if bytes.len() != expected {
        return Err(CodecError::Size {
            what: "Q2_0".into(),
            expected,
            got: bytes.len(),
        });
    }
    let mut codes = Vec::with_capacity(n);
    let mut scales = Vec::with_capacity(n / QK_K);
    for (g, run) in bytes.chunks_exact(Q2_0_BLOCK_BYTES * 4).enumerate() {
        let mut scale: Option<f32> = None;
        for (i, b) in run.chunks_exact(Q2_0_BLOCK_BYTES).enumerate() {
            let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
            let start = codes.len();
            for j in 0..QK2_0 {
                let c = q2_code(&b[2..], j);
                if c == 3 {
                    return Err(CodecError::InvalidCode {
                        index: start + j,
                        code: 2,
                    });
                }
                codes.push(c as i8 - 1);
            }
            if codes[start..].iter().all(|&c| c == 0) {
                continue;
            }
            match scale {
                None => scale = Some(d),
                Some(s) if s.to_bits() == d.to_bits() => {}
                Some(s) => {
                    return Err(CodecError::shape(format!(
                        "Q2_0 blocks {} and {} of the 256-element run {g} have scales {s} and \
                         {d}: a ternary format with one scale per 256 elements cannot hold them",
                        g * 4,
                        g * 4 + i
                    )))
                }
            }
        }
        scales.push(scale.unwrap_or(0.0));
    }
    Ok(TernaryTensor {
        rows,
        cols,
        codes,
        scales: TernaryScales::PerBlock(scales),
    })
}

/// Codes plus scale(s) as Q2_0, the bytes `quantize_row_q2_0_ref` gives for `code · scale`:
/// each 64-block that holds a non-zero code stores its scale as f16, an all-zero block 0.
pub fn encode_q2_0(t: &TernaryTensor) -> Result<Vec<u8>, CodecError> {
    t.validate()?;
    if !t.cols.is_multiple_of(QK2_0) {
        return Err(CodecError::shape(format!(
            "Q2_0 {} x {}: K must be a multiple of {QK2_0}",
            t.rows, t.cols
        )));
    }
    let mut out = vec![0u8; t.codes.len() / QK2_0 * Q2_0_BLOCK_BYTES];
    for (b, (c, y)) in t
        .codes
        .chunks_exact(QK2_0)
        .zip(out.chunks_exact_mut(Q2_0_BLOCK_BYTES))
        .enumerate()
    {
        let d = if c.iter().any(|&v| v != 0) {
            t.scale_at(b * QK2_0).abs()
        } else {
            0.0
        };
        y[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        // A negative scale flips the signs, as the quantizer would see `code · scale`.
        let flip = t.scale_at(b * QK2_0).is_sign_negative();
        for (j, &v) in c.iter().enumerate() {
            let v = if flip { -v } else { v };
            y[2 + j / 4] |= ((v + 1) as u8) << (2 * (j % 4));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q2(src: &[f32]) -> Vec<u8> {
        let mut out = vec![0u8; src.len() / QK2_0 * Q2_0_BLOCK_BYTES];
        quantize_q2_0(src, &mut out);
        out
    }

    #[test]
    fn q2_0_worked_block() {
        // absmax 2.0: x / 2 rounds half away from zero, so 1.0 -> +1 and -1.0 -> -1.
        let mut x = [0f32; 64];
        x[0] = 2.0;
        x[1] = -2.0;
        x[2] = 1.0;
        x[3] = -1.0;
        x[4] = 0.99;
        x[5] = -0.99;
        let b = q2(&x);
        assert_eq!(&b[..2], &f16::from_f32(2.0).to_le_bytes());
        // Element j at bits 2·(j % 4) of byte j / 4: codes 2, 0, 2, 0 then 1, 1, 1, 1.
        assert_eq!(b[2], 0b00_10_00_10);
        assert!(b[3..].iter().all(|&q| q == 0x55));
        let mut back = [0f32; 64];
        dequantize_q2_0(&b, &mut back);
        assert_eq!(&back[..6], &[2.0, -2.0, 2.0, -2.0, 0.0, 0.0]);
    }

    #[test]
    fn q2_0_code_3_decodes_to_twice_d() {
        let mut b = q2(&[0.5f32; 64]);
        b[2] = 0b11;
        let mut back = [0f32; 64];
        dequantize_q2_0(&b, &mut back);
        assert_eq!(back[0], 1.0);
        assert!(!q2_0_is_ternary(&b));
        assert!(decode_q2_0_ternary(&b, 1, 64).is_err());
    }

    #[test]
    fn q1_0_worked_block() {
        let mut x = [-0.5f32; 128];
        x[0] = 1.5;
        x[9] = -0.0;
        let mut b = [0u8; Q1_0_BLOCK_BYTES];
        quantize_q1_0(&x, &mut b);
        // Σ|x| = 1.5 + 126 · 0.5 = 64.5, d = 64.5 / 128.
        assert_eq!(&b[..2], &f16::from_f32(64.5 / 128.0).to_le_bytes());
        assert_eq!(b[2], 0b0000_0001);
        assert_eq!(b[3], 0b0000_0010, "-0.0 >= 0.0 sets the bit");
        let mut back = [0f32; 128];
        dequantize_q1_0(&b, &mut back);
        let d = f16::from_f32(64.5 / 128.0).to_f32();
        assert_eq!((back[0], back[1], back[9]), (d, -d, d));
    }

    #[test]
    fn ternary_round_trip_is_lossless_and_matches_the_quantizer() {
        let (rows, cols) = (3, 512);
        let mut codes: Vec<i8> = (0..rows * cols)
            .map(|i| ((i * 7 + i / 5) % 3) as i8 - 1)
            .collect();
        codes[256..320].fill(0); // an all-zero 64-block stores d = 0
        let scales: Vec<f32> = (0..rows * cols / QK_K)
            .map(|b| f16::from_f32(0.25 + b as f32 / 8.0).to_f32())
            .collect();
        let t = TernaryTensor {
            rows,
            cols,
            codes,
            scales: TernaryScales::PerBlock(scales),
        };
        let bytes = encode_q2_0(&t).unwrap();
        assert_eq!(
            bytes,
            q2(&t.dequantize()),
            "same bytes as quantize_row_q2_0_ref"
        );
        assert_eq!(&bytes[4 * 18..4 * 18 + 2], &[0, 0]);
        let back = decode_q2_0_ternary(&bytes, rows, cols).unwrap();
        assert_eq!(back.codes, t.codes);
        assert_eq!(back.dequantize(), t.dequantize());
    }

    #[test]
    fn differing_scales_in_a_256_run_are_refused() {
        let mut x = vec![1f32; 256];
        x[64..128].fill(0.5);
        let err = decode_q2_0_ternary(&q2(&x), 1, 256).unwrap_err();
        assert!(err.to_string().contains("256-element run 0"), "{err}");
    }
}
