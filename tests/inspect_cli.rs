//! `bitnet-gguf inspect` on the real fixtures and on small files built with the writer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bitnet_formats::gguf::GgufWriter;
use bitnet_formats::{Dialect, TensorSource, TensorType, Value, ValueType};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("formats/tests/fixtures")
        .join(rel)
}

fn vocab_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vocab")
        .join(name)
}

fn inspect(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitnet-gguf"))
        .arg("inspect")
        .arg(file)
        .args(args)
        .output()
        .expect("run bitnet-gguf")
}

fn stdout_ok(args: &[&str], file: &Path) -> String {
    let out = inspect(args, file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str], file: &Path) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&stdout_ok(&all, file)).expect("one JSON document")
}

fn warning_codes(doc: &serde_json::Value) -> Vec<String> {
    doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap().to_owned())
        .collect()
}

/// A miniature of the published 2B4T I2_S file: its defects included.
fn write_mini_i2s(path: &Path, layout_key: bool) {
    let mut w = GgufWriter::new(Dialect::Bitnet);
    w.set("general.architecture", "bitnet-b1.58");
    w.set("general.name", "mini-i2s");
    w.set("bitnet-b1.58.block_count", 1u32);
    w.set("bitnet-b1.58.embedding_length", 128u32);
    w.set("bitnet-b1.58.attention.layer_norm_rms_epsilon", 1e-5f32);
    w.set("general.file_type", 40u32);
    w.set("tokenizer.ggml.model", "gpt2");
    w.set(
        "tokenizer.ggml.tokens",
        Value::strings(["a", "b", "<|eot_id|>"]),
    );
    w.set("tokenizer.ggml.bos_token_id", 1u32);
    w.set(
        "tokenizer.chat_template",
        "{% for message in messages %}{{ 'Human: ' + message['content'] + '\\n\\nBITNETAssistant: ' + eos_token }}{% endfor %}",
    );
    if layout_key {
        w.set("bitnet.i2s.layout", "x86");
    }
    w.add_tensor(
        "token_embd.weight",
        &[128, 2],
        TensorType::F16,
        TensorSource::Owned(vec![0; 512]),
    )
    .unwrap();
    w.add_tensor(
        "blk.0.attn_q.weight",
        &[128, 4],
        TensorType::I2_S,
        TensorSource::Owned(vec![0x55; 160]),
    )
    .unwrap();
    w.add_tensor(
        "output_norm.weight",
        &[128],
        TensorType::F32,
        TensorSource::Owned(vec![0; 512]),
    )
    .unwrap();
    w.write(path).unwrap();
}

