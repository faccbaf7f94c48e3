//! The I2_S epilogue of a row of dots (`portable::i2s_epilogue_row`) on four lanes:
//! `arch::float`'s on `float32x4_t` (AArch64 divides vectors exactly, `fdiv`).

use std::arch::aarch64::float32x4_t;

/// Bit-identical to the portable twin.
#[target_feature(enable = "neon")]
pub fn i2s_epilogue_row(dots: &[i32], act_sum: i32, act_scale: f32, scale: f32, out: &mut [f32]) {
    // SAFETY: this function enables `float32x4_t`'s feature, NEON.
    unsafe {
        crate::arch::float::i2s_epilogue_row::<float32x4_t>(dots, act_sum, act_scale, scale, out)
    }
}
