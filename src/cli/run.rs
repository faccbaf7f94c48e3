//! `run`, `chat` and `eval`: the verbs that evaluate a model (`perplexity` has its own module).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use bitnet_formats::{Residency, TensorType};
use bitnet_gguf::engine::chat::ChatMessage;
use bitnet_gguf::engine::generate::{generate_with, GenerateParams, LongRun};
use bitnet_gguf::engine::model::{KvType, LoadOptions, Model};

use super::chat::{self, fit, ChatSetup};
use super::run_modelfile;

pub use super::perplexity::{perplexity, PerplexityArgs};

/// The model `run` uses when no `-m` is given (committed to the repository).
pub const DEFAULT_MODEL: &str = "models/tiny-bitnet-b1.58.gguf";

/// Options shared by every verb that loads a model.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Model: a GGUF file or a name in the model store.
    #[arg(short = 'm', long = "model")]
    pub model: Option<String>,
    /// Threads for the matmuls (default: all cores).
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Context length (default: the model's training context).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// KV cache type: f32 (exact) or f16 (half the memory and attention reads; llama.cpp's
    /// default).
    #[arg(long = "kv-type", default_value = "f32")]
    pub kv_type: KvType,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// `--head-type` and `--no-mmap`, shared by every verb that loads a model (and `serve`,
/// for every model the server loads).
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct LoadArgs {
    /// Re-quantise an F16/BF16/F32 output head in memory at load: q8_0 or q6_k (faster
    /// decode, slightly different logits; the file is not changed). A head of that type
    /// already is left as it is; another quantised head is refused. With `serve`, applies
    /// to every model the server loads.
    #[arg(long = "head-type", value_name = "TYPE", value_parser = head_type_arg)]
    pub head_type: Option<TensorType>,
    /// Read the model into memory instead of mapping the file: a load-time copy and the
    /// file's size in private memory, but 2 MiB pages whatever state the page cache is in
    /// (decode streams every weight, and 4 KiB pages slow it). By default the file is
    /// mapped and copied only when the kernel maps it with small pages and the copy fits in
    /// half of the available memory. With `serve`, applies to every model the server loads.
    #[arg(long = "no-mmap", conflicts_with = "mmap")]
    pub no_mmap: bool,
    /// Keep the file mapped even when the kernel maps it with 4 KiB pages (no private copy;
    /// decode may be slower). With `serve`, applies to every model the server loads.
    #[arg(long = "mmap")]
    pub mmap: bool,
}

impl LoadArgs {
    pub fn residency(&self) -> Residency {
        match (self.no_mmap, self.mmap) {
            (true, _) => Residency::Copied,
            (_, true) => Residency::Mapped,
            _ => Residency::Auto,
        }
    }
}

/// Checks `--head-type` while parsing, so a bad value is a usage error.
fn head_type_arg(s: &str) -> std::result::Result<TensorType, String> {
    bitnet_gguf::engine::model::head_type_from_name(s).map_err(|e| e.to_string())
}

/// Sampling options, in llama.cpp's spelling. Unset ones keep Ollama's defaults.
#[derive(clap::Args, Clone, Debug)]
pub struct SamplingArgs {
    /// Number of tokens to generate (-1, the default: until end of text or a full context).
    #[arg(short = 'n', long = "n-predict", allow_negative_numbers = true)]
    pub n_predict: Option<i64>,
    /// Temperature (0 = greedy).
    #[arg(long = "temp")]
    pub temp: Option<f32>,
    /// Seed for sampling (default: random).
    #[arg(long = "seed")]
    pub seed: Option<u64>,
    #[arg(long = "top-k")]
    pub top_k: Option<usize>,
    #[arg(long = "top-p")]
    pub top_p: Option<f32>,
    #[arg(long = "min-p")]
    pub min_p: Option<f32>,
    #[arg(long = "repeat-penalty")]
    pub repeat_penalty: Option<f32>,
    /// Tokens the repeat penalty looks back over.
    #[arg(long = "repeat-last-n")]
    pub repeat_last_n: Option<usize>,
}

impl SamplingArgs {
    pub(crate) fn params(&self, stop: Vec<String>) -> GenerateParams {
        self.params_over(GenerateParams {
            stop,
            ..GenerateParams::default()
        })
    }

    /// `base` (defaults, or a Modelfile's `PARAMETER`s) with the flags that were given over it.
    pub(crate) fn params_over(&self, base: GenerateParams) -> GenerateParams {
        let mut s = base.sampler;
        let set = |v: Option<f32>, field: &mut f32| *field = v.unwrap_or(*field);
        set(self.temp, &mut s.temperature);
        set(self.top_p, &mut s.top_p);
        set(self.min_p, &mut s.min_p);
        set(self.repeat_penalty, &mut s.repeat_penalty);
        s.seed = self.seed.unwrap_or(s.seed);
        s.top_k = self.top_k.unwrap_or(s.top_k);
        s.repeat_last_n = self.repeat_last_n.unwrap_or(s.repeat_last_n);
        let max_tokens = match self.n_predict {
            Some(n) => usize::try_from(n).ok(),
            None => base.max_tokens,
        };
        GenerateParams {
            max_tokens,
            sampler: s,
            ..base
        }
    }
}

/// What happens when a prompt or a reply outgrows the context.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ContextArgs {
    /// Tokens at the start of the context that a context shift keeps (default: the system
    /// prompt's, or just the BOS).
    #[arg(long = "keep")]
    pub keep: Option<usize>,
    /// Stop at a full context instead of dropping the oldest half of it and going on.
    #[arg(long = "no-context-shift")]
    pub no_context_shift: bool,
    /// Never end a reply at an end-of-generation token (for tests: it runs to -n).
    #[arg(long = "ignore-eos", hide = true)]
    pub ignore_eos: bool,
}

