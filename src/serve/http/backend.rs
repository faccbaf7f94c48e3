//! What the scheduler needs from a loaded model, as a small trait so the HTTP layer can be
//! tested with a fake model and run with the real engine (`engine.rs`).

use serde_json::{Map, Value};

/// Facts about a loaded model that the API reports.
#[derive(Clone, Debug, Default)]
pub struct ModelMeta {
    pub architecture: String,
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_vocab: usize,
    pub n_params: u64,
    /// Bytes of the weights file (resident size reported by `/api/ps` adds the KV caches).
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

/// Sampling settings of one request, already merged (defaults < Modelfile < request).
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    pub repeat_last_n: usize,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub seed: u64,
}

/// Picks the next token from logits; `history` is every token of the sequence so far.
pub trait TokenSampler: Send {
    fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32;
}

/// The text side of a model: thread-safe, used directly by the HTTP handlers.
pub trait TextModel: Send + Sync {
    fn meta(&self) -> &ModelMeta;
    /// Special tokens written in the text (`<|eot_id|>`) become their ids.
    fn tokenize(&self, text: &str, add_bos: bool) -> anyhow::Result<Vec<u32>>;
    fn detokenize(&self, ids: &[u32]) -> String;
    /// Raw bytes of one token as it appears in output text; empty for control tokens.
    fn piece(&self, id: u32) -> Vec<u8>;
    fn is_end_of_generation(&self, id: u32) -> bool;
    fn add_bos_default(&self) -> bool;
    fn bos_text(&self) -> Option<String>;
    /// Renders the model's own chat template with the generation prompt.
    fn render_chat(&self, messages: &[ChatTurn]) -> anyhow::Result<String>;
    /// Renders a Jinja chat template given as source (a Modelfile `TEMPLATE` written in Jinja).
    fn render_template(&self, source: &str, messages: &[ChatTurn]) -> anyhow::Result<String>;
    /// Stop strings that come with the model's template.
    fn default_stops(&self) -> Vec<String>;
    fn sampler(&self, s: &Sampling) -> Box<dyn TokenSampler>;
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
    fn truncate<'a>(&'a self, seq: &mut Self::Seq<'a>, n: usize);
    /// Appends tokens; returns the logits of the last one.
    fn forward<'a>(&'a self, seq: &mut Self::Seq<'a>, tokens: &[u32]) -> anyhow::Result<Vec<f32>>;
    /// One decode step for several sequences (one token each).
    fn forward_batch<'a>(
        &'a self,
        seqs: &mut [&mut Self::Seq<'a>],
        tokens: &[u32],
    ) -> anyhow::Result<Vec<Vec<f32>>>;
    /// Mean-pooled final hidden state of a fresh context.
    fn embed(&self, tokens: &[u32]) -> anyhow::Result<Vec<f32>>;
}

/// Greedy argmax (lowest id on ties) — what every sampler does at temperature 0.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}
