//! Liveness, version, llama.cpp-style utility endpoints and `/metrics`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::backend::ChatTurn;
use super::reply::{ok_json, parse_body, ApiError};
use super::scheduler::WorkerHandle;
use super::{prompt, SharedState, OLLAMA_COMPAT_VERSION};

pub async fn root() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Ollama is running",
    )
        .into_response()
}

pub async fn version() -> Response {
    ok_json(json!({ "version": OLLAMA_COMPAT_VERSION }))
}

pub async fn health() -> Response {
    ok_json(json!({"status": "ok"}))
}

pub async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    let e = ApiError::not_found(format!("404 page not found: {path}"));
    if path.starts_with("/v1/") {
        e.openai().into_response()
    } else {
        e.into_response()
    }
}

pub async fn metrics(State(state): State<SharedState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The model a utility request names, or the only/first loaded one, or the `-m` model.
async fn pick_model(
    state: &SharedState,
    name: Option<&str>,
) -> Result<(WorkerHandle, super::models::ResolvedModel), ApiError> {
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => {
            let loaded = state
                .models
                .loaded
                .lock()
                .ok()
                .and_then(|l| l.first().map(|m| m.name.clone()));
            match loaded.or_else(|| state.config.default_model.as_ref().map(|d| d.0.clone())) {
                Some(n) => n,
                None => {
                    return Err(ApiError::bad_request(
                        "model is required (no model is loaded)",
                    ))
                }
            }
        }
    };
    let m = prompt::resolve(state, &name)?;
    let (h, _) = state.models.acquire(state, &m, None).await?;
    Ok((h, m))
}

#[derive(Deserialize)]
struct TokenizeRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: String,
    #[serde(default)]
    add_special: bool,
    #[serde(default)]
    with_pieces: bool,
}

pub async fn tokenize(State(state): State<SharedState>, body: Bytes) -> Result<Response, ApiError> {
    let req: TokenizeRequest = parse_body(&body)?;
    let (h, _) = pick_model(&state, req.model.as_deref()).await?;
    let ids = h
        .text
        .tokenize(&req.content, req.add_special && h.text.add_bos_default())
        .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    let tokens: Value = if req.with_pieces {
        ids.iter()
            .map(|&id| {
                let bytes = h.text.piece(id);
                let piece = match String::from_utf8(bytes.clone()) {
                    Ok(s) => json!(s),
                    Err(_) => json!(bytes),
                };
                json!({"id": id, "piece": piece})
            })
            .collect()
    } else {
        json!(ids)
    };
    Ok(ok_json(json!({ "tokens": tokens })))
}

#[derive(Deserialize)]
struct DetokenizeRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    tokens: Vec<u32>,
}

pub async fn detokenize(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: DetokenizeRequest = parse_body(&body)?;
    let (h, _) = pick_model(&state, req.model.as_deref()).await?;
    let n_vocab = h.text.meta().n_vocab;
    if let Some(bad) = req
        .tokens
        .iter()
        .find(|&&t| n_vocab > 0 && t as usize >= n_vocab)
    {
        return Err(ApiError::bad_request(format!(
            "token id {bad} is out of range (vocabulary of {n_vocab})"
        )));
    }
    Ok(ok_json(
        json!({ "content": h.text.detokenize(&req.tokens) }),
    ))
}

#[derive(Deserialize)]
struct ApplyTemplateRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Vec<Value>,
}

/// Renders the chat prompt exactly as `/api/chat` would, without running the model.
pub async fn apply_template(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: ApplyTemplateRequest = parse_body(&body)?;
    let (h, m) = pick_model(&state, req.model.as_deref()).await?;
    let mut turns = Vec::new();
    for msg in &req.messages {
        let role = msg
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user")
            .to_string();
        let content = prompt::content_text(msg.get("content").unwrap_or(&Value::Null))?;
        turns.push(ChatTurn { role, content });
    }
    let rendered = prompt::render_chat(&m, &*h.text, &turns)?;
    let tokens = prompt::tokenize_prompt(&*h.text, &rendered)?;
    Ok(ok_json(json!({ "prompt": rendered, "tokens": tokens })))
}

pub async fn props(State(state): State<SharedState>) -> Response {
    let l = state.config.load.clone();
    ok_json(json!({
        "build_info": format!("bitnet-gguf {}", env!("CARGO_PKG_VERSION")),
        "total_slots": l.n_slots,
        "n_ctx": l.n_ctx,
        "max_queue": l.max_queue,
        "model_path": state.config.default_model.as_ref().map(|d| d.1.display().to_string()),
    }))
}