impl ContextArgs {
    fn long_run(&self, keep: usize) -> LongRun {
        LongRun {
            shift_keep: (!self.no_context_shift).then_some(keep),
            ignore_eos: self.ignore_eos,
        }
    }
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Model, as `ollama run MODEL PROMPT` takes it (same as -m) when it names a store model
    /// or a .gguf file; otherwise the prompt's first word.
    #[arg(value_name = "MODEL")]
    pub name: Option<String>,
    /// The prompt, as the words after the model (same as -p).
    #[arg(value_name = "PROMPT", conflicts_with_all = ["prompt", "file"])]
    pub words: Vec<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub context: ContextArgs,
    /// The prompt to continue.
    #[arg(short = 'p', long = "prompt")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(short = 'f', long = "file", conflicts_with = "prompt")]
    pub file: Option<PathBuf>,
    /// With a named model from the store: continue the prompt as plain text instead of sending
    /// it as a chat message with the Modelfile's SYSTEM, MESSAGEs and TEMPLATE.
    #[arg(long = "raw")]
    pub raw: bool,
    /// With a named model: the system message (instead of the Modelfile's SYSTEM).
    #[arg(long = "system")]
    pub system: Option<String>,
    /// `json`: the reply is one JSON object (as `ollama run --format json`).
    #[arg(long = "format", value_parser = ["json"])]
    pub format: Option<String>,
    /// Print only the generated text, not the prompt before it.
    #[arg(long = "no-display-prompt")]
    pub no_display_prompt: bool,
    /// Print load time and prompt/generation speed to stderr.
    #[arg(long = "verbose")]
    pub verbose: bool,
}

#[derive(clap::Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub context: ContextArgs,
    /// System message at the start of the conversation.
    #[arg(long = "system")]
    pub system: Option<String>,
    /// Print load time and speed after each answer to stderr.
    #[arg(long = "verbose")]
    pub verbose: bool,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text to evaluate (BOS added as the model's metadata says).
    #[arg(short = 'p', long = "prompt")]
    pub prompt: String,
    /// Print `{"ids": [..], "positions": [{"top": [[id, logit], ..]}, ..]}`.
    #[arg(long = "json")]
    pub json: bool,
    /// How many of the highest logits to list per position.
    #[arg(long = "top-k", default_value_t = 20)]
    pub top_k: usize,
}

