//! Turning scheduler events into HTTP bodies: NDJSON lines (`/api/*`) or SSE events (`/v1/*`),
//! one chunk per token, flushed as produced; and the non-streamed collection of a reply.

use std::convert::Infallible;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;

use super::models::ResolvedModel;
use super::reply::ApiError;
use super::request_log::{self, SharedNote};
use super::scheduler::{Done, Event, GenRequest, SubmitError, WorkerHandle};
use super::AppState;
use crate::engine::generation::{GenerateParams, TokenLogprob, TokenText};
use crate::serve::options::{KeepAlive, RunOptions};
use serde_json::{json, Map, Value};

/// A generation that has produced its first event (so errors before any token still get a
/// proper status code).
pub struct Started {
    pub first: Event,
    pub rx: UnboundedReceiver<Event>,
    pub prompt: Vec<u32>,
    pub load_ns: u64,
    pub t0: Instant,
    /// Turns true when the server begins to shut down.
    pub shutdown: watch::Receiver<bool>,
    /// The request log's note of this request.
    pub note: Option<SharedNote>,
}

/// Records a finished generation's token counts in its request's log note.
fn note_done(note: Option<&SharedNote>, d: &Done) {
    request_log::note(note, |n| {
        n.tokens_in = d.prompt_tokens as u64;
        n.tokens_out = d.eval_tokens as u64;
    });
}

/// The message of the final chunk a stream cut by a shutdown ends with.
pub const SHUTTING_DOWN: &str = "the server is shutting down";

/// Resolves once the server begins to shut down (never if its sender is gone).
async fn shut_down(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|&stop| stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The context of one request: `num_ctx` when smaller than the slots' context.
pub fn context_len(handle: &WorkerHandle, opts: &RunOptions) -> usize {
    opts.num_ctx
        .map_or(handle.config.n_ctx, |n| n.min(handle.config.n_ctx))
}

/// Submits a generation. A prompt that does not fit the context is cut from the front, keeping
/// its first `keep` tokens and the most recent ones (what Ollama does instead of failing).
#[allow(clippy::too_many_arguments)]
pub async fn start(
    state: &AppState,
    model: &ResolvedModel,
    handle: &WorkerHandle,
    prompt: Vec<u32>,
    keep: usize,
    opts: &RunOptions,
    load_ns: u64,
    t0: Instant,
) -> Result<Started, ApiError> {
    let n_ctx = context_len(handle, opts);
    let keep = opts.num_keep.unwrap_or(keep);
    let prompt = if prompt.len() >= n_ctx {
        let budget = super::prompt::prompt_budget(n_ctx, opts.max_tokens());
        super::prompt::truncate_front(prompt, keep, budget)
    } else {
        prompt
    };
    if prompt.len() >= n_ctx {
        return Err(ApiError::bad_request(format!(
            "the prompt is {} tokens long, which does not fit the context of {n_ctx} tokens",
            prompt.len()
        )));
    }
    let mut max_tokens = opts.max_tokens();
    if opts.num_ctx.is_some() {
        let room = n_ctx - prompt.len();
        max_tokens = Some(max_tokens.map_or(room, |m| m.min(room)));
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let req = GenRequest {
        prompt: prompt.clone(),
        params: GenerateParams {
            max_tokens,
            sampler: opts.sampling.clone(),
            // The template's own stop strings could cut a JSON string short; JSON output ends
            // when its object closes. Stops the request gave still apply.
            stop: if opts.json && !opts.stop_given {
                Vec::new()
            } else {
                opts.stop.clone()
            },
            json: opts.json,
            json_shape: opts.json_shape.clone(),
            logprobs: opts.logprobs,
        },
        events: tx,
        // A shift must leave something to drop.
        keep: keep.min(n_ctx / 2),
    };
    match handle.submit(req) {
        Ok(()) => {}
        Err(SubmitError::QueueFull) => {
            super::metrics::Metrics::add(&state.metrics.requests_rejected_total, 1);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server busy, please try again. maximum pending requests exceeded",
            ));
        }
        Err(SubmitError::Stopped) => {
            return Err(ApiError::internal(format!(
                "model '{}' was unloaded",
                model.name
            )))
        }
    }
    let note = request_log::current();
    request_log::note(note.as_ref(), |n| {
        n.model = Some(model.name.clone());
        n.tokens_in = prompt.len() as u64;
    });
    let mut shutdown = state.shutdown.subscribe();
    let first = tokio::select! {
        ev = rx.recv() => ev,
        _ = shut_down(&mut shutdown) => return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            SHUTTING_DOWN,
        )),
    };
    state
        .metrics
        .time_to_first_token(t0.elapsed().as_nanos() as u64);
    match first {
        Some(Event::Error(e)) => Err(ApiError::internal(e)),
        Some(first) => Ok(Started {
            first,
            rx,
            prompt,
            load_ns,
            t0,
            shutdown,
            note,
        }),
        None => Err(ApiError::internal("generation ended without a result")),
    }
}

/// A whole reply: its text, summary and the log-probabilities of its tokens (when asked for).
pub struct Reply {
    pub text: String,
    pub done: Done,
    pub logprobs: Vec<TokenLogprob>,
}

