//! The four-row and four-token F16/BF16 dots (decode's and a batched step's output head) on
//! 512-bit registers, bit-identical to
//! the 256-bit one: `dot` keeps four 8-lane accumulators per row, `a[j]` summing elements
//! `i + 8j .. i + 8j + 8` of every 32-element step. A zmm register holds two of them side by
//! side, `(a0 | a1)` and `(a2 | a3)`, and one 512-bit FMA does exactly the two 256-bit FMAs
//! (the same fused operation per lane), so each step needs half the conversions, FMAs and
//! loads. At the end the halves go back to the shared 256-bit finish.

use std::arch::x86_64::*;

use super::simd::PREFETCH_AHEAD_ROWS4;
use crate::arch::float::{dot_finish, Bf16, Weights, F16};

/// 16 weights of a row widened to f32.
trait Wide: Weights<Elem = u8> {
    /// # Safety
    /// AVX-512F is enabled and `p` is valid for 32 bytes.
    unsafe fn load16(p: *const u8) -> __m512;
}

impl Wide for F16 {
    #[inline(always)]
    unsafe fn load16(p: *const u8) -> __m512 {
        // SAFETY: the caller guarantees 32 readable bytes and AVX-512F.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
}

impl Wide for Bf16 {
    #[inline(always)]
    unsafe fn load16(p: *const u8) -> __m512 {
        // SAFETY: as above; a bf16 is the high half of its f32, widened exactly.
        unsafe {
            let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(h))
        }
    }
}

/// # Safety
/// AVX2, FMA, F16C, AVX-512F and AVX-512VL are enabled.
#[inline(always)]
unsafe fn rows4_zmm<W: Wide>(w: [&[u8]; 4], x: &[f32]) -> [f32; 4] {
    let n = w.iter().fold(x.len(), |n, r| n.min(r.len() / 2));
    // SAFETY: AVX-512F is enabled (this function's contract).
    let mut z = [[unsafe { _mm512_setzero_ps() }; 2]; 4];
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: a prefetch never faults; the loads read elements `i..i + 32` of `x` and of
        // every row (bytes `2i..2i + 64`), below `n`.
        unsafe {
            for r in w {
                _mm_prefetch::<_MM_HINT_T0>(
                    r.as_ptr().wrapping_add(2 * i + PREFETCH_AHEAD_ROWS4).cast(),
                );
            }
            let x0 = _mm512_loadu_ps(x.as_ptr().add(i));
            let x1 = _mm512_loadu_ps(x.as_ptr().add(i + 16));
            for (r, zr) in w.iter().zip(z.iter_mut()) {
                zr[0] = _mm512_fmadd_ps(W::load16(r.as_ptr().add(2 * i)), x0, zr[0]);
                zr[1] = _mm512_fmadd_ps(W::load16(r.as_ptr().add(2 * i + 32)), x1, zr[1]);
            }
        }
        i += 32;
    }
    let body = i;
    std::array::from_fn(|r| {
        // SAFETY: the features are enabled (this function's contract); `n` bounds the row
        // and `x`.
        unsafe { finish_halves::<W>(z[r], w[r], x, body, n) }
    })
}

/// `R` rows against four tokens' activations, each (row, token) bit-identical to the
/// 256-bit `dot` (the accumulator halves as in [`rows4_zmm`]): a batched decode step's head,
/// where each widened weight meets four tokens and, with two rows, each activation load
/// meets two rows (one row per pass loaded eight activation vectors per sixteen FMAs, and
/// the 4-token head ran at 2.4× the one-token time in cache; two: 1.81 → 1.50 ms on
/// 8192 × 2560).
///
/// # Safety
/// AVX2, FMA, F16C, AVX-512F and AVX-512VL are enabled.
#[inline(always)]
unsafe fn rows_tokens4_zmm<W: Wide, const R: usize>(
    w: [&[u8]; R],
    xs: [&[f32]; 4],
) -> [[f32; 4]; R] {
    let rows = w.iter().fold(usize::MAX, |n, r| n.min(r.len() / 2));
    let n = xs.iter().fold(rows, |n, x| n.min(x.len()));
    // SAFETY: AVX-512F is enabled (this function's contract).
    let mut z = [[[unsafe { _mm512_setzero_ps() }; 2]; 4]; R];
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: a prefetch never faults; the loads read elements `i..i + 32` of every row
        // (bytes `2i..2i + 64`) and of every `xs[t]`, below `n`.
        unsafe {
            let wv: [[__m512; 2]; R] = std::array::from_fn(|r| {
                let row = w[r].as_ptr();
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(2 * i + PREFETCH_AHEAD_ROWS4).cast());
                [W::load16(row.add(2 * i)), W::load16(row.add(2 * i + 32))]
            });
            for (t, x) in xs.iter().enumerate() {
                let x0 = _mm512_loadu_ps(x.as_ptr().add(i));
                let x1 = _mm512_loadu_ps(x.as_ptr().add(i + 16));
                for r in 0..R {
                    z[r][t][0] = _mm512_fmadd_ps(wv[r][0], x0, z[r][t][0]);
                    z[r][t][1] = _mm512_fmadd_ps(wv[r][1], x1, z[r][t][1]);
                }
            }
        }
        i += 32;
    }
    let body = i;
    std::array::from_fn(|r| {
        std::array::from_fn(|t| {
            // SAFETY: the features are enabled (this function's contract); `n` bounds every
            // row and every `xs[t]`.
            unsafe { finish_halves::<W>(z[r][t], w[r], xs[t], body, n) }
        })
    })
}

