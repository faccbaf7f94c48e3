//! A file read into memory (`Residency::Copied`) is the same file as the mapped one: the
//! same metadata, tensors and payload bytes, and the same errors for the same bad bytes.

use std::path::{Path, PathBuf};

use bitnet_formats::{GgufError, GgufFile, Residency};

fn fixtures() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    vec![
        root.join("tests/fixtures/golden/mini_tl1.gguf"),
        root.join("../tests/fixtures/vocab/ggml-vocab-llama-bpe.gguf"),
        root.join("../tests/fixtures/vocab/ggml-vocab-llama-spm.gguf"),
        root.join("../models/tiny-bitnet-b1.58.gguf"),
    ]
}

fn open_both(path: &Path) -> (GgufFile, GgufFile) {
    let mapped = GgufFile::open_with(path, Residency::Mapped).unwrap();
    let copied = GgufFile::open_with(path, Residency::Copied).unwrap();
    (mapped, copied)
}

#[test]
fn a_copied_file_reads_as_the_mapped_one() {
    for path in fixtures() {
        let (m, c) = open_both(&path);
        let name = path.display();
        assert_eq!(m.file_size(), c.file_size(), "{name}");
        assert_eq!(
            m.file_size(),
            std::fs::metadata(&path).unwrap().len(),
            "{name}"
        );
        assert_eq!(m.data_start(), c.data_start(), "{name}");
        assert_eq!(m.metadata().len(), c.metadata().len(), "{name}");
        for (k, v) in m.metadata().iter() {
            assert_eq!(c.metadata().get(k), Some(v), "{name}: {k}");
        }
        assert_eq!(m.tensors(), c.tensors(), "{name}");
        for t in m.tensors() {
            assert_eq!(m.tensor_data(t), c.tensor_data(t), "{name}: {}", t.name);
            assert_eq!(
                m.tensor_data(t).len() as u64,
                t.nbytes,
                "{name}: {}",
                t.name
            );
        }
    }
}

/// The errors name the file and say what is wrong the same way whichever way it is held.
#[test]
fn a_truncated_or_empty_file_fails_the_same_way_copied() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(&fixtures()[0]).unwrap();
    for len in [0, 3, 20, whole.len() / 2, whole.len() - 1] {
        let path = dir.path().join(format!("cut{len}.gguf"));
        std::fs::write(&path, &whole[..len]).unwrap();
        let problem = |how| match GgufFile::open_with(&path, how) {
            Err(GgufError::Malformed { file, problem, .. }) => {
                assert_eq!(file, path.display().to_string());
                problem
            }
            other => panic!("{len} bytes, {how:?}: {other:?}"),
        };
        let mapped = problem(Residency::Mapped);
        assert_eq!(mapped, problem(Residency::Copied), "{len} bytes");
    }
    let missing = dir.path().join("missing.gguf");
    let err = GgufFile::open_with(&missing, Residency::Copied).unwrap_err();
    assert!(err.to_string().contains("missing.gguf"), "{err}");
}

/// What `bench` reports reads this process's smaps on Linux, capped at the file's size.
#[test]
fn huge_page_bytes_are_read_and_at_most_the_file() {
    for path in fixtures() {
        let (m, c) = open_both(&path);
        for f in [&m, &c] {
            let huge = f.huge_page_bytes();
            if cfg!(target_os = "linux") {
                let huge = huge.unwrap_or_else(|| panic!("{}: no smaps figure", path.display()));
                assert!(huge <= f.file_size(), "{}: {huge}", path.display());
            }
        }
    }
}
