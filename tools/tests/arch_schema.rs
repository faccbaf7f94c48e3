//! The architecture table of `bitnet_formats::arch` is what the converter and the dummy writer
//! produce: every tensor it lists for the file's architecture is present with the shape the
//! file's hyper-parameters give, and nothing else is.

mod common;

use bitnet_formats::arch::{Arch, Dims, HParam, OUTPUT};
use bitnet_formats::GgufFile;
use bitnet_tools::convert::WeightType;
use bitnet_tools::dummy::{write_dummy, DummyError, DummyOptions};

/// Checks `path` against the table and returns its architecture.
fn assert_matches_schema(path: &std::path::Path) -> Arch {
    let file = GgufFile::open(path).unwrap();
    let meta = file.metadata();
    let name = meta.get_str("general.architecture").unwrap();
    let arch = Arch::from_name(name).unwrap();
    let count = |hp: HParam| meta.get_u64(&hp.key(name)).unwrap() as usize;
    let (n_embd, n_head) = (count(HParam::EmbeddingLength), count(HParam::HeadCount));
    let head_dim = n_embd / n_head;
    let dims = Dims {
        n_embd,
        n_vocab: count(HParam::VocabSize),
        q_dim: n_head * head_dim,
        kv_dim: count(HParam::HeadCountKv) * head_dim,
        n_ff: count(HParam::FeedForwardLength),
    };
    let with_output = file.tensor(&OUTPUT.global_name()).is_some();
    let mut expected = 0;
    for (tensor, spec) in arch.tensors(count(HParam::BlockCount), with_output) {
        let info = file
            .tensor(&tensor)
            .unwrap_or_else(|| panic!("{}: {tensor} is missing", path.display()));
        assert_eq!(info.ne, spec.ne(&dims), "{}: {tensor}", path.display());
        expected += 1;
    }
    let names: Vec<&str> = file
        .tensors()
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !n.ends_with(".scale"))
        .collect();
    assert_eq!(
        names.len(),
        expected,
        "{}: tensors beyond the table: {names:?}",
        path.display()
    );
    arch
}

#[test]
fn converted_checkpoints_hold_exactly_the_schema_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            common::tiny_dir(),
            WeightType::I2s(Default::default()),
            Arch::BitnetB158,
        ),
        (common::tiny_dir(), WeightType::Tq2_0, Arch::Bitnet),
        (common::onebit_dir(), WeightType::F32, Arch::Bitnet),
        (
            common::llama_dir(),
            WeightType::I2s(Default::default()),
            Arch::Llama,
        ),
    ];
    for (i, (input, wt, arch)) in cases.into_iter().enumerate() {
        let out = dir.path().join(format!("{i}.gguf"));
        common::run(&input, &out, wt, "schema");
        assert_eq!(assert_matches_schema(&out), arch, "{}", input.display());
    }
}

#[test]
fn dummy_models_hold_exactly_the_schema_tensors() {
    let dir = tempfile::tempdir().unwrap();
    for ty in ["i2_s", "tq2_0", "tl1"] {
        let output = dir.path().join(format!("tiny-{ty}.gguf"));
        let report = write_dummy(&DummyOptions {
            shape: "tiny".into(),
            ty: ty.into(),
            output: output.clone(),
            seed: 3,
            dialect: None,
        })
        .unwrap();
        assert!(
            report.f16_fallbacks.is_empty(),
            "{ty}: {:?}",
            report.f16_fallbacks
        );
        assert_matches_schema(&output);
    }
}

#[test]
fn dummy_rejects_unknown_shapes_and_types_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("x.gguf");
    let opts = |shape: &str, ty: &str| DummyOptions {
        shape: shape.into(),
        ty: ty.into(),
        output: output.clone(),
        seed: 1,
        dialect: None,
    };
    let e = write_dummy(&opts("13b", "i2_s")).unwrap_err();
    assert!(matches!(e, DummyError::UnknownShape(_)), "{e}");
    assert!(e.to_string().contains("2b4t"), "{e}");
    let e = write_dummy(&opts("tiny", "q4_0")).unwrap_err();
    assert!(matches!(e, DummyError::UnknownType(_)), "{e}");
    assert!(!output.exists());
}
