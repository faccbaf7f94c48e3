//! One generation as a state machine, independent of the model and of HTTP: fed the logits of
//! the latest position, it picks the next token (through the JSON constraint when asked) and
//! says what happened — a token to evaluate next with the text that became final, or the end
//! with its reason. It holds back text that may start a stop string and bytes of an incomplete
//! UTF-8 character, releasing them at the end, and counts tokens. `generate` (the CLI's `run`,
//! `chat`) and the server's scheduler both drive it; they own the model, timing and I/O.

mod stop;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::engine::json_constraint::schema::Shape;
use crate::engine::json_constraint::{JsonConstraint, JsonStatus};
use crate::engine::sampler::{token_logprob, SamplerConfig, TokenSampler};

pub use crate::engine::sampler::TokenLogprob;
use crate::engine::tokenizer::{Tokenizer, Utf8Stream};

pub use stop::StopMatcher;

/// What one generation is asked for.
#[derive(Clone, Debug, Default)]
pub struct GenerateParams {
    /// At most this many new tokens; `None` runs until the context is full.
    pub max_tokens: Option<usize>,
    pub sampler: SamplerConfig,
    /// Generation ends before the first occurrence of any of these strings (not emitted).
    pub stop: Vec<String>,
    /// Constrain the output to one JSON object (Ollama's `format: "json"`, OpenAI's
    /// `response_format`); generation ends when the object is complete.
    pub json: bool,
    /// With `json`: a JSON schema's shape the object must have as well.
    pub json_shape: Option<Arc<Shape>>,
    /// Report each generated token's log-probability with this many most likely alternatives
    /// (see [`TokenLogprob`]); `None`: none.
    pub logprobs: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token, a stop string, a complete JSON object, or the caller
    /// cancelled.
    Stop,
    /// The token limit or the end of the context.
    Length,
}

/// What the machine needs to know about tokens.
pub trait TokenText {
    /// The token's bytes as they appear in the output (empty for control tokens).
    fn piece(&self, id: u32) -> Vec<u8>;
    fn is_end_of_generation(&self, id: u32) -> bool;
}

impl TokenText for Tokenizer {
    fn piece(&self, id: u32) -> Vec<u8> {
        if self.is_control(id) {
            Vec::new()
        } else {
            self.token_bytes(id)
        }
    }

    fn is_end_of_generation(&self, id: u32) -> bool {
        Tokenizer::is_end_of_generation(self, id)
    }
}

/// The outcome of one [`Generation::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `token` was chosen: evaluate it and step again with its logits. `text` is the output
    /// that became final with it (often empty while a character or a stop string is pending).
    Token { token: u32, text: String },
    /// The generation is over; `text` is its last output (the text held back, or what came
    /// before a stop string). A token that ended it (the last one before the limit, or the
    /// one closing the JSON object) is counted but needs no evaluation.
    Done { finish: FinishReason, text: String },
}

/// One request's generation: created after the prompt is evaluated, stepped with each new
/// logits row until it returns [`Step::Done`].
pub struct Generation<'v> {
    vocab: &'v dyn TokenText,
    sampler: Box<dyn TokenSampler + 'v>,
    json: Option<JsonConstraint>,
    stop: StopMatcher,
    utf8: Utf8Stream,
    /// Prompt then generated tokens: the repeat penalties look back over both.
    history: Vec<u32>,
    prompt_tokens: usize,
    cached_tokens: usize,
    /// Most tokens this generation may produce: the token limit or the room in the context.
    limit: usize,
    finish: Option<FinishReason>,
    /// `Some(top)` when log-probabilities are asked for.
    logprobs: Option<usize>,
    /// Log-probabilities of the tokens chosen since the last [`Generation::take_logprobs`].
    pending_logprobs: Vec<TokenLogprob>,
}

