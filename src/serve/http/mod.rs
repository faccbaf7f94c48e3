//! `bitnet-gguf serve`: Ollama's native API (`/api/*`, NDJSON) and the OpenAI API (`/v1/*`,
//! SSE) on one port, over a scheduler that runs several sequences per loaded model.

pub mod backend;
pub mod client;
pub mod engine;
pub mod guard;
pub mod metrics;
pub mod models;
pub mod prompt;
pub mod reply;
pub mod request_log;
pub mod routes_embed;
pub mod routes_misc;
pub mod routes_ollama;
pub mod routes_openai;
pub mod routes_pull;
pub mod routes_store;
pub mod scheduler;
pub mod stream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, head, post};
use axum::Router;

use crate::serve::options::KeepAlive;
use crate::serve::store::Store;
use metrics::Metrics;
use models::Models;
use scheduler::WorkerHandle;

/// The version reported on `/api/version`: a recent Ollama release, for clients that gate
/// features on it. Our own version is in the `X-Bitnet-Version` header.
pub const OLLAMA_COMPAT_VERSION: &str = "0.33.0";

/// Settings for loading a model into a scheduler.
#[derive(Clone, Debug)]
pub struct LoadSettings {
    pub n_slots: usize,
    /// Context per slot; the model's training context (capped at 4096) when `None`.
    pub n_ctx: Option<usize>,
    pub threads: Option<usize>,
    pub max_queue: usize,
    pub kv_type: crate::engine::model::KvType,
    /// `--head-type`: every model loaded gets its F16/BF16/F32 head re-quantised to this.
    pub head_type: Option<bitnet_formats::TensorType>,
    /// `--no-mmap`: every model loaded is read into memory instead of mapped.
    pub residency: bitnet_formats::Residency,
}

/// Loads a GGUF and starts its scheduler (the real engine, or a fake one in tests).
pub type Loader =
    Arc<dyn Fn(&Path, &LoadSettings, Arc<Metrics>) -> anyhow::Result<WorkerHandle> + Send + Sync>;

#[derive(Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub load: LoadSettings,
    pub keep_alive: KeepAlive,
    pub max_loaded: usize,
    /// `-m FILE` with its name (`--alias`, default the file stem): served without a store entry.
    pub default_model: Option<(String, PathBuf)>,
    /// When set, every route but `GET /`, `/api/version` and `/health` needs
    /// `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    pub body_limit: usize,
    pub store: Store,
}

pub struct AppState {
    pub config: ServeConfig,
    pub store: Store,
    pub models: Models,
    pub metrics: Arc<Metrics>,
    pub started: std::time::SystemTime,
    /// Set to true when the server begins to shut down: running generations end.
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

pub type SharedState = Arc<AppState>;

pub fn app_state(config: ServeConfig, loader: Loader) -> SharedState {
    let metrics = Arc::new(Metrics::default());
    Arc::new(AppState {
        store: config.store.clone(),
        models: Models::new(loader, metrics.clone()),
        metrics,
        started: std::time::SystemTime::now(),
        shutdown: tokio::sync::watch::Sender::new(false),
        config,
    })
}

pub fn router(state: SharedState) -> Router {
    let limit = state.config.body_limit;
    Router::new()
        .route("/", get(routes_misc::root).head(routes_misc::root))
        .route(
            "/api/version",
            get(routes_misc::version).head(routes_misc::version),
        )
        .route("/api/generate", post(routes_ollama::generate))
        .route("/api/chat", post(routes_ollama::chat))
        .route("/api/embed", post(routes_embed::embed))
        .route("/api/embeddings", post(routes_embed::embeddings))
        .route(
            "/api/tags",
            get(routes_store::tags).head(routes_store::tags),
        )
        .route("/api/show", post(routes_store::show))
        .route("/api/ps", get(routes_store::ps))
        .route("/api/create", post(routes_store::create))
        .route("/api/copy", post(routes_store::copy))
        .route("/api/delete", axum::routing::delete(routes_store::delete))
        .route("/api/pull", post(routes_pull::pull))
        .route("/api/push", post(routes_store::push))
        .route(
            "/api/blobs/{digest}",
            head(routes_store::blob_head).post(routes_store::blob_upload),
        )
        .route(
            "/v1/chat/completions",
            post(routes_openai::chat_completions),
        )
        .route("/v1/completions", post(routes_openai::completions))
        .route("/v1/models", get(routes_openai::models))
        .route("/v1/models/{*id}", get(routes_openai::model))
        .route("/v1/embeddings", post(routes_openai::embeddings))
        .route("/health", get(routes_misc::health))
        .route("/v1/health", get(routes_misc::health))
        .route("/tokenize", post(routes_misc::tokenize))
        .route("/detokenize", post(routes_misc::detokenize))
        .route("/apply-template", post(routes_misc::apply_template))
        .route("/metrics", get(routes_misc::metrics))
        .route("/props", get(routes_misc::props))
        .fallback(routes_misc::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::request_checks,
        ))
        .layer(middleware::from_fn(reply::json_errors))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_log::log_requests,
        ))
        .with_state(state)
}

