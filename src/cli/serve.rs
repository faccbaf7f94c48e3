//! `serve` and the Ollama-style model verbs: `create`, `list`, `show`, `rm`, `cp` (the store,
//! in `serve/store_verbs.rs`), `ps`, `stop` and `push` (a running server or refused, in
//! `serve/server_verbs.rs`), `pull` from the Hugging Face Hub (`serve/pull_verb.rs`).

use std::path::PathBuf;
use std::time::Duration;

use bitnet_gguf::serve::http::{self, LoadSettings, ServeConfig};
use bitnet_gguf::serve::options::KeepAlive;
use bitnet_gguf::serve::store::{self, Store};

mod pull_verb;
mod server_verbs;
mod store_verbs;

pub use pull_verb::{pull, PullArgs};
pub use server_verbs::{ps, push, stop, PsArgs, PushArgs, StopArgs};
pub use store_verbs::{cp, create, list, rm, show, CpArgs, CreateArgs, ListArgs, RmArgs, ShowArgs};

fn env_or<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The server's KV cache type when `--kv-type` is not given: OLLAMA_KV_CACHE_TYPE when it
/// names a type we store (f32, f16), else f16, as Ollama and llama-server default to. Ollama
/// also accepts q8_0 and q4_0 and falls back to its default for what it cannot use; so do
/// we, saying so. A server holds a cache per slot, so f16 halves what `--parallel` costs in
/// memory (large shape, 4 slots of 4096 positions: 2.4 GB against 4.8) and the bytes every
/// decode step's attention reads; `run` keeps f32, which matches the Hugging Face reference.
fn kv_type_from_env() -> bitnet_gguf::engine::model::KvType {
    use bitnet_gguf::engine::model::KvType;
    let Ok(v) = std::env::var("OLLAMA_KV_CACHE_TYPE") else {
        return KvType::F16;
    };
    match v.trim() {
        "" => KvType::F16,
        s => s.parse().unwrap_or_else(|e| {
            eprintln!("warning: OLLAMA_KV_CACHE_TYPE: {e}; using f16");
            KvType::F16
        }),
    }
}

#[derive(clap::Args)]
#[command(after_help = "Environment (flags win over it):
  OLLAMA_HOST                 address to bind, host:port (default 127.0.0.1:11434)
  BITNET_MODELS               our model store (default ~/.bitnet/models)
  OLLAMA_MODELS               an Ollama store to read models from (never written)
  OLLAMA_KEEP_ALIVE           how long models stay loaded (default 5m)
  OLLAMA_CONTEXT_LENGTH       context length per sequence
  OLLAMA_NUM_PARALLEL         parallel sequences per model
  OLLAMA_KV_CACHE_TYPE        KV cache type: f32 or f16 (default f16; others fall back to it)
  OLLAMA_MAX_LOADED_MODELS    models kept in memory at once
  OLLAMA_MAX_QUEUE            requests waiting for a slot before 503
  OLLAMA_ORIGINS              extra allowed CORS origins (comma separated)")]
