//! Graceful shutdown: running streams end with a final error chunk (NDJSON `{"error":…}`, SSE
//! error event) instead of hanging, and the process exits soon after SIGTERM.

mod cli_common;
mod server_common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cli_common::{cli, ServeProcess, TINY};
use serde_json::{json, Value};
use server_common::{open_stream, start};

/// Reads the rest of a chunked streaming body: its payload lines (NDJSON lines or SSE
/// `data:` payloads), up to the final zero-length chunk or the end of the connection.
fn rest_of_stream(mut r: BufReader<TcpStream>) -> Vec<String> {
    r.get_mut()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut text = String::new();
    loop {
        let mut size = String::new();
        match r.read_line(&mut size) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => panic!("the stream hung or broke: {e}"),
        }
        let size = size.trim();
        if size.is_empty() {
            continue;
        }
        let Ok(n) = usize::from_str_radix(size, 16) else {
            // A payload line of the chunk open_stream started reading.
            text.push_str(size);
            text.push('\n');
            continue;
        };
        if n == 0 {
            break;
        }
        let mut buf = vec![0; n];
        r.read_exact(&mut buf).unwrap();
        text.push_str(&String::from_utf8_lossy(&buf));
    }
    text.lines()
        .map(|l| l.strip_prefix("data: ").unwrap_or(l).to_string())
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn shutdown_ends_running_streams_with_an_error_chunk() {
    // 26 letters at 200 ms a step: every stream is still running when the server stops.
    let s = start(8, 16, Duration::from_millis(200));
    let mut streams = Vec::new();
    for i in 0..8 {
        let (path, body) = if i % 2 == 0 {
            ("/api/generate", json!({"model": "fake", "prompt": "go!"}))
        } else {
            (
                "/v1/chat/completions",
                json!({"model": "fake", "stream": true,
                       "messages": [{"role": "user", "content": "go!"}]}),
            )
        };
        let (code, first, r) = open_stream(&s.addr, path, &body);
        assert_eq!(code, 200, "{first}");
        streams.push((path, r));
    }
    let (done_tx, done_rx) = mpsc::channel();
    let stopper = std::thread::spawn(move || {
        drop(s);
        let _ = done_tx.send(());
    });
    for (path, r) in streams {
        let lines = rest_of_stream(r);
        let last = lines.iter().rev().find(|l| *l != "[DONE]").unwrap();
        let v: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{last}: {e}"));
        let err = if path.starts_with("/v1/") {
            v["error"]["message"].as_str()
        } else {
            v["error"].as_str()
        };
        assert!(
            err.is_some_and(|e| e.contains("shutting down")),
            "{path}: last chunk {last}"
        );
    }
    done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server stopped");
    stopper.join().unwrap();
}

#[test]
fn sigterm_during_eight_streams_exits_promptly() {
    let store = tempfile::tempdir().unwrap();
    let mut serve = cli(&["serve", "-m", TINY, "--alias", "tiny", "--parallel", "8"]);
    serve
        .args(["--ctx-size", "4096", "--threads", "1"])
        .env("BITNET_MODELS", store.path())
        .stderr(Stdio::piped());
    let mut server = ServeProcess::start(serve);
    let body = json!({"model": "tiny", "prompt": "Once upon a time",
                      "options": {"num_predict": 100000, "temperature": 0}});
    let streams: Vec<_> = (0..8)
        .map(|_| {
            let (code, first, r) = open_stream(&server.addr, "/api/generate", &body);
            assert_eq!(code, 200, "{first}");
            r
        })
        .collect();
    let t0 = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let readers: Vec<_> = streams
        .into_iter()
        .map(|r| std::thread::spawn(move || rest_of_stream(r)))
        .collect();
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(5) {
            panic!("still running 5 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for r in readers {
        // Each stream ended: an error chunk (cut by the shutdown) or, if it finished first,
        // its final done chunk; never a hang.
        let lines = r.join().unwrap();
        let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert!(
            last["error"].is_string() || last["done"] == json!(true),
            "{last}"
        );
    }
    let err = server.stderr_text();
    assert!(status.success(), "exit {status:?}: {err}");
}
