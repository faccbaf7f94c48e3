//! The generation loop of `run` and `chat`: evaluate the prompt in one batch, then drive a
//! [`Generation`] one token at a time over a [`Session`], streaming its text.

use std::time::{Duration, Instant};

use anyhow::Result;

pub use crate::engine::generation::{FinishReason, GenerateParams};
use crate::engine::generation::{Generation, Step};
use crate::engine::model::Session;
use crate::engine::sampler::Sampler;

#[derive(Clone, Debug)]
pub struct GenerationStats {
    /// Length of the prompt passed in.
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values were reused from the session's cache.
    pub cached_tokens: usize,
    pub generated_tokens: usize,
    pub prompt_duration: Duration,
    pub gen_duration: Duration,
    pub finish: FinishReason,
    /// The generated token ids (without the end-of-generation token).
    pub tokens: Vec<u32>,
}

impl GenerationStats {
    /// Prompt tokens evaluated per second (cached ones excluded).
    pub fn prompt_tok_per_s(&self) -> f64 {
        rate(
            self.prompt_tokens - self.cached_tokens,
            self.prompt_duration,
        )
    }

    pub fn gen_tok_per_s(&self) -> f64 {
        rate(self.generated_tokens, self.gen_duration)
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

/// Generates a continuation of `prompt`, which is the *whole* token sequence the model should
/// see: tokens the session already holds as a common prefix are reused from its KV cache
/// (multi-turn chat and server requests that repeat a conversation), the rest is evaluated in
/// one batch. `on_text` receives the new text piece by piece and returns `false` to cancel.
pub fn generate(
    session: &mut Session,
    prompt: &[u32],
    params: &GenerateParams,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<GenerationStats> {
    anyhow::ensure!(!prompt.is_empty(), "the prompt is empty (no tokens)");
    let model = session.model();

    // Reuse the common prefix, but always evaluate at least one token to get logits.
    let common = session
        .tokens()
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count();
    let cached = common.min(prompt.len() - 1);
    session.truncate(cached);

    let start = Instant::now();
    let mut logits = session.forward(&prompt[cached..])?;
    let prompt_duration = start.elapsed();

    // The last token is never evaluated, so it may take the position after a full context.
    let room = (session.n_ctx() + 1).saturating_sub(prompt.len());
    let sampler = Box::new(Sampler::new(params.sampler.clone()));
    let mut generation = Generation::new(params, sampler, model.tokenizer(), prompt, cached, room);
    let start = Instant::now();
    let finish = loop {
        match generation.step(&logits) {
            Step::Token { token, text } => {
                if !text.is_empty() && !on_text(&text) {
                    break FinishReason::Stop;
                }
                logits = session.forward(&[token])?;
            }
            Step::Done { finish, text } => {
                if !text.is_empty() {
                    on_text(&text);
                }
                break finish;
            }
        }
    };
    let gen_duration = start.elapsed();
    Ok(GenerationStats {
        prompt_tokens: generation.prompt_tokens(),
        cached_tokens: generation.cached_tokens(),
        generated_tokens: generation.generated_tokens(),
        prompt_duration,
        gen_duration,
        finish,
        tokens: generation.into_tokens(),
    })
}
