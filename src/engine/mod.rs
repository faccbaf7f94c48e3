//! The engine: everything needed to turn a GGUF file and a prompt into text, with no HTTP or
//! model-store code. Built on its own with `cargo build --lib --no-default-features`.

pub mod chat;
pub mod context;
pub mod generate;
pub mod generation;
pub mod json_constraint;
pub mod model;
pub mod sampler;
pub mod tokenizer;
