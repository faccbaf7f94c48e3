//! [`F32Vector`] on NEON's `float32x4_t`: the one place the float kernels meet aarch64
//! intrinsics. NEON is part of every aarch64 target this crate builds for, so only the
//! pointer methods and the inline assembly need `unsafe`.

use std::arch::aarch64::*;
use std::arch::asm;

use super::load_f16x4;
use crate::arch::float::F32Vector;

// SAFETY (every method): the trait's contract: NEON is enabled and the pointer methods'
// pointers are valid for 4 elements.
impl F32Vector for float32x4_t {
    const LANES: usize = 4;
    // No prefetching on NEON (`prefetch` is empty).
    const PREFETCH_AHEAD: usize = 0;
    const PREFETCH_AHEAD_ROWS4: usize = 0;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: NEON is enabled (the trait's contract).
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: NEON is enabled (the trait's contract).
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: `p` is valid for 4 floats (the trait's contract).
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u8) -> Self {
        // SAFETY: `p` is valid for 4 f16 (the trait's contract).
        unsafe { load_f16x4(p) }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u8) -> Self {
        // SAFETY: `p` is valid for 4 bf16 (the trait's contract).
        let h = unsafe { vld1_u16(p as *const u16) };
        // SAFETY: NEON is enabled (the trait's contract).
        unsafe { vreinterpretq_f32_u32(vshll_n_u16(h, 16)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: `p` is valid for 4 floats (the trait's contract).
        unsafe { vst1q_f32(p, self) }
    }
    #[inline(always)]
    unsafe fn store_f16(self, p: *mut u8) {
        let h: uint16x4_t;
        // SAFETY: FCVTN is base AArch64 and reads and writes registers only; `p` is valid
        // for 4 f16 (the trait's contract).
        unsafe {
            asm!("fcvtn {0:v}.4h, {1:v}.4s", out(vreg) h, in(vreg) self, options(pure, nomem, nostack));
            vst1_u16(p as *mut u16, h);
        }
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        // SAFETY: `p` is valid for 4 i32 (the trait's contract).
        unsafe { vcvtq_f32_s32(vld1q_s32(p)) }
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (the trait's contract).
        unsafe { vsubq_f32(self, o) }
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (the trait's contract).
        unsafe { vdivq_f32(self, o) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (the trait's contract).
        unsafe { vaddq_f32(self, o) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (the trait's contract).
        unsafe { vmulq_f32(self, o) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, x: Self, acc: Self) -> Self {
        // SAFETY: NEON is enabled (the trait's contract).
        unsafe { vfmaq_f32(acc, self, x) }
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        // SAFETY: NEON is enabled (the trait's contract).
        unsafe { vaddvq_f32(self) }
    }
    #[inline(always)]
    unsafe fn prefetch(_: *const u8) {}
}
