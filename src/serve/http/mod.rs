//! `bitnet-gguf serve`: Ollama's native API (`/api/*`, NDJSON) and the OpenAI API (`/v1/*`,
//! SSE) on one port, over a scheduler that runs several sequences per loaded model.

pub mod backend;
pub mod client;
pub mod engine;
pub mod metrics;
pub mod models;
pub mod prompt;
pub mod reply;
pub mod routes_embed;
pub mod routes_misc;
pub mod routes_ollama;
pub mod routes_openai;
pub mod routes_store;
pub mod scheduler;
pub mod stream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
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
    /// When set, `/api/*` and `/v1/*` need `Authorization: Bearer <key>`.
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
}

pub type SharedState = Arc<AppState>;

pub fn app_state(config: ServeConfig, loader: Loader) -> SharedState {
    let metrics = Arc::new(Metrics::default());
    Arc::new(AppState {
        store: config.store.clone(),
        models: Models::new(loader, metrics.clone()),
        metrics,
        started: std::time::SystemTime::now(),
        config,
    })
}

async fn cors_and_auth(
    axum::extract::State(state): axum::extract::State<SharedState>,
    req: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut resp = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let path = req.uri().path();
        let needs_key = path.starts_with("/api/") || path.starts_with("/v1/");
        let authorized = match (&state.config.api_key, needs_key) {
            (Some(key), true) => req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.strip_prefix("Bearer ").is_some_and(|k| k.trim() == key)),
            _ => true,
        };
        if authorized {
            next.run(req).await
        } else {
            let e = reply::ApiError::new(StatusCode::UNAUTHORIZED, "invalid or missing API key");
            let e = if path.starts_with("/v1/") {
                e.openai()
            } else {
                e
            };
            e.into_response()
        }
    };
    let h = resp.headers_mut();
    if let Some(o) = origin.filter(allowed_origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, x-stainless-arch, x-stainless-async, x-stainless-custom-poll-interval, x-stainless-helper-method, x-stainless-lang, x-stainless-os, x-stainless-package-version, x-stainless-poll-helper, x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout"),
        );
    }
    h.insert(
        "x-bitnet-version",
        HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    resp
}

/// Localhost-ish origins, plus those listed in `OLLAMA_ORIGINS` (comma separated, `*` = any).
fn allowed_origin(o: &HeaderValue) -> bool {
    let Ok(o) = o.to_str() else { return false };
    let extra = std::env::var("OLLAMA_ORIGINS").unwrap_or_default();
    if extra.split(',').map(str::trim).any(|e| e == "*" || e == o) {
        return true;
    }
    let host = o.split("://").nth(1).unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0")
        || o.starts_with("app://")
        || o.starts_with("file://")
        || o.starts_with("tauri://")
        || o.starts_with("vscode-webview://")
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
        .route("/api/pull", post(routes_store::pull))
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
        .layer(middleware::from_fn_with_state(state.clone(), cors_and_auth))
        .layer(middleware::from_fn(reply::json_errors))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Runs the server until Ctrl-C / SIGTERM.
pub async fn run(config: ServeConfig, loader: Loader) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.addr))?;
    run_on(listener, config, loader, shutdown_signal()).await
}

pub async fn run_on(
    listener: tokio::net::TcpListener,
    config: ServeConfig,
    loader: Loader,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = app_state(config, loader);
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
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
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
