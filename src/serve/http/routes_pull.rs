//! `/api/pull`: `hf.co/…` names are pulled from the Hugging Face Hub in a blocking task, its
//! events streamed as Ollama's progress objects.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::prompt;
use super::reply::{ok_json, parse_body, ApiError};
use super::stream;
use super::SharedState;
use crate::serve::store;

#[derive(Deserialize)]
struct PullRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    stream: Option<bool>,
}

/// One pull event as Ollama's progress object.
fn pull_event_json(e: store::pull::PullEvent) -> Value {
    match e {
        store::pull::PullEvent::Status(s) => json!({ "status": s }),
        store::pull::PullEvent::Progress {
            digest,
            total,
            completed,
        } => {
            let short = digest
                .strip_prefix("sha256:")
                .map_or(digest, |h| &h[..12.min(h.len())]);
            json!({"status": format!("pulling {short}"), "digest": digest, "total": total, "completed": completed})
        }
    }
}

fn pull_error(e: &anyhow::Error) -> ApiError {
    let msg = format!("{e:#}");
    if msg.contains("(404)") {
        ApiError::not_found(msg)
    } else if msg.contains("401 Unauthorized") {
        ApiError::new(StatusCode::UNAUTHORIZED, msg)
    } else if msg.contains("403 Forbidden") {
        ApiError::new(StatusCode::FORBIDDEN, msg)
    } else {
        ApiError::internal(msg)
    }
}

/// `hf.co/ORG/REPO[:TYPE]` names are pulled from the Hugging Face Hub (`HF_ENDPOINT`,
/// `HF_TOKEN`), streaming Ollama's progress objects; any other name that is already here
/// "pulls" successfully (clients pull defensively), else it is a clear error.
pub async fn pull(State(state): State<SharedState>, body: Bytes) -> Result<Response, ApiError> {
    let req: PullRequest = parse_body(&body)?;
    let name = if req.model.is_empty() {
        req.name
    } else {
        req.model
    };
    if crate::serve::hub::HubRef::parse(&name).is_none() {
        if prompt::resolve(&state, &name).is_ok() {
            let v = json!({"status": "success"});
            return Ok(if req.stream == Some(false) {
                ok_json(v)
            } else {
                stream::ndjson_response(axum::body::Body::from(stream::line(&v)))
            });
        }
        return Err(ApiError::not_found(format!(
            "pull model manifest: model '{name}' is not available locally; only Hugging Face \
             models (hf.co/ORG/REPO[:TYPE]) are downloaded, or import a GGUF with \
             `bitnet-gguf create {name} -f Modelfile`"
        )));
    }
    let store = state.store.clone();
    let opts = store::pull::PullOptions {
        hub: crate::serve::hub::HubConfig::from_env(),
        weight_type: None,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let job = tokio::task::spawn_blocking(move || {
        store::pull::pull(&store, &name, &opts, &mut |e| {
            let _ = tx.send(pull_event_json(e));
        })
    });
    if req.stream == Some(false) {
        let r = job.await.map_err(|_| ApiError::internal("pull crashed"))?;
        return match r {
            Ok(()) => Ok(ok_json(json!({"status": "success"}))),
            Err(e) => Err(pull_error(&e)),
        };
    }
    use tokio_stream::StreamExt;
    let events = tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
        .filter(|v| v["status"] != "success")
        .map(|v| stream::line(&v));
    let tail = tokio_stream::once(job).then(|job| async move {
        match job.await {
            Ok(Ok(())) => stream::line(&json!({"status": "success"})),
            Ok(Err(e)) => stream::line(&json!({"error": format!("{e:#}")})),
            Err(_) => stream::line(&json!({"error": "pull crashed"})),
        }
    });
    let body = axum::body::Body::from_stream(
        events
            .chain(tail)
            .map(|s| Ok::<_, std::convert::Infallible>(Bytes::from(s))),
    );
    Ok(stream::ndjson_response(body))
}
