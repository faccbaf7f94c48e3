//! Vectorised `exp` and the SiLU gate built on it (NEON); the same algorithm, constants and
//! bounds as the x86-64 twin (`arch/x86_64/activation.rs`).

use std::arch::aarch64::*;

use crate::arch::exp_consts::{LN2_HI, LN2_LO, P, X_MAX, X_MIN, X_OVERFLOW};

/// `e^x` on four lanes, within 2 ulp of libm's `expf` (1 seen under qemu) over the whole
/// f32 range: `+inf` above ln(f32::MAX), subnormal results computed, 0 below, NaN kept.
/// See the x86-64 twin for the reduction.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn exp_f32x4(x: float32x4_t) -> float32x4_t {
    // vmaxq/vminq return NaN for a NaN lane, unlike x86's max/min: the NaN survives to the
    // end and only the final select has to keep it.
    let xc = vminq_f32(vmaxq_f32(x, vdupq_n_f32(X_MIN)), vdupq_n_f32(X_MAX));
    let n = vrndnq_f32(vmulq_f32(xc, vdupq_n_f32(std::f32::consts::LOG2_E)));
    let r = vfmsq_f32(xc, n, vdupq_n_f32(LN2_HI));
    let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
    let mut p = vdupq_n_f32(P[0]);
    for c in &P[1..] {
        p = vfmaq_f32(vdupq_n_f32(*c), p, r);
    }
    let r2 = vmulq_f32(r, r);
    let p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0)), p, r2);
    let ni = vcvtq_s32_f32(n);
    let n1 = vshrq_n_s32::<1>(ni);
    let n2 = vsubq_s32(ni, n1);
    let y = vmulq_f32(vmulq_f32(p, pow2(n1)), pow2(n2));
    let over = vcgtq_f32(x, vdupq_n_f32(X_OVERFLOW));
    let y = vbslq_f32(over, vdupq_n_f32(f32::INFINITY), y);
    let nan = vmvnq_u32(vceqq_f32(x, x));
    vbslq_f32(nan, x, y)
}

/// `2^k` for `k` in −126..=127.
#[inline]
#[target_feature(enable = "neon")]
fn pow2(k: int32x4_t) -> float32x4_t {
    vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(k, vdupq_n_s32(127))))
}

/// `gate = silu(gate) · up` as `g / (1 + e^−g) · u`, like the portable twin; only `e^−g`
/// differs.
#[target_feature(enable = "neon")]
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let one = vdupq_n_f32(1.0);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: i + 4 ≤ n ≤ both lengths: the loads and the store touch `i..i + 4` only.
        unsafe {
            let p = gate.as_mut_ptr().add(i);
            let g = vld1q_f32(p);
            let e = exp_f32x4(vnegq_f32(g));
            let s = vdivq_f32(g, vaddq_f32(one, e));
            vst1q_f32(p, vmulq_f32(s, vld1q_f32(up.as_ptr().add(i))));
        }
        i += 4;
    }
    crate::portable::silu_mul(&mut gate[i..n], &up[i..n]);
}

/// `x = e^(x − shift)` by [`exp_f32x4`]; the sum is accumulated in f64 two lanes at a time.
#[target_feature(enable = "neon")]
pub fn exp_shifted(x: &mut [f32], shift: f32) -> f64 {
    let n = x.len();
    let vs = vdupq_n_f32(shift);
    let (mut lo, mut hi) = (vdupq_n_f64(0.0), vdupq_n_f64(0.0));
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: i + 4 ≤ n: the load and the store touch `x[i..i + 4]` only.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            let e = exp_f32x4(vsubq_f32(vld1q_f32(p), vs));
            vst1q_f32(p, e);
            lo = vaddq_f64(lo, vcvt_f64_f32(vget_low_f32(e)));
            hi = vaddq_f64(hi, vcvt_high_f64_f32(e));
        }
        i += 4;
    }
    let sum = vaddvq_f64(vaddq_f64(lo, hi));
    sum + crate::portable::exp_shifted(&mut x[i..], shift)
}
