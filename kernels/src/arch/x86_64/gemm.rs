//! AVX2 prefill GEMM: 32 weight rows × every token of a prompt, for CPUs without VNNI.
//!
//! On AVX2 a ternary dot costs one `vpmaddubsw` and one `vpaddw` per 32 products, and on
//! Zen 3 the two compete for three vector-integer pipes (measured: ~1.5 pairs per cycle at
//! best, against 2 `vpmaddubsw` alone), so every other vector op in the inner loop costs
//! throughput directly. The tiles of `simd` unpack the 2-bit codes inside the loop (two
//! ops per code vector, shared by only four tokens) and read each token's activations
//! from L2 for every pair of rows. Here the 32 rows are unpacked once per call to one byte
//! per code (as for AMX), and a 4-row × 2-token micro-kernel holds four code vectors and
//! two activation vectors in registers, so its loop is loads, `vpmaddubsw` and `vpaddw`
//! only. Columns go in chunks (`portable::gemm_chunk_len`, ≤ 2048) so that a chunk of every
//! token's activations stays in L2 while all eight row quads pass over it, and i16 sums
//! never overflow; each chunk's sums are widened into i32 accumulators in memory.

use std::arch::x86_64::*;

use super::simd::unpack;
use crate::portable::GEMM_ROWS as ROWS;

/// Token pairs per pass of the eight row quads over a chunk: 128 tokens × ≤ 2048 columns is
/// ≤ 256 KiB of activations, half of Zen 3's L2 (a 512-token prompt's whole chunk did not
/// fit: 104 against 122 GMAC/s per core at 128 tokens, one thread, same run).
const PAIRS_PER_BLOCK: usize = 64;

/// Unpacks 32 rows of I2 codes (layout A, `k / 4` bytes each, `row_bytes` apart) into
/// `out[r·k + col]`, one byte per code.
///
/// # Safety
/// `rows` holds 32 rows of `k / 4` bytes, `row_bytes` apart, and `out` at least 32·k bytes.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn unpack_rows(rows: &[u8], row_bytes: usize, k: usize, out: &mut [u8]) {
    // SAFETY: the caller guarantees 32 rows of `k / 4` bytes `row_bytes` apart in `rows`
    // and 32·k bytes in `out`: every block read and plane written is inside them.
    unsafe {
        for r in 0..ROWS {
            let src = rows.as_ptr().add(r * row_bytes);
            let dst = out.as_mut_ptr().add(r * k);
            for blk in 0..k / 128 {
                let planes = unpack(src.add(blk * 32));
                for (j, p) in planes.iter().enumerate() {
                    _mm256_storeu_si256(dst.add(blk * 128 + 32 * j) as *mut __m256i, *p);
                }
            }
        }
    }
}

/// `out[t · 32 + r] = Σ_col code(r, col) · q(t, col)` (token-major) for the 32 rows at `rows` and
/// the `n` tokens (even) whose activations `packed` holds chunk-major
/// (`portable::pack_acts_chunks`). Exact (i32).
///
/// # Panics
/// If `k` is not a multiple of 128, `n` is odd, or a buffer is shorter than the shapes say.
#[target_feature(enable = "avx2")]
pub fn i2_gemm32(
    rows: &[u8],
    row_bytes: usize,
    k: usize,
    packed: &[i8],
    n: usize,
    out: &mut [i32],
) {
    if k == 256 {
        // Per-block-scale matrices call one 256-column block at a time: with its length
        // constant the micro-kernel's eight steps unroll, no loop exit to mispredict.
        gemm32_driver!(rows, row_bytes, k, packed, n, out,
            tokens: 2, groups_per_block: PAIRS_PER_BLOCK, unpack: unpack_rows, micro: rows4x2_256);
    } else {
        gemm32_driver!(rows, row_bytes, k, packed, n, out,
            tokens: 2, groups_per_block: PAIRS_PER_BLOCK, unpack: unpack_rows, micro: rows4x2);
    }
}

/// [`rows4x2`] over exactly 256 columns.
///
/// # Safety
/// As [`rows4x2`], with `len` = 256.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn rows4x2_256(codes: *const u8, q: *const i8, len: usize, sums: *mut i32) {
    debug_assert_eq!(len, 256);
    // SAFETY: forwarded from this function's contract (`len` is 256).
    unsafe { rows4x2(codes, q, 256, sums) }
}

/// Four rows of unpacked codes and two tokens' activations (both `len` apart) over `len`
/// columns (a multiple of 32, at most 2048 so that every i16 sum stays exact), added into
/// the eight i32 totals at `sums` (row-major, 2·r + t).
///
/// # Safety
/// `codes` holds 4 rows and `q` 2 rows of `len` bytes (a multiple of 32), each `len` apart,
/// and `sums` 8 writable i32.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn rows4x2(codes: *const u8, q: *const i8, len: usize, sums: *mut i32) {
    // SAFETY: the caller guarantees 4 code rows and 2 activation rows of `len` bytes,
    // `len` apart, and 8 totals at `sums`; `o < len` keeps every load inside them.
    unsafe {
        // The six streams' pointers are set up once and stepped together: written as offsets
        // from `len`, the loop once compiled (in one build of several) with `len` recomputed by
        // a cmov chain at every step, which made the GEMM front-end bound (probe 10-40 % slower).
        let c: [*const u8; 4] = std::array::from_fn(|r| codes.add(r * len));
        let x: [*const i8; 2] = [q, q.add(len)];
        let mut acc = [_mm256_setzero_si256(); 8];
        let mut o = 0;
        while o < len {
            let xv = x.map(|p| _mm256_loadu_si256(p.add(o) as *const __m256i));
            for r in 0..4 {
                let cv = _mm256_loadu_si256(c[r].add(o) as *const __m256i);
                for t in 0..2 {
                    acc[2 * r + t] =
                        _mm256_add_epi16(acc[2 * r + t], _mm256_maddubs_epi16(cv, xv[t]));
                }
            }
            o += 32;
        }
        let ones = _mm256_set1_epi16(1);
        add_totals8(sums, acc.map(|a| _mm256_madd_epi16(a, ones)));
    }
}

/// Adds the eight lane totals of `w` to `sums[0..8]` (`sums[i] += Σ w[i]`): hadd works within
/// 128-bit lanes, so two rounds leave each lane's partial totals of four vectors, and the
/// lane halves are then added across.
///
/// # Safety
/// `sums` is valid for reading and writing 8 i32.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn add_totals8(sums: *mut i32, w: [__m256i; 8]) {
    // SAFETY: the caller guarantees 8 readable and writable i32 at `sums`.
    unsafe {
        let h = [
            _mm256_hadd_epi32(_mm256_hadd_epi32(w[0], w[1]), _mm256_hadd_epi32(w[2], w[3])),
            _mm256_hadd_epi32(_mm256_hadd_epi32(w[4], w[5]), _mm256_hadd_epi32(w[6], w[7])),
        ];
        let total = _mm256_add_epi32(
            _mm256_permute2x128_si256(h[0], h[1], 0x20),
            _mm256_permute2x128_si256(h[0], h[1], 0x31),
        );
        let p = sums as *mut __m256i;
        _mm256_storeu_si256(p, _mm256_add_epi32(_mm256_loadu_si256(p), total));
    }
}
