//! The I2_S epilogue of a row of dots (`portable::i2s_epilogue_row`) on eight lanes, for
//! every x86 table. Every output of a ternary matmul goes through one division (the fork's
//! order of operations, kept for bit-exact outputs); IEEE division is exact per lane, so
//! the bits are the twin's. A 16-lane AVX-512 twin measured no faster end to end on the
//! AMX Xeon (paired medians 0.987 against 0.994 of the previous build), so there is none.

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
