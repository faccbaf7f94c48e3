//! Hugging Face checkpoint conversion and GGUF re-quantisation.

pub mod convert;
pub mod quantize;
