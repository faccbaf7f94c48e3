//! The AVX2 twins of `portable`. Same signatures and contracts; see the tests in
//! `kernels/tests/simd_vs_portable.rs` for the equality each one guarantees.

use std::arch::x86_64::*;

use crate::portable;

#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn hsum_ps(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Exact (max is order-independent), so bit-identical to the portable twin.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn absmax(x: &[f32]) -> f32 {
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut m0 = _mm256_setzero_ps();
    let mut m1 = _mm256_setzero_ps();
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        let p = c.as_ptr();
        // max_ps returns its second operand when either is NaN: NaN inputs are skipped.
        m0 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(p), abs), m0);
        m1 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(p.add(8)), abs), m1);
    }
    let m = _mm256_max_ps(m0, m1);
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), m);
    let mut r = lanes.iter().fold(0f32, |a, &b| a.max(b));
    for &v in tail {
        r = r.max(v.abs());
    }
    r
}

/// Bit-identical to the portable twin (same f32 products, round-half-even, clamp).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn quantize_row(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let scale = portable::act_scale(absmax(x));
    let n = x.len().min(q.len());
    let vs = _mm256_set1_ps(scale);
    let lo = _mm256_set1_ps(-128.0);
    let hi = _mm256_set1_ps(127.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i + 32 <= n {
        let p = x.as_ptr().add(i);
        let mut v = [_mm256_setzero_si256(); 4];
        for (j, vj) in v.iter_mut().enumerate() {
            let f = _mm256_mul_ps(_mm256_loadu_ps(p.add(8 * j)), vs);
            let f = _mm256_round_ps(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            let f = _mm256_min_ps(_mm256_max_ps(f, lo), hi);
            *vj = _mm256_cvtps_epi32(f);
            acc = _mm256_add_epi32(acc, *vj);
        }
        let p01 = _mm256_packs_epi32(v[0], v[1]);
        let p23 = _mm256_packs_epi32(v[2], v[3]);
        let b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), perm);
        _mm256_storeu_si256(q.as_mut_ptr().add(i) as *mut __m256i, b);
        i += 32;
    }
    let mut sum = hsum_epi32(acc);
    for j in i..n {
        // Not `clamp`: NaN must become -128 as in the vector part (clamp keeps NaN).
        #[allow(clippy::manual_clamp)]
        let c = (x[j] * scale).round_ties_even().max(-128.0).min(127.0) as i32;
        q[j] = c as i8;
        sum += c;
    }
    (scale, sum)
}

/// Unpacks one 32-byte I2 block into its four code planes (elements j, j+32, j+64, j+96).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn unpack(w: *const u8) -> [__m256i; 4] {
    let m3 = _mm256_set1_epi8(3);
    let b = _mm256_loadu_si256(w as *const __m256i);
    [
        _mm256_and_si256(_mm256_srli_epi16(b, 6), m3),
        _mm256_and_si256(_mm256_srli_epi16(b, 4), m3),
        _mm256_and_si256(_mm256_srli_epi16(b, 2), m3),
        _mm256_and_si256(b, m3),
    ]
}

/// Σ code·q for one block's four planes against one token, as 16 i16 partial sums.
/// Each maddubs lane is ≤ 2·2·128 = 512 in magnitude, the four-plane sum ≤ 2048.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_dot16(c: &[__m256i; 4], q: *const i8) -> __m256i {
    let l = |o: usize| _mm256_loadu_si256(q.add(o) as *const __m256i);
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
pub unsafe fn i2_dot(w: &[u8], q: &[i8]) -> i32 {
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
            let c = unpack(w.as_ptr().add(b * 32));
            acc16 = _mm256_add_epi16(acc16, block_dot16(&c, q.as_ptr().add(b * 128)));
            b += 1;
        }
        acc32 = _mm256_add_epi32(acc32, _mm256_madd_epi16(acc16, ones));
    }
    hsum_epi32(acc32)
}

/// Decode's mat-vec (`portable::i2_matvec`) through [`i2_rows4`]. Exact.
#[target_feature(enable = "avx2")]
pub unsafe fn i2_matvec(w: &[u8], row_bytes: usize, q: &[i8], dots: &mut [i32]) {
    i2_matvec_by_quarters!(w, row_bytes, q, dots, i2_rows4, i2_dot)
}

