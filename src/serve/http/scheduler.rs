//! One scheduler thread per loaded model: `n_slots` sequences share the model; every step
//! evaluates newly admitted prompts, then decodes one token for all running sequences in one
//! batch. Requests beyond the free slots wait in a bounded queue. A request whose client went
//! away (its event receiver was dropped) is cancelled at the next step and frees its slot.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::backend::{Backend, Sampling, TextModel, TokenSampler};
use super::metrics::Metrics;
use crate::engine::json_constraint::schema::Shape;
use crate::engine::json_constraint::{JsonConstraint, JsonStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
}

#[derive(Clone, Debug)]
pub struct Done {
    pub finish: Finish,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub prompt_ns: u64,
    pub eval_tokens: usize,
    pub eval_ns: u64,
    /// Generated ids (end-of-generation token excluded).
    pub tokens: Vec<u32>,
}

#[derive(Debug)]
pub enum Event {
    Text(String),
    Done(Done),
    Error(String),
}

pub struct GenRequest {
    pub prompt: Vec<u32>,
    pub sampling: Sampling,
    /// Maximum new tokens; `None` = until a stop or the end of the context.
    pub max_tokens: Option<usize>,
    pub stop: Vec<String>,
    /// Constrain the output to one JSON object (`format: "json"`, `response_format`); the
    /// generation ends when the object closes.
    pub json: bool,
    /// A JSON schema's shape to enforce as well.
    pub json_shape: Option<Arc<Shape>>,
    pub events: mpsc::UnboundedSender<Event>,
}

type EmbedReply = oneshot::Sender<anyhow::Result<Vec<Vec<f32>>>>;

enum Job {
    Generate(GenRequest),
    Embed(Vec<Vec<u32>>, EmbedReply),
}

#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    QueueFull,
    Stopped,
}

#[derive(Clone, Copy, Debug)]
pub struct SchedConfig {
    pub n_slots: usize,
    /// Context length of each slot's sequence.
    pub n_ctx: usize,
    pub max_queue: usize,
}

/// The handle the HTTP side holds; dropping every clone stops the thread once it is idle.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: std_mpsc::Sender<Job>,
    pub text: Arc<dyn TextModel>,
    pub config: SchedConfig,
    queued: Arc<AtomicUsize>,
    busy: Arc<AtomicUsize>,
}

impl WorkerHandle {
    pub fn submit(&self, req: GenRequest) -> Result<(), SubmitError> {
        if self.queued.load(Ordering::SeqCst) >= self.config.max_queue {
            return Err(SubmitError::QueueFull);
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.tx.send(Job::Generate(req)).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            SubmitError::Stopped
        })
    }

    pub async fn embed(&self, inputs: Vec<Vec<u32>>) -> anyhow::Result<Vec<Vec<f32>>> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Job::Embed(inputs, tx))
            .map_err(|_| anyhow::anyhow!("model was unloaded"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("model was unloaded"))?
    }

    /// Requests holding a slot or waiting for one.
    pub fn in_flight(&self) -> usize {
        self.queued.load(Ordering::SeqCst) + self.busy.load(Ordering::SeqCst)
    }
}

pub fn spawn<B: Backend>(
    backend: Arc<B>,
    config: SchedConfig,
    metrics: Arc<Metrics>,
) -> WorkerHandle {
    let (tx, rx) = std_mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    let handle = WorkerHandle {
        tx,
        text: backend.clone() as Arc<dyn TextModel>,
        config,
        queued: queued.clone(),
        busy: busy.clone(),
    };
    std::thread::Builder::new()
        .name("bitnet-scheduler".into())
        .spawn(move || {
            let mut w = Worker {
                b: &*backend,
                config,
                metrics,
                queued,
                busy,
                slots: Vec::new(),
                pending: VecDeque::new(),
            };
            w.run(rx);
        })
        .expect("spawning the scheduler thread");
    handle
}

struct Active {
    req: GenRequest,
    sampler: Box<dyn TokenSampler>,
    json: Option<JsonConstraint>,
    history: Vec<u32>,
    generated: Vec<u32>,
    next: u32,
    utf8: Vec<u8>,
    held: String,
    prompt_tokens: usize,
    cached_tokens: usize,
    prompt_ns: u64,
    eval_start: Instant,
}

struct Slot<'a, B: Backend> {
    seq: Option<B::Seq<'a>>,
    active: Option<Active>,
}

