//! Counters for `/metrics` (Prometheus text format, `bitnet_` prefix, names after llama.cpp's).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

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
    /// Time from a generation request's arrival to its first event.
    pub ttft_ns_total: AtomicU64,
    pub ttft_count: AtomicU64,
    /// HTTP requests by route label and status.
    pub http_requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl Metrics {
    pub fn add(c: &AtomicU64, v: u64) {
        c.fetch_add(v, Relaxed);
    }

    pub fn count_request(&self, route: &'static str, status: u16) {
        let mut m = self.http_requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((route, status)).or_default() += 1;
    }

    pub fn time_to_first_token(&self, ns: u64) {
        Self::add(&self.ttft_ns_total, ns);
        Self::add(&self.ttft_count, 1);
    }

    /// The labelled series: requests by route and status, and the time to first token as a
    /// summary (sum and count).
    fn render_labelled(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "# HELP bitnet_http_requests_total HTTP requests by route and status.\n# TYPE bitnet_http_requests_total counter"
        );
        let m = self.http_requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, status), n) in m.iter() {
            let _ = writeln!(
                s,
                "bitnet_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            s,
            "# HELP bitnet_time_to_first_token_seconds Time from a generation request to its first token.\n# TYPE bitnet_time_to_first_token_seconds summary\nbitnet_time_to_first_token_seconds_sum {:.6}\nbitnet_time_to_first_token_seconds_count {}",
            self.ttft_ns_total.load(Relaxed) as f64 / 1e9,
            self.ttft_count.load(Relaxed)
        );
    }

    pub fn render(&self) -> String {
        let g = |c: &AtomicU64| c.load(Relaxed);
        let count = |c: &AtomicU64| g(c).to_string();
        let secs = |c: &AtomicU64| format!("{:.6}", g(c) as f64 / 1e9);
        // Throughputs scale tokens per nanosecond to per second in f64: counters times 1e9 can
        // overflow u64.
        let ratio = |n: f64, d: u64| format!("{:.3}", if d == 0 { 0.0 } else { n / d as f64 });
        let prompt_evaluated =
            g(&self.prompt_tokens_total).saturating_sub(g(&self.prompt_cached_tokens_total));
        let rows: [(&str, &str, &str, String); 15] = [
            (
                "requests_total",
                COUNTER,
                "Inference requests received.",
                count(&self.requests_total),
            ),
            (
                "requests_failed_total",
                COUNTER,
                "Inference requests that ended in an error.",
                count(&self.requests_failed_total),
            ),
            (
                "requests_rejected_total",
                COUNTER,
                "Requests refused because the queue was full (503).",
                count(&self.requests_rejected_total),
            ),
            (
                "prompt_tokens_total",
                COUNTER,
                "Prompt tokens processed (cached ones included).",
                count(&self.prompt_tokens_total),
            ),
            (
                "prompt_cached_tokens_total",
                COUNTER,
                "Prompt tokens reused from a slot's KV cache.",
                count(&self.prompt_cached_tokens_total),
            ),
            (
                "prompt_seconds_total",
                COUNTER,
                "Prompt processing time.",
                secs(&self.prompt_ns_total),
            ),
            (
                "tokens_predicted_total",
                COUNTER,
                "Generated tokens.",
                count(&self.tokens_predicted_total),
            ),
            (
                "tokens_predicted_seconds_total",
                COUNTER,
                "Time spent in decode steps.",
                secs(&self.tokens_predicted_ns_total),
            ),
            (
                "prompt_tokens_seconds",
                GAUGE,
                "Average prompt throughput in tokens/s.",
                ratio(prompt_evaluated as f64 * 1e9, g(&self.prompt_ns_total)),
            ),
            (
                "predicted_tokens_seconds",
                GAUGE,
                "Average generation throughput in tokens/s (all slots together).",
                ratio(
                    g(&self.tokens_predicted_total) as f64 * 1e9,
                    g(&self.tokens_predicted_ns_total),
                ),
            ),
            (
                "n_decode_total",
                COUNTER,
                "Batched decode steps.",
                count(&self.decode_steps_total),
            ),
            (
                "n_busy_slots_per_decode",
                GAUGE,
                "Average sequences per decode step.",
                ratio(
                    g(&self.decode_batch_tokens_total) as f64,
                    g(&self.decode_steps_total),
                ),
            ),
            (
                "requests_processing",
                GAUGE,
                "Requests holding a slot.",
                count(&self.requests_processing),
            ),
            (
                "requests_deferred",
                GAUGE,
                "Requests waiting for a slot (queue depth).",
                count(&self.requests_deferred),
            ),
            (
                "models_loaded",
                GAUGE,
                "Models in memory.",
                count(&self.models_loaded),
            ),
        ];
        let mut s = String::new();
        for (name, kind, help, value) in rows {
            let _ = writeln!(
                s,
                "# HELP bitnet_{name} {help}\n# TYPE bitnet_{name} {kind}\nbitnet_{name} {value}"
            );
        }
        self.render_labelled(&mut s);
        s
    }
}

const COUNTER: &str = "counter";
const GAUGE: &str = "gauge";

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, name: &str) -> String {
        let prefix = format!("bitnet_{name} ");
        let line = text.lines().find(|l| l.starts_with(&prefix));
        line.unwrap_or_else(|| panic!("no {name} in\n{text}"))[prefix.len()..].to_string()
    }

    #[test]
    fn render_reports_counters_and_derived_rates() {
        let m = Metrics::default();
        Metrics::add(&m.requests_total, 3);
        Metrics::add(&m.prompt_tokens_total, 10);
        Metrics::add(&m.prompt_cached_tokens_total, 4);
        Metrics::add(&m.prompt_ns_total, 2_000_000_000);
        Metrics::add(&m.decode_steps_total, 4);
        Metrics::add(&m.decode_batch_tokens_total, 6);
        let text = m.render();
        assert_eq!(value(&text, "requests_total"), "3");
        assert_eq!(value(&text, "prompt_seconds_total"), "2.000000");
        // Six evaluated prompt tokens (cached ones excluded) in two seconds.
        assert_eq!(value(&text, "prompt_tokens_seconds"), "3.000");
        assert_eq!(value(&text, "n_busy_slots_per_decode"), "1.500");
        assert_eq!(value(&text, "predicted_tokens_seconds"), "0.000");
        assert_eq!(text.matches("# HELP bitnet_").count(), 17);
        assert!(text.contains("# TYPE bitnet_models_loaded gauge\n"));
        assert!(text.contains("# TYPE bitnet_requests_total counter\n"));
    }
}