/// Four weight rows against one token, read side by side. Exact.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn i2_rows4(w: [&[u8]; 4], q: &[i8]) -> [i32; 4] {
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
                let c = unpack(w[r].as_ptr().add(b * 32));
                acc16[r] = _mm256_add_epi16(acc16[r], block_dot16(&c, q.as_ptr().add(b * 128)));
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
pub unsafe fn i2_tile(w: [&[u8]; 2], q: [&[i8]; 8]) -> [[i32; 8]; 2] {
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
unsafe fn i2_rows2x4(w: [&[u8]; 2], q: [&[i8]; 4]) -> [[i32; 4]; 2] {
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
            let raw = w.map(|r| _mm256_loadu_si256(r.as_ptr().add(b * 32) as *const __m256i));
            // Plane j holds bits 7-2j..6-2j of each byte (docs/formats/i2s.md, 'Packing layouts':
            // code of element 32j + i).
            macro_rules! plane {
                ($j:literal, $shift:literal) => {{
                    let c = raw.map(|v| _mm256_and_si256(_mm256_srli_epi16(v, $shift), m3));
                    for t in 0..4 {
                        let qv = _mm256_loadu_si256(
                            q[t].as_ptr().add(b * 128 + 32 * $j) as *const __m256i
                        );
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
pub unsafe fn i2_dot4(w: &[u8], q: [&[i8]; 4]) -> [i32; 4] {
    let nb = q.iter().fold(w.len() / 32, |n, r| n.min(r.len() / 128));
    let ones = _mm256_set1_epi16(1);
    let mut acc32 = [_mm256_setzero_si256(); 4];
    let mut b = 0;
    while b < nb {
        let end = (b + FLUSH_BLOCKS).min(nb);
        let mut acc16 = [_mm256_setzero_si256(); 4];
        while b < end {
            let c = unpack(w.as_ptr().add(b * 32));
            for t in 0..4 {
                acc16[t] = _mm256_add_epi16(acc16[t], block_dot16(&c, q[t].as_ptr().add(b * 128)));
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

/// Generic 8-wide dot with a loader converting 8 weights to f32; four accumulators.
macro_rules! dot8 {
    ($w:expr, $x:expr, $n:expr, $step:expr, $load:expr, $scalar:expr) => {{
        let (w, x, n) = ($w, $x, $n);
        let mut a = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            // Weights stream from memory (the output head is the largest matrix): fetch ahead
            // of the out-of-order window; a prefetch past the end never faults.
            _mm_prefetch::<_MM_HINT_T0>(
                w.as_ptr().wrapping_add(i * $step + PREFETCH_AHEAD) as *const i8
            );
            for j in 0..4 {
                let wv = $load(w.as_ptr().add((i + 8 * j) * $step));
                a[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x.as_ptr().add(i + 8 * j)), a[j]);
            }
            i += 32;
        }
        dot8_finish!(&mut a, w, x, i, n, $step, $load, $scalar)
    }};
}

/// The end every [`dot8`] variant shares, so that they give the same bits: the remaining
/// 8-element steps into the first accumulator, the four accumulators summed, the scalar
/// tail.
macro_rules! dot8_finish {
    ($a:expr, $w:expr, $x:expr, $i:expr, $n:expr, $step:expr, $load:expr, $scalar:expr) => {{
        let (a, w, x, n, mut i): (&mut [__m256; 4], _, &[f32], usize, usize) = ($a, $w, $x, $n, $i);
        while i + 8 <= n {
            let wv = $load(w.as_ptr().add(i * $step));
            a[0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x.as_ptr().add(i)), a[0]);
            i += 8;
        }
        let mut s = hsum_ps(_mm256_add_ps(
            _mm256_add_ps(a[0], a[1]),
            _mm256_add_ps(a[2], a[3]),
        ));
        while i < n {
            s += $scalar(w, i) * x[i];
            i += 1;
        }
        s
    }};
}

/// [`dot8`] over four rows side by side against one `x`: each row keeps its own four
/// accumulators and the same operations in the same order, so `result[r]` is bit-identical
/// to the one-row dot of row `r`. Reading four rows at once lets a caller stream from four
/// places (faster from DRAM than one stream); the x loads are shared.
macro_rules! dot8_rows4 {
    ($w:expr, $x:expr, $step:expr, $load:expr, $scalar:expr) => {{
        let (w, x): ([&[u8]; 4], &[f32]) = ($w, $x);
        let n = w.iter().fold(x.len(), |n, r| n.min(r.len() / $step));
        let mut a = [[_mm256_setzero_ps(); 4]; 4];
        let mut i = 0;
        while i + 32 <= n {
            for r in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>(
                    w[r].as_ptr().wrapping_add(i * $step + PREFETCH_AHEAD_ROWS4) as *const i8,
                );
            }
            for j in 0..4 {
                let xv = _mm256_loadu_ps(x.as_ptr().add(i + 8 * j));
                for r in 0..4 {
                    let wv = $load(w[r].as_ptr().add((i + 8 * j) * $step));
                    a[r][j] = _mm256_fmadd_ps(wv, xv, a[r][j]);
                }
            }
            i += 32;
        }
        let body = i;
        let mut out = [0f32; 4];
        for r in 0..4 {
            out[r] = dot8_finish!(&mut a[r], w[r], x, body, n, $step, $load, $scalar);
        }
        out
    }};
}

/// How the F16 and BF16 weights become f32 (shared by the one-row and four-row dots).
#[inline]
#[target_feature(enable = "avx,f16c")]
pub(super) unsafe fn load_f16x8(p: *const u8) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
}
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_bf16x8(p: *const u8) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i)),
        16,
    ))
}
pub(super) fn f16_at(w: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32()
}
fn bf16_at(w: &[u8], i: usize) -> f32 {
    half::bf16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32()
}

