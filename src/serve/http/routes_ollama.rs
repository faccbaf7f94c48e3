//! Ollama's inference endpoints: `/api/generate`, `/api/chat` (embeddings: `routes_embed`).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::backend::ChatTurn;
use super::models::ResolvedModel;
use super::prompt;
use super::reply::{now_rfc3339, ok_json, parse_body, ApiError};
use super::scheduler::{Done, Event, Finish};
use super::stream::{self, Started};
use super::{AppState, SharedState};
use crate::engine::generation::{TokenLogprob, TokenText};
use crate::engine::json_constraint::schema::Shape;
use crate::serve::options::{parse_keep_alive, top_logprobs, KeepAlive};

#[derive(Deserialize, Default)]
pub struct GenerateRequest {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub context: Option<Vec<u32>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub raw: bool,
    #[serde(default)]
    pub format: Option<Value>,
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
    #[serde(default)]
    pub keep_alive: Option<Value>,
    #[serde(default)]
    pub images: Option<Vec<String>>,
    #[serde(default)]
    pub think: Option<Value>,
    #[serde(default)]
    pub logprobs: bool,
    #[serde(default)]
    pub top_logprobs: Option<Value>,
}

#[derive(Deserialize)]
pub struct InMessage {
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub content: Value,
    #[serde(default)]
    pub images: Option<Vec<String>>,
}

#[derive(Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub format: Option<Value>,
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub keep_alive: Option<Value>,
    #[serde(default)]
    pub think: Option<Value>,
    #[serde(default)]
    pub logprobs: bool,
    #[serde(default)]
    pub top_logprobs: Option<Value>,
}

/// `logprobs` and `top_logprobs`: how many alternatives to report per token, when asked.
fn logprobs_asked(logprobs: bool, top: &Option<Value>) -> Result<Option<usize>, ApiError> {
    let top = top_logprobs("top_logprobs", top.as_ref()).map_err(ApiError::bad_request)?;
    Ok(logprobs.then_some(top))
}

/// Adds `logprobs` to a reply object when they were asked for.
fn put_logprobs(
    o: &mut Map<String, Value>,
    text: &dyn TokenText,
    asked: Option<usize>,
    lps: &[TokenLogprob],
) {
    if asked.is_some() {
        o.insert("logprobs".into(), stream::logprob_entries(text, lps));
    }
}

pub fn keep_alive(v: &Option<Value>) -> Result<Option<KeepAlive>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_keep_alive(v).map(Some).map_err(ApiError::bad_request),
    }
}

/// Checks what the model cannot do; returns what `format` asks for (see [`json_format`]).
fn check_common(
    name: &str,
    format: &Option<Value>,
    think: &Option<Value>,
    images: bool,
) -> Result<JsonFormat, ApiError> {
    if images {
        return Err(ApiError::bad_request(format!(
            "\"{name}\" does not support images"
        )));
    }
    if think
        .as_ref()
        .is_some_and(|t| t.as_bool() == Some(true) || t.is_string())
    {
        return Err(ApiError::bad_request(format!(
            "\"{name}\" does not support thinking"
        )));
    }
    json_format(format)
}

/// Whether the output must be JSON, and the schema shape it must have.
pub type JsonFormat = (bool, Option<Arc<Shape>>);

/// Ollama's `format`: absent, `null` or `""` = free text; `"json"` = one JSON object; a JSON
/// schema = an object of the schema's shape (see `json_constraint::schema`).
pub fn json_format(format: &Option<Value>) -> Result<JsonFormat, ApiError> {
    match format {
        None | Some(Value::Null) => Ok((false, None)),
        Some(Value::String(s)) if s.is_empty() => Ok((false, None)),
        Some(Value::String(s)) if s == "json" => Ok((true, None)),
        Some(v @ Value::Object(_)) => Ok((true, Some(Arc::new(Shape::from_schema(v))))),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid format: {other}; expected \"json\" or a valid JSON Schema object"
        ))),
    }
}

