//! GGUF v2/v3 container: reader (memory-mapped, zero-copy tensor data) and streaming writer.
//!
//! Layout and rules: docs/gguf.md, 'Layout' (container) and 'Dialects (type ids 36–42)'.

mod dialect;
mod error;
mod host_memory;
mod metadata;
mod read;
mod storage;
mod value;
mod write;

pub use dialect::BITNET_ARCHITECTURES;
pub use error::{GgufError, Problem};
pub use metadata::Metadata;
pub use read::{GgufFile, MAX_ARRAY_NESTING, MAX_DIMS};
pub use storage::{auto_copies, Residency, AUTO_MIN_HUGE_PCT};
pub use value::{Array, Value, ValueType};
pub use write::{GgufWriter, TensorSource};

use crate::types::TensorType;

/// `"GGUF"`.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// Alignment used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// One tensor-info record, with its type resolved under the file's dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml order: `ne[0]` is the fastest-varying (K, the columns of a weight).
    pub ne: Vec<u64>,
    /// The type id exactly as stored in the file.
    pub raw_type: u32,
    pub ty: TensorType,
    /// Byte offset of the payload relative to the start of the data section.
    pub offset: u64,
    /// Payload size under the type's size rule (docs/gguf.md, 'Size rules').
    pub nbytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }

    /// `ne[0]`: the number of columns (K) of a weight matrix.
    pub fn cols(&self) -> u64 {
        self.ne.first().copied().unwrap_or(1)
    }

    /// Product of `ne[1..]`: the number of rows (M) of a weight matrix.
    pub fn rows(&self) -> u64 {
        self.ne.iter().skip(1).product()
    }
}
