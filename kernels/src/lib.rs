//! Ternary and fallback matmul kernels.
