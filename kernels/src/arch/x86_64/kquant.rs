//! AVX2 (and, for Q6_K, AVX-512) twins of the `portable::q8k` dots: quantised rows against
//! int8 activations. Q6_K: each 32-element plane is rebuilt from its nibbles and 2-bit pairs
//! (values 0..=63, so `vpmaddubsw` cannot saturate), multiplied with the activations, and
//! `vpmaddwd` applies the two 16-groups' scales. Q8_0 / Q4_0: eight blocks per activation
//! block, their sums gathered into one vector. Every block's integer sum is exact and the
//! f32 terms are added in block order, as in the portable code.

use std::arch::x86_64::*;

use super::simd::hsum_epi32;
use crate::portable::{
    q4_0_blocks_from, q6k_row, q8_0_blocks_from, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES,
};

/// Bytes ahead of the block being read at which the weights are prefetched (four rows
/// stream at once in the output head, one per quarter of the thread's range).
const PREFETCH_AHEAD: usize = 1024;

/// The AVX-512 Q6_K block's distance (measured on it alone): 2B4T's Q6_K head per decoded
/// token took 10.5–11.0 ms at 2048 against 11.2 at 1024 and 11.1 at 4096 (Xeon, 2 threads,
/// three alternating rounds).
const PREFETCH_AHEAD_Q6K_512: usize = 2048;

/// A Q6_K row (whole blocks) against one token's Q8K activations; same bits as the
/// portable routine.
#[target_feature(enable = "avx2,f16c")]
pub fn dot_q6k_q8k(row: &[u8], q: &[i8], d8: &[f32], bsums: &[i16]) -> f32 {
    q6k_row(
        row,
        q,
        d8,
        bsums,
        // SAFETY: the slices are one whole block (q6k_row); AVX2 is this function's feature.
        |blk, q, bsums| unsafe { block_isum(blk.as_ptr(), q.as_ptr(), bsums.as_ptr()) },
        |b| f16_to_f32(b),
    )
}

/// One f16 widened with F16C, inline: calling out for it per block (as the `half` crate's
/// runtime dispatch does) made the compiler spill the vector registers around every call.
#[inline]
#[target_feature(enable = "f16c")]
fn f16_to_f32(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// `vpshufb` controls that, on the half's eight i16 scales held in both 128-bit lanes, give
/// plane `j` its two groups' scales: word `2j` in the low lane, word `2j + 1` in the high.
const fn plane_scale_controls() -> [[u8; 32]; 4] {
    let mut c = [[0u8; 32]; 4];
    let mut j = 0;
    while j < 4 {
        let mut i = 0;
        while i < 32 {
            let word = 2 * j + i / 16;
            c[j][i] = (2 * word + i % 2) as u8;
            i += 1;
        }
        j += 1;
    }
    c
}
static PLANE_SCALE_CONTROLS: [[u8; 32]; 4] = plane_scale_controls();

/// # Safety
/// `blk` is valid for one Q6_K block (210 bytes), `q` for 256 bytes and `bsums` for 16 i16.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_isum(blk: *const u8, q: *const i8, bsums: *const i16) -> i32 {
    // SAFETY: the caller guarantees one whole Q6_K block at `blk` (210 bytes), its 256
    // activations at `q` and 16 group sums at `bsums`: every load below reads inside them
    // (`PLANE_SCALE_CONTROLS` rows are 32 bytes). A prefetch never faults.
    unsafe {
        for line in 0..4 {
            _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(PREFETCH_AHEAD + 64 * line) as *const i8);
        }
        let load = |p: *const u8| _mm256_loadu_si256(p as *const __m256i);
        let (m4, m30) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30));
        let sc = _mm_loadu_si128(blk.add(192) as *const __m128i);
        let sc16 = _mm256_cvtepi8_epi16(sc);
        let halves = [
            _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sc16)),
            _mm256_broadcastsi128_si256(_mm256_extracti128_si256::<1>(sc16)),
        ];
        let mut acc = _mm256_setzero_si256();
        for (half, &half_scales) in halves.iter().enumerate() {
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
                let ctl = load(PLANE_SCALE_CONTROLS[j].as_ptr());
                let scales = _mm256_shuffle_epi8(half_scales, ctl);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, scales));
            }
        }
        // The +32 of the stored values: Σ_g scale_g · bsum_g, sixteen i16 products in one
        // `vpmaddwd`.
        let bs = _mm256_loadu_si256(bsums as *const __m256i);
        let offset = _mm256_madd_epi16(sc16, bs);
        hsum_epi32(_mm256_sub_epi32(acc, _mm256_slli_epi32(offset, 5)))
    }
}

