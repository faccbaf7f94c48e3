//! 256-bit VNNI twins of the I2 dots: `vpdpbusd` on ymm registers, in two encodings of the
//! same code: [`vex`] (AVX-VNNI: Alder Lake and later client cores, Sapphire Rapids, Zen 5)
//! for CPUs without AVX-512, and [`evex`] (AVX-512 VL + VNNI) for the AVX-512 VNNI table's
//! decode and short prompts: on Zen 4 the 512-bit pairs-layout mat-vec decoded the large
//! shape ~8 % slower than these 256-bit loops (2 threads, three alternating rounds).
//!
//! Activations in the plain layout, codes unpacked with shift + mask as on AVX2. Each plane
//! then costs one `vpdpbusd` (u8 codes × i8 activations, four products summed into an i32
//! lane), where AVX2 spends a `vpmaddubsw`, a `vpaddw` and a widening `vpmaddwd` every eight
//! blocks. A lane gains at most 4 · 2 · 128 = 1024 per plane, so i32 cannot overflow for any
//! real K. Every result is exact, equal to the portable twin's.

// Index loops walk several arrays (rows, tokens, planes) in lockstep.
#![allow(clippy::needless_range_loop)]

/// The kernels, for one `target_feature` set and its `vpdpbusd` intrinsic.
macro_rules! vnni256_kernels {
    ($features:literal, $dpbusd:ident) => {
        use std::arch::x86_64::*;

        use super::super::simd::{
            hsum_epi32, unpack as codes, PREFETCH_AHEAD, PREFETCH_AHEAD_ROWS4,
        };

        /// `acc` plus Σ code·q over one block (`q` at the block's 128 activations).
        ///
        /// # Safety
        /// The CPU has the module's features and `q` is valid for reading 128 bytes.
        #[inline(always)]
        unsafe fn block_dot(acc: __m256i, c: &[__m256i; 4], q: *const i8) -> __m256i {
            // SAFETY: the caller guarantees the module's features and 128 bytes at `q`; each
            // load reads 32 of them (`o` ≤ 96).
            unsafe {
                let l = |o: usize| _mm256_loadu_si256(q.add(o) as *const __m256i);
                let acc = $dpbusd(acc, c[0], l(0));
                let acc = $dpbusd(acc, c[1], l(32));
                let acc = $dpbusd(acc, c[2], l(64));
                $dpbusd(acc, c[3], l(96))
            }
        }

        #[target_feature(enable = $features)]
        pub fn i2_dot(w: &[u8], q: &[i8]) -> i32 {
            let nb = (w.len() / 32).min(q.len() / 128);
            let mut acc = _mm256_setzero_si256();
            for b in 0..nb {
                _mm_prefetch::<_MM_HINT_T0>(
                    w.as_ptr().wrapping_add(b * 32 + PREFETCH_AHEAD) as *const i8
                );
                // SAFETY: this function enables the module's features; b < nb: block b's 32
                // bytes of `w` and 128 of `q` are in bounds.
                acc = unsafe {
                    block_dot(acc, &codes(w.as_ptr().add(b * 32)), q.as_ptr().add(b * 128))
                };
            }
            hsum_epi32(acc)
        }

        /// One weight row against four tokens: each block's codes are unpacked once.
        #[target_feature(enable = $features)]
        pub fn i2_dot4(w: &[u8], q: [&[i8]; 4]) -> [i32; 4] {
            let nb = q.iter().fold(w.len() / 32, |n, r| n.min(r.len() / 128));
            let mut acc = [_mm256_setzero_si256(); 4];
            for b in 0..nb {
                // SAFETY: b < nb: block b's 32 bytes of `w` are in bounds.
                let c = unsafe { codes(w.as_ptr().add(b * 32)) };
                for t in 0..4 {
                    // SAFETY: this function enables the module's features; b < nb: block
                    // b's 128 bytes of token t are in bounds.
                    acc[t] = unsafe { block_dot(acc[t], &c, q[t].as_ptr().add(b * 128)) };
                }
            }
            acc.map(|a| hsum_epi32(a))
        }

        /// Two rows against four tokens: a batched decode step's tile.
        #[target_feature(enable = $features)]
        pub fn i2_rows2x4(w: [&[u8]; 2], q: [&[i8]; 4]) -> [[i32; 4]; 2] {
            // SAFETY: this function enables the module's features, all `rows2x4` needs.
            unsafe { rows2x4(w, q) }
        }

        /// Prefill's 2-row × 8-token tile as two passes of 2 rows × 4 tokens, one code plane of both
        /// rows at a time, so that each activation load meets both rows (as `simd::i2_rows2x4`).
        #[target_feature(enable = $features)]
        pub fn i2_tile(w: [&[u8]; 2], q: [&[i8]; 8]) -> [[i32; 8]; 2] {
            // SAFETY: this function enables the module's features, all `rows2x4` needs.
            unsafe {
                crate::arch::join_token_halves(
                    rows2x4(w, [q[0], q[1], q[2], q[3]]),
                    rows2x4(w, [q[4], q[5], q[6], q[7]]),
                )
            }
        }

        /// # Safety
        /// The CPU has the module's features.
        #[inline(always)]
        unsafe fn rows2x4(w: [&[u8]; 2], q: [&[i8]; 4]) -> [[i32; 4]; 2] {
            // SAFETY: the caller guarantees the module's features; b < nb keeps block b's 32
            // bytes inside both weight rows and its 128 inside every token row.
            unsafe {
                let nb = q
                    .iter()
                    .fold(w[0].len().min(w[1].len()) / 32, |n, r| n.min(r.len() / 128));
                let m3 = _mm256_set1_epi8(3);
                let mut acc = [[_mm256_setzero_si256(); 4]; 2];
                for b in 0..nb {
                    let raw = [
                        _mm256_loadu_si256(w[0].as_ptr().add(b * 32) as *const __m256i),
                        _mm256_loadu_si256(w[1].as_ptr().add(b * 32) as *const __m256i),
                    ];
                    macro_rules! plane {
                        ($j:literal, $shift:literal) => {{
                            let c = [
                                _mm256_and_si256(_mm256_srli_epi16(raw[0], $shift), m3),
                                _mm256_and_si256(_mm256_srli_epi16(raw[1], $shift), m3),
                            ];
                            for t in 0..4 {
                                let qv = _mm256_loadu_si256(
                                    q[t].as_ptr().add(b * 128 + 32 * $j) as *const __m256i
                                );
                                for r in 0..2 {
                                    acc[r][t] = $dpbusd(acc[r][t], c[r], qv);
                                }
                            }
                        }};
                    }
                    plane!(0, 6);
                    plane!(1, 4);
                    plane!(2, 2);
                    plane!(3, 0);
                }
                acc.map(|row| row.map(|a| hsum_epi32(a)))
            }
        }

        /// Decode's mat-vec (`portable::i2_matvec`), four rows at a time from the range's quarters.
        #[target_feature(enable = $features)]
        pub fn i2_matvec(w: &[u8], row_bytes: usize, q: &[i8], dots: &mut [i32]) {
            // SAFETY: this function (whose features its closures inherit) enables the
            // module's features, all `rows4` needs.
            let rows4 = |w, q| unsafe { rows4(w, q) };
            i2_matvec_by_quarters!(w, row_bytes, q, dots, rows4, i2_dot)
        }

        /// Four weight rows against one token, read side by side: each activation load meets four
        /// rows.
        ///
        /// # Safety
        /// The CPU has the module's features.
        #[inline(always)]
        unsafe fn rows4(w: [&[u8]; 4], q: &[i8]) -> [i32; 4] {
            // SAFETY: the caller guarantees the module's features; b < nb keeps block b's 32
            // bytes inside every weight row and its 128 inside `q`. A prefetch never faults.
            unsafe {
                let nb = w.iter().fold(q.len() / 128, |n, r| n.min(r.len() / 32));
                let mut acc = [_mm256_setzero_si256(); 4];
                for b in 0..nb {
                    for r in 0..4 {
                        _mm_prefetch::<_MM_HINT_T0>(
                            w[r].as_ptr().wrapping_add(b * 32 + PREFETCH_AHEAD_ROWS4) as *const i8,
                        );
                        acc[r] = block_dot(
                            acc[r],
                            &codes(w[r].as_ptr().add(b * 32)),
                            q.as_ptr().add(b * 128),
                        );
                    }
                }
                acc.map(|a| hsum_epi32(a))
            }
        }

        /// The prefill GEMM on `gemm.rs`'s plan (unpacked codes per column chunk,
        /// chunk-major activations) with a 4-row × 2-token micro-kernel of one `vpdpbusd`
        /// per code and activation vector: no i16 stage and no separate add (AVX2's pair).
        /// Same contract as `gemm::i2_gemm32`: token-major i32 dots, exact.
        ///
        /// # Panics
        /// As `arch::gemm32::check_shapes`.
        #[target_feature(enable = $features)]
        pub fn i2_gemm32(
            rows: &[u8],
            row_bytes: usize,
            k: usize,
            packed: &[i8],
            n: usize,
            out: &mut [i32],
        ) {
            gemm32_driver!(rows, row_bytes, k, packed, n, out,
                tokens: 2, groups_per_block: 64,
                unpack: crate::arch::x86_64::gemm::unpack_rows, micro: gemm_rows4x2);
        }

        /// Four rows of unpacked codes and two tokens' activations (both `len` apart) over
        /// `len` columns, added into the eight totals at `sums` (2·r + t).
        ///
        /// # Safety
        /// `codes` holds 4 rows and `q` 2 rows of `len` bytes (a multiple of 32), each `len`
        /// apart, and `sums` 8 writable i32.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn gemm_rows4x2(codes: *const u8, q: *const i8, len: usize, sums: *mut i32) {
            // SAFETY: the caller guarantees 4 code rows and 2 activation rows of `len` bytes,
            // `len` apart, and 8 totals at `sums`; `o < len` keeps every load inside them.
            unsafe {
                let mut acc = [_mm256_setzero_si256(); 8];
                for o in (0..len).step_by(32) {
                    let x = [0, 1].map(|t| _mm256_loadu_si256(q.add(t * len + o) as *const __m256i));
                    for r in 0..4 {
                        let c = _mm256_loadu_si256(codes.add(r * len + o) as *const __m256i);
                        for t in 0..2 {
                            acc[2 * r + t] = $dpbusd(acc[2 * r + t], c, x[t]);
                        }
                    }
                }
                crate::arch::x86_64::gemm::add_totals8(sums, acc);
            }
        }
    };
}

/// VEX-encoded (AVX-VNNI).
pub mod vex {
    vnni256_kernels!("avx2,avxvnni", _mm256_dpbusd_avx_epi32);
}

/// EVEX-encoded (AVX-512 VL + VNNI).
pub mod evex {
    vnni256_kernels!("avx2,avx512f,avx512vl,avx512vnni", _mm256_dpbusd_epi32);
}
