//! Serving: the Ollama- and OpenAI-compatible HTTP server, the model store with its Modelfiles,
//! Go templates and Ollama's request options. Behind the default-on `serve` feature.

pub mod gotemplate;
pub mod http;
pub mod hub;
pub mod options;
pub mod store;