/// Four F16 rows against one `x`; `result[r] == dot_f16(w[r], x)` bit for bit.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_f16_rows4(w: [&[u8]; 4], x: &[f32]) -> [f32; 4] {
    dot8_rows4!(w, x, 2, |p| load_f16x8(p), f16_at)
}

/// [`dot_f16_rows4`] compiled with AVX-512VL, whose 32 vector registers hold the sixteen
/// accumulators without spilling. The same ymm instructions (EVEX-encoded), so the same bits.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
pub unsafe fn dot_f16_rows4_evex(w: [&[u8]; 4], x: &[f32]) -> [f32; 4] {
    dot8_rows4!(w, x, 2, |p| load_f16x8(p), f16_at)
}

/// Four BF16 rows against one `x`; `result[r] == dot_bf16(w[r], x)` bit for bit.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_bf16_rows4(w: [&[u8]; 4], x: &[f32]) -> [f32; 4] {
    dot8_rows4!(w, x, 2, |p| load_bf16x8(p), bf16_at)
}

/// [`dot_bf16_rows4`] with AVX-512VL's 32 registers (see [`dot_f16_rows4_evex`]).
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
pub unsafe fn dot_bf16_rows4_evex(w: [&[u8]; 4], x: &[f32]) -> [f32; 4] {
    dot8_rows4!(w, x, 2, |p| load_bf16x8(p), bf16_at)
}

#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    dot8!(
        a,
        b,
        n,
        1,
        |p: *const f32| _mm256_loadu_ps(p),
        |w: &[f32], i: usize| w[i]
    )
}

/// [`dot8`] of `R` f32 rows against `T` activation rows at once, every pair with its own
/// four accumulators and [`dot8`]'s operations in its order, so `out[r][t]` is bit-identical
/// to `dot_f32(rows[r], xs[t])`; each load now feeds several FMAs (a prompt's output head).
macro_rules! dot8_tile {
    ($rows:expr, $xs:expr, $r_n:literal, $t_n:literal) => {{
        let (rows, xs): ([&[f32]; $r_n], [&[f32]; $t_n]) = ($rows, $xs);
        let n = rows
            .iter()
            .chain(&xs)
            .fold(usize::MAX, |n, v| n.min(v.len()));
        let mut a = [[[_mm256_setzero_ps(); 4]; $t_n]; $r_n];
        let mut i = 0;
        while i + 32 <= n {
            for j in 0..4 {
                let xv: [__m256; $t_n] =
                    std::array::from_fn(|t| _mm256_loadu_ps(xs[t].as_ptr().add(i + 8 * j)));
                for r in 0..$r_n {
                    let wv = _mm256_loadu_ps(rows[r].as_ptr().add(i + 8 * j));
                    for t in 0..$t_n {
                        a[r][t][j] = _mm256_fmadd_ps(wv, xv[t], a[r][t][j]);
                    }
                }
            }
            i += 32;
        }
        let body = i;
        let mut out = [[0f32; $t_n]; $r_n];
        for r in 0..$r_n {
            for t in 0..$t_n {
                out[r][t] = dot8_finish!(
                    &mut a[r][t],
                    rows[r],
                    xs[t],
                    body,
                    n,
                    1,
                    |p: *const f32| _mm256_loadu_ps(p),
                    |w: &[f32], i: usize| w[i]
                );
            }
        }
        out
    }};
}

