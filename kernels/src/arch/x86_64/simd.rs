//! The AVX2 twins of `portable`. Same signatures and contracts; see the tests in
//! `kernels/tests/simd_vs_portable.rs` for the equality each one guarantees. The float
//! kernels are `arch::float`'s, on `__m256`.

use std::arch::x86_64::*;

use crate::arch::float::{self, Weights};
use crate::portable;

/// `arch::float`'s vector trait on `__m256`.
mod vector;

#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) fn hsum_ps(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Exact (max is order-independent), so bit-identical to the portable twin.
#[target_feature(enable = "avx2,fma")]
pub fn absmax(x: &[f32]) -> f32 {
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut m0 = _mm256_setzero_ps();
    let mut m1 = _mm256_setzero_ps();
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        // SAFETY: `c` holds 16 floats: the loads read `c[0..8]` and `c[8..16]`.
        let (v0, v1) = unsafe {
            (
                _mm256_loadu_ps(c.as_ptr()),
                _mm256_loadu_ps(c.as_ptr().add(8)),
            )
        };
        // max_ps returns its second operand when either is NaN: NaN inputs are skipped.
        m0 = _mm256_max_ps(_mm256_and_ps(v0, abs), m0);
        m1 = _mm256_max_ps(_mm256_and_ps(v1, abs), m1);
    }
    let m = _mm256_max_ps(m0, m1);
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds the 8 floats written.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m) };
    let mut r = lanes.iter().fold(0f32, |a, &b| a.max(b));
    for &v in tail {
        r = r.max(v.abs());
    }
    r
}

/// Bit-identical to the portable twin (same f32 products, round-half-even, clamp).
#[target_feature(enable = "avx2,fma")]
pub fn quantize_row(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let scale = portable::act_scale(absmax(x));
    let n = x.len().min(q.len());
    let vs = _mm256_set1_ps(scale);
    let lo = _mm256_set1_ps(-128.0);
    let hi = _mm256_set1_ps(127.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i + 32 <= n {
        let mut v = [_mm256_setzero_si256(); 4];
        for (j, vj) in v.iter_mut().enumerate() {
            // SAFETY: reads `x[i + 8j..i + 8j + 8]`, below `i + 32 ≤ n ≤ x.len()`.
            let f = unsafe { _mm256_loadu_ps(x.as_ptr().add(i + 8 * j)) };
            let f = _mm256_mul_ps(f, vs);
            let f = _mm256_round_ps(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            let f = _mm256_min_ps(_mm256_max_ps(f, lo), hi);
            *vj = _mm256_cvtps_epi32(f);
            acc = _mm256_add_epi32(acc, *vj);
        }
        let p01 = _mm256_packs_epi32(v[0], v[1]);
        let p23 = _mm256_packs_epi32(v[2], v[3]);
        let b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), perm);
        // SAFETY: writes `q[i..i + 32]`, below `i + 32 ≤ n ≤ q.len()`.
        unsafe { _mm256_storeu_si256(q.as_mut_ptr().add(i) as *mut __m256i, b) };
        i += 32;
    }
    let tail = portable::quantize_with(&x[i..n], scale, &mut q[i..n]);
    (scale, hsum_epi32(acc) + tail)
}

/// Unpacks one 32-byte I2 block into its four code planes (elements j, j+32, j+64, j+96).
///
/// # Safety
/// `w` is valid for reading 32 bytes.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn unpack(w: *const u8) -> [__m256i; 4] {
    let m3 = _mm256_set1_epi8(3);
    // SAFETY: the caller guarantees 32 readable bytes at `w`.
    let b = unsafe { _mm256_loadu_si256(w as *const __m256i) };
    [
        _mm256_and_si256(_mm256_srli_epi16(b, 6), m3),
        _mm256_and_si256(_mm256_srli_epi16(b, 4), m3),
        _mm256_and_si256(_mm256_srli_epi16(b, 2), m3),
        _mm256_and_si256(b, m3),
    ]
}

