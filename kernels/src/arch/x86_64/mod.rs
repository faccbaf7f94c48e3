//! AVX2 + FMA + F16C kernels, and the AVX-VNNI or AVX-512 VNNI I2 dots on top of them. A
//! table is selected only after `avx2_available()` (resp. `avx_vnni_available()`,
//! `avx512_vnni_available()`) returned true, which is what makes the `unsafe` calls into
//! `#[target_feature]` functions sound.

mod activation;
mod amx;
mod attention;
mod avx512;
mod avxvnni;
mod epilogue;
mod gemm;
mod gemm512;
mod head512;
mod kquant;
mod simd;

use crate::arch::gemm32::chunked_gemm;
use crate::dispatch::{ActLayout, I2Gemm, KernelPath, Kernels};
use crate::portable::pack_acts_tiles16;

/// A table entry's call of a `#[target_feature]` kernel: `$f($args)`.
macro_rules! probed {
    ($f:path, $($arg:ident),*) => {
        // SAFETY: the tables are reachable only through `arch::table` (after
        // `KernelPath::is_supported`) and `arch::variant_tables` (after its own probe), which
        // check every feature the table's kernels are compiled for.
        unsafe { $f($($arg),*) }
    };
}

/// AVX2 + FMA + F16C; the other x86 tables replace its I2 kernels and, with AVX-512, its
/// 512-bit loops (struct update from this one).
pub static AVX2: Kernels = Kernels {
    path: KernelPath::Avx2,
    act_layout: ActLayout::Plain,
    absmax: |x| probed!(simd::absmax, x),
    quantize_row: |x, q| probed!(simd::quantize_row, x, q),
    i2_dot: |w, q| probed!(simd::i2_dot, w, q),
    i2_dot4: |w, q| probed!(simd::i2_dot4, w, q),
    i2_tile: |w, q| probed!(simd::i2_tile, w, q),
    i2_rows2x4: |w, q| probed!(simd::i2_rows2x4, w, q),
    i2_rows2x2: |w, q| {
        crate::arch::rows2x2_from_rows2x4(w, q, |w, q| probed!(simd::i2_rows2x4, w, q))
    },
    i2_matvec: |w, rb, q, d| probed!(simd::i2_matvec, w, rb, q, d),
    i2_gemm: chunked_gemm(2, |rows, rb, k, packed, n, out| {
        probed!(gemm::i2_gemm32, rows, rb, k, packed, n, out)
    }),
    i2s_epilogue_row: |d, a, b, c, o| probed!(epilogue::i2s_epilogue_row, d, a, b, c, o),
    dot_f32: |a, b| probed!(simd::dot_f32, a, b),
    dot_f32_tile: |w, x| probed!(simd::dot_f32_tile, w, x),
    dot_f16: |w, x| probed!(simd::dot_f16, w, x),
    dot_bf16: |w, x| probed!(simd::dot_bf16, w, x),
    dot_q6k_q8k: |w, q, d, s| probed!(kquant::dot_q6k_q8k, w, q, d, s),
    dot_q8_0_q8k: |w, q, d| probed!(kquant::dot_q8_0_q8k, w, q, d),
    dot_q4_0_q8k: |w, q, d, s| probed!(kquant::dot_q4_0_q8k, w, q, d, s),
    dot_f16_rows4: |w, x| probed!(simd::dot_f16_rows4, w, x),
    dot_bf16_rows4: |w, x| probed!(simd::dot_bf16_rows4, w, x),
    dot_f16_x4: |w, x| probed!(simd::dot_f16_x4, w, x),
    dot_bf16_x4: |w, x| probed!(simd::dot_bf16_x4, w, x),
    dot_f16_rows2_x4: |w, x| w.map(|r| probed!(simd::dot_f16_x4, r, x)),
    dot_bf16_rows2_x4: |w, x| w.map(|r| probed!(simd::dot_bf16_x4, r, x)),
    sum_sq: |x| probed!(simd::sum_sq, x),
    scale_mul: |x, w, s, o| probed!(simd::scale_mul, x, w, s, o),
    axpy: |a, x, y| probed!(simd::axpy, a, x, y),
    silu_mul: |g, u| probed!(activation::silu_mul, g, u),
    exp_shifted: |x, s| probed!(activation::exp_shifted, x, s),
    dot_rows_f32: |q, r, s, o, c| probed!(attention::dot_rows_f32, q, r, s, o, c),
    mix_rows_f32: |w, r, s, o, c| probed!(attention::mix_rows_f32, w, r, s, o, c),
    dot_rows_f16: |q, r, s, o, c| probed!(attention::dot_rows_f16, q, r, s, o, c),
    mix_rows_f16: |w, r, s, o, c| probed!(attention::mix_rows_f16, w, r, s, o, c),
    f32_to_f16: |s, o| probed!(simd::f32_to_f16, s, o),
    f16_to_f32: |s, o| probed!(simd::f16_to_f32, s, o),
};

