//! GGUF container (v2/v3) and the tensor type table, including bitnet.cpp's fork types.
//!
//! `formats` knows nothing about SIMD or the forward pass: it reads and writes bytes exactly
//! as ggml, llama.cpp and bitnet.cpp do, and [`arch`] names what those bytes must contain for
//! each model architecture.

pub mod arch;
pub mod codec;
pub mod failpoint;
pub mod gguf;
pub mod types;

pub use arch::{Arch, ArchSpec, HParam, TensorSpec, UnknownArch};
pub use gguf::{
    Array, GgufError, GgufFile, GgufWriter, Metadata, Residency, TensorInfo, TensorSource, Value,
    ValueType,
};
pub use types::{Dialect, SizeRule, TensorType};
