//! HTTP plumbing shared by the routes: error bodies in Ollama's and OpenAI's shapes, JSON body
//! parsing with useful messages, timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{header, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// An error answer. Rendered as Ollama's `{"error":"…"}` unless `openai` is set.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub openai: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            openai: false,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    pub fn model_not_found(name: &str) -> ApiError {
        ApiError::not_found(format!("model '{name}' not found"))
    }
    pub fn openai(mut self) -> ApiError {
        self.openai = true;
        self
    }
}

pub fn openai_error_body(status: StatusCode, message: &str) -> Value {
    let kind = match status.as_u16() {
        404 => "not_found_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.openai {
            openai_error_body(self.status, &self.message)
        } else {
            json!({ "error": self.message })
        };
        json_response(self.status, &body)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::internal(format!("{e:#}"))
    }
}

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

pub fn ok_json(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

/// Parses a JSON request body; an empty body is `missing request body` like Ollama.
pub fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request("missing request body"));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    from_value(&v)
}

/// Reads a request object into `T`; a bad member is named in the error. (serde's messages do
/// not say which field they are about: the culprit is found by reading each member alone,
/// which works because every request field has a default.)
pub fn from_value<T: DeserializeOwned>(v: &Value) -> Result<T, ApiError> {
    let err = match T::deserialize(v) {
        Ok(t) => return Ok(t),
        Err(e) => e,
    };
    let culprit = v.as_object().and_then(|o| {
        let alone = |k: &String, x: &Value| {
            let one = Value::Object([(k.clone(), x.clone())].into_iter().collect());
            T::deserialize(&one).err()
        };
        T::deserialize(&Value::Object(Map::new()))
            .is_ok()
            .then(|| o.iter().find_map(|(k, x)| alone(k, x).map(|e| (k, e))))
            .flatten()
    });
    Err(ApiError::bad_request(match culprit {
        Some((k, e)) => format!("invalid request body: field \"{k}\": {e}"),
        None => format!("invalid request body: {err}"),
    }))
}

/// Error answers made outside the handlers (axum's body-limit, method and extractor
/// rejections) are plain text; clients read `{"error": …}` (OpenAI's shape under `/v1/`).
pub async fn json_errors(req: Request<Body>, next: Next) -> Response {
    let openai = req.uri().path().starts_with("/v1/");
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut out = ApiError {
        status,
        message,
        openai,
    }
    .into_response();
    for (k, v) in &parts.headers {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}

/// RFC 3339 in UTC with nanoseconds, like Go's `time.RFC3339Nano` (trailing zeros trimmed).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let nanos = d.subsec_nanos();
    let (days, sod) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_763_776_320, 123_456_789);
        assert_eq!(rfc3339(t), "2025-11-22T01:52:00.123456789Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400, 500_000_000); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.5Z");
    }
}