/// AVX2 with the 256-bit VNNI I2 dots and GEMM (CPUs with AVX-VNNI but no AVX-512).
pub static AVX_VNNI: Kernels = Kernels {
    path: KernelPath::AvxVnni,
    i2_dot: |w, q| probed!(avxvnni::vex::i2_dot, w, q),
    i2_dot4: |w, q| probed!(avxvnni::vex::i2_dot4, w, q),
    i2_tile: |w, q| probed!(avxvnni::vex::i2_tile, w, q),
    i2_rows2x4: |w, q| probed!(avxvnni::vex::i2_rows2x4, w, q),
    i2_rows2x2: |w, q| {
        crate::arch::rows2x2_from_rows2x4(w, q, |w, q| probed!(avxvnni::vex::i2_rows2x4, w, q))
    },
    i2_matvec: |w, rb, q, d| probed!(avxvnni::vex::i2_matvec, w, rb, q, d),
    i2_gemm: chunked_gemm(2, |rows, rb, k, packed, n, out| {
        probed!(avxvnni::vex::i2_gemm32, rows, rb, k, packed, n, out)
    }),
    ..AVX2
};

/// The AVX-VNNI table's source compiled for EVEX (AVX-512 VL + VNNI), so that a CPU with
/// AVX-512 but no AVX-VNNI proves that source equal to the portable twins, GEMM included
/// (tests only; see `dispatch::tables_under_test`).
pub static AVX_VNNI_EVEX: Kernels = Kernels {
    i2_dot: |w, q| probed!(avxvnni::evex::i2_dot, w, q),
    i2_dot4: |w, q| probed!(avxvnni::evex::i2_dot4, w, q),
    i2_tile: |w, q| probed!(avxvnni::evex::i2_tile, w, q),
    i2_rows2x4: |w, q| probed!(avxvnni::evex::i2_rows2x4, w, q),
    i2_rows2x2: |w, q| {
        crate::arch::rows2x2_from_rows2x4(w, q, |w, q| probed!(avxvnni::evex::i2_rows2x4, w, q))
    },
    i2_matvec: |w, rb, q, d| probed!(avxvnni::evex::i2_matvec, w, rb, q, d),
    i2_gemm: chunked_gemm(2, |rows, rb, k, packed, n, out| {
        probed!(avxvnni::evex::i2_gemm32, rows, rb, k, packed, n, out)
    }),
    ..AVX_VNNI
};

