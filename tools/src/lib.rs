//! Hugging Face checkpoint conversion and GGUF re-quantisation.
