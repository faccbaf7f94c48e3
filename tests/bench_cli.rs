//! `bitnet-gguf bench --json`: the fields the performance issue names, and that they agree
//! with each other (the limit and the percentage are derived from the measured bandwidth).

mod cli_common;

use cli_common::bitnet_gguf;

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

#[test]
fn bench_profile_breaks_decode_down_and_head_type_shrinks_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    let m = model.to_str().unwrap();
    let out = bitnet_gguf(&["dummy", "--shape", "tiny", "--type", "i2_s", "-o", m]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["bench", "-m", m, "-p", "0", "-n", "2", "-r", "1", "--json"];
        args.extend_from_slice(extra);
        let out = bitnet_gguf(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    };
    let plain = run(&[]);
    assert!(plain["breakdown"].is_null(), "{plain}");
    assert!(plain["head_repack_ms"].is_null(), "{plain}");
    let prof = run(&["--profile", "--head-type", "q8_0"]);
    let b = &prof["breakdown"];
    // Warm-up and one timed run of two tokens each.
    assert_eq!(b["tokens"], 4, "{prof}");
    let share = |k: &str| b[k]["share"].as_f64().unwrap_or(-1.0);
    for k in [
        "head",
        "ternary",
        "attention",
        "norms",
        "sync_wait",
        "other",
    ] {
        assert!((0.0..=1.0).contains(&share(k)), "{k}: {prof}");
    }
    assert!(share("head") > 0.0 && share("ternary") > 0.0, "{prof}");
    let total: f64 = [
        "head",
        "ternary",
        "attention",
        "norms",
        "sync_wait",
        "other",
    ]
    .iter()
    .map(|k| share(k))
    .sum();
    assert!((total - 1.0).abs() < 1e-6, "{prof}");
    // The F16 tied head (every row read per token) becomes Q8_0 (34 bytes per 32 weights)
    // plus one embedding row looked up.
    assert_eq!(prof["head_type"], "q8_0");
    assert!(num(&prof, "head_repack_ms") >= 0.0, "{prof}");
    assert!(
        num(&prof, "bytes_per_token") < num(&plain, "bytes_per_token"),
        "{prof} vs {plain}"
    );
    let out = bitnet_gguf(&["bench", "-m", m, "-n", "1", "--head-type", "q4_k"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("q8_0 or q6_k"));
}
