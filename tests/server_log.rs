//! The request log (one `tracing` event per request, never the prompt or the output) and the
//! Prometheus `/metrics` counters by route and status.

mod server_common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitnet_gguf::serve::http::client::{post_json, request};
use serde_json::{json, Value};
use server_common::start;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn one_log_line_per_request_without_text_and_metrics_by_route() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_writer(move || sink.clone())
        .init();
    let s = start(2, 16, Duration::ZERO);
    let secret = "my secret prompt!";
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": secret, "stream": false}),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let r = post_json(
        &s.addr,
        "/api/generate",
        &json!({"model": "fake", "prompt": secret}),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let r = request(&s.addr, "GET", "/no/such/route", None).unwrap();
    assert_eq!(r.status, 404);
    let metrics = request(&s.addr, "GET", "/metrics", None).unwrap().text();
    drop(s);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        !log.contains("secret"),
        "the prompt leaked into the log:\n{log}"
    );
    assert!(
        !log.contains("abcdefghij"),
        "the output leaked into the log:\n{log}"
    );
    let requests: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["path"].is_string())
        .map(|v| v["fields"].clone())
        .collect();
    let generates: Vec<&Value> = requests
        .iter()
        .filter(|f| f["path"] == "/api/generate")
        .collect();
    assert_eq!(generates.len(), 2, "{log}");
    for f in generates {
        assert_eq!(f["method"], "POST");
        assert_eq!(f["status"], 200);
        assert_eq!(f["model"], "fake");
        // The templated prompt's bytes (one token each) in, the alphabet out.
        assert!(
            f["tokens_in"].as_u64().unwrap() > secret.len() as u64,
            "{f}"
        );
        assert_eq!(f["tokens_out"], 26, "{f}");
        assert!(f["duration_ms"].as_f64().is_some(), "{f}");
    }
    assert!(
        requests
            .iter()
            .any(|f| f["path"] == "/no/such/route" && f["status"] == 404),
        "{log}"
    );

    let series = r#"bitnet_http_requests_total{route="/api/generate",status="200"}"#;
    assert_eq!(metric(&metrics, series), Some(2.0), "{metrics}");
    let series = r#"bitnet_http_requests_total{route="unmatched",status="404"}"#;
    assert_eq!(metric(&metrics, series), Some(1.0), "{metrics}");
    assert_eq!(
        metric(&metrics, "bitnet_time_to_first_token_seconds_count"),
        Some(2.0),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE bitnet_http_requests_total counter\n"));
    assert!(metrics.contains("# TYPE bitnet_time_to_first_token_seconds summary\n"));
}