/// Two rows × three tokens of [`dot_f32`]: one row at a time, whose twelve accumulators fit
/// AVX2's sixteen registers.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_f32_tile(rows: [&[f32]; 2], xs: [&[f32]; 3]) -> [[f32; 3]; 2] {
    [
        dot8_tile!([rows[0]], xs, 1, 3)[0],
        dot8_tile!([rows[1]], xs, 1, 3)[0],
    ]
}

/// [`dot_f32_tile`] with both rows at once in AVX-512VL's 32 registers (24 accumulators).
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
pub unsafe fn dot_f32_tile_evex(rows: [&[f32]; 2], xs: [&[f32]; 3]) -> [[f32; 3]; 2] {
    dot8_tile!(rows, xs, 2, 3)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
    let n = (w.len() / 2).min(x.len());
    dot8!(w, x, n, 2, |p| load_f16x8(p), f16_at)
}

#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_bf16(w: &[u8], x: &[f32]) -> f32 {
    let n = (w.len() / 2).min(x.len());
    dot8!(w, x, n, 2, |p| load_bf16x8(p), bf16_at)
}

#[target_feature(enable = "avx2,fma")]
pub unsafe fn sum_sq(x: &[f32]) -> f64 {
    // Four chains of f64 FMAs, 16 values a step: with two, the FMA latency bounded it.
    let mut acc = [_mm256_setzero_pd(); 4];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (j, a) in acc.iter_mut().enumerate() {
            let v = _mm256_cvtps_pd(_mm_loadu_ps(c.as_ptr().add(4 * j)));
            *a = _mm256_fmadd_pd(v, v, *a);
        }
    }
    let mut l = [0f64; 4];
    _mm256_storeu_pd(
        l.as_mut_ptr(),
        _mm256_add_pd(_mm256_add_pd(acc[0], acc[1]), _mm256_add_pd(acc[2], acc[3])),
    );
    let mut s = (l[0] + l[2]) + (l[1] + l[3]);
    for &v in tail {
        s += (v as f64) * (v as f64);
    }
    s
}

/// Bit-identical: `(x * s) * w` without fusing, as the portable twin.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn scale_mul(x: &[f32], w: &[f32], s: f32, out: &mut [f32]) {
    let n = x.len().min(w.len()).min(out.len());
    let vs = _mm256_set1_ps(s);
    let mut i = 0;
    while i + 8 <= n {
        let v = _mm256_mul_ps(
            _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i)), vs),
            _mm256_loadu_ps(w.as_ptr().add(i)),
        );
        _mm256_storeu_ps(out.as_mut_ptr().add(i), v);
        i += 8;
    }
    for j in i..n {
        out[j] = x[j] * s * w[j];
    }
}

/// Bit-identical: `y + a * x` without fusing.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let va = _mm256_set1_ps(a);
    let mut i = 0;
    while i + 8 <= n {
        let p = y.as_mut_ptr().add(i);
        _mm256_storeu_ps(
            p,
            _mm256_add_ps(
                _mm256_loadu_ps(p),
                _mm256_mul_ps(va, _mm256_loadu_ps(x.as_ptr().add(i))),
            ),
        );
        i += 8;
    }
    for j in i..n {
        y[j] += a * x[j];
    }
}

/// Exact conversion, bit-identical.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn f16_to_f32(src: &[u8], out: &mut [f32]) {
    let n = (src.len() / 2).min(out.len());
    let mut i = 0;
    while i + 8 <= n {
        let v = _mm256_cvtph_ps(_mm_loadu_si128(src.as_ptr().add(2 * i) as *const __m128i));
        _mm256_storeu_ps(out.as_mut_ptr().add(i), v);
        i += 8;
    }
    for j in i..n {
        out[j] = half::f16::from_le_bytes([src[2 * j], src[2 * j + 1]]).to_f32();
    }
}

/// f32 → f16 with `vcvtps2ph`, round to nearest even: bit-identical to the portable twin.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn f32_to_f16(src: &[f32], out: &mut [u8]) {
    let n = src.len().min(out.len() / 2);
    let mut i = 0;
    while i + 8 <= n {
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(src.as_ptr().add(i)));
        _mm_storeu_si128(out.as_mut_ptr().add(2 * i) as *mut __m128i, h);
        i += 8;
    }
    crate::portable::f32_to_f16(&src[i..n], &mut out[2 * i..2 * n]);
}