/// The AVX-512 twin: a 64-byte load of low nibbles holds two whole planes (64 consecutive
/// elements, four 16-groups, one per 128-bit lane), so a block takes four multiply steps
/// instead of eight, and `vpdpwssd` applies the scales and accumulates in one instruction.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
pub fn dot_q6k_q8k_avx512(row: &[u8], q: &[i8], d8: &[f32], bsums: &[i16]) -> f32 {
    q6k_row(
        row,
        q,
        d8,
        bsums,
        // SAFETY: as in `dot_q6k_q8k`, with this function's AVX-512 features.
        |blk, q, bsums| unsafe { block_isum_avx512(blk.as_ptr(), q.as_ptr(), bsums.as_ptr()) },
        |b| f16_to_f32(b),
    )
}

/// `vpermw` indices spreading scale `4c + lane` over the eight i16 of each 128-bit lane,
/// for the four 64-element chunks `c` of a block.
const fn chunk_scale_indices() -> [[i16; 32]; 4] {
    let mut t = [[0i16; 32]; 4];
    let mut c = 0;
    while c < 4 {
        let mut w = 0;
        while w < 32 {
            t[c][w] = (4 * c + w / 8) as i16;
            w += 1;
        }
        c += 1;
    }
    t
}
static CHUNK_SCALE_INDICES: [[i16; 32]; 4] = chunk_scale_indices();

/// # Safety
/// As [`block_isum`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn block_isum_avx512(blk: *const u8, q: *const i8, bsums: *const i16) -> i32 {
    // SAFETY: as for `block_isum`: one whole block, 256 activations, 16 group sums
    // (`CHUNK_SCALE_INDICES` rows are 64 bytes).
    unsafe {
        for line in 0..4 {
            _mm_prefetch::<_MM_HINT_T0>(
                blk.wrapping_add(PREFETCH_AHEAD_Q6K_512 + 64 * line) as *const i8
            );
        }
        let (m4, m30) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x30));
        let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(blk.add(192) as *const __m128i));
        let sc16z = _mm512_castsi256_si512(sc16);
        let mut acc = _mm512_setzero_si512();
        for half in 0..2 {
            let ql = _mm512_loadu_si512(blk.add(64 * half) as *const _);
            let qh = _mm256_loadu_si256(blk.add(128 + 32 * half) as *const __m256i);
            // [qh, qh >> 2]: bits 0..1 and 4..5 of each byte are the high bits of the planes
            // in the low-nibble (0, 1) and high-nibble (2, 3) halves of `ql`.
            let qh2 = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2));
            let chunks = [
                _mm512_or_si512(
                    _mm512_and_si512(ql, m4),
                    _mm512_and_si512(_mm512_slli_epi16(qh2, 4), m30),
                ),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                    _mm512_and_si512(qh2, m30),
                ),
            ];
            for (nib, &v) in chunks.iter().enumerate() {
                let c = 2 * half + nib;
                let qv = _mm512_loadu_si512(q.add(64 * c) as *const _);
                let pairs = _mm512_maddubs_epi16(v, qv);
                let idx = _mm512_loadu_si512(CHUNK_SCALE_INDICES[c].as_ptr() as *const _);
                let scales = _mm512_permutexvar_epi16(idx, sc16z);
                acc = _mm512_dpwssd_epi32(acc, pairs, scales);
            }
        }
        let bs = _mm256_loadu_si256(bsums as *const __m256i);
        let offset = _mm256_madd_epi16(sc16, bs);
        let acc = _mm256_add_epi32(
            _mm512_castsi512_si256(acc),
            _mm512_extracti64x4_epi64::<1>(acc),
        );
        hsum_epi32(_mm256_sub_epi32(acc, _mm256_slli_epi32(offset, 5)))
    }
}

/// AVX2 twin of `portable::dot_q8_0_q8k`: eight Q8_0 blocks (one activation block) at a
/// time, `vpmaddubsw` on |w| and sign-adjusted activations (|x| ≤ 127, so no overflow), the
/// eight block sums gathered into one vector, their terms computed lane-wise with the same
/// two multiplications and added in block order.
#[target_feature(enable = "avx2,f16c")]
pub fn dot_q8_0_q8k(row: &[u8], q: &[i8], d8: &[f32]) -> f32 {
    let nb = (row.len() / Q8_0_BLOCK_BYTES)
        .min(q.len() / 32)
        .min(d8.len() * 8);
    let ones = _mm256_set1_epi16(1);
    let mut sum = 0f32;
    for (g, &dx) in d8.iter().enumerate().take(nb / 8) {
        // SAFETY: g < nb / 8: the eight blocks of group g lie inside `row` (nb blocks) and
        // their 256 activations inside `q`. A prefetch never faults.
        unsafe {
            let base = row.as_ptr().add(8 * g * Q8_0_BLOCK_BYTES);
            _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(PREFETCH_AHEAD) as *const i8);
            let v: [__m256i; 8] = std::array::from_fn(|i| {
                let blk = base.add(i * Q8_0_BLOCK_BYTES);
                let w = _mm256_loadu_si256(blk.add(2) as *const __m256i);
                let x = _mm256_loadu_si256(q.as_ptr().add((8 * g + i) * 32) as *const __m256i);
                let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
                _mm256_madd_epi16(p, ones)
            });
            for line in 1..5 {
                _mm_prefetch::<_MM_HINT_T0>(
                    base.wrapping_add(PREFETCH_AHEAD + 64 * line) as *const i8
                );
            }
            add_eight_terms(base, Q8_0_BLOCK_BYTES, dx, gather_block_sums(v), &mut sum);
        }
    }
    // Blocks past the last whole group (K % 256 ≠ 0: the short last activation block).
    q8_0_blocks_from(&row[..nb * Q8_0_BLOCK_BYTES], q, d8, nb / 8 * 8, sum)
}