/// Collects a whole reply (non-streamed requests).
pub async fn collect(mut s: Started) -> Result<Reply, ApiError> {
    let mut text = String::new();
    let mut logprobs = Vec::new();
    let mut ev = Some(s.first);
    while let Some(e) = ev.take() {
        match e {
            Event::Logprobs(l) => logprobs.extend(l),
            Event::Text(t) => text.push_str(&t),
            Event::Done(done) => {
                note_done(s.note.as_ref(), &done);
                return Ok(Reply {
                    text,
                    done,
                    logprobs,
                });
            }
            Event::Error(e) => return Err(ApiError::internal(e)),
        }
        ev = tokio::select! {
            ev = s.rx.recv() => ev,
            _ = shut_down(&mut s.shutdown) => return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SHUTTING_DOWN,
            )),
        };
    }
    Err(ApiError::internal("generation ended without a result"))
}

/// A streamed body: `f` maps each text, end or error event, with the log-probabilities of the
/// tokens chosen since the previous one, to the bytes to send (empty = nothing).
/// A shutdown ends the stream with an `Event::Error` (so each API frames it as its errors), and
/// dropping the generation's receiver cancels it in the scheduler.
pub fn body(
    s: Started,
    mut f: impl FnMut(Event, Vec<TokenLogprob>) -> String + Send + 'static,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (mut events, mut shutdown, note) = (s.rx, s.shutdown, s.note);
    if let Event::Done(d) = &s.first {
        note_done(note.as_ref(), d);
    }
    let first_is_last = matches!(s.first, Event::Done(_) | Event::Error(_));
    let _ = tx.send(s.first);
    tokio::spawn(async move {
        if first_is_last {
            return;
        }
        loop {
            let ev = tokio::select! {
                ev = events.recv() => ev,
                _ = shut_down(&mut shutdown) => Some(Event::Error(SHUTTING_DOWN.into())),
                // The client went away: stop forwarding, which cancels the generation.
                _ = tx.closed() => None,
            };
            let Some(ev) = ev else { break };
            if let Event::Done(d) = &ev {
                note_done(note.as_ref(), d);
            }
            let last = matches!(ev, Event::Done(_) | Event::Error(_));
            if tx.send(ev).is_err() || last {
                break;
            }
        }
    });
    let events = UnboundedReceiverStream::new(rx);
    let mut pending = Vec::new();
    let chunks = events.filter_map(move |ev| {
        let out = match ev {
            Event::Logprobs(l) => {
                pending.extend(l);
                String::new()
            }
            ev => f(ev, std::mem::take(&mut pending)),
        };
        (!out.is_empty()).then(|| Ok::<_, Infallible>(Bytes::from(out)))
    });
    Body::from_stream(chunks)
}

/// Ollama's `logprobs` and OpenAI chat's `logprobs.content`: one entry per token with its text,
/// log-probability, bytes and `top_logprobs` (the same three for the likeliest tokens).
pub fn logprob_entries(text: &dyn TokenText, lps: &[TokenLogprob]) -> Value {
    let entry = |id: u32, lp: f32| {
        let bytes = text.piece(id);
        json!({"token": String::from_utf8_lossy(&bytes), "logprob": lp, "bytes": bytes})
    };
    lps.iter()
        .map(|l| {
            let mut e = entry(l.token, l.logprob);
            e["top_logprobs"] = l.top.iter().map(|&(id, lp)| entry(id, lp)).collect();
            e
        })
        .collect()
}

/// OpenAI completions' `logprobs`: parallel lists of tokens, their log-probabilities, the
/// likeliest tokens' (text → log-probability) and each token's offset in the output text;
/// `offset` is where this part of the output starts, advanced past it.
pub fn completion_logprobs(
    text: &dyn TokenText,
    lps: &[TokenLogprob],
    offset: &mut usize,
) -> Value {
    let piece = |id: u32| String::from_utf8_lossy(&text.piece(id)).into_owned();
    let mut tokens = Vec::new();
    let mut offsets = Vec::new();
    for l in lps {
        let t = piece(l.token);
        offsets.push(*offset);
        *offset += t.len();
        tokens.push(t);
    }
    let top: Vec<Value> = lps
        .iter()
        .map(|l| {
            let m: Map<String, Value> = l
                .top
                .iter()
                .map(|&(id, lp)| (piece(id), json!(lp)))
                .collect();
            Value::Object(m)
        })
        .collect();
    let logprobs: Vec<f32> = lps.iter().map(|l| l.logprob).collect();
    json!({"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": top, "text_offset": offsets})
}

pub fn ndjson_response(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

pub fn sse_response(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// One NDJSON line.
pub fn line(v: &serde_json::Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// One SSE event.
pub fn sse(v: &serde_json::Value) -> String {
    format!("data: {v}\n\n")
}

/// Restarts the model's keep-alive clock once its request is over.
pub fn release(state: &AppState, model: &ResolvedModel, ka: KeepAlive) {
    state.models.release(&model.path, ka);
}