#[test]
fn text_output_of_mini_tl1() {
    let text = stdout_ok(&[], &fixture("golden/mini_tl1.gguf"));
    for needle in [
        "version 3, alignment 32, dialect bitnet",
        "architecture  bitnet",
        "embedding_length  128",
        "blk.0.attn_q.weight",
        "TL1",
        "[256, 64]",
        "4128",
        "ternary part",
        "[tl-params-unknown]",
        "[missing-tokenizer-pre]",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn json_of_mini_tl1_matches_the_file() {
    let doc = json(&[], &fixture("golden/mini_tl1.gguf"));
    assert_eq!(doc["format"], "bitnet-gguf-inspect");
    assert_eq!(doc["header"]["version"], 3);
    assert_eq!(doc["header"]["alignment"], 32);
    assert_eq!(doc["header"]["tensor_count"], 2);
    assert_eq!(doc["architecture"], "bitnet");
    assert_eq!(doc["file_type"]["name"], "MOSTLY_TL1");
    let t = &doc["tensors"][0];
    assert_eq!(
        (
            t["name"].as_str(),
            t["type"].as_str(),
            t["type_id"].as_u64()
        ),
        (Some("blk.0.attn_q.weight"), Some("TL1"), Some(38))
    );
    assert_eq!(t["shape"], serde_json::json!([256, 64]));
    assert_eq!(
        (t["bytes"].as_u64(), t["offset"].as_u64()),
        (Some(4128), Some(0))
    );
    assert_eq!(doc["tensors"][1]["offset"], 4128);
    let bpw = doc["totals"]["ternary"]["bits_per_weight"]
        .as_f64()
        .unwrap();
    assert!((bpw - 4128.0 * 8.0 / 16384.0).abs() < 1e-9);
}

#[test]
fn vocab_json_summarises_long_arrays_unless_full() {
    let path = vocab_fixture("ggml-vocab-llama-spm.gguf");
    let doc = json(&[], &path);
    let tokens = doc["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "tokenizer.ggml.tokens")
        .unwrap();
    assert_eq!(tokens["length"], 32000);
    assert_eq!(tokens["truncated"], true);
    assert_eq!(tokens["element_type"], "string");
    assert_eq!(tokens["value"].as_array().unwrap().len(), 8);
    assert_eq!(doc["tokenizer"]["model"], "llama");
    assert_eq!(doc["tokenizer"]["vocab_size"], 32000);
    assert_eq!(doc["tokenizer"]["special_tokens"]["bos"]["text"], "<s>");
    assert_eq!(doc["tokenizer"]["add_bos_token"], true);
    assert_eq!(doc["hyperparameters"]["vocab_size"], 32000);
    assert_eq!(
        doc["hyperparameters"]["attention.layer_norm_rms_epsilon"],
        1e-5
    );
    let full = json(&["--full"], &path);
    let tokens = full["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "tokenizer.ggml.tokens")
        .unwrap();
    assert_eq!(tokens["value"].as_array().unwrap().len(), 32000);
    assert_eq!(tokens["truncated"], false);
}

#[test]
fn bpe_vocab_text_summary() {
    let text = stdout_ok(&[], &vocab_fixture("ggml-vocab-llama-bpe.gguf"));
    assert!(text.contains("vocab size    128256"), "{text}");
    assert!(text.contains("pre           llama-bpe"), "{text}");
    assert!(text.contains("128000 \"<|begin_of_text|>\""), "{text}");
    assert!(text.contains("[missing-eot-token]"), "{text}");
    // 128k tokens are summarised, not printed.
    assert!(text.len() < 10_000, "{} bytes", text.len());
}

#[test]
fn tensors_and_metadata_flags_select_sections() {
    let path = fixture("golden/mini_tl1.gguf");
    let t = stdout_ok(&["--tensors"], &path);
    assert!(
        t.contains("blk.0.attn_norm.weight")
            && !t.contains("general.name")
            && !t.contains("warnings")
    );
    let m = stdout_ok(&["--metadata"], &path);
    assert!(m.contains("general.name") && m.contains("uint32") && !m.contains("totals by type"));
}

#[test]
fn mini_i2s_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mini_i2s.gguf");
    write_mini_i2s(&path, false);
    let doc = json(&[], &path);
    assert_eq!(doc["header"]["dialect"], "bitnet");
    assert_eq!(doc["file_type"]["name"], "MOSTLY_I2_S");
    assert_eq!(doc["tokenizer"]["chat_template_is_placeholder"], true);
    let codes = warning_codes(&doc);
    for code in [
        "missing-tokenizer-pre",
        "placeholder-chat-template",
        "i2s-layout-unknown",
        "missing-eot-token",
    ] {
        assert!(codes.iter().any(|c| c == code), "{code} not in {codes:?}");
    }
    assert!(
        !codes.iter().any(|c| c == "missing-activation-key"),
        "{codes:?}"
    );
    // Recording the layout removes that warning.
    write_mini_i2s(&path, true);
    let codes = warning_codes(&json(&[], &path));
    assert!(
        !codes.iter().any(|c| c == "i2s-layout-unknown"),
        "{codes:?}"
    );
    let bpw = json(&[], &path)["totals"]["ternary"]["bits_per_weight"]
        .as_f64()
        .unwrap();
    assert!((bpw - 160.0 * 8.0 / 512.0).abs() < 1e-9);
}

/// A one-tensor upstream `bitnet` TQ2_0 file with the given activation key and value.
fn write_upstream_tq(path: &Path, act: Option<(&str, &str)>) {
    let mut w = GgufWriter::new(Dialect::Upstream);
    w.set("general.architecture", "bitnet");
    if let Some((key, value)) = act {
        w.set(key, value);
    }
    w.set(
        "test.nested",
        Value::array_of(ValueType::Array, [Value::strings(["x"])]),
    );
    w.add_tensor(
        "blk.0.ffn_up.weight",
        &[256, 2],
        TensorType::TQ2_0,
        TensorSource::Owned(vec![0; 132]),
    )
    .unwrap();
    w.write(path).unwrap();
}

fn has_code(path: &Path, code: &str) -> bool {
    warning_codes(&json(&[], path)).iter().any(|c| c == code)
}

#[test]
fn upstream_bitnet_with_tq_needs_the_activation_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tq.gguf");
    write_upstream_tq(&path, None);
    let doc = json(&[], &path);
    assert!(warning_codes(&doc)
        .iter()
        .any(|c| c == "missing-activation-key"));
    assert_eq!(doc["metadata"][1]["value"], serde_json::json!([["x"]]));
    write_upstream_tq(&path, Some(("bitnet.hidden_activation", "silu")));
    assert!(!has_code(&path, "missing-activation-key"));
    assert!(!has_code(&path, "upstream-computes-silu"));
}

#[test]
fn relu2_under_upstream_bitnet_says_upstream_computes_silu_and_serve_is_correct() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tq.gguf");
    for key in ["bitnet.hidden_act", "bitnet.hidden_activation"] {
        write_upstream_tq(&path, Some((key, "relu2")));
        let text = stdout_ok(&[], &path);
        assert!(text.contains("[upstream-computes-silu]"), "{text}");
        assert!(
            text.contains("computes SiLU for this architecture")
                && text.contains("wrong text")
                && text.contains("bitnet-gguf serve"),
            "{text}"
        );
        assert!(!has_code(&path, "missing-activation-key"));
    }
}

#[test]
fn tl1_warns_that_bitnet_cpp_runs_it_only_on_arm() {
    let path = fixture("golden/mini_tl1.gguf");
    let text = stdout_ok(&[], &path);
    assert!(text.contains("[tl1-arm-only]"), "{text}");
    assert!(text.contains("only in its ARM builds"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let tq = dir.path().join("tq.gguf");
    write_upstream_tq(&tq, Some(("bitnet.hidden_act", "silu")));
    assert!(!has_code(&tq, "tl1-arm-only"));
}

#[test]
fn errors_go_to_stderr_with_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gguf");
    let out = inspect(&[], &missing);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.gguf") && !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );

    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(fixture("golden/mini_tl1.gguf")).unwrap();
    std::fs::write(&truncated, &bytes[..300]).unwrap();
    let out = inspect(&["--json"], &truncated);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("truncated.gguf: at byte") && !err.contains("panicked"),
        "{err}"
    );
}
