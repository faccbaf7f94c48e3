//! `bench --profile`: where a decoded token's time goes (the kernels' per-operation
//! counters, `bitnet_kernels::profile`), as milliseconds per token and shares of the
//! decode time, for the JSON `breakdown` field and the table.

use bitnet_kernels::profile::{self, Op};

/// Clears the counters and starts (or keeps off) counting.
pub fn start(on: bool) {
    profile::take();
    profile::set_enabled(on);
}

/// Stops counting and returns the breakdown of `tokens` decoded tokens that took
/// `decode_ns` in all: per operation `{ms_per_token, share}`, plus `other` (what no
/// section covered: sampling, bookkeeping, the session) and `tokens`.
pub fn finish(tokens: usize, decode_ns: u64) -> serde_json::Value {
    profile::set_enabled(false);
    let ns = profile::take();
    let per_token = |v: u64| v as f64 / 1e6 / tokens.max(1) as f64;
    let share = |v: u64| v as f64 / decode_ns.max(1) as f64;
    let mut j = serde_json::Map::new();
    for (op, &v) in Op::ALL.iter().zip(&ns) {
        j.insert(
            op.name().into(),
            serde_json::json!({ "ms_per_token": per_token(v), "share": share(v) }),
        );
    }
    let other = decode_ns.saturating_sub(ns.iter().sum());
    j.insert(
        "other".into(),
        serde_json::json!({ "ms_per_token": per_token(other), "share": share(other) }),
    );
    j.insert("tokens".into(), tokens.into());
    serde_json::Value::Object(j)
}

/// The breakdown as one table line per operation.
pub fn lines(b: &serde_json::Value) -> Vec<String> {
    let names = Op::ALL.iter().map(|o| o.name()).chain(["other"]);
    names
        .map(|name| {
            let (ms, share) = (
                b[name]["ms_per_token"].as_f64().unwrap_or(0.0),
                b[name]["share"].as_f64().unwrap_or(0.0),
            );
            format!("{name:>10}: {ms:8.3} ms/token  {:5.1} %", 100.0 * share)
        })
        .collect()
}
