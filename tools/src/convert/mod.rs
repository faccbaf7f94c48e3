//! Hugging Face BitNet checkpoint → GGUF (`docs/convert.md`).
//!
//! The flow: parse `config.json` ([`hf_config`]), map the safetensors ([`safetensors_input`]),
//! plan every output tensor and check its shape ([`arch`]), collect metadata (hyper-parameters
//! and [`tokenizer_meta`]), then hand lazily produced tensors to the GGUF writer, which
//! streams them to a temporary file and renames it into place.

pub mod arch;
pub mod error;
pub mod hf_config;
pub mod payload;
pub mod safetensors_input;
pub mod spm;
pub mod ternarise;
pub mod tokenizer_meta;
mod writer;

pub use error::ConvertError;
pub use hf_config::{Activation, HfConfig, ModelFamily, WeightScaleRule};
pub use payload::WeightType;
pub use writer::{convert, ConvertOptions, ConvertReport, Progress};