/// Finds the committed default model from wherever the binary runs: the current directory,
/// the directories above the executable (target/release/..), or the source tree it was
/// built from.
pub fn default_model_path() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from(DEFAULT_MODEL)];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|d| d.join(DEFAULT_MODEL)));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL));
    candidates.into_iter().find(|p| p.is_file())
}

pub(crate) fn load(args: &ModelArgs, allow_default: bool, verbose: bool) -> Result<Model> {
    let path = match &args.model {
        Some(m) => bitnet_gguf::serve::store::resolve_model(m)?,
        None if allow_default => default_model_path().with_context(|| {
            format!("no -m given and the default model {DEFAULT_MODEL} was not found")
        })?,
        None => bail!("no model given: use -m MODEL"),
    };
    let start = Instant::now();
    let opts = LoadOptions {
        n_ctx: args.ctx_size,
        threads: args.threads,
        kv_type: args.kv_type,
        runtime: None,
        head_type: args.load.head_type,
        residency: args.load.residency(),
    };
    let model = Model::load(&path, &opts)?;
    if let Some(repack) = model.head_repack() {
        // Always shown: the user asked for it, and the load-time cost is the price of it.
        eprintln!("{repack}");
    }
    if verbose {
        let c = model.config();
        eprintln!(
            "loaded {} ({}, {} layers, {} vocab, context {}) in {:.0} ms, {}; kernels: {}, {} \
             threads",
            path.display(),
            c.arch,
            c.n_layer,
            c.n_vocab,
            model.default_n_ctx(),
            start.elapsed().as_secs_f64() * 1e3,
            match model.gguf().residency() {
                bitnet_formats::Residency::Mapped => "weights mapped",
                _ => "weights read into memory",
            },
            model.runtime().path().name(),
            model.runtime().threads(),
        );
    }
    Ok(model)
}

/// `run`: continues a prompt. A named model from the store runs like `ollama run`: its
/// Modelfile `PARAMETER`s are the defaults under the flags given, and the prompt is the user's
/// message in a chat with its `SYSTEM` and `MESSAGE`s (only the reply is printed) unless
/// `--raw`. Without a prompt, piped standard input is the prompt; at a terminal the
/// interactive chat starts. A prompt longer than the context loses its oldest part (its start,
/// the system prompt, stays), and a reply that fills the context shifts it.
pub fn run(mut args: RunArgs) -> Result<()> {
    if let Some(name) = args.name.take() {
        if args.model.model.is_none() && names_model(&name) {
            args.model.model = Some(name);
        } else {
            args.words.insert(0, name);
        }
    }
    let prompt = match (&args.prompt, &args.file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(f)) => {
            Some(std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?)
        }
        (None, None) if !args.words.is_empty() => Some(args.words.join(" ")),
        (None, None) if !std::io::stdin().is_terminal() => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the prompt from standard input")?;
            Some(text)
        }
        (None, None) => None,
    };
    let Some(prompt) = prompt else {
        return chat::repl(ChatSetup {
            model: args.model,
            sampling: args.sampling,
            system: args.system,
            context: args.context,
            verbose: args.verbose,
        });
    };
    let (entry, settings) = run_modelfile::modelfile_for(&mut args.model)?;
    let chat = entry.as_ref().filter(|_| !args.raw);
    let model = load(&args.model, true, args.verbose)?;
    let json = args.format.is_some();
    let params =
        run_modelfile::generation_params(&model, settings, &args.sampling, chat.is_some(), json);
    let n_ctx = model.default_n_ctx();
    let fitted = if chat.is_some() {
        let mut messages = run_modelfile::initial_messages(chat, args.system.as_deref());
        messages.push(ChatMessage::new("user", prompt.clone()));
        let keep = args.context.keep;
        fit::fit_chat(&model, chat, &messages, n_ctx, params.max_tokens, keep)?
    } else {
        let tok = model.tokenizer();
        let ids = tok.encode(&prompt, tok.add_bos_default(), true)?;
        fit::fit_raw(&model, ids, n_ctx, params.max_tokens, args.context.keep)
    };
    if fitted.ids.is_empty() {
        bail!("the prompt is empty");
    }
    let mut session = model.new_session(n_ctx);
    let mut out = std::io::stdout().lock();
    if !args.no_display_prompt && chat.is_none() {
        write!(out, "{prompt}")?;
        out.flush()?;
    }
    let mut io_error = None;
    let how = args.context.long_run(fitted.keep);
    let stats = generate_with(
        &mut session,
        &fitted.ids,
        &params,
        how,
        &mut |text| match write!(out, "{text}").and_then(|_| out.flush()) {
            Ok(()) => true,
            Err(e) => {
                io_error = Some(e);
                false
            }
        },
    )?;
    if let Some(e) = io_error {
        // A closed pipe (`| head`) is a normal way to stop reading.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
        return Ok(());
    }
    writeln!(out)?;
    if args.verbose {
        eprintln!(
            "prompt: {} tokens, {:.1} tok/s; generation: {} tokens, {:.1} tok/s; stop: {:?}",
            stats.prompt_tokens,
            stats.prompt_tok_per_s(),
            stats.generated_tokens,
            stats.gen_tok_per_s(),
            stats.finish
        );
    }
    Ok(())
}

