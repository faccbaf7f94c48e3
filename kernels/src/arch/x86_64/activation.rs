//! Vectorised `exp` and the SiLU gate built on it (AVX2 + FMA).
//!
//! Decode of a SiLU model spent as long in scalar `expf` over the FFN width (13–14 µs per
//! layer on the large shape) as in all other serial work of the layer together; eight
//! lanes at a time it takes less than half of that.

use std::arch::x86_64::*;

use crate::arch::exp_consts::{LN2_HI, LN2_LO, P, X_MAX, X_MIN, X_OVERFLOW};

/// `e^x` on eight lanes, within 2 ulp of libm's `expf` (1 seen) over the whole f32
/// range: `+inf` above ln(f32::MAX), subnormal results computed, 0 below, NaN kept.
///
/// `x = n·ln2 + r` with `|r| ≤ ln2/2` (ln 2 split in a short high part and a correction,
/// so `n·ln2_hi` is exact), `e^r` by a degree-6 polynomial, and `2^n` applied in two
/// halves so that both factors stay normal for every `n` in −150..=128.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) fn exp_ps(x: __m256) -> __m256 {
    let xc = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(X_MIN)),
        _mm256_set1_ps(X_MAX),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        xc,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(P[0]);
    for c in &P[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
    }
    let r2 = _mm256_mul_ps(r, r);
    let p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
    // 2^n as 2^(n/2) · 2^(n − n/2): each half is in −75..=64, a normal float.
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(ni);
    let n2 = _mm256_sub_epi32(ni, n1);
    let y = _mm256_mul_ps(_mm256_mul_ps(p, pow2(n1)), pow2(n2));
    // Above ln(f32::MAX) the clamp would give a finite value; the exact answer is +inf.
    let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(X_OVERFLOW));
    let y = _mm256_blendv_ps(y, _mm256_set1_ps(f32::INFINITY), over);
    // NaN in, NaN out (the clamps above would have replaced it).
    let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
    _mm256_blendv_ps(y, x, nan)
}

/// `2^k` for `k` in −126..=127.
#[inline]
#[target_feature(enable = "avx2")]
fn pow2(k: __m256i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        k,
        _mm256_set1_epi32(127),
    )))
}

/// `gate = silu(gate) · up`, computed as `g / (1 + e^−g) · u` like the portable twin; only
/// `e^−g` differs (see [`exp_ps`]), so each result is within a few ulp of it.
#[target_feature(enable = "avx2,fma")]
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let one = _mm256_set1_ps(1.0);
    let sign = _mm256_set1_ps(-0.0);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 ≤ n ≤ both lengths: the loads and the store touch `i..i + 8` only.
        unsafe {
            let p = gate.as_mut_ptr().add(i);
            let g = _mm256_loadu_ps(p);
            let e = exp_ps(_mm256_xor_ps(g, sign));
            let s = _mm256_div_ps(g, _mm256_add_ps(one, e));
            _mm256_storeu_ps(p, _mm256_mul_ps(s, _mm256_loadu_ps(up.as_ptr().add(i))));
        }
        i += 8;
    }
    crate::portable::silu_mul(&mut gate[i..n], &up[i..n]);
}

/// `x = e^(x − shift)` by [`exp_ps`]; the sum is accumulated in f64 four lanes at a time,
/// so it differs from the portable twin's in-order sum only by the reordering.
#[target_feature(enable = "avx2,fma")]
pub fn exp_shifted(x: &mut [f32], shift: f32) -> f64 {
    let n = x.len();
    let vs = _mm256_set1_ps(shift);
    let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 ≤ n: the load and the store touch `x[i..i + 8]` only.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            let e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(p), vs));
            _mm256_storeu_ps(p, e);
            lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
            hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)));
        }
        i += 8;
    }
    let mut lanes = [0f64; 4];
    // SAFETY: `lanes` holds the 4 doubles written.
    unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), _mm256_add_pd(lo, hi)) };
    let sum = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
    sum + crate::portable::exp_shifted(&mut x[i..], shift)
}

/// [`exp_ps`] on sixteen lanes: the same operations lane for lane, so the same bits.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_ps512(x: __m512) -> __m512 {
    let xc = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(X_MIN)),
        _mm512_set1_ps(X_MAX),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(xc, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), xc);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(P[0]);
    for c in &P[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(*c));
    }
    let r2 = _mm512_mul_ps(r, r);
    let p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0)));
    let ni = _mm512_cvtps_epi32(n);
    let n1 = _mm512_srai_epi32::<1>(ni);
    let n2 = _mm512_sub_epi32(ni, n1);
    let pow2 = |k: __m512i| {
        _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            k,
            _mm512_set1_epi32(127),
        )))
    };
    let y = _mm512_mul_ps(_mm512_mul_ps(p, pow2(n1)), pow2(n2));
    let over = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(X_OVERFLOW));
    let y = _mm512_mask_blend_ps(over, y, _mm512_set1_ps(f32::INFINITY));
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
    _mm512_mask_blend_ps(nan, y, x)
}

/// [`silu_mul`] sixteen lanes at a time (half the instructions per value; decode of a SiLU
/// model runs it serially over the FFN width in every layer). Bit-identical to the AVX2
/// kernel, the tail included.
#[target_feature(enable = "avx512f,avx2,fma")]
pub fn silu_mul_avx512(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let one = _mm512_set1_ps(1.0);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 ≤ n ≤ both lengths: the loads and the store touch `i..i + 16` only.
        unsafe {
            let p = gate.as_mut_ptr().add(i);
            let g = _mm512_loadu_ps(p);
            let e = exp_ps512(_mm512_castsi512_ps(_mm512_xor_si512(
                _mm512_castps_si512(g),
                _mm512_set1_epi32(i32::MIN),
            )));
            let s = _mm512_div_ps(g, _mm512_add_ps(one, e));
            _mm512_storeu_ps(p, _mm512_mul_ps(s, _mm512_loadu_ps(up.as_ptr().add(i))));
        }
        i += 16;
    }
    silu_mul(&mut gate[i..n], &up[i..n]);
}

/// [`exp_shifted`] sixteen lanes at a time; the values are the AVX2 kernel's bits, the f64
/// sum differs from it only by the reordering.
#[target_feature(enable = "avx512f,avx2,fma")]
pub fn exp_shifted_avx512(x: &mut [f32], shift: f32) -> f64 {
    let n = x.len();
    let vs = _mm512_set1_ps(shift);
    let (mut lo, mut hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 ≤ n: the load and the store touch `x[i..i + 16]` only.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            let e = exp_ps512(_mm512_sub_ps(_mm512_loadu_ps(p), vs));
            _mm512_storeu_ps(p, e);
            lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
            hi = _mm512_add_pd(
                hi,
                _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                    _mm512_castps_pd(e),
                ))),
            );
        }
        i += 16;
    }
    _mm512_reduce_add_pd(_mm512_add_pd(lo, hi)) + exp_shifted(&mut x[i..], shift)
}
