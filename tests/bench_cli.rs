//! `bitnet-gguf bench --json`: the fields the performance issue names, and that they agree
//! with each other (the limit and the percentage are derived from the measured bandwidth).

use std::process::Command;

fn bitnet_gguf(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bitnet-gguf"))
        .args(args)
        .output()
        .expect("running bitnet-gguf")
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

#[test]
fn bench_json_fields_are_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    let out = bitnet_gguf(&[
        "dummy",
        "--shape",
        "tiny",
        "--type",
        "i2_s",
        "-o",
        model.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bitnet_gguf(&[
        "bench",
        "-m",
        model.to_str().unwrap(),
        "-p",
        "8",
        "-n",
        "4",
        "-r",
        "2",
        "-t",
        "1",
        "--kernels",
        "scalar",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["kernels"], "scalar");
    assert_eq!(v["threads"], 1);
    assert_eq!(v["repetitions"], 2);
    let (pp, tg) = (num(&v, "pp_tok_s"), num(&v, "tg_tok_s"));
    assert!(pp > 0.0 && tg > 0.0, "{v}");
    let (bw, best) = (num(&v, "bandwidth_gb_s"), num(&v, "bandwidth_best_gb_s"));
    assert!(bw > 0.0 && best >= bw, "median {bw} above best {best}");
    // 6 passes before, 2 after each of the 3 decode runs (warm-up included), 4 at the end.
    assert_eq!(v["bandwidth_passes"], 16);
    let bpt = num(&v, "bytes_per_token");
    let size = std::fs::metadata(&model).unwrap().len() as f64;
    // Tensor bytes: below the file (header, metadata) and most of it for a dummy model.
    assert!(bpt > 0.0 && bpt < size, "{bpt} vs file {size}");
    let limit = bw * 1e9 / bpt;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
    assert!(close(num(&v, "tg_limit_tok_s"), limit), "{v}");
    assert!(close(num(&v, "tg_pct_of_bound"), 100.0 * tg / limit), "{v}");
    assert!(
        close(
            num(&v, "tg_pct_of_best_bound"),
            100.0 * tg / (best * 1e9 / bpt)
        ),
        "{v}"
    );
    assert!(close(num(&v, "tg_effective_gb_s"), tg * bpt / 1e9), "{v}");
    // Prefill against the compute probe: 3 passes before, one after each timed run.
    assert_eq!(v["compute_passes"], 5);
    let macs = num(&v, "ternary_macs_per_token");
    assert_eq!(
        macs,
        6.0 * (256.0 * 768.0 + 3.0 * 256.0 * 768.0),
        "tiny's projections"
    );
    let (gmac, gmac_best) = (num(&v, "ternary_gmac_s"), num(&v, "ternary_gmac_s_best"));
    assert!(gmac > 0.0 && gmac_best >= gmac, "{v}");
    let pp_limit = gmac * 1e9 / macs;
    assert!(close(num(&v, "pp_limit_tok_s"), pp_limit), "{v}");
    assert!(
        close(num(&v, "pp_pct_of_bound"), 100.0 * pp / pp_limit),
        "{v}"
    );
}

#[test]
fn bench_without_a_prompt_has_no_prefill_limit() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    let m = model.to_str().unwrap();
    let out = bitnet_gguf(&["dummy", "--shape", "tiny", "--type", "tl2", "-o", m]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bitnet_gguf(&["bench", "-m", m, "-p", "0", "-n", "2", "-r", "1", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["compute_passes"], 0);
    assert!(
        v["pp_limit_tok_s"].is_null() && v["pp_pct_of_bound"].is_null(),
        "{v}"
    );
    assert!(v["ternary_gmac_s"].is_null(), "{v}");
    assert!(num(&v, "ternary_macs_per_token") > 0.0, "{v}");
}

#[test]
fn bench_refuses_an_unknown_kernel_path() {
    let out = bitnet_gguf(&["bench", "-m", "nonexistent.gguf", "--kernels", "sse9"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sse9"), "{err}");
}
