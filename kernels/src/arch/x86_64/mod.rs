//! AVX2 + FMA + F16C kernels. Selected only after `avx2_available()` returned true, which
//! is what makes the `unsafe` calls into `#[target_feature]` functions sound.

mod simd;

use crate::dispatch::{KernelPath, Kernels};

pub static AVX2: Kernels = Kernels {
    path: KernelPath::Avx2,
    absmax: |x| unsafe { simd::absmax(x) },
    quantize_row: |x, q| unsafe { simd::quantize_row(x, q) },
    i2_dot: |w, q| unsafe { simd::i2_dot(w, q) },
    i2_dot4: |w, q| unsafe { simd::i2_dot4(w, q) },
    dot_f32: |a, b| unsafe { simd::dot_f32(a, b) },
    dot_f16: |w, x| unsafe { simd::dot_f16(w, x) },
    dot_bf16: |w, x| unsafe { simd::dot_bf16(w, x) },
    sum_sq: |x| unsafe { simd::sum_sq(x) },
    scale_mul: |x, w, s, o| unsafe { simd::scale_mul(x, w, s, o) },
    axpy: |a, x, y| unsafe { simd::axpy(a, x, y) },
    f16_to_f32: |s, o| unsafe { simd::f16_to_f32(s, o) },
};
