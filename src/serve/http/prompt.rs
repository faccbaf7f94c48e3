//! From a request to tokens: model resolution, option merging (engine defaults < Modelfile
//! `PARAMETER`s < request `options`), chat rendering with the model's template or a Modelfile
//! `TEMPLATE`, tokenisation, and fitting prompts that are longer than the context.

use serde_json::{Map, Value};

use super::backend::{ChatTurn, TextModel};
use super::models::ResolvedModel;
use super::reply::ApiError;
use super::AppState;
use crate::serve::gotemplate;
use crate::serve::options::RunOptions;
use crate::serve::store::ModelName;

pub fn resolve(state: &AppState, name: &str) -> Result<ResolvedModel, ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_request("model is required"));
    }
    if let Some((alias, path)) = &state.config.default_model {
        let same = alias == name
            || matches!((ModelName::parse(alias), ModelName::parse(name)), (Ok(a), Ok(b)) if a.same_as(&b));
        if same {
            return Ok(ResolvedModel::file(name, path));
        }
    }
    match state.store.open(name) {
        Ok(Some(e)) => Ok(ResolvedModel {
            name: name.to_string(),
            canonical: e.name.to_string(),
            path: e.model_path.clone(),
            digest: e.digest.clone(),
            entry: Some(e),
        }),
        Ok(None) | Err(_) => Err(ApiError::model_not_found(name)),
    }
}

/// Options for one request. `openai` switches the base to OpenAI's semantics (temperature and
/// top_p 1.0 when absent).
pub fn run_options(
    model: &ResolvedModel,
    text: &dyn TextModel,
    request: Option<&Map<String, Value>>,
    openai: bool,
) -> Result<RunOptions, ApiError> {
    let mut o = RunOptions::ollama_defaults();
    o.stop = text.default_stops();
    if openai {
        o.sampling.temperature = 1.0;
        o.sampling.top_p = 1.0;
    }
    if let Some(e) = &model.entry {
        let mut params = e.params.clone();
        if openai {
            params.remove("temperature");
            params.remove("top_p");
        }
        o.apply(&params).map_err(ApiError::bad_request)?;
        o.stop_given = false;
    }
    if let Some(r) = request {
        o.apply(r).map_err(ApiError::bad_request)?;
    }
    Ok(o)
}

/// Renders a conversation: the Modelfile's `MESSAGE`s first, its `SYSTEM` when the request has
/// no system message, through its `TEMPLATE` (Go) or else the model's own chat template.
pub fn render_chat(
    model: &ResolvedModel,
    text: &dyn TextModel,
    request: &[ChatTurn],
) -> Result<String, ApiError> {
    let mut msgs: Vec<ChatTurn> = Vec::new();
    let entry = model.entry.as_ref();
    let has_system = request.first().is_some_and(|m| m.role == "system");
    if let Some(sys) = entry.and_then(|e| e.system.clone()) {
        if !has_system {
            msgs.push(ChatTurn {
                role: "system".into(),
                content: sys,
            });
        }
    }
    if let Some(e) = entry {
        msgs.extend(e.messages.iter().map(|m| ChatTurn {
            role: m.role.clone(),
            content: m.content.clone(),
        }));
    }
    msgs.extend(request.iter().cloned());
    render_messages(model, text, &msgs)
}

pub fn render_messages(
    model: &ResolvedModel,
    text: &dyn TextModel,
    msgs: &[ChatTurn],
) -> Result<String, ApiError> {
    match model.entry.as_ref().and_then(|e| e.template.as_deref()) {
        Some(t) if gotemplate::looks_like_jinja(t) => text
            .render_template(t, msgs)
            .map_err(|e| ApiError::bad_request(format!("template error: {e:#}"))),
        Some(t) => gotemplate::render_chat(t, msgs)
            .map_err(|e| ApiError::bad_request(format!("template error: {e}"))),
        None => text
            .render_chat(msgs)
            .map_err(|e| ApiError::bad_request(format!("template error: {e:#}"))),
    }
}

/// Tokenises a rendered prompt, adding BOS when the tokenizer wants it and the text does not
/// already start with it.
pub fn tokenize_prompt(text: &dyn TextModel, prompt: &str) -> Result<Vec<u32>, ApiError> {
    let starts_with_bos = text
        .bos_text()
        .is_some_and(|b| !b.is_empty() && prompt.starts_with(&b));
    text.tokenize(prompt, text.add_bos_default() && !starts_with_bos)
        .map_err(|e| ApiError::bad_request(format!("cannot tokenize the prompt: {e:#}")))
}

