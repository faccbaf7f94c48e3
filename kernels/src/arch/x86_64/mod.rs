//! AVX2 + FMA + F16C kernels, and the AVX-VNNI or AVX-512 VNNI I2 dots on top of them. A
//! table is selected only after `avx2_available()` (resp. `avx_vnni_available()`,
//! `avx512_vnni_available()`) returned true, which is what makes the `unsafe` calls into
//! `#[target_feature]` functions sound.

/// The loop nest every 32-row x86 GEMM entry shares (`gemm.rs` explains the plan): per
/// column chunk, the 32 rows' codes unpacked to bytes, then tokens in blocks of
/// `groups_per_block` micro-tiles, every row quad over every group of `tokens` tokens,
/// `micro(codes, acts, len, sums)` adding a 4-row × `tokens` tile's totals (row-major) into
/// `sums`; at the end the totals are written token-major (`out[t · 32 + r]`). Expanded
/// inside each entry's `#[target_feature]` function, so that the micro-kernel inlines.
macro_rules! gemm32_driver {
    ($rows:expr, $row_bytes:expr, $k:expr, $packed:expr, $n:expr, $out:expr,
     tokens: $tokens:expr, groups_per_block: $gpb:expr, micro: $micro:path) => {{
        use $crate::arch::x86_64::gemm::{check_shapes, unpack_rows, CODES, SUMS};
        use $crate::portable::{gemm_chunk_len, GEMM_ROWS};
        let (rows, row_bytes, k, packed, n, out): (&[u8], usize, usize, &[i8], usize, &mut [i32]) =
            ($rows, $row_bytes, $k, $packed, $n, $out);
        const T: usize = $tokens;
        check_shapes(rows, row_bytes, k, packed, n, T, out);
        if n > 0 {
            CODES.with(|codes| {
                SUMS.with(|sums| {
                    let (mut codes, mut sums) = (codes.borrow_mut(), sums.borrow_mut());
                    let chunk = gemm_chunk_len(k);
                    if codes.len() < GEMM_ROWS * chunk {
                        codes.resize(GEMM_ROWS * chunk, 0);
                    }
                    sums.clear();
                    sums.resize(GEMM_ROWS * n, 0);
                    let groups = n / T;
                    for c0 in (0..k).step_by(chunk) {
                        let len = chunk.min(k - c0);
                        // This chunk's codes only (32 × len bytes), rows `len` apart.
                        unpack_rows(&rows[c0 / 4..], row_bytes, len, &mut codes);
                        let acts = packed.as_ptr().add(c0 * n);
                        // Tokens in blocks whose chunk of activations stays in L2.
                        for b0 in (0..groups).step_by($gpb) {
                            let b1 = (b0 + $gpb).min(groups);
                            for rq in 0..GEMM_ROWS / 4 {
                                let c = codes.as_ptr().add(rq * 4 * len);
                                for g in b0..b1 {
                                    let s = sums.as_mut_ptr().add((rq * groups + g) * 4 * T);
                                    $micro(c, acts.add(T * g * len), len, s);
                                }
                            }
                        }
                    }
                    // sums[(rq, g)][T·r + t] is row 4·rq + r, token T·g + t.
                    for rq in 0..GEMM_ROWS / 4 {
                        for g in 0..groups {
                            let s = &sums[(rq * groups + g) * 4 * T..][..4 * T];
                            for r in 0..4 {
                                for t in 0..T {
                                    out[(T * g + t) * GEMM_ROWS + 4 * rq + r] = s[T * r + t];
                                }
                            }
                        }
                    }
                })
            });
        }
    }};
}

mod activation;
mod amx;
mod attention;
mod avx512;
mod avxvnni;
mod gemm;
mod gemm512;
mod kquant;
mod simd;

use crate::dispatch::{ActLayout, I2Gemm, I2GemmRun, KernelPath, Kernels};
use crate::portable::{pack_acts_chunks, pack_acts_tiles16};

