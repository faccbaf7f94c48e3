//! The bitnet-gguf engine: model loading, forward pass, tokenizer, chat template, sampler,
//! server and the CLI verbs.

pub mod chat;
pub mod cli;
pub mod generate;
pub mod json_constraint;
pub mod model;
pub mod sampler;
pub mod server;
pub mod store;
pub mod tokenizer;
