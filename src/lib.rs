//! The bitnet-gguf engine: model loading, forward pass, tokenizer, chat template, sampler,
//! server and the CLI verbs.

pub mod cli;
pub mod store;
