//! What the scheduler needs from a loaded model, as a small trait so the HTTP layer can be
//! tested with a fake model and run with the real engine (`engine.rs`).

use serde_json::{Map, Value};

pub use crate::engine::generation::TokenText;
pub use crate::engine::sampler::{argmax, SamplerConfig, TokenSampler};

/// Facts about a loaded model that the API reports.
#[derive(Clone, Debug, Default)]
pub struct ModelMeta {
    pub architecture: String,
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_vocab: usize,
    pub n_params: u64,
    /// Bytes of the weights file (the size `/api/ps` reports adds the KV cache the slots
    /// have written).
    pub file_size: u64,
    /// Bytes of KV cache per token of context (all layers, K and V).
    pub kv_bytes_per_token: u64,
    /// The chat template source that drives chat (Jinja).
    pub template: String,
    /// GGUF metadata for `/api/show`'s `model_info`, long arrays already emptied.
    pub model_info: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChatTurn {
    pub role: String,
    pub content: String,
}

/// The text side of a model: thread-safe, used directly by the HTTP handlers. Its tokens'
/// output bytes and end-of-generation ids ([`TokenText`]) drive each request's `Generation`.
pub trait TextModel: TokenText + Send + Sync {
    fn meta(&self) -> &ModelMeta;
    /// Special tokens written in the text (`<|eot_id|>`) become their ids.
    fn tokenize(&self, text: &str, add_bos: bool) -> anyhow::Result<Vec<u32>>;
    fn detokenize(&self, ids: &[u32]) -> String;
    fn add_bos_default(&self) -> bool;
    fn bos_text(&self) -> Option<String>;
    /// Renders the model's own chat template with the generation prompt.
    fn render_chat(&self, messages: &[ChatTurn]) -> anyhow::Result<String>;
    /// Renders a Jinja chat template given as source (a Modelfile `TEMPLATE` written in Jinja).
    fn render_template(&self, source: &str, messages: &[ChatTurn]) -> anyhow::Result<String>;
    /// Stop strings that come with the model's template.
    fn default_stops(&self) -> Vec<String>;
    /// A sampler for one request (merged defaults < Modelfile < request).
    fn sampler(&self, s: &SamplerConfig) -> Box<dyn TokenSampler>;
}

/// A loaded model that can run sequences. Sequences borrow the model, so they only live on the
/// scheduler's thread, which owns an `Arc` of the backend for as long as it runs.
pub trait Backend: TextModel + 'static {
    type Seq<'a>
    where
        Self: 'a;
    fn new_seq(&self, n_ctx: usize) -> Self::Seq<'_>;
    /// Tokens currently held in the sequence's cache.
    fn seq_tokens<'a>(&'a self, seq: &Self::Seq<'a>) -> Vec<u32>;
    /// How many tokens the sequence's cache holds.
    fn seq_len<'a>(&'a self, seq: &Self::Seq<'a>) -> usize {
        self.seq_tokens(seq).len()
    }
    fn truncate<'a>(&'a self, seq: &mut Self::Seq<'a>, n: usize);
    /// Appends each sequence's tokens (a prompt being admitted, or one token of a decode
    /// step) in one batch, so the weights are read once for all of them; returns the logits
    /// after each sequence's last token.
    fn forward_seqs<'a>(
        &'a self,
        seqs: &mut [&mut Self::Seq<'a>],
        tokens: &[&[u32]],
    ) -> anyhow::Result<Vec<Vec<f32>>>;
    /// Whether [`Backend::shift_if_full`] makes room; without it a generation ends at a full
    /// context.
    fn shifts(&self) -> bool {
        false
    }
    /// Context shift: when the sequence fills its context, drops the oldest half of what
    /// follows its first `keep` tokens (without recomputing the rest). Returns how many
    /// tokens went.
    fn shift_if_full<'a>(&'a self, _seq: &mut Self::Seq<'a>, _keep: usize) -> usize {
        0
    }
    /// Mean-pooled final hidden state of a fresh context.
    fn embed(&self, tokens: &[u32]) -> anyhow::Result<Vec<f32>>;
}