/// Σ code·q for one block's four planes against one token, as 16 i16 partial sums.
/// Each maddubs lane is ≤ 2·2·128 = 512 in magnitude, the four-plane sum ≤ 2048.
///
/// # Safety
/// `q` is valid for reading 128 bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_dot16(c: &[__m256i; 4], q: *const i8) -> __m256i {
    // SAFETY: `o` ≤ 96, so each load reads inside the caller's 128 bytes at `q`.
    let l = |o: usize| unsafe { _mm256_loadu_si256(q.add(o) as *const __m256i) };
    let s0 = _mm256_add_epi16(
        _mm256_maddubs_epi16(c[0], l(0)),
        _mm256_maddubs_epi16(c[1], l(32)),
    );
    let s1 = _mm256_add_epi16(
        _mm256_maddubs_epi16(c[2], l(64)),
        _mm256_maddubs_epi16(c[3], l(96)),
    );
    _mm256_add_epi16(s0, s1)
}

/// How far ahead of the current load the streaming dots prefetch weights, in bytes
/// (measured on the 2B4T shape: 4 KiB lifted decode's ternary mat-vec from ~12 to ~17 GB/s
/// on 2 threads; 8 KiB then gave decode +8 % in four of four alternating pairs of runs,
/// 16 KiB no more, and the large shape no change).
pub(super) const PREFETCH_AHEAD: usize = 8192;

/// The same for the four-row dots, per row: with four streams in flight a shorter distance
/// reads faster (1–2 KiB: ternary mat-vec +5 %, F16 head +6 % over 8 KiB, alternating in one
/// process; no prefetch at all is 20 % slower).
pub(super) const PREFETCH_AHEAD_ROWS4: usize = 2048;

/// Blocks summed in i16 before widening: 8 · 2048 = 16384 < 32767.
const FLUSH_BLOCKS: usize = 8;

/// Exact integer result, identical to the portable twin.
#[inline]
#[target_feature(enable = "avx2")]
pub fn i2_dot(w: &[u8], q: &[i8]) -> i32 {
    let nb = (w.len() / 32).min(q.len() / 128);
    let ones = _mm256_set1_epi16(1);
    let mut acc32 = _mm256_setzero_si256();
    let mut b = 0;
    while b < nb {
        let end = (b + FLUSH_BLOCKS).min(nb);
        let mut acc16 = _mm256_setzero_si256();
        while b < end {
            _mm_prefetch::<_MM_HINT_T0>(
                w.as_ptr().wrapping_add(b * 32 + PREFETCH_AHEAD) as *const i8
            );
            // SAFETY: b < nb: block b's 32 bytes of `w` and 128 of `q` are in bounds.
            let s =
                unsafe { block_dot16(&unpack(w.as_ptr().add(b * 32)), q.as_ptr().add(b * 128)) };
            acc16 = _mm256_add_epi16(acc16, s);
            b += 1;
        }
        acc32 = _mm256_add_epi32(acc32, _mm256_madd_epi16(acc16, ones));
    }
    hsum_epi32(acc32)
}

/// Decode's mat-vec (`portable::i2_matvec`) through [`i2_rows4`]. Exact.
#[target_feature(enable = "avx2")]
pub fn i2_matvec(w: &[u8], row_bytes: usize, q: &[i8], dots: &mut [i32]) {
    i2_matvec_by_quarters!(w, row_bytes, q, dots, i2_rows4, i2_dot)
}

/// Four weight rows against one token, read side by side. Exact.
#[inline]
#[target_feature(enable = "avx2")]
fn i2_rows4(w: [&[u8]; 4], q: &[i8]) -> [i32; 4] {
    let nb = w.iter().fold(q.len() / 128, |n, r| n.min(r.len() / 32));
    let ones = _mm256_set1_epi16(1);
    let mut acc32 = [_mm256_setzero_si256(); 4];
    let mut b = 0;
    while b < nb {
        let end = (b + FLUSH_BLOCKS).min(nb);
        let mut acc16 = [_mm256_setzero_si256(); 4];
        while b < end {
            for r in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>(
                    w[r].as_ptr().wrapping_add(b * 32 + PREFETCH_AHEAD_ROWS4) as *const i8,
                );
                // SAFETY: b < nb: block b's 32 bytes of row r and 128 of `q` are in bounds.
                let s = unsafe {
                    block_dot16(&unpack(w[r].as_ptr().add(b * 32)), q.as_ptr().add(b * 128))
                };
                acc16[r] = _mm256_add_epi16(acc16[r], s);
            }
            b += 1;
        }
        for r in 0..4 {
            acc32[r] = _mm256_add_epi32(acc32[r], _mm256_madd_epi16(acc16[r], ones));
        }
    }
    acc32.map(|a| hsum_epi32(a))
}

