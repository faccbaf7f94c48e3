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
/// Generation ends at a full context.
pub fn generate(
    session: &mut Session,
    prompt: &[u32],
    params: &GenerateParams,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<GenerationStats> {
    generate_with(session, prompt, params, LongRun::default(), on_text)
}

/// What [`generate_with`] does beyond [`generate`]: the CLI's `run` and `chat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LongRun {
    /// `Some(keep)`: a full context shifts instead of ending the generation
    /// ([`Session::shift_context`]: the first `keep` tokens stay, the oldest half of the rest
    /// goes), so only the token limit, an end token or a stop string ends it.
    pub shift_keep: Option<usize>,
    /// Never pick an end-of-generation token (llama.cpp's `--ignore-eos`): the generation
    /// runs to its token limit.
    pub ignore_eos: bool,
}

/// [`generate`] with a context shift and end-token suppression as `how` asks.
pub fn generate_with(
    session: &mut Session,
    prompt: &[u32],
    params: &GenerateParams,
    how: LongRun,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<GenerationStats> {
    let shift_keep = how.shift_keep;
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
    let tok = model.tokenizer();
    let banned: Vec<usize> = match how.ignore_eos {
        true => (0..tok.vocab_size() as u32)
            .filter(|&t| tok.is_end_of_generation(t))
            .map(|t| t as usize)
            .collect(),
        false => Vec::new(),
    };
    let ban = |logits: &mut Vec<f32>| banned.iter().for_each(|&t| logits[t] = f32::NEG_INFINITY);
    let mut logits = session.forward(&prompt[cached..])?;
    ban(&mut logits);
    let prompt_duration = start.elapsed();

    // The last token is never evaluated, so it may take the position after a full context.
    let room = match shift_keep {
        Some(_) => usize::MAX,
        None => (session.n_ctx() + 1).saturating_sub(prompt.len()),
    };
    let sampler = Box::new(Sampler::new(params.sampler.clone()));
    let mut generation = Generation::new(params, sampler, model.tokenizer(), prompt, cached, room);
    let start = Instant::now();
    let finish = loop {
        match generation.step(&logits) {
            Step::Token { token, text } => {
                if !text.is_empty() && !on_text(&text) {
                    break FinishReason::Stop;
                }
                if session.n_past() >= session.n_ctx() {
                    let keep = shift_keep.unwrap_or(session.n_past());
                    if session.shift_context(keep) == 0 {
                        // Nothing left to drop: the end of the context, as without a shift.
                        break FinishReason::Length;
                    }
                }
                logits = session.forward(&[token])?;
                ban(&mut logits);
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