/// AVX-512 VNNI: 256-bit VNNI dots on plain activations (see `avxvnni`), the 512-bit GEMM
/// for prompts, the EVEX-compiled F16/BF16/Q6_K/f32 loops.
pub static AVX512_VNNI: Kernels = Kernels {
    path: KernelPath::Avx512Vnni,
    i2_gemm: chunked_gemm(gemm512::TOKENS, |rows, rb, k, packed, n, out| {
        probed!(gemm512::i2_gemm32, rows, rb, k, packed, n, out)
    }),
    dot_f16_rows4: |w, x| match head512::head_dot_zmm() {
        true => probed!(head512::dot_f16_rows4_zmm, w, x),
        false => probed!(simd::dot_f16_rows4_evex, w, x),
    },
    dot_bf16_rows4: |w, x| match head512::head_dot_zmm() {
        true => probed!(head512::dot_bf16_rows4_zmm, w, x),
        false => probed!(simd::dot_bf16_rows4_evex, w, x),
    },
    dot_f16_x4: |w, x| match head512::head_dot_zmm() {
        true => probed!(head512::dot_f16_x4_zmm, w, x),
        false => probed!(simd::dot_f16_x4_evex, w, x),
    },
    dot_bf16_x4: |w, x| match head512::head_dot_zmm() {
        true => probed!(head512::dot_bf16_x4_zmm, w, x),
        false => probed!(simd::dot_bf16_x4_evex, w, x),
    },
    dot_f16_rows2_x4: |w, x| match head512::head_dot_zmm() {
        true => probed!(head512::dot_f16_rows2_x4_zmm, w, x),
        false => w.map(|r| probed!(simd::dot_f16_x4_evex, r, x)),
    },
    dot_bf16_rows2_x4: |w, x| match head512::head_dot_zmm() {
        true => probed!(head512::dot_bf16_rows2_x4_zmm, w, x),
        false => w.map(|r| probed!(simd::dot_bf16_x4_evex, r, x)),
    },
    dot_q6k_q8k: |w, q, d, s| probed!(kquant::dot_q6k_q8k_avx512, w, q, d, s),
    dot_f32_tile: |w, x| probed!(simd::dot_f32_tile_evex, w, x),
    silu_mul: |g, u| probed!(activation::silu_mul_avx512, g, u),
    exp_shifted: |x, s| probed!(activation::exp_shifted_avx512, x, s),
    ..AVX_VNNI_EVEX
};

/// The AMX table's I2 kernels without AMX: the 512-bit pairs-layout kernels of `avx512`,
/// so that a CPU with AVX-512 VNNI but no AMX still proves them equal to their portable
/// twins (tests only; see `dispatch::tables_under_test`).
pub static AVX512_PAIRS: Kernels = Kernels {
    act_layout: ActLayout::Pairs256,
    i2_dot: |w, q| probed!(avx512::i2_dot, w, q),
    i2_dot4: |w, q| probed!(avx512::i2_dot4, w, q),
    i2_tile: |w, q| probed!(avx512::i2_tile, w, q),
    i2_rows2x4: |w, q| probed!(avx512::i2_rows2x4, w, q),
    i2_rows2x2: |w, q| probed!(avx512::i2_rows2x2, w, q),
    i2_matvec: |w, rb, q, d| probed!(avx512::i2_matvec, w, rb, q, d),
    i2_gemm: None,
    ..AVX512_VNNI
};

/// The 512-bit pairs-layout kernels plus the AMX prefill GEMM.
pub static AMX: Kernels = Kernels {
    path: KernelPath::Amx,
    i2_gemm: Some(I2Gemm {
        group: 16,
        // 5 to 15 tokens run as one group padded with zero tokens: on the 6912 × 2560
        // matmul (2 threads, AMX Xeon) 16 tokens took 290–300 µs, against 475–495 µs for 5
        // to 8 tokens and 810 µs for 12 through the VNNI tiles, and 237–248 µs for 4.
        min_tokens: 5,
        // Tokens left over after whole groups: one more group costs the tile unit 150–340
        // µs, four or more tokens through the VNNI tiles 250 µs or more.
        pad_from: 4,
        pack: |q, k, n, out| pack_acts_tiles16(q, k, n / 16, out),
        run: |rows, rb, k, packed, n, out| probed!(amx::i2_gemm32, rows, rb, k, packed, n, out),
    }),
    ..AVX512_PAIRS
};

pub use amx::available as amx_available;
