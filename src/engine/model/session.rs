//! A session: one token sequence and its KV cache, evaluated against a loaded [`Model`].

use anyhow::{bail, ensure, Result};
use bitnet_kernels::dense_matmul;

use super::forward::{forward, SeqSlot};
use super::kv_cache::KvCache;
use super::Model;

/// Prompts are processed in slices of this many tokens, which bounds the scratch memory
/// (`n · n_ff` floats per buffer) while keeping the matmuls mat-mat.
const MAX_BATCH: usize = 512;

pub struct Session<'m> {
    model: &'m Model,
    cache: KvCache,
    tokens: Vec<u32>,
}

impl<'m> Session<'m> {
    pub(super) fn new(model: &'m Model, n_ctx: usize) -> Self {
        let cfg = model.config();
        Session {
            model,
            cache: KvCache::new(
                model.kv_type(),
                cfg.n_layer,
                cfg.n_head_kv,
                cfg.head_dim,
                n_ctx,
            ),
            tokens: Vec::new(),
        }
    }

    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Tokens evaluated so far (their keys and values are cached).
    pub fn n_past(&self) -> usize {
        self.cache.len()
    }

    pub fn n_ctx(&self) -> usize {
        self.cache.n_ctx()
    }

    /// The evaluated tokens, in order.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Forgets everything after the first `n` tokens (keeps a shared prefix for reuse).
    pub fn truncate(&mut self, n: usize) {
        self.cache.truncate(n);
        self.tokens.truncate(self.cache.len());
    }

    /// Makes room in a full context as llama.cpp does: keeps the first `keep` tokens, drops
    /// half of the rest (the oldest half) and re-rotates the cached keys of the tokens after
    /// them by the position shift, with no recomputation. Returns how many tokens were
    /// dropped (0 when `keep` leaves nothing to drop).
    pub fn shift_context(&mut self, keep: usize) -> usize {
        let keep = keep.min(self.n_past());
        let discard = (self.n_past() - keep) / 2;
        if discard == 0 {
            return 0;
        }
        let (rope, hd) = (&self.model.rope, self.model.config().head_dim);
        let angles = rope.angles_back(discard);
        self.cache
            .shift(keep, discard, &|keys| rope.rotate(keys, hd, &angles));
        self.tokens.drain(keep..keep + discard);
        discard
    }

    /// Appends `tokens` and returns the logits after the last one.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let hidden = self.eval(tokens)?;
        let d = self.model.config().n_embd;
        Ok(self.model.logits(&hidden[hidden.len() - d..], 1))
    }

    /// Appends `tokens` and returns the logits after every one of them (`n · n_vocab`).
    pub fn forward_all(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let hidden = self.eval(tokens)?;
        Ok(self.model.logits(&hidden, tokens.len()))
    }

    /// Mean of the final (normalised) hidden states of `tokens`, evaluated in a fresh context;
    /// this session's own state is left untouched.
    pub fn embed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut scratch = Session::new(self.model, self.n_ctx());
        let hidden = scratch.eval(tokens)?;
        let d = self.model.config().n_embd;
        let mut mean = vec![0.0f32; d];
        for row in hidden.chunks_exact(d) {
            mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
        }
        let n = tokens.len() as f32;
        mean.iter_mut().for_each(|m| *m /= n);
        Ok(mean)
    }

    /// Runs the layers over `tokens`, returning the final hidden states of all of them.
    fn eval(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        ensure!(
            !tokens.is_empty(),
            "nothing to evaluate: the token list is empty"
        );
        self.check_room(tokens.len())?;
        self.model.check_ids(tokens)?;
        let d = self.model.config().n_embd;
        let mut hidden = Vec::with_capacity(tokens.len() * d);
        for chunk in tokens.chunks(MAX_BATCH) {
            let mut slot = [SeqSlot {
                cache: &mut self.cache,
                n_tokens: chunk.len(),
            }];
            let m = self.model;
            hidden.extend(forward(
                &m.runtime, &m.weights, &m.config, &m.rope, chunk, &mut slot,
            ));
            self.tokens.extend_from_slice(chunk);
        }
        Ok(hidden)
    }

    fn check_room(&self, n: usize) -> Result<()> {
        if self.n_past() + n > self.n_ctx() {
            if self.n_past() == 0 {
                bail!(
                    "the prompt has {n} tokens but the context holds only {}",
                    self.n_ctx()
                );
            }
            bail!(
                "context full: {} tokens already evaluated, {n} more do not fit in a context of {}",
                self.n_past(),
                self.n_ctx()
            );
        }
        Ok(())
    }
}