/// Prefill's 2-row × 8-token tile as two 2 × 4 passes ([`i2_rows2x4`]). Exact.
#[target_feature(enable = "avx2")]
pub fn i2_tile(w: [&[u8]; 2], q: [&[i8]; 8]) -> [[i32; 8]; 2] {
    crate::arch::join_token_halves(
        i2_rows2x4(w, [q[0], q[1], q[2], q[3]]),
        i2_rows2x4(w, [q[4], q[5], q[6], q[7]]),
    )
}

/// Two weight rows against four tokens, one code plane at a time: each activation load
/// meets both rows (half the activation reads of two [`i2_dot4`] calls, which for long
/// rows come from L2) and each plane's codes meet four tokens. Eight i16 accumulators,
/// two raw weight vectors, two planes of codes and one activation vector fit the sixteen
/// ymm registers. Exact.
#[inline]
#[target_feature(enable = "avx2")]
pub fn i2_rows2x4(w: [&[u8]; 2], q: [&[i8]; 4]) -> [[i32; 4]; 2] {
    let nb = q
        .iter()
        .fold(w[0].len().min(w[1].len()) / 32, |n, r| n.min(r.len() / 128));
    let (m3, ones) = (_mm256_set1_epi8(3), _mm256_set1_epi16(1));
    let mut acc32 = [[_mm256_setzero_si256(); 4]; 2];
    let mut b = 0;
    while b < nb {
        let end = (b + FLUSH_BLOCKS).min(nb);
        let mut acc16 = [[_mm256_setzero_si256(); 4]; 2];
        while b < end {
            // SAFETY: b < nb: block b's 32 bytes are inside both rows.
            let raw =
                w.map(|r| unsafe { _mm256_loadu_si256(r.as_ptr().add(b * 32) as *const __m256i) });
            // Plane j holds bits 7-2j..6-2j of each byte (docs/formats/i2s.md, 'Packing layouts':
            // code of element 32j + i).
            macro_rules! plane {
                ($j:literal, $shift:literal) => {{
                    let c = raw.map(|v| _mm256_and_si256(_mm256_srli_epi16(v, $shift), m3));
                    for t in 0..4 {
                        // SAFETY: b < nb: bytes b·128 + 32j .. + 32 are inside token t's row.
                        let qv = unsafe {
                            _mm256_loadu_si256(
                                q[t].as_ptr().add(b * 128 + 32 * $j) as *const __m256i
                            )
                        };
                        for r in 0..2 {
                            acc16[r][t] =
                                _mm256_add_epi16(acc16[r][t], _mm256_maddubs_epi16(c[r], qv));
                        }
                    }
                }};
            }
            plane!(0, 6);
            plane!(1, 4);
            plane!(2, 2);
            plane!(3, 0);
            b += 1;
        }
        for r in 0..2 {
            for t in 0..4 {
                acc32[r][t] = _mm256_add_epi32(acc32[r][t], _mm256_madd_epi16(acc16[r][t], ones));
            }
        }
    }
    acc32.map(|row| row.map(|a| hsum_epi32(a)))
}

