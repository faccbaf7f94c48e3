//! The real engine behind the scheduler's `Backend` trait: `Model` sessions, the GGUF's
//! tokenizer and chat template, and the engine's sampler.

use std::sync::Arc;

use crate::engine::chat::{ChatMessage, ChatTemplate};
use crate::engine::generation::TokenText;
use crate::engine::model::{forward_seqs, LoadOptions, Model, Session};
use crate::engine::sampler::{Sampler, SamplerConfig, TokenSampler};
use crate::engine::tokenizer::Tokenizer;
use crate::serve::store::gguf_info;

use super::backend::{Backend, ChatTurn, ModelMeta, TextModel};
use super::scheduler::{self, SchedConfig};
use super::Loader;

pub struct EngineBackend {
    model: Model,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    meta: ModelMeta,
}

fn messages(turns: &[ChatTurn]) -> Vec<ChatMessage> {
    turns
        .iter()
        .map(|t| ChatMessage::new(t.role.clone(), t.content.clone()))
        .collect()
}

impl EngineBackend {
    pub fn load(
        path: &std::path::Path,
        settings: &super::LoadSettings,
    ) -> anyhow::Result<EngineBackend> {
        let kv_type = settings.kv_type;
        let model = Model::load(
            path,
            &LoadOptions {
                n_ctx: None,
                threads: settings.threads,
                kv_type,
                // Its own pool: another model loaded beside it keeps its threads.
                runtime: None,
                head_type: settings.head_type,
                residency: settings.residency,
            },
        )?;
        if let Some(repack) = model.head_repack() {
            eprintln!("{}: {repack}", path.display());
        }
        let file = model.gguf();
        let arch = file.architecture().unwrap_or("").to_string();
        let tokenizer = Tokenizer::from_gguf(file.metadata(), &arch)
            .map_err(|e| anyhow::anyhow!("{}: tokenizer: {e}", path.display()))?;
        let template = ChatTemplate::from_gguf(file.metadata(), &arch)
            .map_err(|e| anyhow::anyhow!("{}: chat template: {e}", path.display()))?;
        let c = model.config();
        let summary = gguf_info::summarize(file);
        let meta = ModelMeta {
            architecture: arch,
            n_ctx_train: c.n_ctx_train,
            n_embd: c.n_embd,
            n_vocab: c.n_vocab,
            n_params: summary.parameter_count,
            file_size: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            kv_bytes_per_token: (2 * c.n_layer * c.kv_dim() * kv_type.bytes()) as u64,
            template: template.source().to_string(),
            model_info: gguf_info::model_info(file, false),
        };
        Ok(EngineBackend {
            model,
            tokenizer,
            template,
            meta,
        })
    }
}

impl TextModel for EngineBackend {
    fn meta(&self) -> &ModelMeta {
        &self.meta
    }
    fn tokenize(&self, text: &str, add_bos: bool) -> anyhow::Result<Vec<u32>> {
        Ok(self.tokenizer.encode(text, add_bos, true)?)
    }
    fn detokenize(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, true)
    }
    fn add_bos_default(&self) -> bool {
        self.tokenizer.add_bos_default()
    }
    fn bos_text(&self) -> Option<String> {
        let t = self.template.bos_token();
        (!t.is_empty()).then(|| t.to_string())
    }
    fn render_chat(&self, turns: &[ChatTurn]) -> anyhow::Result<String> {
        Ok(self.template.render(&messages(turns), true)?)
    }
    fn render_template(&self, source: &str, turns: &[ChatTurn]) -> anyhow::Result<String> {
        let t = ChatTemplate::from_source(
            source,
            self.template.bos_token(),
            self.template.eos_token(),
        )?;
        Ok(t.render(&messages(turns), true)?)
    }
    fn default_stops(&self) -> Vec<String> {
        self.template.stop_strings().to_vec()
    }
    fn sampler(&self, s: &SamplerConfig) -> Box<dyn TokenSampler> {
        Box::new(Sampler::new(s.clone()))
    }
}

impl TokenText for EngineBackend {
    fn piece(&self, id: u32) -> Vec<u8> {
        TokenText::piece(&self.tokenizer, id)
    }
    fn is_end_of_generation(&self, id: u32) -> bool {
        TokenText::is_end_of_generation(&self.tokenizer, id)
    }
}

impl Backend for EngineBackend {
    type Seq<'a> = Session<'a>;

    fn new_seq(&self, n_ctx: usize) -> Session<'_> {
        self.model.new_session(n_ctx)
    }
    fn seq_tokens<'a>(&'a self, seq: &Session<'a>) -> Vec<u32> {
        seq.tokens().to_vec()
    }
    fn seq_len<'a>(&'a self, seq: &Session<'a>) -> usize {
        seq.tokens().len()
    }
    fn truncate<'a>(&'a self, seq: &mut Session<'a>, n: usize) {
        seq.truncate(n)
    }
    fn shifts(&self) -> bool {
        true
    }
    fn shift_if_full<'a>(&'a self, seq: &mut Session<'a>, keep: usize) -> usize {
        match seq.n_past() >= seq.n_ctx() {
            true => seq.shift_context(keep),
            false => 0,
        }
    }
    fn forward_seqs<'a>(
        &'a self,
        seqs: &mut [&mut Session<'a>],
        tokens: &[&[u32]],
    ) -> anyhow::Result<Vec<Vec<f32>>> {
        forward_seqs(seqs, tokens)
    }
    fn embed(&self, tokens: &[u32]) -> anyhow::Result<Vec<f32>> {
        let mut s = self.model.new_session(tokens.len().max(1));
        s.embed(tokens)
    }
}

/// Loads GGUF files with the engine and starts a scheduler for each.
pub fn loader() -> Loader {
    Arc::new(|path, settings, metrics| {
        let backend = EngineBackend::load(path, settings)?;
        let n_ctx = settings
            .n_ctx
            .unwrap_or(backend.meta.n_ctx_train.min(4096))
            .max(16);
        let config = SchedConfig {
            n_slots: settings.n_slots.max(1),
            n_ctx,
            max_queue: settings.max_queue,
        };
        Ok(scheduler::spawn(Arc::new(backend), config, metrics))
    })
}