/// Metrics of the final object; Ollama omits zero values.
pub fn metrics_fields(obj: &mut Map<String, Value>, done: &Done, load_ns: u64, t0: Instant) {
    let mut put = |k: &str, v: u64| {
        if v > 0 {
            obj.insert(k.into(), json!(v));
        }
    };
    put("total_duration", t0.elapsed().as_nanos() as u64);
    put("load_duration", load_ns);
    put("prompt_eval_count", done.prompt_tokens as u64);
    put("prompt_eval_duration", done.prompt_ns);
    put("eval_count", done.eval_tokens as u64);
    put("eval_duration", done.eval_ns);
}

pub fn done_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "stop",
        Finish::Length => "length",
    }
}

/// Load-only / unload-only replies for empty prompts and message lists.
async fn load_or_unload(
    state: &AppState,
    model: &ResolvedModel,
    ka: Option<KeepAlive>,
    chat: bool,
) -> Result<Response, ApiError> {
    let reason = if ka == Some(KeepAlive::For(std::time::Duration::ZERO)) {
        state.models.unload(&model.path);
        "unload"
    } else {
        state.models.acquire(state, model, ka).await?;
        "load"
    };
    let mut v = json!({"model": model.name, "created_at": now_rfc3339(), "done": true, "done_reason": reason});
    if chat {
        v["message"] = json!({"role": "assistant", "content": ""});
    } else {
        v["response"] = json!("");
    }
    Ok(ok_json(v))
}

pub async fn generate(State(state): State<SharedState>, body: Bytes) -> Result<Response, ApiError> {
    let t0 = Instant::now();
    let req: GenerateRequest = parse_body(&body)?;
    let model = prompt::resolve(&state, &req.model)?;
    let json = check_common(
        &req.model,
        &req.format,
        &req.think,
        req.images.as_ref().is_some_and(|i| !i.is_empty()),
    )?;
    let ka = keep_alive(&req.keep_alive)?;
    let logprobs = logprobs_asked(req.logprobs, &req.top_logprobs)?;
    if req.raw && (req.template.is_some() || req.system.is_some() || req.context.is_some()) {
        return Err(ApiError::bad_request(
            "raw mode does not support template, system, or context",
        ));
    }
    if req.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "\"{}\" does not support insert",
            req.model
        )));
    }
    let text_prompt = req.prompt.clone().unwrap_or_default();
    if text_prompt.is_empty() && req.context.as_ref().is_none_or(|c| c.is_empty()) {
        return load_or_unload(&state, &model, ka, false).await;
    }
    let (handle, load_ns) = state.models.acquire(&state, &model, ka).await?;
    let text = handle.text.clone();
    let mut opts = prompt::run_options(&model, &*text, req.options.as_ref(), false)?;
    (opts.json, opts.json_shape) = json;
    opts.logprobs = logprobs;
    let (tokens, keep) = if req.raw {
        let tokens = prompt::tokenize_prompt(&*text, &text_prompt)?;
        let keep = prompt::keep_len(&*text, None, &tokens);
        (tokens, keep)
    } else {
        let mut turns = Vec::new();
        let system = req
            .system
            .clone()
            .or_else(|| model.entry.as_ref().and_then(|e| e.system.clone()));
        if let Some(s) = system {
            turns.push(ChatTurn {
                role: "system".into(),
                content: s,
            });
        }
        turns.push(ChatTurn {
            role: "user".into(),
            content: text_prompt,
        });
        let render = |turns: &[ChatTurn]| match &req.template {
            Some(t) if !t.is_empty() => crate::serve::gotemplate::render_chat(t, turns)
                .map_err(|e| ApiError::bad_request(format!("template error: {e}"))),
            _ => prompt::render_messages(&model, &*text, turns),
        };
        let rendered = render(&turns)?;
        // Kept at the front when the prompt must be truncated: BOS and the system prompt.
        let system_prefix = (turns.len() > 1)
            .then(|| render(&turns[..1]).ok())
            .flatten();
        let tokens = match &req.context {
            Some(ctx) if !ctx.is_empty() => {
                check_context(&*text, ctx)?;
                let mut t = ctx.clone();
                t.extend(
                    text.tokenize(&rendered, false)
                        .map_err(|e| ApiError::bad_request(format!("{e:#}")))?,
                );
                t
            }
            _ => prompt::tokenize_prompt(&*text, &rendered)?,
        };
        let keep = prompt::keep_len(&*text, system_prefix.as_deref(), &tokens);
        (tokens, keep)
    };
    let ka_final = ka.unwrap_or(state.config.keep_alive);
    let started = stream::start(&state, &model, &handle, tokens, keep, &opts, load_ns, t0).await?;
    let with_context = !req.raw;
    if req.stream == Some(false) {
        let prompt_tokens = started.prompt.clone();
        let r = stream::collect(started).await;
        stream::release(&state, &model, ka_final);
        let r = r?;
        let mut o = generate_final(
            &model.name,
            r.text,
            &r.done,
            load_ns,
            t0,
            with_context.then_some(&prompt_tokens),
        );
        put_logprobs(&mut o, &*text, logprobs, &r.logprobs);
        return Ok(ok_json(Value::Object(o)));
    }
    let how = StreamAs {
        ka: ka_final,
        with_context,
        logprobs,
        text,
    };
    Ok(stream_generate(state.clone(), model, started, how))
}

