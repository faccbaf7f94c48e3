//! OpenAI-compatible endpoints: `/v1/chat/completions`, `/v1/completions`, `/v1/models`,
//! `/v1/embeddings`. Errors use OpenAI's `{"error":{"message","type",…}}` shape.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::backend::TextModel;
use super::models::ResolvedModel;
use super::prompt;
use super::reply::{ok_json, parse_body, unix_secs, ApiError};
use super::routes_ollama::JsonFormat;
use super::scheduler::{Done, Event, Finish};
use super::stream;
use super::SharedState;
use crate::engine::generation::{TokenLogprob, TokenText};
use crate::engine::json_constraint::schema::Shape;
use crate::serve::options::top_logprobs;

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct Common {
    #[serde(default)]
    model: String,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    stop: Option<Value>,
    #[serde(default)]
    frequency_penalty: Option<f64>,
    #[serde(default)]
    presence_penalty: Option<f64>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    // llama.cpp-style extras.
    #[serde(default)]
    top_k: Option<i64>,
    #[serde(default)]
    min_p: Option<f64>,
    #[serde(default)]
    repeat_penalty: Option<f64>,
    #[serde(default)]
    repeat_last_n: Option<i64>,
    // Fields that change the output and are not implemented: refused unless neutral.
    #[serde(default)]
    echo: Option<bool>,
    #[serde(default)]
    suffix: Option<String>,
    #[serde(default)]
    best_of: Option<u32>,
    #[serde(default)]
    logit_bias: Option<Map<String, Value>>,
    /// Chat: a boolean (with `top_logprobs`); completions: how many alternatives.
    #[serde(default)]
    logprobs: Option<Value>,
    #[serde(default)]
    top_logprobs: Option<Value>,
}

/// A token limit: a non-negative integer.
fn token_limit(name: &str, v: Option<i64>) -> Result<Option<Value>, ApiError> {
    match v {
        Some(n) if !(0..=i64::from(i32::MAX)).contains(&n) => Err(ApiError::bad_request(format!(
            "invalid {name}: {n} (expected an integer >= 0)"
        ))
        .openai()),
        _ => Ok(v.map(Value::from)),
    }
}

impl Common {
    /// How many alternatives per token to report, when log-probabilities are asked for.
    fn logprobs(&self, kind: Kind) -> Result<Option<usize>, ApiError> {
        let bad = |e: String| ApiError::bad_request(e).openai();
        match (kind, &self.logprobs) {
            (_, None | Some(Value::Null)) => Ok(None),
            (Kind::Chat, Some(Value::Bool(false))) => Ok(None),
            (Kind::Chat, Some(Value::Bool(true))) => {
                top_logprobs("top_logprobs", self.top_logprobs.as_ref())
                    .map(Some)
                    .map_err(bad)
            }
            (Kind::Chat, Some(v)) => Err(bad(format!(
                "invalid logprobs: {v} (expected true or false)"
            ))),
            (Kind::Completion, v) => top_logprobs("logprobs", v.as_ref()).map(Some).map_err(bad),
        }
    }

    /// The request's sampling fields as an Ollama `options` object, and whether
    /// `response_format` asks for JSON (`json_object`; `json_schema` gives an object too).
    fn options(&self) -> Result<(Map<String, Value>, JsonFormat), ApiError> {
        let mut o = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                o.insert(k.into(), v);
            }
        };
        let completion_limit = token_limit("max_completion_tokens", self.max_completion_tokens)?;
        put(
            "num_predict",
            completion_limit.or(token_limit("max_tokens", self.max_tokens)?),
        );
        put("temperature", self.temperature.map(Value::from));
        put("top_p", self.top_p.map(Value::from));
        put("seed", self.seed.map(Value::from));
        put("frequency_penalty", self.frequency_penalty.map(Value::from));
        put("presence_penalty", self.presence_penalty.map(Value::from));
        put("top_k", self.top_k.map(Value::from));
        put("min_p", self.min_p.map(Value::from));
        put("repeat_penalty", self.repeat_penalty.map(Value::from));
        put("repeat_last_n", self.repeat_last_n.map(Value::from));
        put("stop", self.stop.clone().filter(|v| !v.is_null()));
        let refuse =
            |field: &str| Err(ApiError::bad_request(format!("{field} is not supported")).openai());
        if self.echo == Some(true) {
            return refuse("echo");
        }
        if self.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
            return refuse("suffix");
        }
        if self.best_of.is_some_and(|n| n != 1) {
            return refuse("best_of other than 1");
        }
        if self.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
            return refuse("logit_bias");
        }
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_request("only n = 1 is supported").openai());
        }
        if self.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(ApiError::bad_request(format!(
                "\"{}\" does not support tools",
                self.model
            ))
            .openai());
        }
        // Checked before the model loads; applied over the Modelfile's values later.
        crate::serve::options::RunOptions::ollama_defaults()
            .apply(&o)
            .map_err(|e| ApiError::bad_request(e).openai())?;
        let mut json = (false, None);
        if let Some(rf) = self.response_format.as_ref().filter(|v| !v.is_null()) {
            match rf.get("type").and_then(Value::as_str) {
                None | Some("text") => {}
                Some("json_object") => json = (true, None),
                Some("json_schema") => {
                    let schema = rf.get("json_schema").and_then(|s| s.get("schema"));
                    json = (true, schema.map(|s| Arc::new(Shape::from_schema(s))));
                }
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "invalid response_format type '{other}'"
                    ))
                    .openai())
                }
            }
        }
        Ok((o, json))
    }
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "stop",
        Finish::Length => "length",
    }
}

