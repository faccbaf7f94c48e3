//! Model residency: `--max-loaded` is never exceeded (the least recently used idle model is
//! evicted; a busy one is waited for), and deleting a model unloads it.

mod server_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bitnet_gguf::serve::http::client::{post_json, request};
use bitnet_gguf::serve::store::{create, modelfile, CreateSpec, Store};
use serde_json::{json, Value};
use server_common::{fake_loader, open_stream, serve_with, TestServer};

/// Puts the committed tiny GGUF into the server's store as `name` (the fake loader does not
/// read it; it only needs a path of its own).
fn add_model(s: &TestServer, name: &str) {
    let work = tempfile::tempdir().unwrap();
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny-bitnet-b1.58.gguf");
    std::fs::copy(tiny, work.path().join("m.gguf")).unwrap();
    let mf = modelfile::parse("FROM ./m.gguf\n").unwrap();
    let spec = CreateSpec::from_modelfile(&mf, work.path()).unwrap();
    let store = Store::new(s.store_dir.path().to_path_buf(), None);
    create::create(&store, name, spec, &mut |_| {}).unwrap();
}

fn loaded(addr: &str) -> Vec<String> {
    let v: Value = request(addr, "GET", "/api/ps", None)
        .unwrap()
        .json()
        .unwrap();
    v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
}

fn generate(addr: &str, model: &str) {
    let r = post_json(
        addr,
        "/api/generate",
        &json!({"model": model, "prompt": "go!", "stream": false}),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn max_loaded_evicts_the_idle_model() {
    let s = serve_with(fake_loader(Duration::ZERO), |c| c.max_loaded = 1);
    add_model(&s, "other");
    assert_eq!(loaded(&s.addr), ["fake"]);
    generate(&s.addr, "other");
    assert_eq!(loaded(&s.addr), ["other:latest"]);
    generate(&s.addr, "fake");
    assert_eq!(loaded(&s.addr), ["fake"]);
}

#[test]
fn max_loaded_waits_for_a_busy_model() {
    // 27 steps of 100 ms: the fake model is busy while "other" is asked for.
    let s = serve_with(fake_loader(Duration::from_millis(100)), |c| {
        c.max_loaded = 1
    });
    add_model(&s, "other");
    let (code, _, stream) = open_stream(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": "go!"}),
    );
    assert_eq!(code, 200);
    let addr = s.addr.clone();
    let waiting = std::thread::spawn(move || generate(&addr, "other"));
    // The busy model is not evicted under its running stream, and the second one is not
    // loaded beside it: the stream runs to its end.
    let mut text = String::new();
    for line in std::io::BufRead::lines(stream) {
        let line = line.unwrap();
        text.push_str(&line);
        if line.contains("\"done\":true") {
            break;
        }
    }
    assert!(text.contains("\"done_reason\":\"stop\""), "{text}");
    waiting.join().unwrap();
    assert_eq!(loaded(&s.addr), ["other:latest"]);
}

#[test]
fn delete_unloads_the_model() {
    let s = serve_with(fake_loader(Duration::ZERO), |_| {});
    add_model(&s, "doomed");
    generate(&s.addr, "doomed");
    assert!(loaded(&s.addr).contains(&"doomed:latest".to_string()));
    let r = request(
        &s.addr,
        "DELETE",
        "/api/delete",
        Some(json!({"model": "doomed"}).to_string().as_bytes()),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(loaded(&s.addr), ["fake"]);
}

#[test]
fn cli_rm_goes_through_the_running_server() {
    let s = serve_with(fake_loader(Duration::ZERO), |_| {});
    add_model(&s, "doomed");
    generate(&s.addr, "doomed");
    let store: &Path = s.store_dir.path();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet-gguf"))
        .args(["rm", "doomed"])
        .env("OLLAMA_HOST", &s.addr)
        .env("BITNET_MODELS", store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(loaded(&s.addr), ["fake"]);
    let tags = request(&s.addr, "GET", "/api/tags", None).unwrap().text();
    assert!(!tags.contains("doomed"), "{tags}");
}

#[test]
fn ps_and_stop_take_the_address_as_serve_does() {
    let s = serve_with(fake_loader(Duration::ZERO), |_| {});
    let (host, port) = s.addr.rsplit_once(':').unwrap();
    let verb = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bitnet-gguf"))
            .args(args)
            .args(["--host", host, "--port", port])
            // A wrong OLLAMA_HOST: the flags win over it, as for serve.
            .env("OLLAMA_HOST", "127.0.0.1:1")
            .output()
            .unwrap()
    };
    let out = verb(&["ps"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().any(|l| l.starts_with("fake ")), "{text}");
    let out = verb(&["stop", "fake"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
