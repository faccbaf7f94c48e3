//! One scheduler thread per loaded model: `n_slots` sequences share the model; every step
//! evaluates the newly admitted prompts and one token of every running sequence in one
//! batch, so the weights are read once per step. Requests beyond the free slots wait in a bounded queue. A request whose client went
//! away (its event receiver was dropped) is cancelled at the next step and frees its slot.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::backend::{Backend, TextModel};
use super::metrics::Metrics;
use crate::engine::generation::{GenerateParams, Generation, Step, TokenLogprob};

pub use crate::engine::generation::FinishReason as Finish;

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
    /// Log-probabilities of tokens chosen since the last event (only when asked for); the
    /// text they produced follows.
    Logprobs(Vec<TokenLogprob>),
    Text(String),
    Done(Done),
    Error(String),
}

pub struct GenRequest {
    pub prompt: Vec<u32>,
    /// `max_tokens: None` = until a stop or the end of the context.
    pub params: GenerateParams,
    pub events: mpsc::UnboundedSender<Event>,
    /// Leading prompt tokens a context shift keeps (BOS, the system prompt).
    pub keep: usize,
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
    kv_tokens: Arc<AtomicUsize>,
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

    /// Context positions whose KV cache memory the slots have written so far (the caches are
    /// allocated zeroed and untouched pages cost nothing, so this, not the context size, is
    /// what the caches occupy).
    pub fn kv_tokens(&self) -> usize {
        self.kv_tokens.load(Ordering::Relaxed)
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
    let kv_tokens = Arc::new(AtomicUsize::new(0));
    let handle = WorkerHandle {
        tx,
        text: backend.clone() as Arc<dyn TextModel>,
        config,
        queued: queued.clone(),
        busy: busy.clone(),
        kv_tokens: kv_tokens.clone(),
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
                kv_tokens,
                slots: Vec::new(),
                pending: VecDeque::new(),
            };
            w.run(rx);
        })
        .expect("spawning the scheduler thread");
    handle
}

/// A request holding a slot: its generation, fed one logits row per decode step.
struct Active<'a> {
    events: mpsc::UnboundedSender<Event>,
    generation: Generation<'a>,
    /// The token the next decode step evaluates.
    next: u32,
    /// Prompt tokens still to evaluate (those past the cached prefix): set at admission,
    /// taken by the next step, which evaluates them with the other slots' tokens.
    prefill: Vec<u32>,
    prompt_ns: u64,
    eval_start: Instant,
    /// Leading tokens kept when the slot's context is shifted.
    keep: usize,
}

struct Slot<'a, B: Backend> {
    seq: Option<B::Seq<'a>>,
    active: Option<Active<'a>>,
    /// The longest the sequence has been: its cache's pages up to there are written.
    kv_high: usize,
}

struct Worker<'a, B: Backend> {
    b: &'a B,
    config: SchedConfig,
    metrics: Arc<Metrics>,
    queued: Arc<AtomicUsize>,
    busy: Arc<AtomicUsize>,
    kv_tokens: Arc<AtomicUsize>,
    slots: Vec<Slot<'a, B>>,
    pending: VecDeque<GenRequest>,
}