fn usage(d: &Done) -> Value {
    json!({"prompt_tokens": d.prompt_tokens, "completion_tokens": d.eval_tokens,
           "total_tokens": d.prompt_tokens + d.eval_tokens,
           "prompt_tokens_details": {"cached_tokens": d.cached_tokens}})
}

fn timings(d: &Done) -> Value {
    let per_s = |n: usize, ns: u64| {
        if ns == 0 {
            0.0
        } else {
            n as f64 * 1e9 / ns as f64
        }
    };
    let evaluated = d.prompt_tokens - d.cached_tokens;
    json!({"cache_n": d.cached_tokens, "prompt_n": evaluated, "prompt_ms": d.prompt_ns as f64 / 1e6,
           "prompt_per_second": per_s(evaluated, d.prompt_ns), "predicted_n": d.eval_tokens,
           "predicted_ms": d.eval_ns as f64 / 1e6, "predicted_per_second": per_s(d.eval_tokens, d.eval_ns)})
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", crate::engine::sampler::random_seed())
}

#[derive(Clone, Copy)]
enum Kind {
    Chat,
    Completion,
}

/// The answer to a request without `stream`: the whole text in one object.
fn whole_reply(
    kind: Kind,
    id: &str,
    created: u64,
    name: &str,
    out: String,
    done: &Done,
    logprobs: Value,
) -> Value {
    let finish = finish_reason(done.finish);
    let (object, choice) = match kind {
        Kind::Chat => (
            "chat.completion",
            json!({"index": 0, "message": {"role": "assistant", "content": out}, "logprobs": logprobs,
                   "finish_reason": finish}),
        ),
        Kind::Completion => (
            "text_completion",
            json!({"index": 0, "text": out, "logprobs": logprobs, "finish_reason": finish}),
        ),
    };
    json!({"id": id, "object": object, "created": created, "model": name,
           "system_fingerprint": "fp_bitnet", "choices": [choice], "usage": usage(done),
           "timings": timings(done)})
}

async fn complete(state: SharedState, body: Bytes, kind: Kind) -> Result<Response, ApiError> {
    let t0 = Instant::now();
    let v: Value = parse_body(&body).map_err(ApiError::openai)?;
    let common: Common = super::reply::from_value(&v).map_err(ApiError::openai)?;
    let model = prompt::resolve(&state, &common.model).map_err(ApiError::openai)?;
    let (request_opts, json) = common.options()?;
    let logprobs = common.logprobs(kind)?;
    let (handle, load_ns) = state
        .models
        .acquire(&state, &model, None)
        .await
        .map_err(ApiError::openai)?;
    let text = handle.text.clone();
    let mut opts =
        prompt::run_options(&model, &*text, Some(&request_opts), true).map_err(ApiError::openai)?;
    (opts.json, opts.json_shape) = json;
    opts.logprobs = logprobs;
    let (tokens, keep) = match kind {
        Kind::Chat => {
            let turns = prompt::openai_chat_turns(&v)?;
            let n_ctx = stream::context_len(&handle, &opts);
            prompt::chat_tokens(&model, &*text, &turns, n_ctx, opts.max_tokens())
                .map_err(ApiError::openai)?
        }
        Kind::Completion => {
            let p = prompt::completion_prompt(&v)?;
            let tokens = prompt::tokenize_prompt(&*text, &p).map_err(ApiError::openai)?;
            let keep = prompt::keep_len(&*text, None, &tokens);
            (tokens, keep)
        }
    };
    let ka = state.config.keep_alive;
    let started = stream::start(&state, &model, &handle, tokens, keep, &opts, load_ns, t0)
        .await
        .map_err(ApiError::openai)?;
    let id = new_id(match kind {
        Kind::Chat => "chatcmpl",
        Kind::Completion => "cmpl",
    });
    let created = unix_secs(std::time::SystemTime::now());
    if !common.stream {
        let r = stream::collect(started).await;
        stream::release(&state, &model, ka);
        let r = r.map_err(ApiError::openai)?;
        let lp = logprobs_value(kind, &*text, logprobs, &r.logprobs, &mut 0);
        let reply = whole_reply(kind, &id, created, &model.name, r.text, &r.done, lp);
        return Ok(ok_json(reply));
    }
    let include_usage = common
        .stream_options
        .as_ref()
        .is_some_and(|s| s.include_usage);
    let how = StreamAs {
        kind,
        id,
        created,
        include_usage,
        logprobs,
    };
    Ok(stream_reply(state, model, started, text, how))
}

