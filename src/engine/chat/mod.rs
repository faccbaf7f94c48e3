//! Chat templates: the GGUF `tokenizer.chat_template` (Jinja) rendered with MiniJinja set up
//! the way Hugging Face transformers renders it (trim_blocks, lstrip_blocks, loop controls,
//! Python string/dict methods, `json.dumps`-style `tojson`, `raise_exception`,
//! `strftime_now`, `{% generation %}` blocks).
//!
//! BitNet b1.58 2B4T GGUFs written by Microsoft's converter embed a placeholder template
//! (`Human: ...BITNETAssistant: ` + EOS) that makes the model loop; for the `bitnet*`
//! architectures that template, or a missing one, is replaced by the template the model was
//! trained with.

mod env;

use bitnet_formats::arch::Arch;
use bitnet_formats::Metadata;
use minijinja::Environment;
use serde::{Deserialize, Serialize};

pub use env::strftime;

/// The BitNet b1.58 2B4T template from the model's `tokenizer_config.json`.
pub const BITNET_2B4T_TEMPLATE: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = message['role'] | capitalize + ': '+ message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";

/// Llama 3 Instruct's template (BOS inside the template).
pub const LLAMA3_TEMPLATE: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// ChatML, llama.cpp's fallback when a model has no template.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The marker of the placeholder template Microsoft's converter writes for `bitnet*` archs.
const BITNET_PLACEHOLDER_MARKER: &str = "BITNETAssistant";

/// One chat turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Where the template in use came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateSource {
    /// `tokenizer.chat_template` from the file (or the source given to `from_source`).
    Embedded,
    /// The BitNet 2B4T training template, replacing the placeholder or a missing template.
    BitnetBuiltin,
    /// Llama 3 Instruct's template, for a Llama 3 vocabulary without a template.
    Llama3Builtin,
    /// ChatML, for any other model without a template.
    ChatmlBuiltin,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("chat template does not compile: {0}")]
    Syntax(String),
    #[error("chat template failed to render: {0}")]
    Render(String),
}

/// A compiled chat template with the model's BOS/EOS texts.
pub struct ChatTemplate {
    env: Environment<'static>,
    source_text: String,
    origin: TemplateSource,
    bos: String,
    eos: String,
    stop: Vec<String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("stop", &self.stop)
            .finish()
    }
}

fn token_text(meta: &Metadata, key: &str) -> Option<String> {
    let id = meta.get_u64(key)? as usize;
    let tokens = meta.get_array("tokenizer.ggml.tokens")?;
    tokens.values.get(id)?.as_str().map(str::to_string)
}

fn vocab_has(meta: &Metadata, text: &str) -> bool {
    meta.get_array("tokenizer.ggml.tokens")
        .map(|a| a.iter().any(|v| v.as_str() == Some(text)))
        .unwrap_or(false)
}

impl ChatTemplate {
    /// The template for a model: `tokenizer.chat_template`, except that `bitnet*`
    /// architectures with the known placeholder (or none) get the real 2B4T template, and
    /// models without one get Llama 3's (Llama 3 vocabulary) or ChatML.
    pub fn from_gguf(meta: &Metadata, architecture: &str) -> Result<ChatTemplate, ChatError> {
        let bos = token_text(meta, "tokenizer.ggml.bos_token_id").unwrap_or_default();
        let eos = token_text(meta, "tokenizer.ggml.eos_token_id").unwrap_or_default();
        let embedded = meta
            .get_str("tokenizer.chat_template")
            .filter(|s| !s.trim().is_empty());
        let is_bitnet = Arch::is_bitnet_family_name(architecture);
        let (source, origin) = match embedded {
            Some(src) if !(is_bitnet && src.contains(BITNET_PLACEHOLDER_MARKER)) => {
                (src.to_string(), TemplateSource::Embedded)
            }
            _ if is_bitnet => {
                let mut src = BITNET_2B4T_TEMPLATE.to_string();
                if !vocab_has(meta, "<|eot_id|>") && !eos.is_empty() {
                    // A SentencePiece BitNet (1bitLLM) has no <|eot_id|>: end turns with EOS.
                    let quoted = eos.replace('\\', "\\\\").replace('\'', "\\'");
                    src = src.replace("<|eot_id|>", &quoted);
                }
                (src, TemplateSource::BitnetBuiltin)
            }
            _ if vocab_has(meta, "<|start_header_id|>") => {
                (LLAMA3_TEMPLATE.to_string(), TemplateSource::Llama3Builtin)
            }
            _ => (CHATML_TEMPLATE.to_string(), TemplateSource::ChatmlBuiltin),
        };
        let mut template = ChatTemplate::build(&source, &bos, &eos, origin)?;
        if origin == TemplateSource::BitnetBuiltin {
            // The 2B4T model sometimes starts the next turn instead of ending its own.
            template.stop.push("User:".to_string());
            template.stop.push("System:".to_string());
        }
        Ok(template)
    }

