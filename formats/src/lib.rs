//! GGUF container (v2/v3) and the tensor type table, including bitnet.cpp's fork types.
//!
//! `formats` knows nothing about SIMD or models: it reads and writes bytes exactly as
//! ggml, llama.cpp and bitnet.cpp do.

pub mod codec;
pub mod gguf;
pub mod types;

pub use gguf::{
    Array, GgufError, GgufFile, GgufWriter, Metadata, TensorInfo, TensorSource, Value, ValueType,
};
pub use types::{Dialect, SizeRule, TensorType};