struct Worker<'a, B: Backend> {
    b: &'a B,
    config: SchedConfig,
    metrics: Arc<Metrics>,
    queued: Arc<AtomicUsize>,
    busy: Arc<AtomicUsize>,
    slots: Vec<Slot<'a, B>>,
    pending: VecDeque<GenRequest>,
}

/// Longest suffix of `s` that is a proper prefix of some stop string (held back until known).
fn held_suffix_len(s: &str, stops: &[String]) -> usize {
    let mut best = 0;
    for stop in stops {
        for (i, _) in stop.char_indices().skip(1) {
            if i > best && s.ends_with(&stop[..i]) {
                best = i;
            }
        }
    }
    best
}

impl<'a, B: Backend> Worker<'a, B> {
    fn run(&mut self, rx: std_mpsc::Receiver<Job>) {
        self.slots = (0..self.config.n_slots.max(1))
            .map(|_| Slot {
                seq: None,
                active: None,
            })
            .collect();
        let mut open = true;
        loop {
            let idle = self.pending.is_empty() && self.slots.iter().all(|s| s.active.is_none());
            if idle {
                if !open {
                    return;
                }
                match rx.recv() {
                    Ok(job) => self.accept(job),
                    Err(_) => return,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(job) => self.accept(job),
                    Err(std_mpsc::TryRecvError::Empty) => break,
                    Err(std_mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            if catch_unwind(AssertUnwindSafe(|| self.step())).is_err() {
                // An engine panic must not take the server down: fail the running requests
                // and start again with fresh sequences.
                for slot in &mut self.slots {
                    if let Some(a) = slot.active.take() {
                        let _ = a
                            .req
                            .events
                            .send(Event::Error("internal error in the engine".into()));
                        Metrics::add(&self.metrics.requests_failed_total, 1);
                    }
                    slot.seq = None;
                }
                self.sync_gauges();
            }
        }
    }

    fn accept(&mut self, job: Job) {
        match job {
            Job::Generate(r) => self.pending.push_back(r),
            Job::Embed(inputs, reply) => {
                let b = self.b;
                let res = catch_unwind(AssertUnwindSafe(|| {
                    inputs.iter().map(|t| b.embed(t)).collect()
                }))
                .unwrap_or_else(|_| Err(anyhow::anyhow!("internal error in the engine")));
                let _ = reply.send(res);
            }
        }
    }

    fn sync_gauges(&self) {
        let busy = self.slots.iter().filter(|s| s.active.is_some()).count();
        self.busy.store(busy, Ordering::SeqCst);
        self.metrics
            .requests_processing
            .store(busy as u64, Ordering::Relaxed);
        self.metrics
            .requests_deferred
            .store(self.pending.len() as u64, Ordering::Relaxed);
    }

    fn step(&mut self) {
        // Drop cancelled requests, running or waiting.
        for slot in &mut self.slots {
            if slot
                .active
                .as_ref()
                .is_some_and(|a| a.req.events.is_closed())
            {
                slot.active = None;
            }
        }
        let before = self.pending.len();
        self.pending.retain(|r| !r.events.is_closed());
        self.queued
            .fetch_sub(before - self.pending.len(), Ordering::SeqCst);

        // Admit waiting requests into free slots, preferring the slot whose cache shares the
        // longest prefix with the prompt.
        while !self.pending.is_empty() {
            let prompt = &self.pending[0].prompt;
            let b = self.b;
            let free = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.active.is_none())
                .map(|(i, s)| {
                    let common = s.seq.as_ref().map_or(0, |q| {
                        b.seq_tokens(q)
                            .iter()
                            .zip(prompt)
                            .take_while(|(x, y)| x == y)
                            .count()
                    });
                    (common, i)
                })
                .max();
            let Some((_, i)) = free else { break };
            let req = self.pending.pop_front().unwrap();
            self.queued.fetch_sub(1, Ordering::SeqCst);
            self.admit(i, req);
        }
        self.sync_gauges();
        self.decode();
        self.sync_gauges();
    }

    fn admit(&mut self, i: usize, req: GenRequest) {
        let b = self.b;
        let n_ctx = self.config.n_ctx;
        Metrics::add(&self.metrics.requests_total, 1);
        if req.prompt.is_empty() || req.prompt.len() >= n_ctx {
            let msg = if req.prompt.is_empty() {
                "the prompt is empty".to_string()
            } else {
                format!(
                    "the prompt is {} tokens long, which does not fit the context of {n_ctx} tokens",
                    req.prompt.len()
                )
            };
            let _ = req.events.send(Event::Error(msg));
            return;
        }
        let slot = &mut self.slots[i];
        let seq = slot.seq.get_or_insert_with(|| b.new_seq(n_ctx));
        let common = b
            .seq_tokens(seq)
            .iter()
            .zip(&req.prompt)
            .take_while(|(x, y)| x == y)
            .count();
        let cached = common.min(req.prompt.len() - 1);
        b.truncate(seq, cached);
        let t0 = Instant::now();
        let logits = match b.forward(seq, &req.prompt[cached..]) {
            Ok(l) => l,
            Err(e) => {
                slot.seq = None;
                Metrics::add(&self.metrics.requests_failed_total, 1);
                let _ = req.events.send(Event::Error(format!("{e:#}")));
                return;
            }
        };
        let prompt_ns = t0.elapsed().as_nanos() as u64;
        Metrics::add(&self.metrics.prompt_tokens_total, req.prompt.len() as u64);
        Metrics::add(&self.metrics.prompt_cached_tokens_total, cached as u64);
        Metrics::add(&self.metrics.prompt_ns_total, prompt_ns);
        let mut active = Active {
            history: req.prompt.clone(),
            prompt_tokens: req.prompt.len(),
            cached_tokens: cached,
            sampler: b.sampler(&req.sampling),
            json: req
                .json
                .then(|| JsonConstraint::with_schema(req.json_shape.clone())),
            req,
            generated: Vec::new(),
            next: 0,
            utf8: Vec::new(),
            held: String::new(),
            prompt_ns,
            eval_start: Instant::now(),
        };
        let tok = Self::pick(b, &mut active, &logits, n_ctx);
        slot.active = Some(active);
        Self::take_token(b, &self.metrics, slot, tok, n_ctx);
    }

    /// Samples the next token, through the JSON constraint when the request asked for JSON
    /// (`None`: no token can continue the JSON within the budget).
    fn pick(b: &B, a: &mut Active, logits: &[f32], n_ctx: usize) -> Option<u32> {
        let Active {
            json,
            sampler,
            history,
            generated,
            req,
            ..
        } = a;
        let Some(c) = json else {
            return Some(sampler.sample(logits, history));
        };
        // Tokens that may still follow this one: the token limit and the context both count.
        let by_limit = req
            .max_tokens
            .map_or(usize::MAX, |m| m.saturating_sub(generated.len() + 1));
        let by_ctx = n_ctx.saturating_sub(history.len() + 1);
        c.pick(
            logits,
            by_limit.min(by_ctx),
            &mut |l| sampler.sample(l, history),
            &|t| b.piece(t),
            &|t| b.is_end_of_generation(t),
        )
    }

    /// Feeds the sampled token to the request: text out, stop checks; frees the slot when done.
    /// `None` (nothing can continue the JSON) ends the request as `length`.
    fn take_token(
        b: &B,
        metrics: &Metrics,
        slot: &mut Slot<'a, B>,
        tok: Option<u32>,
        n_ctx: usize,
    ) {
        let a = slot.active.as_mut().unwrap();
        let mut finish = None;
        if tok.is_none_or(|t| b.is_end_of_generation(t)) {
            // End of generation, or nothing can continue the JSON: release the text held back
            // for a possible stop string or an incomplete character.
            finish = Some(if tok.is_some() {
                Finish::Stop
            } else {
                Finish::Length
            });
            let mut rest = std::mem::take(&mut a.held);
            rest.push_str(&String::from_utf8_lossy(&std::mem::take(&mut a.utf8)));
            if !rest.is_empty() && a.req.events.send(Event::Text(rest)).is_err() {
                slot.active = None;
                return;
            }
        } else if let Some(tok) = tok {
            a.generated.push(tok);
            a.history.push(tok);
            Metrics::add(&metrics.tokens_predicted_total, 1);
            let piece = b.piece(tok);
            let json_done = a
                .json
                .as_mut()
                .is_some_and(|c| c.push(&piece) == JsonStatus::Complete);
            a.utf8.extend_from_slice(&piece);
            let (text, rest) = split_utf8(&a.utf8);
            let rest = rest.to_vec();
            a.held.push_str(&text);
            a.utf8 = rest;
            let stops = &a.req.stop;
            let mut emit = String::new();
            if let Some(pos) = stops.iter().filter_map(|s| a.held.find(s.as_str())).min() {
                emit.push_str(&a.held[..pos]);
                a.held.clear();
                a.utf8.clear();
                finish = Some(Finish::Stop);
            } else {
                let keep = held_suffix_len(&a.held, stops);
                let cut = a.held.len() - keep;
                emit.push_str(&a.held[..cut]);
                a.held.drain(..cut);
            }
            if finish.is_none() {
                let at_limit = a.req.max_tokens.is_some_and(|m| a.generated.len() >= m);
                if json_done || at_limit || a.history.len() >= n_ctx {
                    // A closed JSON object is a natural end, even on the last allowed token.
                    finish = Some(if json_done {
                        Finish::Stop
                    } else {
                        Finish::Length
                    });
                    emit.push_str(&a.held);
                    emit.push_str(&String::from_utf8_lossy(&a.utf8));
                }
            }
            if !emit.is_empty() && a.req.events.send(Event::Text(emit)).is_err() {
                slot.active = None; // the client went away
                return;
            }
            a.next = tok;
        }
        if let Some(finish) = finish {
            let a = slot.active.take().unwrap();
            let done = Done {
                finish,
                prompt_tokens: a.prompt_tokens,
                cached_tokens: a.cached_tokens,
                prompt_ns: a.prompt_ns,
                eval_tokens: a.generated.len(),
                eval_ns: a.eval_start.elapsed().as_nanos() as u64,
                tokens: a.generated,
            };
            let _ = a.req.events.send(Event::Done(done));
        }
    }

    fn decode(&mut self) {
        let b = self.b;
        let n_ctx = self.config.n_ctx;
        let mut idx = Vec::new();
        let mut toks = Vec::new();
        let mut seqs: Vec<&mut B::Seq<'a>> = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let (Some(a), Some(seq)) = (slot.active.as_ref(), slot.seq.as_mut()) {
                idx.push(i);
                toks.push(a.next);
                seqs.push(seq);
            }
        }
        if seqs.is_empty() {
            return;
        }
        let t0 = Instant::now();
        let result = if seqs.len() == 1 {
            b.forward(seqs[0], &toks).map(|l| vec![l])
        } else {
            b.forward_batch(&mut seqs, &toks)
        };
        drop(seqs);
        Metrics::add(
            &self.metrics.tokens_predicted_ns_total,
            t0.elapsed().as_nanos() as u64,
        );
        Metrics::add(&self.metrics.decode_steps_total, 1);
        Metrics::add(&self.metrics.decode_batch_tokens_total, idx.len() as u64);
        match result {
            Ok(all) => {
                for (k, logits) in idx.into_iter().zip(all) {
                    let slot = &mut self.slots[k];
                    let a = slot.active.as_mut().unwrap();
                    let tok = Self::pick(b, a, &logits, n_ctx);
                    Self::take_token(b, &self.metrics, slot, tok, n_ctx);
                }
            }
            Err(e) => {
                for k in idx {
                    let slot = &mut self.slots[k];
                    if let Some(a) = slot.active.take() {
                        let _ = a.req.events.send(Event::Error(format!("{e:#}")));
                        Metrics::add(&self.metrics.requests_failed_total, 1);
                    }
                    slot.seq = None;
                }
            }
        }
    }
}

/// Splits bytes into the text decodable now and an incomplete UTF-8 tail kept for later.
/// Invalid sequences become U+FFFD (lossy, like the tokenizer's own decoding).
fn split_utf8(bytes: &[u8]) -> (String, &[u8]) {
    let mut out = String::new();
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return (out, &[]);
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap());
                match e.error_len() {
                    None => return (out, bad),
                    Some(n) => {
                        out.push('\u{fffd}');
                        rest = &bad[n..];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_tail_is_held() {
        let s = "é".as_bytes();
        assert_eq!(split_utf8(&s[..1]), (String::new(), &s[..1]));
        assert_eq!(split_utf8(s).0, "é");
        assert_eq!(split_utf8(&[b'a', 0xff, b'b']).0, "a\u{fffd}b");
    }

    #[test]
    fn stop_prefix_held_back() {
        let stops = vec!["User:".to_string()];
        assert_eq!(held_suffix_len("hello Us", &stops), 2);
        assert_eq!(held_suffix_len("hello", &stops), 0);
    }
}
