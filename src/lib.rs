//! The bitnet-gguf engine (`engine`: model loading, forward pass, tokenizer, chat template,
//! sampler, generation) and, with the default `serve` feature, the HTTP server and model store
//! (`serve`). The command-line front end lives in the binary, not here.

pub mod engine;
#[cfg(feature = "serve")]
pub mod serve;