pub use crate::engine::context::{prompt_budget, truncate_front};

/// How many leading tokens of a prompt to protect from truncation: the part it shares with
/// `system_prefix` (the conversation's system messages rendered alone: BOS and the system
/// prompt), or just the BOS without one.
pub fn keep_len(text: &dyn TextModel, system_prefix: Option<&str>, tokens: &[u32]) -> usize {
    tokenize_prompt(text, system_prefix.unwrap_or("")).map_or(0, |p| {
        p.iter().zip(tokens).take_while(|(a, b)| a == b).count()
    })
}

/// A chat's prompt tokens and how many leading ones to keep, fitted to a context of `n_ctx`
/// tokens like Ollama does: when the conversation does not fit, the oldest messages are dropped
/// (system messages and the last message stay) until it fits the budget; a last message that
/// alone is too long is cut from the front later (see [`truncate_front`]).
pub fn chat_tokens(
    model: &ResolvedModel,
    text: &dyn TextModel,
    turns: &[ChatTurn],
    n_ctx: usize,
    max_tokens: Option<usize>,
) -> Result<(Vec<u32>, usize), ApiError> {
    let tokenize = |ts: &[ChatTurn]| tokenize_prompt(text, &render_chat(model, text, ts)?);
    let mut tokens = tokenize(turns)?;
    if tokens.len() >= n_ctx && turns.len() > 1 {
        let droppable: Vec<usize> = (0..turns.len() - 1)
            .filter(|&i| turns[i].role != "system")
            .collect();
        let without = |dropped: &[usize]| -> Vec<ChatTurn> {
            let kept = turns
                .iter()
                .enumerate()
                .filter(|(i, _)| !dropped.contains(i));
            kept.map(|(_, t)| t.clone()).collect()
        };
        let budget = prompt_budget(n_ctx, max_tokens);
        tokens = crate::engine::context::drop_oldest(&droppable, budget, |dropped| {
            tokenize(&without(dropped))
        })?;
    }
    let system: Vec<ChatTurn> = turns
        .iter()
        .filter(|t| t.role == "system")
        .cloned()
        .collect();
    let has_system = !system.is_empty() || model.entry.as_ref().is_some_and(|e| e.system.is_some());
    let prefix = has_system
        .then(|| render_chat(model, text, &system).ok())
        .flatten();
    let keep = keep_len(text, prefix.as_deref(), &tokens);
    Ok((tokens, keep))
}

/// Message content as text: a string, or OpenAI content parts (text parts concatenated).
pub fn content_text(v: &Value) -> Result<String, ApiError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut s = String::new();
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") | Some("input_text") => {
                        s.push_str(p.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    Some(other) => {
                        return Err(ApiError::bad_request(format!(
                            "content part type '{other}' is not supported"
                        )))
                    }
                    None => return Err(ApiError::bad_request("content part without a type")),
                }
            }
            Ok(s)
        }
        _ => Err(ApiError::bad_request(
            "message content must be a string or an array of parts",
        )),
    }
}

/// A chat request's `messages` as turns for the template (`developer` is OpenAI's newer name
/// for `system`).
pub fn openai_chat_turns(v: &Value) -> Result<Vec<ChatTurn>, ApiError> {
    let msgs = match v.get("messages") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid messages: {other} (messages must be an array of messages)"
            ))
            .openai())
        }
    };
    if msgs.is_empty() {
        return Err(ApiError::bad_request("[] is too short - 'messages'").openai());
    }
    let mut turns = Vec::new();
    for m in msgs {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let role = if role == "developer" { "system" } else { role };
        if !matches!(role, "system" | "user" | "assistant" | "tool") {
            return Err(ApiError::bad_request(format!("invalid message role '{role}'")).openai());
        }
        let content =
            content_text(m.get("content").unwrap_or(&Value::Null)).map_err(ApiError::openai)?;
        turns.push(ChatTurn {
            role: role.into(),
            content,
        });
    }
    Ok(turns)
}

/// A completion request's `prompt`: one non-empty string (alone or in a list of one).
pub fn completion_prompt(v: &Value) -> Result<String, ApiError> {
    let p = match v.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or_default().to_string()
        }
        Some(Value::Array(_)) => {
            return Err(ApiError::bad_request("only a single prompt string is supported").openai())
        }
        _ => return Err(ApiError::bad_request("prompt is required").openai()),
    };
    if p.is_empty() {
        return Err(ApiError::bad_request("prompt is empty").openai());
    }
    Ok(p)
}
