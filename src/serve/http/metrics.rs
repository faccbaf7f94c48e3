//! Counters for `/metrics` (Prometheus text format, `bitnet_` prefix, names after llama.cpp's).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct Metrics {
    pub requests_total: AtomicU64,
    pub requests_failed_total: AtomicU64,
    pub requests_rejected_total: AtomicU64,
    pub prompt_tokens_total: AtomicU64,
    pub prompt_cached_tokens_total: AtomicU64,
    pub prompt_ns_total: AtomicU64,
    pub tokens_predicted_total: AtomicU64,
    pub tokens_predicted_ns_total: AtomicU64,
    pub decode_steps_total: AtomicU64,
    pub decode_batch_tokens_total: AtomicU64,
    pub requests_processing: AtomicU64,
    pub requests_deferred: AtomicU64,
    pub models_loaded: AtomicU64,
}

impl Metrics {
    pub fn add(c: &AtomicU64, v: u64) {
        c.fetch_add(v, Relaxed);
    }

    pub fn render(&self) -> String {
        let g = |c: &AtomicU64| c.load(Relaxed);
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                s,
                "# HELP bitnet_{name} {help}\n# TYPE bitnet_{name} {kind}\nbitnet_{name} {value}"
            );
        };
        metric(
            "requests_total",
            "counter",
            "Inference requests received.",
            g(&self.requests_total).to_string(),
        );
        metric(
            "requests_failed_total",
            "counter",
            "Inference requests that ended in an error.",
            g(&self.requests_failed_total).to_string(),
        );
        metric(
            "requests_rejected_total",
            "counter",
            "Requests refused because the queue was full (503).",
            g(&self.requests_rejected_total).to_string(),
        );
        metric(
            "prompt_tokens_total",
            "counter",
            "Prompt tokens processed (cached ones included).",
            g(&self.prompt_tokens_total).to_string(),
        );
        metric(
            "prompt_cached_tokens_total",
            "counter",
            "Prompt tokens reused from a slot's KV cache.",
            g(&self.prompt_cached_tokens_total).to_string(),
        );
        metric(
            "prompt_seconds_total",
            "counter",
            "Prompt processing time.",
            format!("{:.6}", g(&self.prompt_ns_total) as f64 / 1e9),
        );
        metric(
            "tokens_predicted_total",
            "counter",
            "Generated tokens.",
            g(&self.tokens_predicted_total).to_string(),
        );
        metric(
            "tokens_predicted_seconds_total",
            "counter",
            "Time spent in decode steps.",
            format!("{:.6}", g(&self.tokens_predicted_ns_total) as f64 / 1e9),
        );
        let rate = |n: u64, ns: u64| {
            if ns == 0 {
                0.0
            } else {
                n as f64 * 1e9 / ns as f64
            }
        };
        metric(
            "prompt_tokens_seconds",
            "gauge",
            "Average prompt throughput in tokens/s.",
            format!(
                "{:.3}",
                rate(
                    g(&self.prompt_tokens_total) - g(&self.prompt_cached_tokens_total),
                    g(&self.prompt_ns_total)
                )
            ),
        );
        metric(
            "predicted_tokens_seconds",
            "gauge",
            "Average generation throughput in tokens/s (all slots together).",
            format!(
                "{:.3}",
                rate(
                    g(&self.tokens_predicted_total),
                    g(&self.tokens_predicted_ns_total)
                )
            ),
        );
        metric(
            "n_decode_total",
            "counter",
            "Batched decode steps.",
            g(&self.decode_steps_total).to_string(),
        );
        let steps = g(&self.decode_steps_total);
        metric(
            "n_busy_slots_per_decode",
            "gauge",
            "Average sequences per decode step.",
            format!(
                "{:.3}",
                if steps == 0 {
                    0.0
                } else {
                    g(&self.decode_batch_tokens_total) as f64 / steps as f64
                }
            ),
        );
        metric(
            "requests_processing",
            "gauge",
            "Requests holding a slot.",
            g(&self.requests_processing).to_string(),
        );
        metric(
            "requests_deferred",
            "gauge",
            "Requests waiting for a slot (queue depth).",
            g(&self.requests_deferred).to_string(),
        );
        metric(
            "models_loaded",
            "gauge",
            "Models in memory.",
            g(&self.models_loaded).to_string(),
        );
        s
    }
}
