//! `bitnet-gguf tokenize` / `detokenize` on a vocabulary-only GGUF.

use std::path::PathBuf;
use std::process::Command;

fn vocab(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vocab")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bitnet-gguf"))
        .args(args)
        .output()
        .expect("run bitnet-gguf");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn tokenize_json_prints_ids_and_pieces() {
    let model = vocab("ggml-vocab-llama-bpe.gguf");
    let (ok, stdout, stderr) = run(&["tokenize", "-m", &model, "Hello world", "--json"]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"ids": [9906, 1917], "pieces": ["Hello", " world"]})
    );
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ids", "pieces"]);

    let (ok, stdout, _) = run(&["tokenize", "-m", &model, "Hello world", "--json", "--bos"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["ids"], serde_json::json!([128000, 9906, 1917]));
}

#[test]
fn detokenize_round_trips() {
    let model = vocab("ggml-vocab-llama-spm.gguf");
    let (ok, stdout, stderr) = run(&["detokenize", "-m", &model, "15043", "3186"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "Hello world\n");
    let (ok, stdout, _) = run(&[
        "detokenize",
        "-m",
        &model,
        "[1, 15043, 3186]",
        "--skip-special",
    ]);
    assert!(ok);
    assert_eq!(stdout, "Hello world\n");
}

#[test]
fn bad_input_gives_clear_errors() {
    let model = vocab("ggml-vocab-llama-spm.gguf");
    let (ok, _, stderr) = run(&["detokenize", "-m", &model, "99999999"]);
    assert!(!ok);
    assert!(stderr.contains("outside the vocabulary"), "{stderr}");
    let (ok, _, stderr) = run(&["tokenize", "-m", "/nonexistent/model.gguf", "hi"]);
    assert!(!ok);
    assert!(stderr.contains("model.gguf"), "{stderr}");
}
