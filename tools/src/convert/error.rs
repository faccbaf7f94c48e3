//! Errors of the Hugging Face → GGUF converter. Every message names the file (or tensor) and
//! the problem, so a user can act on it without reading the source.

use std::path::PathBuf;

use bitnet_formats::GgufError;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: missing required file ({what})")]
    MissingFile { path: PathBuf, what: &'static str },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error(
        "{path}: unsupported architecture {found}; supported: BitNetForCausalLM \
         (microsoft/bitnet-b1.58-2B-4T, bf16 or packed), BitnetForCausalLM (1bitLLM \
         bitnet_b1_58-*), LlamaForCausalLM with a BitNet quantization_config \
         (HF1BitLLM Llama3-8B-1.58, Falcon3/Falcon-E 1.58-bit)"
    )]
    UnsupportedArchitecture { path: PathBuf, found: String },
    #[error("{path}: invalid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("tensor {name}: {message}")]
    Tensor { name: String, message: String },
    #[error("tensor {name} is missing from the checkpoint")]
    MissingTensor { name: String },
    #[error("tensor {name}: shape {found:?} does not match the config (expected {expected:?})")]
    Shape {
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("tensor {name}: packed weight holds the non-ternary code 3 at byte {index}")]
    NonTernaryCode { name: String, index: usize },
    #[error("{path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("output {path} already exists (use --force to overwrite)")]
    OutputExists { path: PathBuf },
    #[error("{0}")]
    Options(String),
    #[error("{0}")]
    Codec(String),
    #[error(transparent)]
    Gguf(#[from] GgufError),
}

impl ConvertError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ConvertError {
        ConvertError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> ConvertError {
        ConvertError::Config {
            path: path.into(),
            message: message.into(),
        }
    }
}