/// `context` comes back from clients: every id must be one of the model's tokens.
fn check_context(text: &dyn super::backend::TextModel, ctx: &[u32]) -> Result<(), ApiError> {
    let n_vocab = text.meta().n_vocab;
    match ctx.iter().find(|&&id| id as usize >= n_vocab) {
        Some(id) if n_vocab > 0 => Err(ApiError::bad_request(format!(
            "invalid context: token id {id} is outside the vocabulary of {n_vocab} tokens"
        ))),
        _ => Ok(()),
    }
}

fn generate_final(
    name: &str,
    text: String,
    done: &Done,
    load_ns: u64,
    t0: Instant,
    prompt: Option<&Vec<u32>>,
) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("model".into(), json!(name));
    o.insert("created_at".into(), json!(now_rfc3339()));
    o.insert("response".into(), json!(text));
    o.insert("done".into(), json!(true));
    o.insert("done_reason".into(), json!(done_reason(done.finish)));
    if let Some(p) = prompt {
        let mut ctx = p.clone();
        ctx.extend(&done.tokens);
        o.insert("context".into(), json!(ctx));
    }
    metrics_fields(&mut o, done, load_ns, t0);
    o
}

/// How a streamed `/api/generate` reply is written.
struct StreamAs {
    ka: KeepAlive,
    with_context: bool,
    logprobs: Option<usize>,
    text: Arc<dyn super::backend::TextModel>,
}

fn stream_generate(
    state: SharedState,
    model: ResolvedModel,
    s: Started,
    how: StreamAs,
) -> Response {
    let (load_ns, t0, prompt_tokens) = (s.load_ns, s.t0, s.prompt.clone());
    let name = model.name.clone();
    let StreamAs {
        ka,
        with_context,
        logprobs,
        text,
    } = how;
    let body = stream::body(s, move |ev, lps| {
        let mut o = match ev {
            Event::Text(t) => {
                let v = json!({"model": name, "created_at": now_rfc3339(), "response": t, "done": false});
                v.as_object().cloned().unwrap_or_default()
            }
            Event::Done(d) => {
                stream::release(&state, &model, ka);
                let ctx = with_context.then_some(&prompt_tokens);
                generate_final(&name, String::new(), &d, load_ns, t0, ctx)
            }
            Event::Error(e) => {
                stream::release(&state, &model, ka);
                return stream::line(&json!({ "error": e }));
            }
            Event::Logprobs(_) => return String::new(),
        };
        put_logprobs(&mut o, &*text, logprobs, &lps);
        stream::line(&Value::Object(o))
    });
    stream::ndjson_response(body)
}

