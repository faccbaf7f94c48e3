//! AVX2 + FMA + F16C kernels. Selected only after `avx2_available()` returned true.

use crate::dispatch::{KernelPath, Kernels};
use crate::portable;

pub static AVX2: Kernels = Kernels {
    path: KernelPath::Avx2,
    absmax: portable::absmax,
    quantize_row: portable::quantize_row,
    i2_dot: portable::i2_dot,
    i2_dot4: portable::i2_dot4,
    dot_f32: portable::dot_f32,
    dot_f16: portable::dot_f16,
    dot_bf16: portable::dot_bf16,
    sum_sq: portable::sum_sq,
    scale_mul: portable::scale_mul,
    axpy: portable::axpy,
    f16_to_f32: portable::f16_to_f32,
};
