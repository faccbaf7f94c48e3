//! Turning scheduler events into HTTP bodies: NDJSON lines (`/api/*`) or SSE events (`/v1/*`),
//! one chunk per token, flushed as produced; and the non-streamed collection of a reply.

use std::convert::Infallible;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;

use super::models::ResolvedModel;
use super::reply::ApiError;
use super::scheduler::{Done, Event, GenRequest, SubmitError, WorkerHandle};
use super::AppState;
use crate::engine::generation::GenerateParams;
use crate::serve::options::{KeepAlive, RunOptions};

/// A generation that has produced its first event (so errors before any token still get a
/// proper status code).
pub struct Started {
    pub first: Event,
    pub rx: UnboundedReceiver<Event>,
    pub prompt: Vec<u32>,
    pub load_ns: u64,
    pub t0: Instant,
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
    match rx.recv().await {
        Some(Event::Error(e)) => Err(ApiError::internal(e)),
        Some(first) => Ok(Started {
            first,
            rx,
            prompt,
            load_ns,
            t0,
        }),
        None => Err(ApiError::internal("generation ended without a result")),
    }
}

/// Collects a whole reply (non-streamed requests).
pub async fn collect(mut s: Started) -> Result<(String, Done), ApiError> {
    let mut text = String::new();
    let mut ev = Some(s.first);
    while let Some(e) = ev.take() {
        match e {
            Event::Text(t) => text.push_str(&t),
            Event::Done(d) => return Ok((text, d)),
            Event::Error(e) => return Err(ApiError::internal(e)),
        }
        ev = s.rx.recv().await;
    }
    Err(ApiError::internal("generation ended without a result"))
}

/// A streamed body: `f` maps each event to the bytes to send (empty = nothing).
pub fn body(s: Started, mut f: impl FnMut(Event) -> String + Send + 'static) -> Body {
    let events = tokio_stream::once(s.first).chain(UnboundedReceiverStream::new(s.rx));
    let chunks = events.filter_map(move |ev| {
        let out = f(ev);
        (!out.is_empty()).then(|| Ok::<_, Infallible>(Bytes::from(out)))
    });
    Body::from_stream(chunks)
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