pub async fn chat(State(state): State<SharedState>, body: Bytes) -> Result<Response, ApiError> {
    let t0 = Instant::now();
    let req: ChatRequest = parse_body(&body)?;
    let model = prompt::resolve(&state, &req.model)?;
    let images = req
        .messages
        .iter()
        .any(|m| m.images.as_ref().is_some_and(|i| !i.is_empty()));
    let json = check_common(&req.model, &req.format, &req.think, images)?;
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "\"{}\" does not support tools",
            req.model
        )));
    }
    let ka = keep_alive(&req.keep_alive)?;
    let logprobs = logprobs_asked(req.logprobs, &req.top_logprobs)?;
    if req.messages.is_empty() {
        return load_or_unload(&state, &model, ka, true).await;
    }
    let mut turns = Vec::new();
    for m in &req.messages {
        if !matches!(m.role.as_str(), "system" | "user" | "assistant" | "tool") {
            return Err(ApiError::bad_request(format!(
                "invalid message role '{}'",
                m.role
            )));
        }
        turns.push(ChatTurn {
            role: m.role.clone(),
            content: prompt::content_text(&m.content)?,
        });
    }
    let (handle, load_ns) = state.models.acquire(&state, &model, ka).await?;
    let text = handle.text.clone();
    let mut opts = prompt::run_options(&model, &*text, req.options.as_ref(), false)?;
    (opts.json, opts.json_shape) = json;
    opts.logprobs = logprobs;
    let n_ctx = stream::context_len(&handle, &opts);
    let (tokens, keep) = prompt::chat_tokens(&model, &*text, &turns, n_ctx, opts.max_tokens())?;
    let ka_final = ka.unwrap_or(state.config.keep_alive);
    let started = stream::start(&state, &model, &handle, tokens, keep, &opts, load_ns, t0).await?;
    if req.stream == Some(false) {
        let r = stream::collect(started).await;
        stream::release(&state, &model, ka_final);
        let r = r?;
        let mut o = chat_final(&model.name, r.text, &r.done, load_ns, t0);
        put_logprobs(&mut o, &*text, logprobs, &r.logprobs);
        return Ok(ok_json(Value::Object(o)));
    }
    let name = model.name.clone();
    let st = state.clone();
    let body = stream::body(started, move |ev, lps| {
        let mut o = match ev {
            Event::Text(t) => {
                let v = json!({"model": name, "created_at": now_rfc3339(),
                               "message": {"role": "assistant", "content": t}, "done": false});
                v.as_object().cloned().unwrap_or_default()
            }
            Event::Done(d) => {
                stream::release(&st, &model, ka_final);
                chat_final(&name, String::new(), &d, load_ns, t0)
            }
            Event::Error(e) => {
                stream::release(&st, &model, ka_final);
                return stream::line(&json!({ "error": e }));
            }
            Event::Logprobs(_) => return String::new(),
        };
        put_logprobs(&mut o, &*text, logprobs, &lps);
        stream::line(&Value::Object(o))
    });
    Ok(stream::ndjson_response(body))
}

fn chat_final(
    name: &str,
    text: String,
    done: &Done,
    load_ns: u64,
    t0: Instant,
) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("model".into(), json!(name));
    o.insert("created_at".into(), json!(now_rfc3339()));
    o.insert(
        "message".into(),
        json!({"role": "assistant", "content": text}),
    );
    o.insert("done".into(), json!(true));
    o.insert("done_reason".into(), json!(done_reason(done.finish)));
    metrics_fields(&mut o, done, load_ns, t0);
    o
}
