//! AVX-512 VNNI twins of the I2 dots (`vpdpbusd`: u8 × i8 summed four at a time into i32).
//!
//! These kernels read activations in the *pairs* layout ([`crate::portable::to_pairs_layout`]):
//! a 64-byte load of weights covers two I2 blocks, and the 64 activations that meet one code
//! plane of it are made contiguous once per activation row instead of gathered per weight row.
//! A trailing odd block (K / 128 odd) stays in the plain layout and is done with 256-bit
//! instructions.
//!
//! Two unpack strategies, chosen by how often an unpacked weight is reused:
//! * one token ([`i2_dot`], [`i2_matvec`]): no shifts. Plane `j` is masked in place (`b & (0xC0 >> 2j)`),
//!   which is its code times `4^(3-j)`; each plane has its own accumulator and the scale is
//!   divided out exactly at the end (every partial sum is a multiple of it). One `and` and one
//!   `vpdpbusd` per 64 weights.
//! * several tokens ([`i2_tile`], [`i2_dot4`]): shift + mask to codes 0..=2 once, then one
//!   `vpdpbusd` per token and plane into a single accumulator per (row, token).

// Index loops walk several arrays (rows, planes, lanes) in lockstep.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::simd::{hsum_epi32, PREFETCH_AHEAD, PREFETCH_AHEAD_ROWS4};

/// Pairs per accumulation chunk of [`i2_dot`]: a lane gains at most 4 · 128 · 128 = 2^16 per
/// pair, so 2^14 pairs stay far from i32 overflow (K up to 4 Mi per chunk).
const MASKED_CHUNK_PAIRS: usize = 1 << 14;

/// Σ code·q over whole I2 blocks; `q` in the pairs layout. Exact.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub fn i2_dot(w: &[u8], q: &[i8]) -> i32 {
    // SAFETY: this function enables AVX-512 F/BW/VL/VNNI, all the helper needs.
    unsafe { masked_row(w, q) }
}

/// Decode's mat-vec (`portable::i2_matvec`), four rows at a time: each activation load
/// meets four rows, and one reduction pass serves four rows. Exact.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub fn i2_matvec(w: &[u8], row_bytes: usize, q: &[i8], dots: &mut [i32]) {
    // SAFETY: this function (whose features its closures inherit) enables AVX-512
    // F/BW/VL/VNNI, all `masked_rows` needs.
    let rows4 = |w, q| unsafe { masked_rows::<4>(w, q) };
    // SAFETY: the same features, all `masked_row` needs.
    let row = |w, q| unsafe { masked_row(w, q) };
    i2_matvec_by_quarters!(w, row_bytes, q, dots, rows4, row)
}

/// # Safety
/// The CPU supports AVX-512 F, BW, VL and VNNI.
#[inline(always)]
unsafe fn masked_row(w: &[u8], q: &[i8]) -> i32 {
    // SAFETY: forwarded from this function's contract.
    unsafe { masked_rows::<1>([w], q)[0] }
}

