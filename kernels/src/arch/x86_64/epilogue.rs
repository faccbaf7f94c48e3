//! The I2_S epilogue of a row of dots (`portable::i2s_epilogue_row`) on eight lanes, for
//! every x86 table: `arch::float`'s on `__m256`. A 16-lane AVX-512 twin measured no faster
//! end to end on the AMX Xeon (paired medians 0.987 against 0.994 of the previous build), so
//! there is none.

use std::arch::x86_64::__m256;

/// Bit-identical to the portable twin.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn i2s_epilogue_row(dots: &[i32], act_sum: i32, act_scale: f32, scale: f32, out: &mut [f32]) {
    // SAFETY: this function enables `__m256`'s features (AVX2, FMA, F16C).
    unsafe { crate::arch::float::i2s_epilogue_row::<__m256>(dots, act_sum, act_scale, scale, out) }
}
