//! AVX2 twin of `portable::dot_q6k_q8k`. Each 32-element plane of a Q6_K block is rebuilt
//! from its nibbles and 2-bit pairs (values 0..=63, so `vpmaddubsw` cannot saturate),
//! multiplied with the int8 activations, and `vpmaddwd` applies the two 16-groups' scales:
//! the block's integer sum is exact, and the blocks are combined by the portable code.

use std::arch::x86_64::*;

use super::simd::hsum_epi32;
use crate::portable::{q6k_combine, Q6K_BLOCK_BYTES, QK_K};

/// Bytes ahead of the block being read at which the weights are prefetched (four rows
/// stream at once in the output head, one per quarter of the thread's range).
const PREFETCH_AHEAD: usize = 1024;

/// A Q6_K row (whole blocks) against one token's Q8K activations; same bits as the
/// portable routine.
#[target_feature(enable = "avx2")]
pub unsafe fn dot_q6k_q8k(row: &[u8], q: &[i8], d8: &[f32], bsums: &[i32]) -> f32 {
    let nb = (row.len() / Q6K_BLOCK_BYTES)
        .min(q.len() / QK_K)
        .min(d8.len())
        .min(bsums.len() / 16);
    let row = &row[..nb * Q6K_BLOCK_BYTES];
    let isums = (0..nb).map(|b| {
        // SAFETY: block b and its activations are in bounds (nb above); AVX2 is present
        // (this function's own feature).
        unsafe {
            block_isum(
                row.as_ptr().add(b * Q6K_BLOCK_BYTES),
                q.as_ptr().add(b * QK_K),
                &bsums[b * 16..b * 16 + 16],
            )
        }
    });
    q6k_combine(row, d8, isums)
}

/// `vpshufb` controls spreading scale pair (2p, 2p + 1) over 8 + 8 bytes.
const fn scale_controls() -> [[u8; 16]; 8] {
    let mut c = [[0u8; 16]; 8];
    let mut p = 0;
    while p < 8 {
        let mut i = 0;
        while i < 16 {
            c[p][i] = (2 * p + i / 8) as u8;
            i += 1;
        }
        p += 1;
    }
    c
}
static SCALE_CONTROLS: [[u8; 16]; 8] = scale_controls();

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_isum(blk: *const u8, q: *const i8, bsums: &[i32]) -> i32 {
    for line in 0..4 {
        _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(PREFETCH_AHEAD + 64 * line) as *const i8);
    }
    let load = |p: *const u8| _mm256_loadu_si256(p as *const __m256i);
    let (m4, m30) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30));
    let sc = _mm_loadu_si128(blk.add(192) as *const __m128i);
    let mut acc = _mm256_setzero_si256();
    for half in 0..2 {
        let ql0 = load(blk.add(half * 64));
        let ql1 = load(blk.add(half * 64 + 32));
        let qh = load(blk.add(128 + half * 32));
        // Plane j: low nibble of ql0 / ql1 (j = 0, 1) or high nibble (j = 2, 3), with
        // bits 2j..2j+1 of qh as bits 4..5. 16-bit shifts move bits across bytes, but the
        // masks keep only bits that came from the same byte.
        let planes = [
            _mm256_or_si256(
                _mm256_and_si256(ql0, m4),
                _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30),
            ),
            _mm256_or_si256(
                _mm256_and_si256(ql1, m4),
                _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30),
            ),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                _mm256_and_si256(qh, m30),
            ),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30),
            ),
        ];
        for (j, &v) in planes.iter().enumerate() {
            let qv = _mm256_loadu_si256(q.add(half * 128 + 32 * j) as *const __m256i);
            let pairs = _mm256_maddubs_epi16(v, qv);
            let ctl = _mm_loadu_si128(SCALE_CONTROLS[half * 4 + j].as_ptr() as *const __m128i);
            let scales = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, ctl));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, scales));
        }
    }
    let mut offset = 0i32;
    for (g, &s) in bsums.iter().enumerate() {
        offset += (*blk.add(192 + g) as i8 as i32) * s;
    }
    hsum_epi32(acc) - 32 * offset
}
