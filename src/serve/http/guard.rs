//! The checks every request passes before its route, as Ollama makes them: a browser `Origin`
//! must be a local one or listed in `OLLAMA_ORIGINS` (against cross-site writes), the `Host`
//! must name this machine when bound to loopback (against DNS rebinding), and with an API key
//! every route but the liveness ones needs `Authorization: Bearer KEY`.

use std::net::IpAddr;
use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::reply::ApiError;
use super::SharedState;

/// Routes a load balancer or a client probes before it knows any key.
const OPEN_ROUTES: &[&str] = &["/", "/api/version", "/health"];

pub async fn request_checks(
    State(state): State<SharedState>,
    req: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let origin = req.headers().get(header::ORIGIN).cloned();
    if state.config.addr.ip().is_loopback() && !allowed_host(req.headers()) {
        return refuse(&path, StatusCode::FORBIDDEN, "host not allowed");
    }
    if origin.as_ref().is_some_and(|o| !allowed_origin(o)) {
        return refuse(&path, StatusCode::FORBIDDEN, "origin not allowed");
    }
    let mut resp = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else if !authorized(&state, &req, &path) {
        refuse(
            &path,
            StatusCode::UNAUTHORIZED,
            "invalid or missing API key",
        )
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    if let Some(o) = origin {
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

fn refuse(path: &str, status: StatusCode, message: &str) -> Response {
    let e = ApiError::new(status, message);
    if path.starts_with("/v1/") {
        e.openai().into_response()
    } else {
        e.into_response()
    }
}

fn authorized(state: &SharedState, req: &Request<axum::body::Body>, path: &str) -> bool {
    let Some(key) = &state.config.api_key else {
        return true;
    };
    let liveness =
        matches!(*req.method(), Method::GET | Method::HEAD) && OPEN_ROUTES.contains(&path);
    liveness
        || req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|k| constant_time_eq(k.trim().as_bytes(), key.as_bytes()))
}

/// Compares without an early exit, so the time taken does not reveal how much of a guessed
/// key was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `host[:port]` without its port; IPv6 brackets removed.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Ollama's rule: no Host (HTTP/1.0), a loopback, private or unspecified address, `localhost`,
/// the machine's name, or a name under `.localhost`, `.local` or `.internal`.
fn allowed_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let host = strip_port(host.trim()).to_ascii_lowercase();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_private() || v4.is_unspecified() || v4.is_link_local()
            }
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    // Unique local (fc00::/7) and link-local (fe80::/10).
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        };
    }
    host.is_empty()
        || host == "localhost"
        || machine_name().is_some_and(|n| host == n)
        || [".localhost", ".local", ".internal"]
            .iter()
            .any(|tld| host.ends_with(tld))
}

/// This machine's host name, lower case.
fn machine_name() -> Option<&'static str> {
    static NAME: OnceLock<Option<String>> = OnceLock::new();
    NAME.get_or_init(|| {
        let name = host_name()?.trim().to_ascii_lowercase();
        (!name.is_empty()).then_some(name)
    })
    .as_deref()
}

#[cfg(unix)]
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call; gethostname
    // writes at most `len` bytes into it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

#[cfg(not(unix))]
fn host_name() -> Option<String> {
    std::env::var("COMPUTERNAME").ok()
}

/// Local web origins (`http(s)://localhost`, `127.0.0.1`, `0.0.0.0`, `[::1]`, any port), the
/// desktop-app schemes Ollama allows, and the `OLLAMA_ORIGINS` list (comma separated; `*`
/// matches any run of characters).
pub fn allowed_origin(o: &HeaderValue) -> bool {
    let Ok(o) = o.to_str() else { return false };
    let extra = std::env::var("OLLAMA_ORIGINS").unwrap_or_default();
    if extra
        .split(',')
        .map(str::trim)
        .any(|pattern| !pattern.is_empty() && glob_match(pattern, o))
    {
        return true;
    }
    const APP_SCHEMES: [&str; 5] = [
        "app://",
        "file://",
        "tauri://",
        "vscode-webview://",
        "vscode-file://",
    ];
    if APP_SCHEMES.iter().any(|s| o.starts_with(s)) {
        return true;
    }
    let Some(rest) = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"))
    else {
        return false;
    };
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, after)) => (h, after),
            None => return false,
        },
        None => rest.split_once(':').map_or((rest, ""), |(h, p)| (h, p)),
    };
    let port = port.strip_prefix(':').unwrap_or(port);
    matches!(host, "localhost" | "127.0.0.1" | "0.0.0.0" | "::1")
        && port.chars().all(|c| c.is_ascii_digit())
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, s: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("chrome-extension://*", "chrome-extension://abc"));
        assert!(glob_match("https://*.example.com", "https://a.example.com"));
        assert!(!glob_match("https://*.example.com", "https://example.org"));
        assert!(glob_match("https://exact", "https://exact"));
        assert!(!glob_match("https://exact", "https://exact.evil"));
    }

    #[test]
    fn origins_and_ports() {
        let ok = |s: &str| allowed_origin(&HeaderValue::from_str(s).unwrap());
        assert!(ok("http://localhost:8080"));
        assert!(ok("https://[::1]"));
        assert!(!ok("http://localhost:80x"));
        assert!(!ok("http://localhost.evil"));
        assert!(!ok("ftp://localhost"));
    }

    #[test]
    fn host_forms() {
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("a.b:1"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
    }
}
