//! The real GGUF fixtures open, report the right content and rewrite byte-identically.

use std::path::PathBuf;

use bitnet_formats::gguf::GgufWriter;
use bitnet_formats::{Dialect, GgufFile, TensorType, ValueType};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// llama.cpp's vocab GGUFs live once, in the workspace's top-level fixtures.
fn vocab_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/vocab")
        .join(name)
}

fn rewrite_bytes(file: &GgufFile) -> Vec<u8> {
    let mut out = Vec::new();
    GgufWriter::from_file(file)
        .write_to(&mut out, "rewrite", &mut |_, _| {})
        .unwrap();
    out
}

#[test]
fn llama_bpe_vocab_reads_and_rewrites_identically() {
    let path = vocab_fixture("ggml-vocab-llama-bpe.gguf");
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.dialect(), Dialect::Upstream);
    assert_eq!(f.architecture(), Some("llama"));
    assert!(f.tensors().is_empty());
    let m = f.metadata();
    assert_eq!(m.len(), 20);
    assert_eq!(m.get_str("tokenizer.ggml.model"), Some("gpt2"));
    assert_eq!(m.get_str("tokenizer.ggml.pre"), Some("llama-bpe"));
    let tokens = m.get_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.elem_type, ValueType::String);
    assert_eq!(tokens.len(), 128256);
    let strs = tokens.as_strs().unwrap();
    assert_eq!(strs[0], "!");
    assert_eq!(strs[128000], "<|begin_of_text|>");
    assert_eq!(m.get_array("tokenizer.ggml.merges").unwrap().len(), 280147);
    assert_eq!(
        m.get_array("tokenizer.ggml.token_type").unwrap().elem_type,
        ValueType::I32
    );
    assert_eq!(m.get_u32("tokenizer.ggml.bos_token_id"), Some(128000));
    assert_eq!(m.get_f32("llama.rope.freq_base"), Some(500000.0));
    let keys: Vec<_> = m.keys().take(3).collect();
    assert_eq!(
        keys,
        ["general.architecture", "general.name", "llama.block_count"]
    );

    let original = std::fs::read(&path).unwrap();
    assert!(
        rewrite_bytes(&f) == original,
        "rewrite differs from the original"
    );
}

#[test]
fn llama_spm_vocab_reads_and_rewrites_identically() {
    let path = vocab_fixture("ggml-vocab-llama-spm.gguf");
    let f = GgufFile::open(&path).unwrap();
    let m = f.metadata();
    assert_eq!(m.len(), 22);
    assert_eq!(m.get_str("tokenizer.ggml.model"), Some("llama"));
    assert_eq!(
        m.get_array("tokenizer.ggml.scores")
            .unwrap()
            .as_f32s()
            .unwrap()
            .len(),
        32000
    );
    assert_eq!(m.get_bool("tokenizer.ggml.add_bos_token"), Some(true));
    assert_eq!(m.get_bool("tokenizer.ggml.add_eos_token"), Some(false));
    let original = std::fs::read(&path).unwrap();
    assert!(
        rewrite_bytes(&f) == original,
        "rewrite differs from the original"
    );
}

#[test]
fn rewrite_through_a_real_file_is_identical() {
    let path = vocab_fixture("ggml-vocab-llama-spm.gguf");
    let f = GgufFile::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.gguf");
    GgufWriter::from_file(&f).write(&out).unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&path).unwrap());
    // Nothing but the output is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // The output is readable by others like any file the user creates (not the 0600 of a
    // temporary file), unless the umask forbids it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_ne!(mode & 0o600, 0, "{mode:o}");
        let probe = dir.path().join("probe");
        std::fs::write(&probe, b"").unwrap();
        let expected = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o777, expected, "{mode:o}");
    }
}

#[test]
fn mini_tl1_matches_the_manifest() {
    let path = fixture("golden/mini_tl1.gguf");
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.architecture(), Some("bitnet"));
    assert!(f.dialect().is_bitnet());
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("golden/mini_tl1.manifest.json")).unwrap(),
    )
    .unwrap();
    let expected = manifest["expected_tensor_infos_name_ne_type_offset"]
        .as_array()
        .unwrap();
    assert_eq!(f.tensors().len(), expected.len());
    for (t, e) in f.tensors().iter().zip(expected) {
        assert_eq!(t.name, e[0].as_str().unwrap());
        let ne: Vec<u64> = e[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(t.ne, ne);
        assert_eq!(t.raw_type as u64, e[2].as_u64().unwrap());
        assert_eq!(t.offset, e[3].as_u64().unwrap());
    }
    let q = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.ty, TensorType::TL1);
    assert_eq!((q.cols(), q.rows()), (256, 64));
    // The payload includes the hidden scale slot: 4096 packed bytes, then 32 bytes whose
    // first four are the f32 scale (manifest case tl1_64x256: 0x3f418548).
    assert_eq!(q.nbytes, 4128);
    let data = f.tensor_data(q);
    assert_eq!(data.len(), 4128);
    assert_eq!(
        u32::from_le_bytes(data[4096..4100].try_into().unwrap()),
        0x3f41_8548
    );
    assert!(data[4100..].iter().all(|&b| b == 0));
    let norm = f.tensor("blk.0.attn_norm.weight").unwrap();
    assert_eq!(norm.ty, TensorType::F32);
    assert_eq!(f.tensor_data(norm).len(), 512);

    let original = std::fs::read(&path).unwrap();
    assert!(
        rewrite_bytes(&f) == original,
        "rewrite differs from the original"
    );
}

#[test]
fn open_files_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GgufFile>();
    assert_send_sync::<bitnet_formats::GgufError>();
}
