//! What `run` and `chat` take from a named model's Modelfile, as `ollama run` does: its
//! `PARAMETER`s as defaults under the command-line flags, and its `SYSTEM`, `MESSAGE`s and
//! `TEMPLATE` around the user's messages.

use anyhow::{Context, Result};

use bitnet_gguf::engine::chat::{ChatMessage, ChatTemplate};
use bitnet_gguf::engine::generate::GenerateParams;
use bitnet_gguf::engine::model::Model;

use super::run::{ModelArgs, SamplingArgs};
use bitnet_gguf::serve::gotemplate;
use bitnet_gguf::serve::http::backend::ChatTurn;
use bitnet_gguf::serve::options::RunOptions;
use bitnet_gguf::serve::store::{Entry, ModelName, Store};

/// The store entry for `name` when it is a model name rather than a file.
pub fn store_entry(name: &str) -> Result<Option<Entry>> {
    if bitnet_gguf::serve::store::expand_tilde(name).is_file() || ModelName::parse(name).is_err() {
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
    let params = GenerateParams {
        max_tokens: o.max_tokens(),
        sampler: o.sampling,
        stop: o.stop,
        ..GenerateParams::default()
    };
    Ok(ModelfileSettings {
        params,
        num_ctx: o.num_ctx,
        stop_given: o.stop_given,
    })
}

/// The conversation's fixed start: the system message (`system`, else the Modelfile's
/// `SYSTEM`) and the Modelfile's `MESSAGE`s.
pub fn initial_messages(entry: Option<&Entry>, system: Option<&str>) -> Vec<ChatMessage> {
    let mut messages = Vec::new();
    let system = system
        .map(str::to_string)
        .or_else(|| entry.and_then(|e| e.system.clone()));
    if let Some(s) = system {
        messages.push(ChatMessage::new("system", s));
    }
    if let Some(e) = entry {
        messages.extend(
            e.messages
                .iter()
                .map(|m| ChatMessage::new(m.role.clone(), m.content.clone())),
        );
    }
    messages
}

/// Renders a conversation with the generation prompt, through the Modelfile's `TEMPLATE` (Go
/// or Jinja) when it has one, else the model's own chat template.
pub fn render(model: &Model, entry: Option<&Entry>, messages: &[ChatMessage]) -> Result<String> {
    let own = model.chat_template();
    let Some((name, t)) = entry.and_then(|e| e.template.as_deref().map(|t| (&e.name, t))) else {
        return Ok(own.render(messages, true)?);
    };
    if gotemplate::looks_like_jinja(t) {
        let template = ChatTemplate::from_source(t, own.bos_token(), own.eos_token())
            .with_context(|| format!("model '{name}': TEMPLATE"))?;
        return Ok(template.render(messages, true)?);
    }
    let turns: Vec<ChatTurn> = messages
        .iter()
        .map(|m| ChatTurn {
            role: m.role.clone(),
            content: m.content.clone(),
        })
        .collect();
    gotemplate::render_chat(t, &turns).map_err(|e| anyhow::anyhow!("model '{name}': TEMPLATE: {e}"))
}

/// A named model's store entry and `PARAMETER`s; its `num_ctx` becomes the context unless
/// `-c` was given.
pub fn modelfile_for(args: &mut ModelArgs) -> Result<(Option<Entry>, Option<ModelfileSettings>)> {
    let entry = match &args.model {
        Some(m) => store_entry(m)?,
        None => None,
    };
    let settings = entry.as_ref().map(modelfile_params).transpose()?;
    if let Some(s) = &settings {
        args.ctx_size = args.ctx_size.or(s.num_ctx);
    }
    Ok((entry, settings))
}

/// Generation settings: the Modelfile's (if any) under the flags given. A chat uses the
/// template's stop strings unless the Modelfile sets `stop` (or the output is JSON, which ends
/// by itself and could be cut short by them).
pub fn generation_params(
    model: &Model,
    settings: Option<ModelfileSettings>,
    sampling: &SamplingArgs,
    chat: bool,
    json: bool,
) -> GenerateParams {
    let template_stops = || model.chat_template().stop_strings().to_vec();
    let mut params = match settings {
        Some(mut s) => {
            if chat && !s.stop_given && !json {
                s.params.stop = template_stops();
            }
            sampling.params_over(s.params)
        }
        None if chat && !json => sampling.params(template_stops()),
        None => sampling.params(Vec::new()),
    };
    params.json = json;
    params
}