/// The AVX2 table with the given I2 kernels (everything else is shared).
macro_rules! x86_table {
    ($path:expr, $layout:expr, $dot:path, $dot4:path, $tile:expr, $matvec:path, $gemm:expr,
     $f16_rows4:path, $bf16_rows4:path, $q6k:path, $f32_tile:path, $silu:path,
     $exp_shifted:path) => {
        Kernels {
            path: $path,
            act_layout: $layout,
            absmax: |x| unsafe { simd::absmax(x) },
            quantize_row: |x, q| unsafe { simd::quantize_row(x, q) },
            i2_dot: |w, q| unsafe { $dot(w, q) },
            i2_dot4: |w, q| unsafe { $dot4(w, q) },
            i2_tile: $tile,
            i2_matvec: |w, rb, q, d| unsafe { $matvec(w, rb, q, d) },
            i2_gemm: $gemm,
            dot_f32: |a, b| unsafe { simd::dot_f32(a, b) },
            dot_f32_tile: |w, x| unsafe { $f32_tile(w, x) },
            dot_f16: |w, x| unsafe { simd::dot_f16(w, x) },
            dot_bf16: |w, x| unsafe { simd::dot_bf16(w, x) },
            dot_q6k_q8k: |w, q, d, s| unsafe { $q6k(w, q, d, s) },
            dot_q8_0_q8k: |w, q, d| unsafe { kquant::dot_q8_0_q8k(w, q, d) },
            dot_q4_0_q8k: |w, q, d, s| unsafe { kquant::dot_q4_0_q8k(w, q, d, s) },
            dot_f16_rows4: |w, x| unsafe { $f16_rows4(w, x) },
            dot_bf16_rows4: |w, x| unsafe { $bf16_rows4(w, x) },
            sum_sq: |x| unsafe { simd::sum_sq(x) },
            scale_mul: |x, w, s, o| unsafe { simd::scale_mul(x, w, s, o) },
            axpy: |a, x, y| unsafe { simd::axpy(a, x, y) },
            silu_mul: |g, u| unsafe { $silu(g, u) },
            exp_shifted: |x, s| unsafe { $exp_shifted(x, s) },
            dot_rows_f32: |q, r, s, o| unsafe { attention::dot_rows_f32(q, r, s, o) },
            mix_rows_f32: |w, r, s, o| unsafe { attention::mix_rows_f32(w, r, s, o) },
            dot_rows_f16: |q, r, s, o| unsafe { attention::dot_rows_f16(q, r, s, o) },
            mix_rows_f16: |w, r, s, o| unsafe { attention::mix_rows_f16(w, r, s, o) },
            f32_to_f16: |s, o| unsafe { simd::f32_to_f16(s, o) },
            f16_to_f32: |s, o| unsafe { simd::f16_to_f32(s, o) },
        }
    };
}

/// A GEMM on chunk-major activations (`portable::pack_acts_chunks`) writing token-major
/// dots: the AVX2, AVX-VNNI and AVX-512 VNNI GEMMs, which differ only in their token group.
const fn chunked_gemm(group: usize, run: I2GemmRun) -> Option<I2Gemm> {
    Some(I2Gemm {
        group,
        min_tokens: 16,
        pack: pack_acts_chunks,
        run,
        token_major: true,
    })
}

pub static AVX2: Kernels = x86_table!(
    KernelPath::Avx2,
    ActLayout::Plain,
    simd::i2_dot,
    simd::i2_dot4,
    |w, q| unsafe { simd::i2_tile(w, q) },
    simd::i2_matvec,
    chunked_gemm(2, |rows, rb, k, packed, n, out| unsafe {
        gemm::i2_gemm32(rows, rb, k, packed, n, out)
    }),
    simd::dot_f16_rows4,
    simd::dot_bf16_rows4,
    kquant::dot_q6k_q8k,
    simd::dot_f32_tile,
    activation::silu_mul,
    activation::exp_shifted
);