pub struct ServeArgs {
    /// Address to listen on (default from OLLAMA_HOST, else 127.0.0.1).
    #[arg(long)]
    pub host: Option<String>,
    /// Port (default from OLLAMA_HOST, else 11434).
    #[arg(long)]
    pub port: Option<u16>,
    /// A GGUF file (or store name) to load at start and serve under --alias.
    #[arg(short = 'm', long)]
    pub model: Option<String>,
    /// Name of the -m model in the API (default: the file name without .gguf).
    #[arg(short = 'a', long)]
    pub alias: Option<String>,
    /// Parallel sequences per model (slots).
    #[arg(long = "parallel", visible_alias = "np")]
    pub parallel: Option<usize>,
    /// Context length of each sequence (default: the model's, at most 4096).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Threads for the matmuls (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// KV cache type: f32 or f16 (default from OLLAMA_KV_CACHE_TYPE, else f16).
    #[arg(long = "kv-type")]
    pub kv_type: Option<bitnet_gguf::engine::model::KvType>,
    #[command(flatten)]
    pub load: super::run::LoadArgs,
    /// Requests that may wait for a slot; more get 503.
    #[arg(long)]
    pub max_queue: Option<usize>,
    /// How long an idle model stays loaded (Go duration: 5m, 1h, 0, -1 = forever).
    #[arg(long, value_parser = keep_alive_arg)]
    pub keep_alive: Option<String>,
    /// Models kept in memory at once.
    #[arg(long)]
    pub max_loaded: Option<usize>,
    /// Require `Authorization: Bearer KEY` on every route but /, /api/version and /health.
    #[arg(long)]
    pub api_key: Option<String>,
    /// An Ollama model store to read (never written).
    #[arg(long)]
    pub ollama_models: Option<PathBuf>,
    /// Largest accepted request body in bytes (blob uploads excepted).
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub body_limit: usize,
    /// Request log format on stderr: text, or json (one object a line, for log shippers).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// Checks `--keep-alive` while parsing, so a bad value is a usage error.
fn keep_alive_arg(s: &str) -> Result<String, String> {
    bitnet_gguf::serve::options::parse_go_duration(s).map(|_| s.to_string())
}

pub fn serve_config(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let (host, port) = http::resolve_addr(args.host.as_deref(), args.port)?;
    let ip: std::net::IpAddr = match host.as_str() {
        "localhost" => std::net::IpAddr::from([127, 0, 0, 1]),
        h => h
            .parse()
            .map_err(|_| anyhow::anyhow!("--host must be an IP address, not {h:?}"))?,
    };
    let keep_alive = match args
        .keep_alive
        .clone()
        .or_else(|| std::env::var("OLLAMA_KEEP_ALIVE").ok())
    {
        Some(s) => bitnet_gguf::serve::options::parse_go_duration(&s)
            .map_err(|e| anyhow::anyhow!("bad keep-alive: {e}"))?,
        None => KeepAlive::For(Duration::from_secs(300)),
    };
    let store = Store::from_env(args.ollama_models.clone());
    let default_model = match &args.model {
        Some(m) => {
            let path = store::resolve_model(m)?;
            let alias = args.alias.clone().unwrap_or_else(|| {
                let p = std::path::Path::new(m);
                if p.exists() {
                    p.file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| m.clone())
                } else {
                    m.clone()
                }
            });
            Some((alias, path))
        }
        None => None,
    };
    Ok(ServeConfig {
        addr: std::net::SocketAddr::new(ip, port),
        load: LoadSettings {
            n_slots: args
                .parallel
                .or_else(|| env_or("OLLAMA_NUM_PARALLEL"))
                .unwrap_or(4)
                .max(1),
            n_ctx: args
                .ctx_size
                .or_else(|| env_or("OLLAMA_CONTEXT_LENGTH"))
                .filter(|&c| c > 0),
            threads: args.threads,
            kv_type: match args.kv_type {
                Some(t) => t,
                None => kv_type_from_env(),
            },
            head_type: args.load.head_type,
            residency: args.load.residency(),
            max_queue: args
                .max_queue
                .or_else(|| env_or("OLLAMA_MAX_QUEUE"))
                .unwrap_or(512),
        },
        keep_alive,
        max_loaded: args
            .max_loaded
            .or_else(|| env_or("OLLAMA_MAX_LOADED_MODELS"))
            .unwrap_or(1)
            .max(1),
        default_model,
        api_key: args
            .api_key
            .clone()
            .or_else(|| std::env::var("BITNET_API_KEY").ok())
            .filter(|k| !k.is_empty()),
        body_limit: args.body_limit,
        store,
    })
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = serve_config(&args)?;
    http::request_log::init(&args.log_format)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // "listening on" comes from the server once the bind and the -m model load succeeded.
    let result = rt.block_on(http::run(config, http::engine::loader()));
    // A model load still running on a blocking thread must not hold the exit up.
    rt.shutdown_timeout(Duration::from_millis(500));
    result
}
