//! AVX2 attention kernels: a query head's scores over the cached keys and the weighted sum
//! of the values, on f32 rows and on f16 rows (an f16 KV cache, widened as it is loaded).
//! One body per kernel serves both row types through its loaders.

// Index loops walk several arrays (rows, planes, lanes) in lockstep.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::simd::{f16_at, hsum_ps, load_f16x8};

/// How far ahead of the row being read the kernels prefetch. A head's keys (and its values)
/// are one run of memory, read from DRAM at every decoded token once the cache outgrows L2,
/// and the hardware streamer stops at every 4 KiB page: decode at depth 512 on the large
/// shape spent 12 % (f32 cache) and 18 % (f16) less time in attention with it. 4 KiB ahead
/// was no better than 2.
const PREFETCH_BYTES: usize = 2048;

/// A closure that prefetches row `p + ahead` of `d` elements of `elem` bytes at `base`, rows
/// `stride` elements apart. The address may lie past the end of the rows: a prefetch never
/// faults, and the pointer is never read.
#[inline(always)]
fn row_prefetcher(base: *const u8, stride: usize, d: usize, elem: usize) -> impl Fn(usize) {
    let row_bytes = stride * elem;
    let ahead = (PREFETCH_BYTES / row_bytes.max(1)).max(1);
    move |p| {
        let start = base.wrapping_add((p + ahead) * row_bytes);
        let mut o = 0;
        while o < d * elem {
            // SAFETY: SSE is part of every x86-64 CPU, and a prefetch never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(o) as *const i8) };
            o += 64;
        }
    }
}

/// Attention scores: four keys at a time share each load of `q`, and their four sums are
/// reduced together. Within dot_f32's bound of the portable loop.
#[target_feature(enable = "avx2,fma")]
pub fn dot_rows_f32(q: &[f32], rows: &[f32], stride: usize, out: &mut [f32], cold: bool) {
    if let Some(last) = out.len().checked_sub(1) {
        assert!(
            rows.len() >= last * stride + q.len(),
            "dot_rows_f32: rows too short"
        );
    }
    let rp = rows.as_ptr();
    // SAFETY: the loaders are called only by the `*_rows_with` bodies, with indices whose
    // reads end inside `rows` (asserted above); this function enables AVX.
    let (ld8, at) = (
        |at| unsafe { _mm256_loadu_ps(rp.add(at)) },
        |at| unsafe { *rp.add(at) },
    );
    // SAFETY: this function enables AVX2 and FMA, all the body needs, and asserted that
    // every row the body reads lies inside `rows`.
    unsafe {
        if cold {
            let prefetch = row_prefetcher(rp as *const u8, stride, q.len(), 4);
            dot_rows_with(q, stride, out, ld8, at, prefetch);
        } else {
            dot_rows_with(q, stride, out, ld8, at, |_| {});
        }
    }
}

/// [`dot_rows_f32`] on little-endian f16 rows, widened by `vcvtph2ps` as they are loaded.
#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_rows_f16(q: &[f32], rows: &[u8], stride: usize, out: &mut [f32], cold: bool) {
    if let Some(last) = out.len().checked_sub(1) {
        assert!(
            rows.len() >= 2 * (last * stride + q.len()),
            "dot_rows_f16: rows too short"
        );
    }
    let rp = rows.as_ptr();
    // SAFETY: the loader is called only by the `*_rows_with` bodies, with indices whose
    // reads end inside `rows` (asserted above); this function enables F16C.
    let (ld8, at) = (
        |at| unsafe { load_f16x8(rp.add(2 * at)) },
        |at| f16_at(rows, at),
    );
    // SAFETY: this function enables AVX2 and FMA, all the body needs, and asserted that
    // every row the body reads lies inside `rows`.
    unsafe {
        if cold {
            dot_rows_with(
                q,
                stride,
                out,
                ld8,
                at,
                row_prefetcher(rp, stride, q.len(), 2),
            );
        } else {
            dot_rows_with(q, stride, out, ld8, at, |_| {});
        }
    }
}

/// The body of the `dot_rows_*` kernels: row `p`'s element `i` is `ld8(p·stride + i)` (eight
/// lanes) or `at(p·stride + i)` (one), and `prefetch(p)` fetches a row ahead of `p`; the
/// caller checked the bounds.
///
/// # Safety
/// The CPU has AVX2 and FMA, and `ld8` and `at` may be called with any index below
/// `(out.len() − 1)·stride + q.len()`.
#[inline(always)]
unsafe fn dot_rows_with(
    q: &[f32],
    stride: usize,
    out: &mut [f32],
    ld8: impl Fn(usize) -> __m256,
    at: impl Fn(usize) -> f32,
    prefetch: impl Fn(usize),
) {
    // SAFETY: the caller guarantees AVX2 and FMA, and that `ld8` and `at` read inside the
    // rows for every index below `(n − 1)·stride + d` (this function's contract).
    unsafe {
        let (d, n) = (q.len(), out.len());
        let d8 = d / 8 * 8;
        let qp = q.as_ptr();
        let mut p = 0;
        while p + 4 <= n {
            for r in 0..4 {
                prefetch(p + r);
            }
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
}

/// `B` × 8 outputs kept in registers over every row: one load and store of `out` per call
/// instead of one per row. The same unfused multiply-then-add per step as `axpy`, so
/// bit-identical to the portable loop. Row `p`'s eight values at output column `8j` are
/// `ld8(p·stride + 8j)`; `prefetch(p)`, when given, fetches a row ahead of `p`.
///
/// # Safety
/// The CPU has AVX2, `op` is valid for `B`·8 floats, and `ld8` may be called with any
/// index below `(w.len() − 1)·stride + 8·B`.
#[inline(always)]
unsafe fn mix_block<const B: usize>(
    w: &[f32],
    stride: usize,
    op: *mut f32,
    ld8: impl Fn(usize) -> __m256,
    prefetch: Option<&impl Fn(usize)>,
) {
    // SAFETY: the caller guarantees AVX2, `B`·8 floats at `op`, and loads inside the
    // rows (this function's contract).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); B];
        for (j, a) in acc.iter_mut().enumerate() {
            *a = _mm256_loadu_ps(op.add(8 * j));
        }
        for (p, &wp) in w.iter().enumerate() {
            if let Some(prefetch) = prefetch {
                prefetch(p);
            }
            let wv = _mm256_set1_ps(wp);
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_ps(*a, _mm256_mul_ps(wv, ld8(p * stride + 8 * j)));
            }
        }
        for (j, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(op.add(8 * j), *a);
        }
    }
}

