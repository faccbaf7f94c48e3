//! What `run` takes from a named model's Modelfile, as `ollama run` does: its `PARAMETER`s
//! as defaults under the command-line flags, and its `SYSTEM`, `MESSAGE`s and `TEMPLATE`
//! around the prompt, which is sent as the user's message.

use anyhow::{Context, Result};

use crate::chat::{ChatMessage, ChatTemplate};
use crate::generate::GenerateParams;
use crate::model::Model;
use crate::sampler::SamplerConfig;
use crate::server::backend::ChatTurn;
use crate::server::gotemplate;
use crate::server::options::RunOptions;
use crate::store::{Entry, ModelName, Store};

/// The store entry for `name` when it is a model name rather than a file.
pub fn store_entry(name: &str) -> Result<Option<Entry>> {
    if crate::store::expand_tilde(name).is_file() || ModelName::parse(name).is_err() {
        return Ok(None); // a file, or not a name: resolving it as a file reports the error
    }
    Store::from_env(None).open(name)
}

/// What a Modelfile's `PARAMETER`s set.
pub struct ModelfileSettings {
    /// Generation settings over Ollama's defaults (`stop` empty unless given).
    pub params: GenerateParams,
    pub num_ctx: Option<usize>,
    /// Whether `stop` was given (else the chat template's stop strings apply).
    pub stop_given: bool,
}

/// Reads a named model's `PARAMETER`s (Ollama's option names and types).
pub fn modelfile_params(entry: &Entry) -> Result<ModelfileSettings> {
    let mut o = RunOptions::ollama_defaults();
    o.apply(&entry.params)
        .map_err(|e| anyhow::anyhow!("model '{}': {e}", entry.name))?;
    let s = &o.sampling;
    let params = GenerateParams {
        max_tokens: o.max_tokens(),
        sampler: SamplerConfig {
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
            min_p: s.min_p,
            repeat_penalty: s.repeat_penalty,
            repeat_last_n: s.repeat_last_n,
            seed: s.seed,
        },
        stop: o.stop,
        json: false,
        presence_penalty: s.presence_penalty,
        frequency_penalty: s.frequency_penalty,
    };
    Ok(ModelfileSettings {
        params,
        num_ctx: o.num_ctx,
        stop_given: o.stop_given,
    })
}

/// The chat prompt `ollama run` would send: the system message (`system` or the Modelfile's
/// `SYSTEM`), the Modelfile's `MESSAGE`s, then `prompt` as the user's turn, rendered with the
/// Modelfile's `TEMPLATE` (Go or Jinja) or else the model's own chat template.
pub fn render_prompt(
    model: &Model,
    entry: &Entry,
    system: Option<&str>,
    prompt: &str,
) -> Result<String> {
    let mut turns = Vec::new();
    if let Some(s) = system.map(str::to_string).or_else(|| entry.system.clone()) {
        turns.push(ChatTurn {
            role: "system".into(),
            content: s,
        });
    }
    turns.extend(entry.messages.iter().map(|m| ChatTurn {
        role: m.role.clone(),
        content: m.content.clone(),
    }));
    turns.push(ChatTurn {
        role: "user".into(),
        content: prompt.to_string(),
    });
    let messages: Vec<ChatMessage> = turns
        .iter()
        .map(|t| ChatMessage::new(t.role.clone(), t.content.clone()))
        .collect();
    let own = model.chat_template();
    match entry.template.as_deref() {
        Some(t) if gotemplate::looks_like_jinja(t) => {
            let template = ChatTemplate::from_source(t, own.bos_token(), own.eos_token())
                .with_context(|| format!("model '{}': TEMPLATE", entry.name))?;
            Ok(template.render(&messages, true)?)
        }
        Some(t) => gotemplate::render_chat(t, &turns)
            .map_err(|e| anyhow::anyhow!("model '{}': TEMPLATE: {e}", entry.name)),
        None => Ok(own.render(&messages, true)?),
    }
}