/// The 256-bit VNNI table on one encoding of `avxvnni`'s kernels.
macro_rules! vnni256_table {
    ($enc:ident) => {
        x86_table!(
            KernelPath::AvxVnni,
            ActLayout::Plain,
            avxvnni::$enc::i2_dot,
            avxvnni::$enc::i2_dot4,
            |w, q| unsafe { avxvnni::$enc::i2_tile(w, q) },
            avxvnni::$enc::i2_matvec,
            chunked_gemm(2, |rows, rb, k, packed, n, out| unsafe {
                avxvnni::$enc::i2_gemm32(rows, rb, k, packed, n, out)
            }),
            simd::dot_f16_rows4,
            simd::dot_bf16_rows4,
            kquant::dot_q6k_q8k,
            simd::dot_f32_tile,
            activation::silu_mul,
            activation::exp_shifted
        )
    };
}

/// AVX2 with the 256-bit VNNI I2 dots and GEMM (CPUs with AVX-VNNI but no AVX-512).
pub static AVX_VNNI: Kernels = vnni256_table!(vex);

/// AVX-512 VNNI: 256-bit VNNI dots on plain activations (see `avxvnni`), the 512-bit GEMM
/// for prompts, the EVEX-compiled F16/BF16/Q6_K/f32 loops.
pub static AVX512_VNNI: Kernels = x86_table!(
    KernelPath::Avx512Vnni,
    ActLayout::Plain,
    avxvnni::evex::i2_dot,
    avxvnni::evex::i2_dot4,
    |w, q| unsafe { avxvnni::evex::i2_tile(w, q) },
    avxvnni::evex::i2_matvec,
    chunked_gemm(gemm512::TOKENS, |rows, rb, k, packed, n, out| unsafe {
        gemm512::i2_gemm32(rows, rb, k, packed, n, out)
    }),
    simd::dot_f16_rows4_evex,
    simd::dot_bf16_rows4_evex,
    kquant::dot_q6k_q8k_avx512,
    simd::dot_f32_tile_evex,
    activation::silu_mul_avx512,
    activation::exp_shifted_avx512
);

/// The AVX-VNNI table's source compiled for EVEX (AVX-512 VL + VNNI), so that a CPU with
/// AVX-512 but no AVX-VNNI proves that source equal to the portable twins, GEMM included
/// (tests only; see `dispatch::tables_under_test`).
pub static AVX_VNNI_EVEX: Kernels = vnni256_table!(evex);

/// A table on the 512-bit pairs-layout I2 kernels of `avx512` (the AMX table's decode).
macro_rules! avx512_pairs_table {
    ($path:expr, $gemm:expr) => {
        x86_table!(
            $path,
            ActLayout::Pairs256,
            avx512::i2_dot,
            avx512::i2_dot4,
            |w, q| unsafe { avx512::i2_tile(w, q) },
            avx512::i2_matvec,
            $gemm,
            simd::dot_f16_rows4_evex,
            simd::dot_bf16_rows4_evex,
            kquant::dot_q6k_q8k_avx512,
            simd::dot_f32_tile_evex,
            activation::silu_mul_avx512,
            activation::exp_shifted_avx512
        )
    };
}

/// The AMX table's I2 kernels without AMX, so that a CPU with AVX-512 VNNI but no AMX
/// still proves them equal to their portable twins (tests only; see
/// `dispatch::tables_under_test`).
pub static AVX512_PAIRS: Kernels = avx512_pairs_table!(KernelPath::Avx512Vnni, None);

/// The 512-bit pairs-layout kernels plus the AMX prefill GEMM.
pub static AMX: Kernels = avx512_pairs_table!(
    KernelPath::Amx,
    Some(I2Gemm {
        group: 16,
        min_tokens: 16,
        pack: |q, k, n, out| pack_acts_tiles16(q, k, n / 16, out),
        run: |rows, rb, k, packed, n, out| unsafe { amx::i2_gemm32(rows, rb, k, packed, n, out) },
        token_major: false,
    })
);

pub use amx::available as amx_available;