impl<'a, B: Backend> Worker<'a, B> {
    fn run(&mut self, rx: std_mpsc::Receiver<Job>) {
        self.slots = (0..self.config.n_slots.max(1))
            .map(|_| Slot {
                seq: None,
                active: None,
                kv_high: 0,
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

    fn sync_gauges(&mut self) {
        let b = self.b;
        let mut kv = 0;
        for slot in &mut self.slots {
            slot.kv_high = match &slot.seq {
                Some(seq) => slot.kv_high.max(b.seq_len(seq)),
                None => 0,
            };
            kv += slot.kv_high;
        }
        self.kv_tokens.store(kv, Ordering::Relaxed);
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
            if slot.active.as_ref().is_some_and(|a| a.events.is_closed()) {
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
        Metrics::add(&self.metrics.prompt_tokens_total, req.prompt.len() as u64);
        Metrics::add(&self.metrics.prompt_cached_tokens_total, cached as u64);
        let sampler = b.sampler(&req.params.sampler);
        // Prompt and output together stay within the slot's context, unless it shifts.
        let room = match b.shifts() {
            true => usize::MAX,
            false => n_ctx - req.prompt.len(),
        };
        let generation = Generation::new(&req.params, sampler, b, &req.prompt, cached, room);
        slot.active = Some(Active {
            events: req.events,
            generation,
            next: 0,
            prefill: req.prompt[cached..].to_vec(),
            prompt_ns: 0,
            eval_start: Instant::now(),
            keep: req.keep,
        });
    }

    /// Feeds a slot's logits row to its generation: sends the text that became final, and the
    /// summary when the generation ends, which frees the slot.
    fn advance(metrics: &Metrics, slot: &mut Slot<'a, B>, logits: &[f32]) {
        let Some(a) = slot.active.as_mut() else {
            return;
        };
        let before = a.generation.generated_tokens();
        let step = a.generation.step(logits);
        let new_tokens = a.generation.generated_tokens() - before;
        Metrics::add(&metrics.tokens_predicted_total, new_tokens as u64);
        let logprobs = a.generation.take_logprobs();
        if !logprobs.is_empty() && a.events.send(Event::Logprobs(logprobs)).is_err() {
            slot.active = None; // the client went away
            return;
        }
        let Some(a) = slot.active.as_mut() else {
            return;
        };
        let (text, finish) = match step {
            Step::Token { token, text } => {
                a.next = token;
                (text, None)
            }
            Step::Done { finish, text } => (text, Some(finish)),
        };
        if !text.is_empty() && a.events.send(Event::Text(text)).is_err() {
            slot.active = None; // the client went away
            return;
        }
        let Some(finish) = finish else { return };
        let Some(a) = slot.active.take() else { return };
        let g = a.generation;
        let done = Done {
            finish,
            prompt_tokens: g.prompt_tokens(),
            cached_tokens: g.cached_tokens(),
            prompt_ns: a.prompt_ns,
            eval_tokens: g.generated_tokens(),
            eval_ns: a.eval_start.elapsed().as_nanos() as u64,
            tokens: g.into_tokens(),
        };
        let _ = a.events.send(Event::Done(done));
    }

    /// One pass over every active slot: the prompts admitted since the last step and one
    /// token of each running generation, evaluated together (the weights are read once).
    fn decode(&mut self) {
        let b = self.b;
        let mut idx = Vec::new();
        let mut toks: Vec<Vec<u32>> = Vec::new();
        let mut seqs: Vec<&mut B::Seq<'a>> = Vec::new();
        // Whether each slot's tokens are its prompt (admitted since the last step).
        let mut new = Vec::new();
        let (mut prompt_tokens, mut decode_tokens) = (0usize, 0usize);
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let (Some(a), Some(seq)) = (slot.active.as_mut(), slot.seq.as_mut()) {
                if a.prefill.is_empty() {
                    b.shift_if_full(seq, a.keep);
                    toks.push(vec![a.next]);
                    decode_tokens += 1;
                    new.push(false);
                } else {
                    prompt_tokens += a.prefill.len();
                    toks.push(std::mem::take(&mut a.prefill));
                    new.push(true);
                }
                idx.push(i);
                seqs.push(seq);
            }
        }
        if seqs.is_empty() {
            return;
        }
        let t0 = Instant::now();
        let lists: Vec<&[u32]> = toks.iter().map(|t| &t[..]).collect();
        let result = b.forward_seqs(&mut seqs, &lists);
        drop(seqs);
        // A step's time is shared between the prompt and the decode figures by their tokens.
        let ns = t0.elapsed().as_nanos() as u64;
        let total = (prompt_tokens + decode_tokens).max(1) as u64;
        let prompt_ns = ns * prompt_tokens as u64 / total;
        Metrics::add(&self.metrics.prompt_ns_total, prompt_ns);
        if decode_tokens > 0 {
            Metrics::add(&self.metrics.tokens_predicted_ns_total, ns - prompt_ns);
            Metrics::add(&self.metrics.decode_steps_total, 1);
            Metrics::add(
                &self.metrics.decode_batch_tokens_total,
                decode_tokens as u64,
            );
        }
        match result {
            Ok(all) => {
                for ((k, logits), &admitted) in idx.into_iter().zip(all).zip(&new) {
                    let slot = &mut self.slots[k];
                    if let Some(a) = slot.active.as_mut().filter(|_| admitted) {
                        // The prompt took the step it was evaluated in; generation starts now.
                        a.prompt_ns = ns;
                        a.eval_start = Instant::now();
                    }
                    Self::advance(&self.metrics, slot, &logits);
                }
            }
            Err(e) => {
                for k in idx {
                    let slot = &mut self.slots[k];
                    if let Some(a) = slot.active.take() {
                        let _ = a.events.send(Event::Error(format!("{e:#}")));
                        Metrics::add(&self.metrics.requests_failed_total, 1);
                    }
                    slot.seq = None;
                }
            }
        }
    }
}
