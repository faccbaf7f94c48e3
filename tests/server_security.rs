//! The server's request checks: cross-site requests (foreign `Origin`), DNS rebinding
//! (foreign `Host` on a loopback bind) and `--api-key` on every route but the liveness ones.

mod server_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use server_common::{fake_loader, serve_with};

/// One request with the given extra headers; returns the status and the body.
fn raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code = status
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{method} {path}: no status line"))
        .parse()
        .unwrap();
    let mut rest = String::new();
    let _ = r.read_to_string(&mut rest);
    (code, rest)
}

const ATTACKER: &str = "http://attacker.example";

/// The cross-site writes a web page could send without a preflight (text/plain bodies).
fn simple_requests() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (
            "POST",
            "/api/copy",
            r#"{"source":"fake","destination":"stolen"}"#,
        ),
        (
            "POST",
            "/api/blobs/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "",
        ),
        ("POST", "/api/create", r#"{"model":"x","from":"fake"}"#),
        (
            "POST",
            "/api/generate",
            r#"{"model":"fake","prompt":"hi!"}"#,
        ),
        ("DELETE", "/api/delete", r#"{"model":"fake"}"#),
    ]
}

#[test]
fn foreign_origins_get_403() {
    let s = serve_with(fake_loader(Duration::ZERO), |_| {});
    for (method, path, body) in simple_requests() {
        for origin in [
            ATTACKER,
            "http://localhost.attacker.example",
            "evil://localhost",
            "null",
        ] {
            let (code, _) = raw(
                &s.addr,
                method,
                path,
                &[("Origin", origin), ("Content-Type", "text/plain")],
                body,
            );
            assert_eq!(code, 403, "{method} {path} from {origin}");
        }
    }
    // A preflight from a foreign origin is refused too.
    let (code, _) = raw(
        &s.addr,
        "OPTIONS",
        "/api/generate",
        &[
            ("Origin", ATTACKER),
            ("Access-Control-Request-Method", "POST"),
        ],
        "",
    );
    assert_eq!(code, 403);
    // The model is still there: nothing above went through.
    let (code, tags) = raw(&s.addr, "GET", "/api/tags", &[], "");
    assert_eq!(code, 200);
    assert!(!tags.contains("stolen"), "{tags}");
}

#[test]
fn local_origins_are_allowed() {
    let s = serve_with(fake_loader(Duration::ZERO), |_| {});
    for origin in [
        "http://localhost",
        "http://localhost:3000",
        "https://127.0.0.1:8443",
        "http://[::1]:5173",
        "app://desktop-client",
        "tauri://localhost",
    ] {
        let (code, body) = raw(
            &s.addr,
            "POST",
            "/api/generate",
            &[("Origin", origin), ("Content-Type", "application/json")],
            r#"{"model":"fake","prompt":"hi!","stream":false}"#,
        );
        assert_eq!(code, 200, "{origin}: {body}");
        assert!(
            body.to_ascii_lowercase()
                .contains(&format!("access-control-allow-origin: {origin}")),
            "{origin}: {body}"
        );
    }
}

#[test]
fn ollama_origins_adds_allowed_origins() {
    // The variable is read per request; this is the only test in this binary that sets it
    // and the origins it names are not used by the other tests.
    std::env::set_var(
        "OLLAMA_ORIGINS",
        "https://trusted.example, chrome-extension://*",
    );
    let s = serve_with(fake_loader(Duration::ZERO), |_| {});
    for (origin, want) in [
        ("https://trusted.example", 200),
        ("chrome-extension://abcdef", 200),
        ("https://untrusted.example", 403),
    ] {
        let (code, _) = raw(&s.addr, "GET", "/api/tags", &[("Origin", origin)], "");
        assert_eq!(code, want, "{origin}");
    }
}

