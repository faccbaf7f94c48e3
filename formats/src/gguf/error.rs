//! Errors of the GGUF reader and writer.
//!
//! Every error names the file it concerns; parse errors also carry the byte offset at which
//! the problem was found, so a user can look at the bytes with a hex dump.

use std::io;

/// What is wrong with a GGUF file (or with what a caller asked the writer to produce).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("file ends early: {what} needs {need} bytes, only {have} remain")]
    Truncated {
        what: &'static str,
        need: u64,
        have: u64,
    },
    #[error(
        "not a GGUF file (it starts with {:?}, not \"GGUF\")",
        String::from_utf8_lossy(found)
    )]
    BadMagic { found: [u8; 4] },
    #[error("big-endian GGUF files are not supported (version field reads {raw:#010x})")]
    BigEndian { raw: u32 },
    #[error("unsupported GGUF version {0} (versions 2 and 3 are supported)")]
    UnsupportedVersion(u32),
    #[error("{what} count {count} cannot fit in the {remaining} bytes left in the file")]
    CountTooLarge {
        what: &'static str,
        count: u64,
        remaining: u64,
    },
    #[error("{what} is not valid UTF-8")]
    BadUtf8 { what: String },
    #[error("unknown metadata value type {0}")]
    UnknownValueType(u32),
    #[error("metadata key {key:?}: arrays nested deeper than {max} levels")]
    NestingTooDeep { key: String, max: usize },
    #[error("duplicate metadata key {0:?}")]
    DuplicateKey(String),
    #[error("duplicate tensor name {0:?}")]
    DuplicateTensor(String),
    #[error("general.alignment must be a non-zero power of two that fits in u32, found {0}")]
    BadAlignment(String),
    #[error("tensor {tensor:?}: n_dims {n_dims} is out of range (0..=4)")]
    BadDims { tensor: String, n_dims: u32 },
    #[error("tensor {tensor:?}: shape {ne:?} overflows 64 bits")]
    ShapeOverflow { tensor: String, ne: Vec<u64> },
    #[error("tensor {tensor:?}: unknown tensor type id {id}")]
    UnknownTensorType { tensor: String, id: u32 },
    #[error("tensor {tensor:?}: type id {id} ({ty}) is a run-time-only or removed type")]
    UnstorableType {
        tensor: String,
        id: u32,
        ty: &'static str,
    },
    #[error("tensor {tensor:?}: type {ty} cannot hold shape {ne:?}")]
    BadShapeForType {
        tensor: String,
        ty: &'static str,
        ne: Vec<u64>,
    },
    #[error("tensor {tensor:?}: offset {offset} is not a multiple of the alignment {alignment}")]
    Misaligned {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error(
        "tensor {tensor:?}: data [{start}, {end}) relative to the data section runs past its end \
         ({data_len} bytes)"
    )]
    TensorOutOfBounds {
        tensor: String,
        start: u64,
        end: u64,
        data_len: u64,
    },
    #[error("tensors {first:?} and {second:?} overlap")]
    Overlap { first: String, second: String },
    #[error("no tensor-type dialect makes the tensor sizes and offsets consistent: {0}")]
    NoConsistentDialect(String),
    #[error("tensor {tensor:?}: {problem}")]
    BadTensor { tensor: String, problem: String },
    #[error("metadata key {key:?}: {problem}")]
    BadValue { key: String, problem: String },
}

/// An error from reading or writing a GGUF file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be opened, mapped, read or written.
    /// (The I/O error is part of the message rather than a `source`, so that error chains
    /// do not print it twice.)
    #[error("{file}: {error}")]
    Io { file: String, error: io::Error },
    /// The file's bytes are not a valid GGUF file.
    #[error("{file}: at byte {offset}: {problem}")]
    Malformed {
        file: String,
        offset: u64,
        problem: Problem,
    },
    /// The writer was given something it cannot write.
    #[error("{file}: cannot write: {problem}")]
    Invalid { file: String, problem: Problem },
}

impl GgufError {
    /// The problem, for errors about the file's content.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            GgufError::Malformed { problem, .. } | GgufError::Invalid { problem, .. } => {
                Some(problem)
            }
            GgufError::Io { .. } => None,
        }
    }

    /// The byte offset of a parse error.
    pub fn offset(&self) -> Option<u64> {
        match self {
            GgufError::Malformed { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    pub(crate) fn io(file: impl Into<String>, source: io::Error) -> Self {
        GgufError::Io {
            file: file.into(),
            error: source,
        }
    }
}