/// The `logprobs` of a choice: `null` unless asked for; chat's `{"content": […]}` or
/// completions' parallel lists (whose text offsets start at `offset`).
fn logprobs_value(
    kind: Kind,
    text: &dyn TokenText,
    asked: Option<usize>,
    lps: &[TokenLogprob],
    offset: &mut usize,
) -> Value {
    match (asked, kind) {
        (None, _) => Value::Null,
        (Some(_), Kind::Chat) => json!({"content": stream::logprob_entries(text, lps)}),
        (Some(_), Kind::Completion) => stream::completion_logprobs(text, lps, offset),
    }
}

/// How a streamed reply is written.
struct StreamAs {
    kind: Kind,
    id: String,
    created: u64,
    include_usage: bool,
    logprobs: Option<usize>,
}

fn stream_reply(
    state: SharedState,
    model: ResolvedModel,
    started: stream::Started,
    text: Arc<dyn TextModel>,
    how: StreamAs,
) -> Response {
    let StreamAs {
        kind,
        id,
        created,
        include_usage,
        logprobs,
    } = how;
    let chat = matches!(kind, Kind::Chat);
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let name = model.name.clone();
    let chunk = move |choices: Value| {
        json!({"id": id, "object": object, "created": created, "model": name,
               "system_fingerprint": "fp_bitnet", "choices": choices})
    };
    let mut first = true;
    let mut offset = 0;
    let body = stream::body(started, move |ev, lps| {
        let mut out = String::new();
        if chat && first {
            out.push_str(&stream::sse(&chunk(
                json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
            )));
        }
        first = false;
        let lp = logprobs_value(kind, &*text, logprobs, &lps, &mut offset);
        match ev {
            Event::Text(t) => {
                let c = if chat {
                    json!([{"index": 0, "delta": {"content": t}, "logprobs": lp, "finish_reason": null}])
                } else {
                    json!([{"index": 0, "text": t, "logprobs": lp, "finish_reason": null}])
                };
                out.push_str(&stream::sse(&chunk(c)));
            }
            Event::Done(d) => {
                stream::release(&state, &model, state.config.keep_alive);
                let finish = finish_reason(d.finish);
                let c = if chat {
                    json!([{"index": 0, "delta": {}, "logprobs": lp, "finish_reason": finish}])
                } else {
                    json!([{"index": 0, "text": "", "logprobs": lp, "finish_reason": finish}])
                };
                let mut last = chunk(c);
                last["timings"] = timings(&d);
                out.push_str(&stream::sse(&last));
                if include_usage {
                    let mut u = chunk(json!([]));
                    u["usage"] = usage(&d);
                    out.push_str(&stream::sse(&u));
                }
                out.push_str("data: [DONE]\n\n");
            }
            Event::Error(e) => {
                stream::release(&state, &model, state.config.keep_alive);
                out.push_str(&stream::sse(
                    &json!({"error": {"message": e, "type": "server_error", "param": null, "code": null}}),
                ));
            }
            Event::Logprobs(_) => {}
        }
        out
    });
    stream::sse_response(body)
}

pub async fn chat_completions(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    complete(state, body, Kind::Chat).await
}

pub async fn completions(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    complete(state, body, Kind::Completion).await
}

fn model_object(name: &str, modified: std::time::SystemTime, owner: &str) -> Value {
    json!({"id": name, "object": "model", "created": unix_secs(modified), "owned_by": owner})
}

fn all_models(state: &SharedState) -> Vec<Value> {
    let mut data = Vec::new();
    if let Some((alias, _)) = &state.config.default_model {
        data.push(model_object(alias, state.started, "bitnet-gguf"));
    }
    for e in state.store.list() {
        data.push(model_object(
            &e.name.to_string(),
            e.modified,
            &e.name.namespace,
        ));
    }
    data
}

pub async fn models(State(state): State<SharedState>) -> Response {
    ok_json(json!({"object": "list", "data": all_models(&state)}))
}

pub async fn model(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let m = prompt::resolve(&state, &id).map_err(ApiError::openai)?;
    let modified = m.entry.as_ref().map_or(state.started, |e| e.modified);
    let owner = m
        .entry
        .as_ref()
        .map_or("bitnet-gguf".to_string(), |e| e.name.namespace.clone());
    Ok(ok_json(model_object(&id, modified, &owner)))
}

pub use super::routes_embed::openai_embeddings as embeddings;
