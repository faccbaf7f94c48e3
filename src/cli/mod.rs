//! One module per CLI verb family. `main.rs` only parses and dispatches.

pub mod bench;
pub mod chat;
pub mod convert;
pub mod dummy;
mod gguf_output;
pub mod inspect;
pub mod perplexity;
pub mod quantize;
pub mod run;
pub mod run_modelfile;
pub mod serve;
pub mod tokenize;
