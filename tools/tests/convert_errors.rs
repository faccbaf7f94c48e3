//! Bad inputs give clear errors and never leave an output (or temporary) file behind.

mod common;

use std::path::Path;

use bitnet_tools::convert::{convert, ConvertError, ConvertOptions};
use common::*;

/// A copy of the tiny checkpoint that a test may damage.
fn tiny_copy(root: &Path) -> std::path::PathBuf {
    let dir = root.join("ckpt");
    copy_dir_files(&tiny_dir(), &dir, &["config.json", "model.safetensors"]);
    copy_dir_files(&tiny_dir(), &dir, TOKENIZER_FILES);
    dir
}

/// Converts `dir` into a fresh output directory, expecting failure; checks nothing was left.
fn expect_failure(dir: &Path) -> ConvertError {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.gguf");
    let err =
        convert(&ConvertOptions::new(dir, &out), &mut |_| {}).expect_err("conversion should fail");
    assert!(!out.exists(), "partial output left after: {err}");
    assert!(
        leftovers(out_dir.path(), &[]).is_empty(),
        "temporary files left after: {err}"
    );
    err
}

#[test]
fn missing_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_copy(tmp.path());
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let e = expect_failure(&dir);
    assert!(
        matches!(e, ConvertError::MissingFile { .. }) && e.to_string().contains("config.json"),
        "{e}"
    );
}

#[test]
fn missing_weights_and_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_copy(tmp.path());
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let e = expect_failure(&dir);
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let e = expect_failure(&dir);
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn unknown_architecture_lists_supported_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_copy(tmp.path());
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("BitNetForCausalLM", "GPT2LMHeadModel"),
    )
    .unwrap();
    let e = expect_failure(&dir).to_string();
    assert!(
        e.contains("GPT2LMHeadModel")
            && e.contains("BitNetForCausalLM")
            && e.contains("LlamaForCausalLM"),
        "{e}"
    );
}

#[test]
fn config_weight_shape_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_copy(tmp.path());
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"intermediate_size\": 768", "\"intermediate_size\": 512"),
    )
    .unwrap();
    let e = expect_failure(&dir);
    assert!(matches!(e, ConvertError::Shape { .. }), "{e}");
    assert!(
        e.to_string().contains("gate_proj") && e.to_string().contains("512"),
        "{e}"
    );
}

#[test]
fn truncated_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_copy(tmp.path());
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    for keep in [4, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let e = expect_failure(&dir);
        assert!(matches!(e, ConvertError::Safetensors { .. }), "{keep}: {e}");
        assert!(e.to_string().contains("model.safetensors"), "{e}");
    }
}

#[test]
fn non_ternary_code_in_packed_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("llama");
    copy_dir_files(&llama_dir(), &dir, &["config.json"]);
    copy_dir_files(&llama_dir(), &dir, TOKENIZER_FILES);
    let mut st = read_safetensors(&llama_dir().join("model.safetensors"));
    let w = st.get_mut("model.layers.1.mlp.down_proj.weight").unwrap();
    w.data[10] |= 0b1100_0000; // code 3 for packed row 0's fourth group
    write_safetensors(&dir.join("model.safetensors"), &st);
    let e = expect_failure(&dir);
    assert!(
        matches!(e, ConvertError::NonTernaryCode { index: 10, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("down_proj"), "{e}");
}

#[test]
fn existing_output_needs_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.gguf");
    std::fs::write(&out, b"keep me").unwrap();
    let e = convert(&ConvertOptions::new(tiny_dir(), &out), &mut |_| {}).unwrap_err();
    assert!(matches!(e, ConvertError::OutputExists { .. }), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let mut opts = ConvertOptions::new(tiny_dir(), &out);
    opts.force = true;
    convert(&opts, &mut |_| {}).unwrap();
    assert_eq!(&std::fs::read(&out).unwrap()[..4], b"GGUF");
}
