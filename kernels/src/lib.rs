//! Ternary and fallback matmul kernels.
//!
//! Layout: [`portable`] holds the reference implementation of every inner loop; `arch/`
//! holds the `std::arch` twins (AVX2 on x86-64, NEON and dotprod on aarch64). The CPU is
//! probed once and a table of function pointers is cached ([`dispatch`]); the public entry
//! points ([`quantize_acts`], [`ternary_matmul`], [`dense_matmul`], [`rms_norm`], ...) split
//! the work over a thread pool and call through that table.

mod acts;
mod arch;
mod dense;
pub mod dispatch;
mod error;
mod format;
pub mod ops;
mod pool;
pub mod portable;
mod ternary;
pub mod testing;

pub use acts::{quantize_acts, QuantizedActs, PARALLEL_MIN_TOKENS};
pub use dense::{dense_matmul, DenseMatrix};
pub use dispatch::{force_path, kernel_path, KernelPath};
pub use error::KernelError;
pub use format::{I2sLayout, TernaryFormat, TlParams};
pub use ops::rms_norm;
pub use pool::{
    in_pool, parallel_chunks_mut, parallel_ranges, parallel_ranges_balanced, physical_cores,
    pool_kind, set_pool_kind, set_threads, threads, DisjointMut, PoolKind,
};
pub use ternary::{
    ternary_matmul, ternary_matmul_many, ternary_matmul_rate, TernaryMatrix, RATE_MAX_TOKENS,
};
