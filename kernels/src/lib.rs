//! Ternary and fallback matmul kernels.
//!
//! Layout: [`portable`] holds the reference implementation of every inner loop; `arch/`
//! holds the `std::arch` twins (AVX2 on x86-64, NEON and dotprod on aarch64). A [`Runtime`]
//! holds one table of function pointers ([`dispatch`]) and a thread pool; the public entry
//! points ([`quantize_acts`], [`ternary_matmul`], [`dense_matmul`], [`rms_norm`], ...) take
//! it, split the work over its pool and call through its table.

mod acts;
mod arch;
mod dense;
pub mod dispatch;
mod error;
mod format;
pub mod ops;
mod pool;
pub mod portable;
pub mod profile;
mod runtime;
mod ternary;
pub mod testing;
pub mod weight_buf;

pub use acts::{quantize_acts, QuantizedActs, PARALLEL_MIN_TOKENS};
pub use dense::{dense_matmul, DenseMatrix, DetachedDense};
pub use dispatch::KernelPath;
pub use error::KernelError;
pub use format::{I2sLayout, TernaryFormat, TlParams};
pub use ops::rms_norm;
pub use pool::{physical_cores, DisjointMut, Pool, PoolKind};
pub use runtime::{Runtime, RuntimeOptions};
pub use ternary::{
    ternary_matmul, ternary_matmul_many, ternary_matmul_rate, DetachedTernary, TernaryMatrix,
    RATE_MAX_TOKENS,
};
