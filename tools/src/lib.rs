//! Hugging Face checkpoint conversion, GGUF re-quantisation, and random models of real shapes.

pub mod convert;
pub mod dummy;
pub mod output;
pub mod quantize;
