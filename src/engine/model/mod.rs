//! Model loading and the forward pass for the BitNet and Llama-1.58 architectures.
//!
//! ```text
//! GgufFile (mmap) -> ModelConfig (validated hyper-parameters) -> Weights (prepared for the
//! kernels, holding the mapping) -> Session { KvCache }.forward(tokens) -> logits
//! ```

pub mod attention;
pub mod config;
pub mod forward;
mod head_repack;
pub mod kv_cache;
pub mod session;
pub mod weights;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use bitnet_formats::GgufFile;
use bitnet_kernels::{Runtime, RuntimeOptions};

use crate::engine::chat::ChatTemplate;
use crate::engine::tokenizer::Tokenizer;

pub use config::{Activation, Arch, ModelConfig, RopeStyle};
pub use head_repack::{head_type_from_name, HeadRepack};
pub use kv_cache::KvType;
pub use session::{forward_batch, forward_seqs, Session};

use attention::Rope;
use weights::Weights;

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Context length for new sessions; the model's training context when `None`.
    pub n_ctx: Option<usize>,
    /// Worker threads for the matmuls; all cores when `None`. Ignored when `runtime` is
    /// given.
    pub threads: Option<usize>,
    /// The kernel runtime (path and thread pool) the model runs on, possibly shared with
    /// other models; a new one of `threads` threads on the detected path when `None`.
    pub runtime: Option<Arc<Runtime>>,
    /// Element type of new sessions' KV caches.
    pub kv_type: KvType,
    /// `--head-type`: re-quantise an F16/BF16/F32 output matrix in memory to this type
    /// (Q8_0 or Q6_K) at load; a head of that type already is left as it is, another
    /// quantised head is refused. The file is not changed.
    pub head_type: Option<bitnet_formats::TensorType>,
    /// Map the file, read it into memory, or (the default) map it and copy it when the
    /// kernel maps it with small pages (`bitnet_formats::Residency`).
    pub residency: bitnet_formats::Residency,
}

/// A loaded model: the mapped file, its validated configuration, prepared weights and the
/// kernel runtime it runs on.
pub struct Model {
    weights: Weights,
    runtime: Arc<Runtime>,
    config: ModelConfig,
    rope: Rope,
    n_ctx: usize,
    kv_type: KvType,
    tokenizer: Tokenizer,
    chat_template: ChatTemplate,
    path: PathBuf,
    head_repack: Option<HeadRepack>,
}

impl Model {
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Model> {
        let file = GgufFile::open_with(path, opts.residency)
            .with_context(|| format!("cannot load model {}", path.display()))?;
        Self::from_gguf(file, opts)
    }

    /// Builds a model from an opened GGUF (also used with in-memory files in tests).
    pub fn from_gguf(file: GgufFile, opts: &LoadOptions) -> Result<Model> {
        let path = file.path().to_path_buf();
        let config = ModelConfig::from_gguf(file.metadata(), file.tensors())
            .with_context(|| format!("{}: invalid model", path.display()))?;
        let arch = config.arch.name();
        let tokenizer = Tokenizer::from_gguf(file.metadata(), arch)
            .with_context(|| format!("{}: cannot build the tokenizer", path.display()))?;
        anyhow::ensure!(
            tokenizer.vocab_size() <= config.n_vocab,
            "{}: the tokenizer has {} tokens but the embedding only {} rows",
            path.display(),
            tokenizer.vocab_size(),
            config.n_vocab
        );
        let chat_template = ChatTemplate::from_gguf(file.metadata(), arch)
            .with_context(|| format!("{}: invalid chat template", path.display()))?;
        let runtime = match &opts.runtime {
            Some(rt) => rt.clone(),
            None => Arc::new(
                Runtime::new(RuntimeOptions {
                    threads: opts.threads,
                    ..RuntimeOptions::default()
                })
                .with_context(|| format!("{}: cannot start the kernels", path.display()))?,
            ),
        };
        let mut weights = Weights::load(&runtime, Arc::new(file), &config)?;
        let head_repack = match opts.head_type {
            Some(ty) => Some(
                repack_head(&mut weights, &runtime, ty)
                    .with_context(|| format!("{}: cannot re-quantise the head", path.display()))?,
            ),
            None => None,
        };
        let n_ctx = match opts.n_ctx {
            Some(0) => anyhow::bail!("context length must be at least 1"),
            Some(n) => n,
            None => config.n_ctx_train,
        };
        let rope = Rope::new(config.rope_style, config.n_rot, config.rope_base);
        Ok(Model {
            weights,
            runtime,
            config,
            rope,
            n_ctx,
            kv_type: opts.kv_type,
            tokenizer,
            chat_template,
            path,
            head_repack,
        })
    }

    /// What `LoadOptions::head_type` did at load (`None` when it was not set); its
    /// `Display` is the line the CLI and the server print.
    pub fn head_repack(&self) -> Option<HeadRepack> {
        self.head_repack
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn chat_template(&self) -> &ChatTemplate {
        &self.chat_template
    }

    pub fn gguf(&self) -> &GgufFile {
        self.weights.file()
    }

    /// The kernel path and thread pool this model runs on.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The context length new sessions get by default (`-c`, else the training context).
    pub fn default_n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// The element type of new sessions' KV caches.
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }

    pub fn new_session(&self, n_ctx: usize) -> Session<'_> {
        Session::new(self, n_ctx.max(1))
    }
}

/// Applies `--head-type` to freshly loaded weights, timing the re-quantisation.
fn repack_head(
    weights: &mut Weights,
    rt: &Runtime,
    ty: bitnet_formats::TensorType,
) -> Result<HeadRepack> {
    let from = weights.head().tensor_type();
    let mut done = HeadRepack {
        from,
        to: ty,
        elapsed: None,
    };
    if head_repack::needs_repack(from, ty)? {
        let start = std::time::Instant::now();
        weights.repack_head(rt, ty)?;
        done.elapsed = Some(start.elapsed());
    }
    Ok(done)
}
