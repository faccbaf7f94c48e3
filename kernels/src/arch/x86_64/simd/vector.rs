//! [`F32Vector`] on AVX2's `__m256`: the one place the float kernels meet x86 intrinsics.

use std::arch::x86_64::*;

use super::{hsum_ps, load_f16x8, PREFETCH_AHEAD, PREFETCH_AHEAD_ROWS4};
use crate::arch::float::F32Vector;

// SAFETY (every method): the trait's contract: the caller runs on a CPU with AVX2, FMA and
// F16C (the `#[target_feature]` functions below, selected after `avx2_available()`), and
// the pointer methods' pointers are valid for 8 elements.
impl F32Vector for __m256 {
    const LANES: usize = 8;
    // Measured in bytes on the F16 head (see `PREFETCH_AHEAD`); f32 rows use the same count.
    const PREFETCH_AHEAD: usize = PREFETCH_AHEAD;
    const PREFETCH_AHEAD_ROWS4: usize = PREFETCH_AHEAD_ROWS4;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: AVX is enabled (the trait's contract).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: AVX is enabled (the trait's contract).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: AVX is enabled and `p` is valid for 8 floats (the trait's contract).
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u8) -> Self {
        // SAFETY: F16C is enabled and `p` is valid for 8 f16 (the trait's contract).
        unsafe { load_f16x8(p) }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u8) -> Self {
        // SAFETY: AVX2 is enabled and `p` is valid for 8 bf16 (the trait's contract).
        unsafe {
            let h = _mm_loadu_si128(p as *const __m128i);
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
        }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: AVX is enabled and `p` is valid for 8 floats (the trait's contract).
        unsafe { _mm256_storeu_ps(p, self) }
    }
    #[inline(always)]
    unsafe fn store_f16(self, p: *mut u8) {
        // SAFETY: F16C is enabled and `p` is valid for 8 f16 (the trait's contract).
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(self);
            _mm_storeu_si128(p as *mut __m128i, h)
        }
    }
    #[inline(always)]
    unsafe fn load_i32(p: *const i32) -> Self {
        // SAFETY: AVX2 is enabled and `p` is valid for 8 i32 (the trait's contract).
        unsafe { _mm256_cvtepi32_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        // SAFETY: AVX is enabled (the trait's contract).
        unsafe { _mm256_sub_ps(self, o) }
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        // SAFETY: AVX is enabled (the trait's contract).
        unsafe { _mm256_div_ps(self, o) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: AVX is enabled (the trait's contract).
        unsafe { _mm256_add_ps(self, o) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        // SAFETY: AVX is enabled (the trait's contract).
        unsafe { _mm256_mul_ps(self, o) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, x: Self, acc: Self) -> Self {
        // SAFETY: FMA is enabled (the trait's contract).
        unsafe { _mm256_fmadd_ps(self, x, acc) }
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        // SAFETY: AVX2 and FMA are enabled (the trait's contract).
        unsafe { hsum_ps(self) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        // SAFETY: SSE is enabled (the trait's contract); a prefetch never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
}
