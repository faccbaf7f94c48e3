//! The generation loop shared by `run`, `chat` and the server: evaluate the prompt in one
//! batch, then sample and decode one token at a time, streaming text as it becomes valid
//! UTF-8 and stopping at an end-of-generation token, a stop string or the token limit.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::engine::json_constraint::{JsonConstraint, JsonStatus};
use crate::engine::model::Session;
use crate::engine::sampler::{Sampler, SamplerConfig};
use crate::engine::tokenizer::{StreamDecoder, Tokenizer};

#[derive(Clone, Debug, Default)]
pub struct GenerateParams {
    /// At most this many new tokens; `None` runs until the context is full.
    pub max_tokens: Option<usize>,
    pub sampler: SamplerConfig,
    /// Generation ends before the first occurrence of any of these strings (not emitted).
    pub stop: Vec<String>,
    /// Constrain the output to one JSON object (Ollama's `format: "json"`); generation ends
    /// when the object is complete.
    pub json: bool,
    /// OpenAI-style penalties over the repeat window (0 = off); see `Sampler::with_penalties`.
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token, a stop string, or the caller cancelled.
    Stop,
    /// The token limit or the end of the context.
    Length,
}

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
    let tokenizer = model.tokenizer();

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

    let mut sampler = Sampler::new(params.sampler.clone())
        .with_penalties(params.presence_penalty, params.frequency_penalty);
    let mut decoder = StreamDecoder::new(tokenizer, true);
    let mut stop = StopMatcher::new(&params.stop);
    let mut generated = Vec::new();
    let mut json = params.json.then(JsonConstraint::new);
    let mut finish = FinishReason::Length;
    let start = Instant::now();
    loop {
        if params.max_tokens.is_some_and(|m| generated.len() >= m) {
            break;
        }
        let token = if let Some(c) = &json {
            // Tokens that may follow this one: the token limit and the context both count.
            let by_limit = params
                .max_tokens
                .map_or(usize::MAX, |m| m.saturating_sub(generated.len() + 1));
            let remaining = by_limit.min(session.n_ctx().saturating_sub(session.n_past()));
            let history = session.tokens();
            let picked = c.pick(
                &logits,
                remaining,
                &mut |l| sampler.sample(l, history),
                &|t| output_bytes(tokenizer, t),
                &|t| tokenizer.is_end_of_generation(t),
            );
            match picked {
                Some(t) => t,
                None => break, // no token continues the JSON: ends as "length"
            }
        } else {
            sampler.sample(&logits, session.tokens())
        };
        if tokenizer.is_end_of_generation(token) {
            // Release what was held back for a stop string that did not come.
            let (text, _) = stop.push(&decoder.finish());
            let rest = text + &stop.flush();
            if !rest.is_empty() {
                on_text(&rest);
            }
            finish = FinishReason::Stop;
            break;
        }
        generated.push(token);
        let json_done = json
            .as_mut()
            .is_some_and(|c| c.push(&output_bytes(tokenizer, token)) == JsonStatus::Complete);
        let (text, hit) = stop.push(&decoder.push(token));
        if (!text.is_empty() && !on_text(&text)) || hit {
            finish = FinishReason::Stop;
            break;
        }
        if json_done {
            // Flush what the decoder and the stop matcher hold, then end: the object is whole.
            let (text, _) = stop.push(&decoder.finish());
            let rest = text + &stop.flush();
            if !rest.is_empty() {
                on_text(&rest);
            }
            finish = FinishReason::Stop;
            break;
        }
        if session.n_past() >= session.n_ctx() {
            break;
        }
        logits = session.forward(&[token])?;
    }
    if finish == FinishReason::Length {
        // Flush bytes held back for an incomplete character or a possible stop string.
        let (text, _) = stop.push(&decoder.finish());
        let rest = text + &stop.flush();
        if !rest.is_empty() {
            on_text(&rest);
        }
    }
    Ok(GenerationStats {
        prompt_tokens: prompt.len(),
        cached_tokens: cached,
        generated_tokens: generated.len(),
        prompt_duration,
        gen_duration: start.elapsed(),
        finish,
        tokens: generated,
    })
}

/// A token's bytes as they appear in the output (control tokens are not printed).
fn output_bytes(tokenizer: &Tokenizer, id: u32) -> Vec<u8> {
    if tokenizer.is_control(id) {
        Vec::new()
    } else {
        tokenizer.token_bytes(id)
    }
}

/// Finds stop strings in streamed text, holding back any tail that could still become one.
struct StopMatcher<'a> {
    stops: &'a [String],
    pending: String,
}

impl<'a> StopMatcher<'a> {
    fn new(stops: &'a [String]) -> Self {
        StopMatcher {
            stops,
            pending: String::new(),
        }
    }

    /// Adds text; returns what can be emitted now, and whether a stop string was found (the
    /// returned text then ends right before it).
    fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        let first_hit = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = first_hit {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return (out, true);
        }
        // Hold back the longest suffix that is a proper prefix of some stop string.
        let mut keep = 0;
        for s in self.stops {
            for (i, _) in s.char_indices().skip(1) {
                if i > keep && self.pending.ends_with(&s[..i]) {
                    keep = i;
                }
            }
        }
        let cut = self.pending.len() - keep;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        (out, false)
    }

    fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::StopMatcher;

    #[test]
    fn stop_strings_are_held_back_and_cut() {
        let stops = vec!["\nHuman:".to_string()];
        let mut m = StopMatcher::new(&stops);
        assert_eq!(m.push("Hello"), ("Hello".to_string(), false));
        assert_eq!(m.push(" there\nHu"), (" there".to_string(), false));
        assert_eq!(m.push("man: hi"), (String::new(), true));
    }

    #[test]
    fn held_back_text_is_released_when_it_diverges() {
        let stops = vec!["</s>".to_string()];
        let mut m = StopMatcher::new(&stops);
        assert_eq!(m.push("a</"), ("a".to_string(), false));
        assert_eq!(m.push("b"), ("</b".to_string(), false));
        assert_eq!(m.flush(), "");
    }
}