#[test]
fn foreign_hosts_get_403_on_a_loopback_bind() {
    let s = serve_with(fake_loader(Duration::ZERO), |_| {});
    for (method, path, body) in simple_requests() {
        let (code, _) = raw(
            &s.addr,
            method,
            path,
            &[("Host", "attacker.example"), ("Content-Type", "text/plain")],
            body,
        );
        assert_eq!(code, 403, "{method} {path}");
    }
    for host in ["attacker.example:11434", "localhost.attacker.example", "x"] {
        let (code, _) = raw(&s.addr, "GET", "/api/tags", &[("Host", host)], "");
        assert_eq!(code, 403, "{host}");
    }
    let (code, tags) = raw(&s.addr, "GET", "/api/tags", &[], "");
    assert_eq!(code, 200);
    assert!(tags.contains("fake") || tags.contains("models"), "{tags}");
    for host in [
        "localhost",
        "localhost:11434",
        "LOCALHOST:1",
        "127.0.0.1",
        "127.0.0.1:8080",
        "[::1]",
        "[::1]:11434",
        "my-app.localhost:3000",
    ] {
        let (code, _) = raw(&s.addr, "GET", "/api/version", &[("Host", host)], "");
        assert_eq!(code, 200, "{host}");
    }
    // The machine's own name, as a browser on this machine may send it.
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = format!("{}:11434", name.trim());
        let (code, _) = raw(&s.addr, "GET", "/api/version", &[("Host", &host)], "");
        assert_eq!(code, 200, "{host}");
    }
}

/// Every route of the router with a method it answers. `every_route_is_listed` keeps this
/// list in step with `router()`.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/api/version"),
    ("POST", "/api/generate"),
    ("POST", "/api/chat"),
    ("POST", "/api/embed"),
    ("POST", "/api/embeddings"),
    ("GET", "/api/tags"),
    ("POST", "/api/show"),
    ("GET", "/api/ps"),
    ("POST", "/api/create"),
    ("POST", "/api/copy"),
    ("DELETE", "/api/delete"),
    ("POST", "/api/pull"),
    ("POST", "/api/push"),
    ("HEAD", "/api/blobs/{digest}"),
    ("POST", "/api/blobs/{digest}"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{*id}"),
    ("POST", "/v1/embeddings"),
    ("GET", "/health"),
    ("GET", "/v1/health"),
    ("POST", "/tokenize"),
    ("POST", "/detokenize"),
    ("POST", "/apply-template"),
    ("GET", "/metrics"),
    ("GET", "/props"),
];

const OPEN: &[&str] = &["/", "/api/version", "/health"];

#[test]
fn every_route_is_listed() {
    let src = include_str!("../src/serve/http/mod.rs");
    let mut routed = Vec::new();
    for part in src.split(".route(").skip(1) {
        let path = part.split('"').nth(1).unwrap();
        routed.push(path);
    }
    assert!(routed.len() > 20, "{routed:?}");
    for p in &routed {
        assert!(
            ROUTES.iter().any(|(_, r)| r == p),
            "route {p} is missing from ROUTES"
        );
    }
    for (_, r) in ROUTES {
        assert!(routed.contains(r), "ROUTES lists {r}, the router does not");
    }
}

fn concrete(path: &str) -> String {
    path.replace(
        "{digest}",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    )
    .replace("{*id}", "fake")
}

#[test]
fn api_key_guards_every_route_but_liveness() {
    let s = serve_with(fake_loader(Duration::ZERO), |c| {
        c.api_key = Some("sesame".into())
    });
    let routes = ROUTES.iter().copied().chain([("GET", "/no/such/route")]);
    for (method, path) in routes {
        let path = concrete(path);
        let (code, _) = raw(&s.addr, method, &path, &[], "{}");
        if OPEN.contains(&path.as_str()) {
            assert_eq!(code, 200, "{method} {path} without a key");
        } else {
            assert_eq!(code, 401, "{method} {path} without a key");
            let (code, _) = raw(
                &s.addr,
                method,
                &path,
                &[("Authorization", "Bearer wrong")],
                "{}",
            );
            assert_eq!(code, 401, "{method} {path} with a wrong key");
        }
        let (code, _) = raw(
            &s.addr,
            method,
            &path,
            &[("Authorization", "Bearer sesame")],
            "{}",
        );
        assert_ne!(code, 401, "{method} {path} with the key");
        assert_ne!(code, 403, "{method} {path} with the key");
    }
    // A CORS preflight carries no credentials and must get through.
    let (code, _) = raw(
        &s.addr,
        "OPTIONS",
        "/api/chat",
        &[
            ("Origin", "http://localhost:3000"),
            ("Access-Control-Request-Method", "POST"),
        ],
        "",
    );
    assert_eq!(code, 204);
}