/// One weight row against four tokens: the unpacked codes are reused four times.
#[target_feature(enable = "avx2")]
pub fn i2_dot4(w: &[u8], q: [&[i8]; 4]) -> [i32; 4] {
    let nb = q.iter().fold(w.len() / 32, |n, r| n.min(r.len() / 128));
    let ones = _mm256_set1_epi16(1);
    let mut acc32 = [_mm256_setzero_si256(); 4];
    let mut b = 0;
    while b < nb {
        let end = (b + FLUSH_BLOCKS).min(nb);
        let mut acc16 = [_mm256_setzero_si256(); 4];
        while b < end {
            // SAFETY: b < nb: block b's 32 bytes of `w` are in bounds.
            let c = unsafe { unpack(w.as_ptr().add(b * 32)) };
            for t in 0..4 {
                // SAFETY: b < nb: block b's 128 bytes of token t are in bounds.
                let s = unsafe { block_dot16(&c, q[t].as_ptr().add(b * 128)) };
                acc16[t] = _mm256_add_epi16(acc16[t], s);
            }
            b += 1;
        }
        for t in 0..4 {
            acc32[t] = _mm256_add_epi32(acc32[t], _mm256_madd_epi16(acc16[t], ones));
        }
    }
    [
        hsum_epi32(acc32[0]),
        hsum_epi32(acc32[1]),
        hsum_epi32(acc32[2]),
        hsum_epi32(acc32[3]),
    ]
}

/// How the F16 weights of the attention rows become f32.
///
/// # Safety
/// `p` is valid for reading 16 bytes.
#[inline]
#[target_feature(enable = "avx,f16c")]
pub(super) unsafe fn load_f16x8(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 16 readable bytes at `p`.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p as *const __m128i) })
}
pub(super) fn f16_at(w: &[u8], i: usize) -> f32 {
    float::F16::at(w, i)
}

float_entry_points!("avx2,fma,f16c", __m256);

// The four-row dots compiled with AVX-512VL, whose 32 vector registers hold the sixteen
// accumulators without spilling. The same ymm instructions (EVEX-encoded), so the same bits.
float_entry_points!(@rows4 "avx2,fma,f16c,avx512f,avx512vl", __m256, dot_f16_rows4_evex, dot_bf16_rows4_evex);
// One row × four tokens: sixteen accumulators, which spill on AVX2 but not here.
float_entry_points!(@x4 "avx2,fma,f16c,avx512f,avx512vl", __m256, dot_f16_x4_evex, dot_bf16_x4_evex);

/// Two rows × three tokens of [`dot_f32`]: one row at a time, whose twelve accumulators fit
/// AVX2's sixteen registers.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_f32_tile(rows: [&[f32]; 2], xs: [&[f32]; 3]) -> [[f32; 3]; 2] {
    // SAFETY: this function enables `__m256`'s features (AVX2, FMA, F16C).
    unsafe {
        [
            float::dot_tile::<__m256, 1, 3>([rows[0]], xs)[0],
            float::dot_tile::<__m256, 1, 3>([rows[1]], xs)[0],
        ]
    }
}

/// [`dot_f32_tile`] with both rows at once in AVX-512VL's 32 registers (24 accumulators).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
pub fn dot_f32_tile_evex(rows: [&[f32]; 2], xs: [&[f32]; 3]) -> [[f32; 3]; 2] {
    // SAFETY: this function enables `__m256`'s features (AVX2, FMA, F16C).
    unsafe { float::dot_tile::<__m256, 2, 3>(rows, xs) }
}

#[target_feature(enable = "avx2,fma")]
pub fn sum_sq(x: &[f32]) -> f64 {
    // Four chains of f64 FMAs, 16 values a step: with two, the FMA latency bounded it.
    let mut acc = [_mm256_setzero_pd(); 4];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: `c` holds 16 floats; this reads `c[4j..4j + 4]`, j < 4.
            let v = _mm256_cvtps_pd(unsafe { _mm_loadu_ps(c.as_ptr().add(4 * j)) });
            *a = _mm256_fmadd_pd(v, v, *a);
        }
    }
    let mut l = [0f64; 4];
    let sum = _mm256_add_pd(_mm256_add_pd(acc[0], acc[1]), _mm256_add_pd(acc[2], acc[3]));
    // SAFETY: `l` holds the 4 doubles written.
    unsafe { _mm256_storeu_pd(l.as_mut_ptr(), sum) };
    let mut s = (l[0] + l[2]) + (l[1] + l[3]);
    for &v in tail {
        s += (v as f64) * (v as f64);
    }
    s
}