/// One decode step for several sessions of the same model at once: `tokens[i]` is appended to
/// `sessions[i]`. The matmuls run once over all of them. Returns each session's logits.
pub fn forward_batch(sessions: &mut [&mut Session<'_>], tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
    let each: Vec<&[u32]> = tokens.iter().map(std::slice::from_ref).collect();
    forward_seqs(sessions, &each)
}

/// Appends `tokens[i]` to `sessions[i]` for every `i` (a prompt, or one token of a decode
/// step) in as few passes as [`MAX_BATCH`] allows: each pass stacks the sessions' next tokens,
/// so the matmuls run once over all of them and a server admitting several prompts while
/// others decode reads the weights once. Returns the logits after each session's last
/// token. Every token gets the results it would get evaluated alone.
pub fn forward_seqs(sessions: &mut [&mut Session<'_>], tokens: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
    ensure!(
        sessions.len() == tokens.len(),
        "forward_seqs: {} sessions but {} token lists",
        sessions.len(),
        tokens.len()
    );
    let Some(first) = sessions.first() else {
        return Ok(Vec::new());
    };
    let model = first.model;
    for (s, t) in sessions.iter().zip(tokens) {
        ensure!(
            std::ptr::eq(s.model, model),
            "forward_seqs: sessions belong to different models"
        );
        ensure!(!t.is_empty(), "nothing to evaluate: a token list is empty");
        s.check_room(t.len())?;
        model.check_ids(t)?;
    }
    let d = model.config().n_embd;
    let mut last = vec![0f32; sessions.len() * d];
    let mut done = vec![0usize; sessions.len()];
    while done.iter().zip(tokens).any(|(&k, t)| k < t.len()) {
        // This pass: the sessions' next tokens, in order, up to MAX_BATCH in all.
        let mut budget = MAX_BATCH;
        let mut take = vec![0usize; tokens.len()];
        let mut stacked = Vec::new();
        for ((t, n), &k) in tokens.iter().zip(&mut take).zip(&done) {
            *n = (t.len() - k).min(budget);
            stacked.extend_from_slice(&t[k..k + *n]);
            budget -= *n;
        }
        let hidden = {
            let mut slots: Vec<SeqSlot> = sessions
                .iter_mut()
                .zip(&take)
                .filter(|(_, &n)| n > 0)
                .map(|(s, &n)| SeqSlot {
                    cache: &mut s.cache,
                    n_tokens: n,
                })
                .collect();
            forward(
                &model.runtime,
                &model.weights,
                &model.config,
                &model.rope,
                &stacked,
                &mut slots,
            )
        };
        let mut row = 0;
        for (i, &n) in take.iter().enumerate().filter(|(_, &n)| n > 0) {
            sessions[i]
                .tokens
                .extend_from_slice(&tokens[i][done[i]..done[i] + n]);
            done[i] += n;
            row += n;
            if done[i] == tokens[i].len() {
                last[i * d..(i + 1) * d].copy_from_slice(&hidden[(row - 1) * d..row * d]);
            }
        }
    }
    let logits = model.logits(&last, sessions.len());
    Ok(logits
        .chunks_exact(model.config().n_vocab)
        .map(|c| c.to_vec())
        .collect())
}

impl Model {
    /// Applies the LM head to `n` final hidden states.
    pub(super) fn logits(&self, hidden: &[f32], n: usize) -> Vec<f32> {
        let _head = bitnet_kernels::profile::section(bitnet_kernels::profile::Op::Head);
        let mut out = vec![0.0; n * self.config.n_vocab];
        dense_matmul(&self.runtime, &self.weights.head(), hidden, n, &mut out);
        out
    }

    pub(super) fn check_ids(&self, tokens: &[u32]) -> Result<()> {
        let n_vocab = self.config.n_vocab;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            bail!("token id {bad} is out of range (vocabulary size {n_vocab})");
        }
        Ok(())
    }
}