/// The body of the `mix_rows_*` kernels, with loaders and prefetcher as in
/// [`dot_rows_with`] (`None`: the rows are in cache). Only the first pass over the rows
/// prefetches: the later column blocks find the rows in cache.
///
/// # Safety
/// The CPU has AVX2, and `ld8` and `at` may be called with any index below
/// `(w.len() − 1)·stride + out.len()`.
#[inline(always)]
unsafe fn mix_rows_with(
    w: &[f32],
    stride: usize,
    out: &mut [f32],
    ld8: impl Fn(usize) -> __m256 + Copy,
    at: impl Fn(usize) -> f32,
    prefetch: Option<impl Fn(usize)>,
) {
    // SAFETY: the caller guarantees AVX2 and loads inside the rows (this function's
    // contract); each block writes `out[i..i + 8·B]` with `i + 8·B ≤ d`.
    unsafe {
        let d = out.len();
        let op = out.as_mut_ptr();
        let mut i = 0;
        while i + 8 <= d {
            let blocks = (d - i) / 8;
            let ld = |x: usize| ld8(x + i);
            let pf = prefetch.as_ref().filter(|_| i == 0);
            match blocks {
                1 => mix_block::<1>(w, stride, op.add(i), ld, pf),
                2 => mix_block::<2>(w, stride, op.add(i), ld, pf),
                3 => mix_block::<3>(w, stride, op.add(i), ld, pf),
                4 => mix_block::<4>(w, stride, op.add(i), ld, pf),
                5 => mix_block::<5>(w, stride, op.add(i), ld, pf),
                6 => mix_block::<6>(w, stride, op.add(i), ld, pf),
                7 => mix_block::<7>(w, stride, op.add(i), ld, pf),
                _ => mix_block::<8>(w, stride, op.add(i), ld, pf),
            }
            i += 8 * blocks.min(8);
        }
        for j in i..d {
            for (p, &wp) in w.iter().enumerate() {
                out[j] += wp * at(p * stride + j);
            }
        }
    }
}

#[target_feature(enable = "avx2,fma")]
pub fn mix_rows_f32(w: &[f32], rows: &[f32], stride: usize, out: &mut [f32], cold: bool) {
    if let Some(last) = w.len().checked_sub(1) {
        assert!(
            rows.len() >= last * stride + out.len(),
            "mix_rows_f32: rows too short"
        );
    }
    let rp = rows.as_ptr();
    // SAFETY: the loaders are called only by the `*_rows_with` bodies, with indices whose
    // reads end inside `rows` (asserted above); this function enables AVX.
    let (ld8, at) = (
        |at| unsafe { _mm256_loadu_ps(rp.add(at)) },
        |at| unsafe { *rp.add(at) },
    );
    // SAFETY: this function enables AVX2 and FMA, all the body needs, and asserted that
    // every row the body reads lies inside `rows`.
    unsafe {
        if cold {
            let prefetch = row_prefetcher(rp as *const u8, stride, out.len(), 4);
            mix_rows_with(w, stride, out, ld8, at, Some(prefetch));
        } else {
            mix_rows_with(w, stride, out, ld8, at, None::<fn(usize)>);
        }
    }
}

/// [`mix_rows_f32`] on little-endian f16 rows (exact widening, then the same steps).
#[target_feature(enable = "avx2,fma,f16c")]
pub fn mix_rows_f16(w: &[f32], rows: &[u8], stride: usize, out: &mut [f32], cold: bool) {
    if let Some(last) = w.len().checked_sub(1) {
        assert!(
            rows.len() >= 2 * (last * stride + out.len()),
            "mix_rows_f16: rows too short"
        );
    }
    let rp = rows.as_ptr();
    // SAFETY: the loader is called only by the `*_rows_with` bodies, with indices whose
    // reads end inside `rows` (asserted above); this function enables F16C.
    let (ld8, at) = (
        |at| unsafe { load_f16x8(rp.add(2 * at)) },
        |at| f16_at(rows, at),
    );
    // SAFETY: this function enables AVX2 and FMA, all the body needs, and asserted that
    // every row the body reads lies inside `rows`.
    unsafe {
        if cold {
            let prefetch = row_prefetcher(rp, stride, out.len(), 2);
            mix_rows_with(w, stride, out, ld8, at, Some(prefetch));
        } else {
            mix_rows_with(w, stride, out, ld8, at, None::<fn(usize)>);
        }
    }
}
