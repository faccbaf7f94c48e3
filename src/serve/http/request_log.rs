//! One `tracing` event per request (method, path, status, duration, model, tokens in/out; never
//! prompt or output text), emitted when the response body is finished or dropped so a
//! stream's duration and token counts are its whole life's; and the by-route request counts of
//! `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::State;
use axum::http::Request;
use axum::middleware::Next;
use axum::response::Response;
use tokio_stream::StreamExt;

use super::SharedState;

/// What a handler learns about its request, for the log line.
#[derive(Default, Debug)]
pub struct RequestNote {
    pub model: Option<String>,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

pub type SharedNote = Arc<Mutex<RequestNote>>;

tokio::task_local! {
    static CURRENT: SharedNote;
}

/// The note of the request whose handler is running, if any (for work that outlives the
/// handler's task, such as a stream's forwarder).
pub fn current() -> Option<SharedNote> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Records into a request's note (nothing outside a request).
pub fn note(n: Option<&SharedNote>, f: impl FnOnce(&mut RequestNote)) {
    if let Some(n) = n {
        f(&mut n.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// Static route labels for `/metrics`; anything else is `unmatched`, so random paths cannot
/// grow the label set.
fn route_label(path: &str) -> &'static str {
    const PARAMETRISED: [(&str, &str); 2] = [
        ("/api/blobs/", "/api/blobs/{digest}"),
        ("/v1/models/", "/v1/models/{id}"),
    ];
    const STATIC: [&str; 26] = [
        "/",
        "/api/version",
        "/api/generate",
        "/api/chat",
        "/api/embed",
        "/api/embeddings",
        "/api/tags",
        "/api/show",
        "/api/ps",
        "/api/create",
        "/api/copy",
        "/api/delete",
        "/api/pull",
        "/api/push",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/v1/embeddings",
        "/health",
        "/v1/health",
        "/tokenize",
        "/detokenize",
        "/apply-template",
        "/metrics",
        "/props",
        "/api/blobs",
    ];
    if let Some((_, label)) = PARAMETRISED.iter().find(|(p, _)| path.starts_with(p)) {
        return label;
    }
    STATIC
        .iter()
        .find(|s| **s == path)
        .copied()
        .unwrap_or("unmatched")
}

/// Writes the log line and counts the request when dropped: at the end of the body.
struct LogOnDrop {
    state: SharedState,
    note: SharedNote,
    method: String,
    path: String,
    status: u16,
    t0: Instant,
}

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        let n = self.note.lock().unwrap_or_else(|e| e.into_inner());
        let label = route_label(&self.path);
        self.state.metrics.count_request(label, self.status);
        tracing::info!(
            method = %self.method,
            path = %self.path,
            status = self.status,
            duration_ms = self.t0.elapsed().as_secs_f64() * 1e3,
            model = n.model.as_deref().unwrap_or(""),
            tokens_in = n.tokens_in,
            tokens_out = n.tokens_out,
            "request"
        );
    }
}

pub async fn log_requests(
    State(state): State<SharedState>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let t0 = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let note = SharedNote::default();
    let resp = CURRENT.scope(note.clone(), next.run(req)).await;
    let guard = LogOnDrop {
        state,
        note,
        method,
        path,
        status: resp.status().as_u16(),
        t0,
    };
    let (parts, body) = resp.into_parts();
    if body.size_hint().exact().is_some() {
        // A body of known size is already complete: log now and keep its Content-Length
        // (a wrapped stream would be sent chunked, which HEAD replies and some clients mind).
        drop(guard);
        return Response::from_parts(parts, body);
    }
    let body = body.into_data_stream().map(move |chunk| {
        let _ = &guard;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// Installs the process's log subscriber on stderr: `text` (human) or `json` (one object a
/// line, for log shippers).
pub fn init(format: &str) -> anyhow::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO);
    let result = match format {
        "text" => builder.try_init(),
        "json" => builder.json().try_init(),
        other => anyhow::bail!("--log-format must be text or json, not {other:?}"),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}
