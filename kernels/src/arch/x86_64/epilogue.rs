//! The I2_S epilogue of a row of dots (`portable::i2s_epilogue_row`), on 8 and 16 lanes.
//! Every output of a ternary matmul goes through one division (the fork's order of
//! operations, kept for bit-exact outputs), which on a prompt costs as much as a third of
//! the tile products on AMX; IEEE division is exact per lane, so the bits are the twin's.

use std::arch::x86_64::*;

use crate::portable;

/// Bit-identical to the portable twin.
#[target_feature(enable = "avx2")]
pub unsafe fn i2s_epilogue_row(
    dots: &[i32],
    act_sum: i32,
    act_scale: f32,
    scale: f32,
    out: &mut [f32],
) {
    let n = dots.len().min(out.len());
    let (sum, div, mul) = (
        _mm256_set1_ps(act_sum as f32),
        _mm256_set1_ps(act_scale),
        _mm256_set1_ps(scale),
    );
    let mut i = 0;
    while i + 8 <= n {
        let d = _mm256_cvtepi32_ps(_mm256_loadu_si256(dots.as_ptr().add(i) as *const __m256i));
        let v = _mm256_mul_ps(_mm256_div_ps(_mm256_sub_ps(d, sum), div), mul);
        _mm256_storeu_ps(out.as_mut_ptr().add(i), v);
        i += 8;
    }
    portable::i2s_epilogue_row(&dots[i..n], act_sum, act_scale, scale, &mut out[i..n]);
}

/// Bit-identical to the portable twin.
#[target_feature(enable = "avx512f")]
pub unsafe fn i2s_epilogue_row_avx512(
    dots: &[i32],
    act_sum: i32,
    act_scale: f32,
    scale: f32,
    out: &mut [f32],
) {
    let n = dots.len().min(out.len());
    let (sum, div, mul) = (
        _mm512_set1_ps(act_sum as f32),
        _mm512_set1_ps(act_scale),
        _mm512_set1_ps(scale),
    );
    let mut i = 0;
    while i + 16 <= n {
        let d = _mm512_cvtepi32_ps(_mm512_loadu_si512(dots.as_ptr().add(i) as *const _));
        let v = _mm512_mul_ps(_mm512_div_ps(_mm512_sub_ps(d, sum), div), mul);
        _mm512_storeu_ps(out.as_mut_ptr().add(i), v);
        i += 16;
    }
    portable::i2s_epilogue_row(&dots[i..n], act_sum, act_scale, scale, &mut out[i..n]);
}
