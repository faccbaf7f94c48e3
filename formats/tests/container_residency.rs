//! A file read into memory (`Residency::Copied`), or held as `Residency::Auto` chose, is the
//! same file as the mapped one: the same metadata, tensors and payload bytes, and the same
//! errors for the same bad bytes.

use std::path::{Path, PathBuf};

use bitnet_formats::gguf::{auto_copies, AUTO_MIN_HUGE_PCT};
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
    assert_eq!(mapped.residency(), Residency::Mapped);
    assert_eq!(copied.residency(), Residency::Copied);
    (mapped, copied)
}

#[test]
fn a_copied_file_reads_as_the_mapped_one() {
    for path in fixtures() {
        let (m, copied) = open_both(&path);
        let auto = GgufFile::open_with(&path, Residency::Auto).unwrap();
        // Auto resolves to one of the two, never stays "auto".
        assert_ne!(auto.residency(), Residency::Auto);
        for c in [copied, auto] {
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
}

/// Auto copies a file only when its whole 2 MiB pages are mostly small (or their size is
/// unknown) and the copy takes at most half of the memory available.
#[test]
fn auto_copies_small_paged_files_that_fit() {
    const MIB: u64 = 1 << 20;
    let len = 1000 * MIB + 123;
    let whole = 1000 * MIB;
    let gib = |g: u64| Some(g << 30);
    // Huge enough: mapped, however much memory there is.
    assert!(!auto_copies(len, Some(whole), gib(64)));
    assert!(!auto_copies(
        len,
        Some(whole * AUTO_MIN_HUGE_PCT / 100),
        gib(64)
    ));
    // Small pages, or unknown: copied when it fits.
    assert!(auto_copies(
        len,
        Some(whole * AUTO_MIN_HUGE_PCT / 100 - MIB),
        gib(64)
    ));
    assert!(auto_copies(len, Some(0), gib(64)));
    assert!(auto_copies(len, None, gib(64)));
    // ... but not when the copy would take more than half of the available memory, or
    // that is unknown.
    assert!(auto_copies(len, Some(0), Some(2 * len)));
    assert!(!auto_copies(len, Some(0), Some(2 * len - 1)));
    assert!(!auto_copies(len, Some(0), None));
    // A file smaller than one 2 MiB page has none to gain.
    assert!(!auto_copies(2 * MIB - 1, Some(0), gib(64)));
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
        assert_eq!(mapped, problem(Residency::Auto), "{len} bytes");
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
