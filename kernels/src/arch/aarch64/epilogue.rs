//! The I2_S epilogue of a row of dots (`portable::i2s_epilogue_row`) on four lanes:
//! AArch64 divides vectors exactly (`fdiv`), so the bits are the twin's.

use std::arch::aarch64::*;

use crate::portable;

/// Bit-identical to the portable twin.
#[target_feature(enable = "neon")]
pub unsafe fn i2s_epilogue_row(
    dots: &[i32],
    act_sum: i32,
    act_scale: f32,
    scale: f32,
    out: &mut [f32],
) {
    let n = dots.len().min(out.len());
    let (sum, div, mul) = (
        vdupq_n_f32(act_sum as f32),
        vdupq_n_f32(act_scale),
        vdupq_n_f32(scale),
    );
    let mut i = 0;
    while i + 4 <= n {
        let d = vcvtq_f32_s32(vld1q_s32(dots.as_ptr().add(i)));
        vst1q_f32(
            out.as_mut_ptr().add(i),
            vmulq_f32(vdivq_f32(vsubq_f32(d, sum), div), mul),
        );
        i += 4;
    }
    portable::i2s_epilogue_row(&dots[i..n], act_sum, act_scale, scale, &mut out[i..n]);
}
