//! Plain float types: F32, F16 (IEEE binary16) and BF16 (upper half of an f32).

use half::f16;

pub fn dequantize_f32(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

pub fn quantize_f32(src: &[f32], out: &mut [u8]) {
    for (o, &x) in out.chunks_exact_mut(4).zip(src) {
        o.copy_from_slice(&x.to_le_bytes());
    }
}

pub fn dequantize_f16(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
    }
}

/// Round-to-nearest-even, as ggml's `GGML_FP32_TO_FP16` (F16C / the portable bit version).
pub fn quantize_f16(src: &[f32], out: &mut [u8]) {
    for (o, &x) in out.chunks_exact_mut(2).zip(src) {
        o.copy_from_slice(&f16::from_f32(x).to_le_bytes());
    }
}

pub fn dequantize_bf16(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
    }
}

/// ggml's `ggml_compute_fp32_to_bf16`: NaN becomes a quiet NaN keeping sign and upper
/// payload; everything else rounds to nearest even (overflowing to infinity).
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u as u64 + (0x7fff + ((u >> 16) & 1)) as u64) >> 16) as u16
}

pub fn quantize_bf16(src: &[f32], out: &mut [u8]) {
    for (o, &x) in out.chunks_exact_mut(2).zip(src) {
        o.copy_from_slice(&f32_to_bf16_bits(x).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even_and_quiets_nan() {
        assert_eq!(f32_to_bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between two bf16 values; even mantissa wins.
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(f32_to_bf16_bits(f32::INFINITY), 0x7f80);
    }
}
