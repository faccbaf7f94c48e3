//! AVX2 attention kernels: a query head's scores over the cached keys and the weighted sum
//! of the values, on f32 rows and on f16 rows (an f16 KV cache, widened as it is loaded).
//! One body per kernel serves both row types through its loaders.

// Index loops walk several arrays (rows, planes, lanes) in lockstep.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::simd::{f16_at, hsum_ps, load_f16x8};

/// Attention scores: four keys at a time share each load of `q`, and their four sums are
/// reduced together. Within dot_f32's bound of the portable loop.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_rows_f32(q: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    if let Some(last) = out.len().checked_sub(1) {
        assert!(
            rows.len() >= last * stride + q.len(),
            "dot_rows_f32: rows too short"
        );
    }
    let rp = rows.as_ptr();
    dot_rows_with(
        q,
        stride,
        out,
        |at| _mm256_loadu_ps(rp.add(at)),
        |at| *rp.add(at),
    );
}

/// [`dot_rows_f32`] on little-endian f16 rows, widened by `vcvtph2ps` as they are loaded.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_rows_f16(q: &[f32], rows: &[u8], stride: usize, out: &mut [f32]) {
    if let Some(last) = out.len().checked_sub(1) {
        assert!(
            rows.len() >= 2 * (last * stride + q.len()),
            "dot_rows_f16: rows too short"
        );
    }
    let rp = rows.as_ptr();
    dot_rows_with(
        q,
        stride,
        out,
        |at| load_f16x8(rp.add(2 * at)),
        |at| f16_at(rows, at),
    );
}

/// The body of the `dot_rows_*` kernels: row `p`'s element `i` is `ld8(p·stride + i)` (eight
/// lanes) or `at(p·stride + i)` (one); the caller checked the bounds.
#[inline(always)]
unsafe fn dot_rows_with(
    q: &[f32],
    stride: usize,
    out: &mut [f32],
    ld8: impl Fn(usize) -> __m256,
    at: impl Fn(usize) -> f32,
) {
    let (d, n) = (q.len(), out.len());
    let d8 = d / 8 * 8;
    let qp = q.as_ptr();
    let mut p = 0;
    while p + 4 <= n {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i < d8 {
            let qv = _mm256_loadu_ps(qp.add(i));
            for (r, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(qv, ld8((p + r) * stride + i), *a);
            }
            i += 8;
        }
        // [a b c d] sums: two rounds of hadd within 128-bit lanes, then the lanes added.
        let s = _mm256_hadd_ps(
            _mm256_hadd_ps(acc[0], acc[1]),
            _mm256_hadd_ps(acc[2], acc[3]),
        );
        let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
        let mut v = [0f32; 4];
        _mm_storeu_ps(v.as_mut_ptr(), s);
        for (r, mut t) in v.into_iter().enumerate() {
            for j in d8..d {
                t += q[j] * at((p + r) * stride + j);
            }
            out[p + r] = t;
        }
        p += 4;
    }
    for p in p..n {
        let mut a = _mm256_setzero_ps();
        let mut i = 0;
        while i < d8 {
            a = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(i)), ld8(p * stride + i), a);
            i += 8;
        }
        let mut t = hsum_ps(a);
        for j in d8..d {
            t += q[j] * at(p * stride + j);
        }
        out[p] = t;
    }
}

/// `B` × 8 outputs kept in registers over every row: one load and store of `out` per call
/// instead of one per row. The same unfused multiply-then-add per step as `axpy`, so
/// bit-identical to the portable loop. Row `p`'s eight values at output column `8j` are
/// `ld8(p·stride + 8j)`.
#[inline(always)]
unsafe fn mix_block<const B: usize>(
    w: &[f32],
    stride: usize,
    op: *mut f32,
    ld8: impl Fn(usize) -> __m256,
) {
    let mut acc = [_mm256_setzero_ps(); B];
    for (j, a) in acc.iter_mut().enumerate() {
        *a = _mm256_loadu_ps(op.add(8 * j));
    }
    for (p, &wp) in w.iter().enumerate() {
        let wv = _mm256_set1_ps(wp);
        for (j, a) in acc.iter_mut().enumerate() {
            *a = _mm256_add_ps(*a, _mm256_mul_ps(wv, ld8(p * stride + 8 * j)));
        }
    }
    for (j, a) in acc.iter().enumerate() {
        _mm256_storeu_ps(op.add(8 * j), *a);
    }
}

/// The body of the `mix_rows_*` kernels, with loaders as in [`dot_rows_with`].
#[inline(always)]
unsafe fn mix_rows_with(
    w: &[f32],
    stride: usize,
    out: &mut [f32],
    ld8: impl Fn(usize) -> __m256 + Copy,
    at: impl Fn(usize) -> f32,
) {
    let d = out.len();
    let op = out.as_mut_ptr();
    let mut i = 0;
    while i + 8 <= d {
        let blocks = (d - i) / 8;
        let ld = |x: usize| ld8(x + i);
        match blocks {
            1 => mix_block::<1>(w, stride, op.add(i), ld),
            2 => mix_block::<2>(w, stride, op.add(i), ld),
            3 => mix_block::<3>(w, stride, op.add(i), ld),
            4 => mix_block::<4>(w, stride, op.add(i), ld),
            5 => mix_block::<5>(w, stride, op.add(i), ld),
            6 => mix_block::<6>(w, stride, op.add(i), ld),
            7 => mix_block::<7>(w, stride, op.add(i), ld),
            _ => mix_block::<8>(w, stride, op.add(i), ld),
        }
        i += 8 * blocks.min(8);
    }
    for j in i..d {
        for (p, &wp) in w.iter().enumerate() {
            out[j] += wp * at(p * stride + j);
        }
    }
}

#[target_feature(enable = "avx2,fma")]
pub unsafe fn mix_rows_f32(w: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    if let Some(last) = w.len().checked_sub(1) {
        assert!(
            rows.len() >= last * stride + out.len(),
            "mix_rows_f32: rows too short"
        );
    }
    let rp = rows.as_ptr();
    mix_rows_with(
        w,
        stride,
        out,
        |at| _mm256_loadu_ps(rp.add(at)),
        |at| *rp.add(at),
    );
}

/// [`mix_rows_f32`] on little-endian f16 rows (exact widening, then the same steps).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn mix_rows_f16(w: &[f32], rows: &[u8], stride: usize, out: &mut [f32]) {
    if let Some(last) = w.len().checked_sub(1) {
        assert!(
            rows.len() >= 2 * (last * stride + out.len()),
            "mix_rows_f16: rows too short"
        );
    }
    let rp = rows.as_ptr();
    mix_rows_with(
        w,
        stride,
        out,
        |at| load_f16x8(rp.add(2 * at)),
        |at| f16_at(rows, at),
    );
}