/// The 256-bit `dot`'s four accumulators from the two zmm halves, and its finish.
///
/// # Safety
/// AVX2, FMA, F16C, AVX-512F and AVX-512VL are enabled; `n` bounds `w` and `x`.
#[inline(always)]
unsafe fn finish_halves<W: Wide>(
    z: [__m512; 2],
    w: &[u8],
    x: &[f32],
    body: usize,
    n: usize,
) -> f32 {
    let [lo, hi] = z;
    // SAFETY: the caller's contract.
    unsafe {
        let mut a: [__m256; 4] = [
            _mm512_castps512_ps256(lo),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(lo))),
            _mm512_castps512_ps256(hi),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(hi))),
        ];
        dot_finish::<__m256, W>(&mut a, w, x, body, n)
    }
}

/// One F16 row against four `xs`; `result[t] == dot_f16(w, xs[t])` bit for bit.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
pub fn dot_f16_x4_zmm(w: &[u8], xs: [&[f32]; 4]) -> [f32; 4] {
    // SAFETY: this function enables every feature `rows_tokens4_zmm` needs.
    unsafe { rows_tokens4_zmm::<F16, 1>([w], xs)[0] }
}

/// One BF16 row against four `xs`; `result[t] == dot_bf16(w, xs[t])` bit for bit.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
pub fn dot_bf16_x4_zmm(w: &[u8], xs: [&[f32]; 4]) -> [f32; 4] {
    // SAFETY: this function enables every feature `rows_tokens4_zmm` needs.
    unsafe { rows_tokens4_zmm::<Bf16, 1>([w], xs)[0] }
}

/// Two F16 rows against four `xs`; `result[r][t] == dot_f16(w[r], xs[t])` bit for bit.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
pub fn dot_f16_rows2_x4_zmm(w: [&[u8]; 2], xs: [&[f32]; 4]) -> [[f32; 4]; 2] {
    // SAFETY: this function enables every feature `rows_tokens4_zmm` needs.
    unsafe { rows_tokens4_zmm::<F16, 2>(w, xs) }
}

/// Two BF16 rows against four `xs`; `result[r][t] == dot_bf16(w[r], xs[t])` bit for bit.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
pub fn dot_bf16_rows2_x4_zmm(w: [&[u8]; 2], xs: [&[f32]; 4]) -> [[f32; 4]; 2] {
    // SAFETY: this function enables every feature `rows_tokens4_zmm` needs.
    unsafe { rows_tokens4_zmm::<Bf16, 2>(w, xs) }
}

/// Four F16 rows against one `x`; `result[r] == dot_f16(w[r], x)` bit for bit.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
pub fn dot_f16_rows4_zmm(w: [&[u8]; 4], x: &[f32]) -> [f32; 4] {
    // SAFETY: this function enables every feature `rows4_zmm` needs.
    unsafe { rows4_zmm::<F16>(w, x) }
}

/// Four BF16 rows against one `x`; `result[r] == dot_bf16(w[r], x)` bit for bit.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
pub fn dot_bf16_rows4_zmm(w: [&[u8]; 4], x: &[f32]) -> [f32; 4] {
    // SAFETY: this function enables every feature `rows4_zmm` needs.
    unsafe { rows4_zmm::<Bf16>(w, x) }
}

/// Whether the AVX-512 table's four-row head dot runs on zmm registers (the default) or
/// the 256-bit EVEX loop: `BITNET_HEAD_DOT=ymm` selects the latter, for comparing the two
/// in one build. Read once; the same bits either way.
pub fn head_dot_zmm() -> bool {
    static ZMM: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ZMM.get_or_init(|| std::env::var("BITNET_HEAD_DOT").map_or(true, |v| v != "ymm"))
}