    /// A template from Jinja source with the given BOS/EOS token texts.
    pub fn from_source(src: &str, bos: &str, eos: &str) -> Result<ChatTemplate, ChatError> {
        ChatTemplate::build(src, bos, eos, TemplateSource::Embedded)
    }

    fn build(
        src: &str,
        bos: &str,
        eos: &str,
        origin: TemplateSource,
    ) -> Result<ChatTemplate, ChatError> {
        let env = env::environment(src)?;
        let mut stop: Vec<String> = Vec::new();
        if src.contains("<|eot_id|>") {
            stop.push("<|eot_id|>".to_string());
        }
        if !eos.is_empty() && !stop.iter().any(|s| s == eos) {
            stop.push(eos.to_string());
        }
        Ok(ChatTemplate {
            env,
            source_text: src.to_string(),
            origin,
            bos: bos.to_string(),
            eos: eos.to_string(),
            stop,
        })
    }

    /// Renders the conversation; `add_generation_prompt` appends the assistant prefix.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        let messages =
            serde_json::to_value(messages).map_err(|e| ChatError::Render(e.to_string()))?;
        self.render_json(&messages, add_generation_prompt, None, None)
    }

    /// Renders messages given as JSON (OpenAI/Ollama shape, with `tool_calls` and so on),
    /// optional `tools`, and extra context variables (`enable_thinking`, ...).
    pub fn render_json(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
        extra: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<String, ChatError> {
        let mut ctx = std::collections::BTreeMap::<String, minijinja::Value>::new();
        if let Some(extra) = extra {
            for (k, v) in extra {
                ctx.insert(
                    k.clone(),
                    minijinja::Value::from(minijinja::value::Serde(v)),
                );
            }
        }
        ctx.insert(
            "messages".into(),
            minijinja::Value::from(minijinja::value::Serde(messages)),
        );
        ctx.insert(
            "add_generation_prompt".into(),
            minijinja::Value::from(add_generation_prompt),
        );
        ctx.insert(
            "bos_token".into(),
            minijinja::Value::from(self.bos.as_str()),
        );
        ctx.insert(
            "eos_token".into(),
            minijinja::Value::from(self.eos.as_str()),
        );
        if let Some(tools) = tools {
            ctx.insert(
                "tools".into(),
                minijinja::Value::from(minijinja::value::Serde(tools)),
            );
        }
        let template = self
            .env
            .get_template(env::TEMPLATE_NAME)
            .map_err(|e| ChatError::Syntax(env::describe(&e)))?;
        template
            .render(minijinja::Value::from(ctx))
            .map_err(|e| ChatError::Render(env::describe(&e)))
    }

    /// Strings that end a reply when they appear in the generated text (the EOS text, the
    /// end-of-turn text, and for the BitNet template the next turn's role prefixes).
    pub fn stop_strings(&self) -> &[String] {
        &self.stop
    }

    /// The Jinja source in use (after any built-in replacement).
    pub fn source(&self) -> &str {
        &self.source_text
    }

    pub fn origin(&self) -> TemplateSource {
        self.origin
    }

    pub fn bos_token(&self) -> &str {
        &self.bos
    }

    pub fn eos_token(&self) -> &str {
        &self.eos
    }
}