/// Whether `run`'s first word names a model: a .gguf file, or a model in the store.
fn names_model(word: &str) -> bool {
    word.ends_with(".gguf")
        || bitnet_gguf::serve::store::expand_tilde(word).is_file()
        || matches!(run_modelfile::store_entry(word), Ok(Some(_)))
}

/// `chat`: a conversation at the terminal. A named model brings its Modelfile (`PARAMETER`s
/// under the flags, `SYSTEM` unless `--system`, `MESSAGE`s, `TEMPLATE`), as in `run`.
pub fn chat(args: ChatArgs) -> Result<()> {
    chat::repl(ChatSetup {
        model: args.model,
        sampling: args.sampling,
        system: args.system,
        context: args.context,
        verbose: args.verbose,
    })
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let model = load(&args.model, false, false)?;
    let tok = model.tokenizer();
    let ids = tok.encode(&args.prompt, tok.add_bos_default(), true)?;
    if ids.is_empty() {
        bail!("the prompt is empty and the model adds no BOS: nothing to evaluate");
    }
    let mut session = model.new_session(model.default_n_ctx());
    let logits = session.forward_all(&ids)?;
    let vocab = model.config().n_vocab;
    let positions: Vec<Vec<(u32, f32)>> = logits
        .chunks_exact(vocab)
        .map(|row| top_k(row, args.top_k))
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "ids": ids,
            "positions": positions.iter().map(|top| serde_json::json!({
                "top": top.iter().map(|&(id, l)| serde_json::json!([id, json_f32(l)])).collect::<Vec<_>>()
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{json}")?;
    } else {
        for (pos, (id, top)) in ids.iter().zip(&positions).enumerate() {
            let shown: Vec<String> = top
                .iter()
                .take(5)
                .map(|&(t, l)| format!("{:?} {l:.3}", tok.decode(&[t], false)))
                .collect();
            writeln!(
                out,
                "{pos:4} {id:6} {:<16} -> {}",
                format!("{:?}", tok.decode(&[*id], false)),
                shown.join(", ")
            )?;
        }
    }
    Ok(())
}

/// An f32 as the shortest decimal that reads back to it (not its f64 expansion).
fn json_f32(x: f32) -> serde_json::Value {
    x.to_string()
        .parse::<f64>()
        .map(serde_json::Value::from)
        .unwrap_or(serde_json::Value::Null)
}

/// The `k` highest logits, highest first (ties: lower id first).
pub fn top_k(row: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..row.len() as u32).collect();
    let cmp = |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
    let k = k.min(idx.len());
    if k < idx.len() && k > 0 {
        idx.select_nth_unstable_by(k - 1, cmp);
    }
    idx.truncate(k);
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i, row[i as usize])).collect()
}