/// The eight blocks' integer sums from their eight vectors of partial sums: within each
/// 128-bit lane two rounds of `vphaddd` leave [Σa, Σb, Σc, Σd] of that lane's halves, and
/// adding the lanes gives whole block sums (lane i = block i).
#[inline]
#[target_feature(enable = "avx2")]
fn gather_block_sums(v: [__m256i; 8]) -> __m256i {
    let four = |a, b, c, d| {
        let s = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
        _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s))
    };
    _mm256_set_m128i(four(v[4], v[5], v[6], v[7]), four(v[0], v[1], v[2], v[3]))
}

/// Adds `(d_w · d_x) · isum` of eight consecutive blocks (each starting with its f16 d) to
/// `sum` in block order: the same operations as `portable::block0_term`, lane by lane.
///
/// # Safety
/// `base` is valid for eight blocks of `block_bytes` bytes, each starting with its 2-byte d.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn add_eight_terms(
    base: *const u8,
    block_bytes: usize,
    dx: f32,
    isum: __m256i,
    sum: &mut f32,
) {
    // SAFETY: the caller guarantees eight blocks of `block_bytes` at `base`, each starting
    // with its f16 scale; `dw` and `terms` are local arrays of 8.
    unsafe {
        let dw: [u16; 8] =
            std::array::from_fn(|i| (base.add(i * block_bytes) as *const u16).read_unaligned());
        let dw = _mm256_cvtph_ps(_mm_loadu_si128(dw.as_ptr() as *const __m128i));
        let t = _mm256_mul_ps(
            _mm256_mul_ps(dw, _mm256_set1_ps(dx)),
            _mm256_cvtepi32_ps(isum),
        );
        let mut terms = [0f32; 8];
        _mm256_storeu_ps(terms.as_mut_ptr(), t);
        for t in terms {
            *sum += t;
        }
    }
}

/// AVX2 twin of `portable::dot_q4_0_q8k`: per block the two nibble halves side by side as
/// one vector of 32 values 0..=15 against the activations (`vpmaddubsw`), eight blocks
/// gathered as for Q8_0, the stored +8 removed with the group sums (`8 · Σ x`).
#[target_feature(enable = "avx2,f16c")]
pub fn dot_q4_0_q8k(row: &[u8], q: &[i8], d8: &[f32], bsums: &[i16]) -> f32 {
    let nb = (row.len() / Q4_0_BLOCK_BYTES)
        .min(q.len() / 32)
        .min(d8.len() * 8)
        .min(bsums.len() / 2);
    let ones = _mm256_set1_epi16(1);
    let m4 = _mm_set1_epi8(0x0F);
    let mut sum = 0f32;
    for (g, &dx) in d8.iter().enumerate().take(nb / 8) {
        // SAFETY: g < nb / 8: the eight blocks of group g lie inside `row` (nb blocks), their
        // 256 activations inside `q` and their 16 group sums inside `bsums`. A prefetch
        // never faults.
        unsafe {
            let base = row.as_ptr().add(8 * g * Q4_0_BLOCK_BYTES);
            for line in 0..3 {
                _mm_prefetch::<_MM_HINT_T0>(
                    base.wrapping_add(PREFETCH_AHEAD + 64 * line) as *const i8
                );
            }
            let v: [__m256i; 8] = std::array::from_fn(|i| {
                let qs = _mm_loadu_si128(base.add(i * Q4_0_BLOCK_BYTES + 2) as *const __m128i);
                let lo = _mm_and_si128(qs, m4);
                let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), m4);
                let x = _mm256_loadu_si256(q.as_ptr().add((8 * g + i) * 32) as *const __m256i);
                _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set_m128i(hi, lo), x), ones)
            });
            // Σ x per 32-block: the 16-group sums added in pairs.
            let bs = _mm256_loadu_si256(bsums.as_ptr().add(16 * g) as *const __m256i);
            let offset = _mm256_slli_epi32(_mm256_madd_epi16(bs, ones), 3);
            let isum = _mm256_sub_epi32(gather_block_sums(v), offset);
            add_eight_terms(base, Q4_0_BLOCK_BYTES, dx, isum, &mut sum);
        }
    }
    q4_0_blocks_from(&row[..nb * Q4_0_BLOCK_BYTES], q, d8, bsums, nb / 8 * 8, sum)
}
