//! Embeddings: Ollama's `/api/embed` and `/api/embeddings`; `embed_texts` also serves OpenAI's
//! `/v1/embeddings`.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::prompt;
use super::reply::{ok_json, parse_body, ApiError};
use super::routes_ollama::keep_alive;
use super::scheduler::WorkerHandle;
use super::stream;
use super::SharedState;

/// Embeds texts: tokenised, truncated to the context when `truncate` (default), mean-pooled,
/// L2-normalised. Returns the vectors and the prompt token count.
pub async fn embed_texts(
    handle: &WorkerHandle,
    inputs: &[String],
    truncate: bool,
    dimensions: Option<usize>,
) -> Result<(Vec<Vec<f32>>, usize), ApiError> {
    let text = handle.text.clone();
    let n_ctx = handle.config.n_ctx;
    let mut all = Vec::new();
    let mut count = 0;
    for s in inputs {
        let mut t = prompt::tokenize_prompt(&*text, s)?;
        if t.is_empty() {
            return Err(ApiError::bad_request("cannot embed an empty input"));
        }
        if t.len() > n_ctx {
            if !truncate {
                return Err(ApiError::bad_request(
                    "input exceeds maximum context length",
                ));
            }
            t.truncate(n_ctx);
        }
        count += t.len();
        all.push(t);
    }
    let mut vecs = handle
        .embed(all)
        .await
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    for v in &mut vecs {
        if let Some(d) = dimensions.filter(|d| *d > 0 && *d < v.len()) {
            v.truncate(d);
        }
        let norm = v
            .iter()
            .map(|x| (*x as f64) * (*x as f64))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x = (*x as f64 / norm) as f32);
        }
    }
    Ok((vecs, count))
}

#[derive(Deserialize)]
struct EmbedRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    keep_alive: Option<Value>,
}

pub fn string_inputs(v: &Value) -> Result<Vec<String>, ApiError> {
    match v {
        Value::Null => Ok(vec![]),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str().map(String::from).ok_or_else(|| {
                    ApiError::bad_request("input must be a string or a list of strings")
                })
            })
            .collect(),
        _ => Err(ApiError::bad_request(
            "input must be a string or a list of strings",
        )),
    }
}

pub async fn embed(State(state): State<SharedState>, body: Bytes) -> Result<Response, ApiError> {
    let t0 = Instant::now();
    let req: EmbedRequest = parse_body(&body)?;
    let model = prompt::resolve(&state, &req.model)?;
    let ka = keep_alive(&req.keep_alive)?;
    let inputs = string_inputs(&req.input)?;
    let (handle, load_ns) = state.models.acquire(&state, &model, ka).await?;
    let (vecs, count) = if inputs.is_empty() {
        (vec![], 0)
    } else {
        embed_texts(
            &handle,
            &inputs,
            req.truncate.unwrap_or(true),
            req.dimensions,
        )
        .await?
    };
    stream::release(&state, &model, ka.unwrap_or(state.config.keep_alive));
    Ok(ok_json(json!({
        "model": model.name, "embeddings": vecs,
        "total_duration": t0.elapsed().as_nanos() as u64, "load_duration": load_ns, "prompt_eval_count": count
    })))
}

#[derive(Deserialize)]
struct LegacyEmbedRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    keep_alive: Option<Value>,
}

pub async fn embeddings(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: LegacyEmbedRequest = parse_body(&body)?;
    let model = prompt::resolve(&state, &req.model)?;
    let ka = keep_alive(&req.keep_alive)?;
    let (handle, _) = state.models.acquire(&state, &model, ka).await?;
    if req.prompt.is_empty() {
        return Ok(ok_json(json!({"embedding": []})));
    }
    let (mut vecs, _) = embed_texts(&handle, &[req.prompt], true, None).await?;
    stream::release(&state, &model, ka.unwrap_or(state.config.keep_alive));
    Ok(ok_json(
        json!({"embedding": vecs.pop().unwrap_or_default()}),
    ))
}

#[derive(Deserialize)]
struct EmbeddingsRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

/// OpenAI's `/v1/embeddings`.
pub async fn openai_embeddings(
    State(state): State<SharedState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: EmbeddingsRequest = parse_body(&body).map_err(ApiError::openai)?;
    let base64_out = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(
                ApiError::bad_request(format!("invalid encoding_format '{other}'")).openai(),
            )
        }
    };
    let model = prompt::resolve(&state, &req.model).map_err(ApiError::openai)?;
    let inputs = string_inputs(&req.input).map_err(ApiError::openai)?;
    if inputs.is_empty() {
        return Err(ApiError::bad_request("input is required").openai());
    }
    let (handle, _) = state
        .models
        .acquire(&state, &model, None)
        .await
        .map_err(ApiError::openai)?;
    let (vecs, count) = embed_texts(&handle, &inputs, true, req.dimensions)
        .await
        .map_err(ApiError::openai)?;
    stream::release(&state, &model, state.config.keep_alive);
    let data: Vec<Value> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let emb = if base64_out {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64(&bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "embedding": emb, "index": i})
        })
        .collect();
    Ok(ok_json(
        json!({"object": "list", "data": data, "model": model.name,
        "usage": {"prompt_tokens": count, "total_tokens": count}}),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }
}