impl<'v> Generation<'v> {
    /// A generation continuing `prompt`, of which `cached` tokens came from a cache. `room` is
    /// how many tokens the context leaves for the output.
    pub fn new(
        params: &GenerateParams,
        sampler: Box<dyn TokenSampler + 'v>,
        vocab: &'v dyn TokenText,
        prompt: &[u32],
        cached: usize,
        room: usize,
    ) -> Self {
        Generation {
            vocab,
            sampler,
            json: params
                .json
                .then(|| JsonConstraint::with_schema(params.json_shape.clone())),
            stop: StopMatcher::new(&params.stop),
            utf8: Utf8Stream::new(),
            history: prompt.to_vec(),
            prompt_tokens: prompt.len(),
            cached_tokens: cached,
            limit: params.max_tokens.map_or(room, |m| m.min(room)),
            finish: None,
            logprobs: params.logprobs,
            pending_logprobs: Vec::new(),
        }
    }

    /// Picks the next token from the logits of the latest position. After the end, every
    /// call returns the same reason and no text.
    pub fn step(&mut self, logits: &[f32]) -> Step {
        if let Some(finish) = self.finish {
            return Step::Done {
                finish,
                text: String::new(),
            };
        }
        if self.generated_tokens() >= self.limit {
            return self.end(FinishReason::Length, String::new());
        }
        let Some(token) = self.pick(logits) else {
            // No token continues the JSON within the budget.
            return self.end(FinishReason::Length, String::new());
        };
        if self.vocab.is_end_of_generation(token) {
            return self.end(FinishReason::Stop, String::new());
        }
        self.history.push(token);
        if let Some(top) = self.logprobs {
            self.pending_logprobs
                .push(token_logprob(logits, token, top));
        }
        let bytes = self.vocab.piece(token);
        let json_done = self
            .json
            .as_mut()
            .is_some_and(|c| c.push(&bytes) == JsonStatus::Complete);
        let (text, hit) = self.stop.push(&self.utf8.push(&bytes));
        if hit {
            self.utf8 = Utf8Stream::new();
            self.finish = Some(FinishReason::Stop);
            return Step::Done {
                finish: FinishReason::Stop,
                text,
            };
        }
        if json_done {
            // A closed object is a natural end, even on the last allowed token.
            return self.end(FinishReason::Stop, text);
        }
        if self.generated_tokens() >= self.limit {
            return self.end(FinishReason::Length, text);
        }
        Step::Token { token, text }
    }

    /// Samples through the JSON constraint when there is one (`None`: nothing can continue it).
    fn pick(&mut self, logits: &[f32]) -> Option<u32> {
        // Tokens that may still follow this one.
        let remaining = self.limit.saturating_sub(self.generated_tokens() + 1);
        let Generation {
            vocab,
            sampler,
            json,
            history,
            ..
        } = self;
        let Some(c) = json else {
            return Some(sampler.sample(logits, history));
        };
        c.pick(
            logits,
            remaining,
            &mut |l| sampler.sample(l, history),
            &|t| vocab.piece(t),
            &|t| vocab.is_end_of_generation(t),
        )
    }

    /// Ends the generation, releasing what was held back for a stop string that did not come
    /// or an incomplete character after `text`.
    fn end(&mut self, finish: FinishReason, mut text: String) -> Step {
        let (rest, _) = self.stop.push(&self.utf8.finish());
        text.push_str(&rest);
        text.push_str(&self.stop.flush());
        self.finish = Some(finish);
        Step::Done { finish, text }
    }

    /// The log-probabilities of the tokens chosen since the last call (empty unless asked
    /// for); the end-of-generation token has none.
    pub fn take_logprobs(&mut self) -> Vec<TokenLogprob> {
        std::mem::take(&mut self.pending_logprobs)
    }

    /// How the generation ended, once it has.
    pub fn finish(&self) -> Option<FinishReason> {
        self.finish
    }

    /// The generated tokens (without an end-of-generation token).
    pub fn tokens(&self) -> &[u32] {
        &self.history[self.prompt_tokens..]
    }

    /// The prompt followed by the generated tokens.
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    pub fn prompt_tokens(&self) -> usize {
        self.prompt_tokens
    }

    /// Prompt tokens whose keys and values were reused from a cache.
    pub fn cached_tokens(&self) -> usize {
        self.cached_tokens
    }

    pub fn generated_tokens(&self) -> usize {
        self.history.len() - self.prompt_tokens
    }

    /// The generated tokens, once the generation is no longer needed.
    pub fn into_tokens(mut self) -> Vec<u32> {
        self.history.drain(..self.prompt_tokens);
        self.history
    }
}
