//! NEON kernels, plus `sdot` (dotprod) variants of the I2 dots. A table is selected only
//! after probing the features it needs, which is what makes the `unsafe` calls sound.

mod activation;
mod epilogue;
mod gemm;
mod kquant;
mod simd;

use crate::arch::gemm32::chunked_gemm;
use crate::dispatch::{ActLayout, KernelPath, Kernels};

/// A table entry's call of a `#[target_feature]` kernel: `$f($args)`.
macro_rules! probed {
    ($f:path, $($arg:ident),*) => {
        // SAFETY: the tables are reachable only through `arch::table`, after
        // `KernelPath::is_supported` checked every feature the table's kernels are compiled
        // for.
        unsafe { $f($($arg),*) }
    };
}

/// NEON; the dotprod table replaces its I2 kernels (struct update from this one).
pub static NEON: Kernels = Kernels {
    path: KernelPath::Neon,
    act_layout: ActLayout::Plain,
    absmax: |x| probed!(simd::absmax, x),
    quantize_row: |x, q| probed!(simd::quantize_row, x, q),
    i2_dot: |w, q| probed!(simd::i2_dot, w, q),
    i2_dot4: |w, q| probed!(simd::i2_dot4, w, q),
    i2_tile: |w, q| crate::arch::tile_from_dot4(w, q, |w, q| probed!(simd::i2_dot4, w, q)),
    i2_rows2x4: |w, q| w.map(|r| probed!(simd::i2_dot4, r, q)),
    i2_rows2x2: |w, q| {
        crate::arch::rows2x2_from_rows2x4(w, q, |w, q| w.map(|r| probed!(simd::i2_dot4, r, q)))
    },
    i2_matvec: |w, rb, q, d| probed!(simd::i2_matvec, w, rb, q, d),
    i2_gemm: chunked_gemm(gemm::TOKENS, |rows, rb, k, packed, n, out| {
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
    // No prefetching on NEON yet: `cold` changes nothing.
    dot_rows_f32: |q, r, s, o, _| probed!(simd::dot_rows_f32, q, r, s, o),
    mix_rows_f32: |w, r, s, o, _| probed!(simd::mix_rows_f32, w, r, s, o),
    dot_rows_f16: |q, r, s, o, _| probed!(simd::dot_rows_f16, q, r, s, o),
    mix_rows_f16: |w, r, s, o, _| probed!(simd::mix_rows_f16, w, r, s, o),
    f32_to_f16: |s, o| probed!(simd::f32_to_f16, s, o),
    f16_to_f32: |s, o| probed!(simd::f16_to_f32, s, o),
};

/// NEON with the `sdot` I2 dots and GEMM.
pub static NEON_DOTPROD: Kernels = Kernels {
    path: KernelPath::NeonDotprod,
    i2_dot: |w, q| probed!(simd::i2_dot_sdot, w, q),
    i2_dot4: |w, q| probed!(simd::i2_dot4_sdot, w, q),
    i2_tile: |w, q| crate::arch::tile_from_dot4(w, q, |w, q| probed!(simd::i2_dot4_sdot, w, q)),
    i2_rows2x4: |w, q| w.map(|r| probed!(simd::i2_dot4_sdot, r, q)),
    i2_rows2x2: |w, q| {
        crate::arch::rows2x2_from_rows2x4(w, q, |w, q| w.map(|r| probed!(simd::i2_dot4_sdot, r, q)))
    },
    i2_matvec: |w, rb, q, d| probed!(simd::i2_matvec_sdot, w, rb, q, d),
    i2_gemm: chunked_gemm(gemm::TOKENS, |rows, rb, k, packed, n, out| {
        probed!(gemm::i2_gemm32_sdot, rows, rb, k, packed, n, out)
    }),
    ..NEON
};