/// How long in-flight requests get to finish after a shutdown signal; connections still open
/// then are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs the server until Ctrl-C / SIGTERM; a second signal exits at once.
pub async fn run(config: ServeConfig, loader: Loader) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.addr))?;
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("shutting down (a second signal exits at once)");
        let _ = first_tx.send(());
        shutdown_signal().await;
        std::process::exit(130);
    });
    run_on(listener, config, loader, async {
        let _ = first_rx.await;
    })
    .await
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting, ends running
/// generations (streams get a final error chunk) and returns once the open connections are
/// done or `SHUTDOWN_GRACE` has passed.
pub async fn run_on(
    listener: tokio::net::TcpListener,
    config: ServeConfig,
    loader: Loader,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = app_state(config, loader);
    // A store newer than this binary is refused before anything is served; the temporary
    // files of writers that died since the last run go now, not at the first write.
    state.store.prepare()?;
    let sweeper = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            sweeper.models.sweep();
        }
    });
    if let Some((name, path)) = state.config.default_model.clone() {
        // Load the -m model up front so the first request does not pay for it.
        let st = state.clone();
        let ka = KeepAlive::Forever;
        if let Err(e) = st
            .models
            .acquire(&st, &models::ResolvedModel::file(&name, &path), Some(ka))
            .await
        {
            anyhow::bail!("cannot load {}: {}", path.display(), e.message);
        }
    }
    eprintln!(
        "bitnet-gguf {} listening on http://{} ({} slots per model, store {})",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr()?,
        state.config.load.n_slots,
        state.config.store.root.display()
    );
    let stopping = state.clone();
    let signal = async move {
        shutdown.await;
        stopping.shutdown.send_replace(true);
    };
    let mut stopped = state.shutdown.subscribe();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(signal);
    tokio::select! {
        r = std::future::IntoFuture::into_future(server) => r?,
        _ = async {
            let _ = stopped.wait_for(|&s| s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => eprintln!("connections still open after {SHUTDOWN_GRACE:?}: closing them"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// The server's address as `serve` and the verbs that talk to it (`ps`, `stop`, `rm`) all
/// resolve it: `--host`/`--port` when given, else `OLLAMA_HOST`, else 127.0.0.1:11434.
pub fn resolve_addr(host: Option<&str>, port: Option<u16>) -> anyhow::Result<(String, u16)> {
    let (env_host, env_port) = parse_host(&std::env::var("OLLAMA_HOST").unwrap_or_default())?;
    Ok((
        host.map_or(env_host, str::to_string),
        port.unwrap_or(env_port),
    ))
}

/// `OLLAMA_HOST`-style addresses: `host`, `host:port`, `:port`, `http(s)://host[:port][/path]`,
/// `[v6]:port`. Default host 127.0.0.1, default port 11434.
pub fn parse_host(s: &str) -> anyhow::Result<(String, u16)> {
    let mut s = s.trim();
    let mut default_port = 11434;
    for (scheme, port) in [("http://", 80), ("https://", 443)] {
        if let Some(r) = s.strip_prefix(scheme) {
            s = r;
            default_port = port;
        }
    }
    let s = s.split('/').next().unwrap_or("");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| anyhow::anyhow!("bad address {s:?}"))?;
        (h.to_string(), after.strip_prefix(':').map(str::to_string))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (s.to_string(), None),
        }
    };
    let port = match port.filter(|p| !p.is_empty()) {
        Some(p) => p
            .parse()
            .map_err(|_| anyhow::anyhow!("bad port in {s:?}"))?,
        None if s.is_empty() || !s.contains(':') => default_port,
        None => default_port,
    };
    let host = if host.is_empty() {
        "127.0.0.1".to_string()
    } else {
        host
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::parse_host;

    #[test]
    fn host_forms() {
        assert_eq!(parse_host("").unwrap(), ("127.0.0.1".into(), 11434));
        assert_eq!(parse_host(":8080").unwrap(), ("127.0.0.1".into(), 8080));
        assert_eq!(parse_host("0.0.0.0").unwrap(), ("0.0.0.0".into(), 11434));
        assert_eq!(parse_host("example:1").unwrap(), ("example".into(), 1));
        assert_eq!(parse_host("http://h:9/x").unwrap(), ("h".into(), 9));
        assert_eq!(parse_host("https://h").unwrap(), ("h".into(), 443));
        assert_eq!(parse_host("[::1]:5").unwrap(), ("::1".into(), 5));
        assert!(parse_host("h:xx").is_err());
    }
}
