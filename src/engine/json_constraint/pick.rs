//! Picking tokens under the constraint: the sampler's own choice when allowed, masked
//! redraws otherwise, and the budget rule of the module comment.

use std::sync::Arc;

use super::schema::Shape;
use super::{JsonStatus, JsonValidator, MAX_REJECTIONS};

/// Picks a token the constraint allows: draws from `sample` (the configured sampler, so its
/// top-k / top-p / temperature filtering applies), rejecting and masking disallowed picks; after
/// [`MAX_REJECTIONS`] rejections it masks every disallowed token once and draws again. Returns
/// `None` when no token of the vocabulary is allowed.
pub fn constrained_sample(
    logits: &[f32],
    sample: &mut dyn FnMut(&[f32]) -> u32,
    allowed: &mut dyn FnMut(u32) -> bool,
) -> Option<u32> {
    let first = sample(logits);
    if allowed(first) {
        return Some(first);
    }
    let mut masked = logits.to_vec();
    let mask = |masked: &mut Vec<f32>, t: u32| {
        if let Some(l) = masked.get_mut(t as usize) {
            *l = f32::NEG_INFINITY;
        }
    };
    mask(&mut masked, first);
    for _ in 0..MAX_REJECTIONS {
        let t = sample(&masked);
        if masked
            .get(t as usize)
            .is_none_or(|&l| l == f32::NEG_INFINITY)
        {
            break; // everything the sampler would consider is masked
        }
        if allowed(t) {
            return Some(t);
        }
        mask(&mut masked, t);
    }
    let mut any = false;
    for (id, l) in masked.iter_mut().enumerate() {
        if *l == f32::NEG_INFINITY || l.is_nan() {
            continue;
        }
        if allowed(id as u32) {
            any = true;
        } else {
            *l = f32::NEG_INFINITY;
        }
    }
    if !any {
        return None;
    }
    let t = sample(&masked);
    allowed(t).then_some(t)
}

/// Whether the token with these bytes may come next when `remaining` more tokens may follow
/// it. End-of-generation is allowed only once the object is complete; tokens without text
/// (control tokens) never; others must keep the output a valid prefix that the remaining
/// tokens can still close (see the module comment).
pub fn token_allowed(
    v: &JsonValidator,
    bytes: &[u8],
    end_of_generation: bool,
    remaining: usize,
) -> bool {
    if end_of_generation {
        return v.is_complete();
    }
    if bytes.is_empty() {
        return false;
    }
    let mut next = v.clone();
    match next.push_bytes(bytes) {
        JsonStatus::Invalid => false,
        JsonStatus::Complete => true,
        JsonStatus::Prefix => next.completion_len() <= remaining,
    }
}

/// One constrained generation's state, shared by the CLI's loop and the server's scheduler.
#[derive(Clone, Debug, Default)]
pub struct JsonConstraint {
    validator: JsonValidator,
}

impl JsonConstraint {
    pub fn new() -> Self {
        Self::default()
    }

    /// Also enforces a JSON schema's shape (see the `schema` module).
    pub fn with_schema(shape: Option<Arc<Shape>>) -> Self {
        JsonConstraint {
            validator: JsonValidator::with_schema(shape),
        }
    }

    pub fn status(&self) -> JsonStatus {
        self.validator.status()
    }

    /// Picks the next token (see [`constrained_sample`]). `remaining` is how many tokens may
    /// still follow this one (token limit and context); `piece` gives a token's output bytes
    /// (empty for control tokens). `None` when no token is allowed.
    pub fn pick(
        &self,
        logits: &[f32],
        remaining: usize,
        sample: &mut dyn FnMut(&[f32]) -> u32,
        piece: &dyn Fn(u32) -> Vec<u8>,
        end_of_generation: &dyn Fn(u32) -> bool,
    ) -> Option<u32> {
        let v = &self.validator;
        constrained_sample(logits, sample, &mut |t| {
            token_allowed(v, &piece(t), end_of_generation(t), remaining)
        })
    }

    /// Records an emitted token's bytes; returns the status afterwards.
    pub fn push(&mut self, bytes: &[u8]) -> JsonStatus {
        self.validator.push_bytes(bytes)
    }
}
