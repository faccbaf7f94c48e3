//! `bench`'s human-readable report: the figures of the JSON object, read back from it by
//! name, as a markdown table and the breakdown lines.

use std::path::Path;

use super::{breakdown, BenchArgs};

/// The human-readable report: the same figures as the JSON, read back from it by name.
pub(super) fn print_table(args: &BenchArgs, j: &serde_json::Value) {
    let f = |k: &str| j[k].as_f64().unwrap_or(0.0);
    let (bandwidth, best, limit) = (
        f("bandwidth_gb_s"),
        f("bandwidth_best_gb_s"),
        f("tg_limit_tok_s"),
    );
    let (pp_m, pp_s, tg_m, tg_s) = (
        f("pp_tok_s"),
        f("pp_tok_s_stddev"),
        f("tg_tok_s"),
        f("tg_tok_s_stddev"),
    );
    let (pct, pct_best, gmac) = (
        f("tg_pct_of_bound"),
        f("tg_pct_of_best_bound"),
        f("ternary_gmac_s"),
    );
    let (kernels, pool) = (
        j["kernels"].as_str().unwrap_or(""),
        j["pool"].as_str().unwrap_or(""),
    );
    let (threads, reps) = (
        j["threads"].as_u64().unwrap_or(0),
        j["repetitions"].as_u64().unwrap_or(0),
    );
    let pp_limit = j["pp_limit_tok_s"].as_f64();
    let pp_pct = j["pp_pct_of_bound"].as_f64();
    let macs = f("ternary_macs_per_token");
    let kv_read = f("kv_bytes_read_per_token");
    let bpt = f("bytes_per_token");
    println!(
        "model: {}  kernels: {kernels}  pool: {pool}  threads: {threads}  reps: {reps}  kv: {}",
        display_name(&args.model),
        args.kv_type.name()
    );
    println!(
        "read bandwidth: {bandwidth:.1} GB/s (median of {} passes; best {best:.1})   \
         bytes/token: {:.3} GB   decode limit: {limit:.1} tok/s",
        j["bandwidth_passes"],
        bpt / 1e9
    );
    if let Some(huge) = j["weights_huge_page_pct"].as_f64() {
        let in_memory = j["weights_in_memory"].as_bool().unwrap_or(false);
        let how = if in_memory {
            "read into memory"
        } else {
            "mapped"
        };
        let hint = if huge < 50.0 && !in_memory {
            " (decode streams every weight and 4 KiB pages slow it: try --no-mmap)"
        } else {
            ""
        };
        println!("weights: {how}, {huge:.0} % in 2 MiB pages{hint}");
    }
    println!("| test | tok/s | ± |");
    println!("|---|---|---|");
    let at = match args.depth {
        0 => String::new(),
        d => format!(" @ d{d}"),
    };
    if args.n_prompt > 0 {
        let of_limit = match (pp_limit, pp_pct) {
            (Some(l), Some(p)) => format!(
                "  ({p:.1} % of the ternary kernels' limit: {l:.1} tok/s at {gmac:.1} \
                 GMAC/s, {:.2} GMAC/token)",
                macs / 1e9
            ),
            _ => String::new(),
        };
        println!(
            "| pp{}{at} | {pp_m:.2} | {pp_s:.2} |{of_limit}",
            args.n_prompt
        );
    }
    if args.n_gen > 0 {
        println!(
            "| tg{}{at} | {tg_m:.2} | {tg_s:.2} |  ({pct:.1} % of bandwidth limit, \
             {pct_best:.1} % of the best pass's; KV cache read: {:.1} MB/token)",
            args.n_gen,
            kv_read / 1e6
        );
    }
    if !j["batch"].is_null() {
        println!(
            "| tg{} × {} sequences{at} | {:.2} | {:.2} |  ({:.2}× one sequence; {:.2} ms per step)",
            args.n_gen,
            args.batch,
            f("batch_tg_tok_s"),
            f("batch_tg_tok_s_stddev"),
            f("batch_speedup"),
            f("batch_step_ms"),
        );
    }
    if !j["breakdown"].is_null() {
        println!("decode time per token:");
        for line in breakdown::lines(&j["breakdown"]) {
            println!("{line}");
        }
    }
    if !j["batch_breakdown"].is_null() {
        println!("batched decode time per step:");
        for line in breakdown::lines(&j["batch_breakdown"]) {
            println!("{line}");
        }
    }
}

fn display_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}