/// `R` rows × one token with the masked-plane trick (module docs).
///
/// # Safety
/// The CPU supports AVX-512 F, BW, VL and VNNI.
#[inline(always)]
unsafe fn masked_rows<const R: usize>(w: [&[u8]; R], q: &[i8]) -> [i32; R] {
    // SAFETY: the caller guarantees AVX-512 F/BW/VL/VNNI, which every intrinsic here needs;
    // the loads stay in bounds: pair p < nb / 2 reads bytes p·64..+64 of each row (nb ≤
    // len / 32) and p·256..+256 of `q` (nb ≤ len / 128), the odd block nb − 1 its 32 and 128
    // bytes. A prefetch past the row never faults.
    unsafe {
        let mut nb = q.len() / 128;
        for r in &w {
            nb = nb.min(r.len() / 32);
        }
        let pairs = nb / 2;
        let masks = [0xC0u8, 0x30, 0x0C, 0x03].map(|m| _mm512_set1_epi8(m as i8));
        let mut total = [0i32; R];
        let ahead = if R > 1 {
            PREFETCH_AHEAD_ROWS4
        } else {
            PREFETCH_AHEAD
        };
        let mut p = 0;
        while p < pairs {
            let end = (p + MASKED_CHUNK_PAIRS).min(pairs);
            let mut acc = [[_mm512_setzero_si512(); 4]; R];
            while p < end {
                let qp = q.as_ptr().add(p * 256);
                let qv: [__m512i; 4] =
                    std::array::from_fn(|j| _mm512_loadu_si512(qp.add(64 * j) as *const _));
                for r in 0..R {
                    // Decode streams weights from memory: ask for them ahead of the out-of-order
                    // window (the pointer may run past the row: a prefetch never faults).
                    _mm_prefetch::<_MM_HINT_T0>(
                        w[r].as_ptr().wrapping_add(p * 64 + ahead) as *const i8
                    );
                    let b = _mm512_loadu_si512(w[r].as_ptr().add(p * 64) as *const _);
                    for j in 0..4 {
                        acc[r][j] =
                            _mm512_dpbusd_epi32(acc[r][j], _mm512_and_si512(b, masks[j]), qv[j]);
                    }
                }
                p += 1;
            }
            for r in 0..R {
                let a = &acc[r];
                let s = _mm512_add_epi32(
                    _mm512_add_epi32(_mm512_srai_epi32(a[0], 6), _mm512_srai_epi32(a[1], 4)),
                    _mm512_add_epi32(_mm512_srai_epi32(a[2], 2), a[3]),
                );
                total[r] = total[r].wrapping_add(_mm512_reduce_add_epi32(s));
            }
        }
        if nb % 2 == 1 {
            let blk = nb - 1;
            let qp = q.as_ptr().add(blk * 128);
            let qv: [__m256i; 4] =
                std::array::from_fn(|j| _mm256_loadu_si256(qp.add(32 * j) as *const __m256i));
            for r in 0..R {
                let b = _mm256_loadu_si256(w[r].as_ptr().add(blk * 32) as *const __m256i);
                let mut acc = [_mm256_setzero_si256(); 4];
                for (j, m) in [0xC0u8, 0x30, 0x0C, 0x03].into_iter().enumerate() {
                    let c = _mm256_and_si256(b, _mm256_set1_epi8(m as i8));
                    acc[j] = _mm256_dpbusd_epi32(acc[j], c, qv[j]);
                }
                let s = _mm256_add_epi32(
                    _mm256_add_epi32(_mm256_srai_epi32(acc[0], 6), _mm256_srai_epi32(acc[1], 4)),
                    _mm256_add_epi32(_mm256_srai_epi32(acc[2], 2), acc[3]),
                );
                total[r] = total[r].wrapping_add(hsum_epi32(s));
            }
        }
        total
    }
}

/// `R` weight rows × `T` tokens over whole I2 blocks (`q` rows in the pairs layout).
/// Each weight pair is unpacked once and meets `T` tokens; each activation vector meets `R`
/// rows. Lanes gain ≤ 4 · 2 · 128 per pair, so i32 cannot overflow for any real K.
///
/// # Safety
/// The CPU supports AVX-512 F, BW, VL and VNNI.
#[inline(always)]
unsafe fn tile<const R: usize, const T: usize, const PREFETCH: bool>(
    w: [&[u8]; R],
    q: [&[i8]; T],
) -> [[i32; T]; R] {
    // SAFETY: the caller guarantees AVX-512 F/BW/VL/VNNI, which every intrinsic here needs;
    // the loads stay in bounds: pair p < nb / 2 reads bytes p·64..+64 of each weight row (nb
    // ≤ len / 32) and p·256..+256 of each token row (nb ≤ len / 128), the odd block nb − 1
    // its 32 and 128 bytes.
    unsafe {
        let mut nb = usize::MAX;
        for r in &w {
            nb = nb.min(r.len() / 32);
        }
        for t in &q {
            nb = nb.min(t.len() / 128);
        }
        let m3 = _mm512_set1_epi8(3);
        let mut acc = [[_mm512_setzero_si512(); T]; R];
        for p in 0..nb / 2 {
            let mut codes = [[_mm512_setzero_si512(); 4]; R];
            for r in 0..R {
                if PREFETCH {
                    // From memory (a batched decode step): ask for the row ahead of the
                    // out-of-order window; a prefetch past the row never faults.
                    _mm_prefetch::<_MM_HINT_T0>(
                        w[r].as_ptr().wrapping_add(p * 64 + PREFETCH_AHEAD_ROWS4) as *const i8,
                    );
                }
                let b = _mm512_loadu_si512(w[r].as_ptr().add(p * 64) as *const _);
                codes[r] = [
                    _mm512_and_si512(_mm512_srli_epi16(b, 6), m3),
                    _mm512_and_si512(_mm512_srli_epi16(b, 4), m3),
                    _mm512_and_si512(_mm512_srli_epi16(b, 2), m3),
                    _mm512_and_si512(b, m3),
                ];
            }
            for j in 0..4 {
                for t in 0..T {
                    let qv = _mm512_loadu_si512(q[t].as_ptr().add(p * 256 + 64 * j) as *const _);
                    for r in 0..R {
                        acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], codes[r][j], qv);
                    }
                }
            }
        }
        let mut out = [[0i32; T]; R];
        for r in 0..R {
            for t in 0..T {
                out[r][t] = _mm512_reduce_add_epi32(acc[r][t]);
            }
        }
        if nb % 2 == 1 {
            let blk = nb - 1;
            let m3 = _mm256_set1_epi8(3);
            for r in 0..R {
                let b = _mm256_loadu_si256(w[r].as_ptr().add(blk * 32) as *const __m256i);
                let codes = [
                    _mm256_and_si256(_mm256_srli_epi16(b, 6), m3),
                    _mm256_and_si256(_mm256_srli_epi16(b, 4), m3),
                    _mm256_and_si256(_mm256_srli_epi16(b, 2), m3),
                    _mm256_and_si256(b, m3),
                ];
                for t in 0..T {
                    let qp = q[t].as_ptr().add(blk * 128);
                    let mut a = _mm256_setzero_si256();
                    for (j, c) in codes.iter().enumerate() {
                        let qv = _mm256_loadu_si256(qp.add(32 * j) as *const __m256i);
                        a = _mm256_dpbusd_epi32(a, *c, qv);
                    }
                    out[r][t] = out[r][t].wrapping_add(hsum_epi32(a));
                }
            }
        }
        out
    }
}

/// One weight row against four tokens (pairs layout). Exact.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub fn i2_dot4(w: &[u8], q: [&[i8]; 4]) -> [i32; 4] {
    // SAFETY: this function enables AVX-512 F/BW/VL/VNNI, all the helper needs.
    unsafe { tile::<1, 4, true>([w], q)[0] }
}

/// Two weight rows against four tokens (pairs layout): a batched decode step's tile. Exact.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub fn i2_rows2x4(w: [&[u8]; 2], q: [&[i8]; 4]) -> [[i32; 4]; 2] {
    // SAFETY: this function enables AVX-512 F/BW/VL/VNNI, all the helper needs.
    unsafe { tile::<2, 4, true>(w, q) }
}

/// Two weight rows against two tokens (pairs layout): a batched decode step of two. Exact.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub fn i2_rows2x2(w: [&[u8]; 2], q: [&[i8]; 2]) -> [[i32; 2]; 2] {
    // SAFETY: this function enables AVX-512 F/BW/VL/VNNI, all the helper needs.
    unsafe { tile::<2, 2, true>(w, q) }
}

/// Two weight rows against eight tokens (pairs layout): the prefill micro-kernel. Exact.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub fn i2_tile(w: [&[u8]; 2], q: [&[i8]; 8]) -> [[i32; 8]; 2] {
    // SAFETY: this function enables AVX-512 F/BW/VL/VNNI, all the helper needs.
    unsafe { tile::<2, 8, false>(w, q) }
}
