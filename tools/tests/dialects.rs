//! `--dialect` on convert, quantize and dummy: the architecture names and type ids each
//! dialect's readers load, and a clear refusal for types a dialect cannot number.

mod common;

use bitnet_formats::{Dialect, GgufFile, TensorType};
use bitnet_tools::convert::{convert, ConvertOptions, WeightType};
use bitnet_tools::dummy::{write_dummy, DummyError, DummyOptions};
use bitnet_tools::quantize::{quantize_file, QuantizeOptions, Target};
use common::*;

fn convert_tiny(out: &std::path::Path, wt: WeightType, dialect: Option<Dialect>) -> GgufFile {
    let mut opts = ConvertOptions::new(tiny_dir(), out);
    opts.weight_type = wt;
    opts.force = true;
    opts.dialect = dialect;
    convert(&opts, &mut |_| {}).unwrap();
    GgufFile::open(out).unwrap()
}

fn raw_type_of_projections(f: &GgufFile) -> Vec<u32> {
    let mut ids: Vec<u32> = f
        .tensors()
        .iter()
        .filter(|t| t.name.ends_with("attn_q.weight"))
        .map(|t| t.raw_type)
        .collect();
    ids.dedup();
    ids
}

#[test]
fn upstream_f16_uses_the_bitnet_architecture_and_both_activation_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let f = convert_tiny(
        &tmp.path().join("up.gguf"),
        WeightType::F16,
        Some(Dialect::Upstream),
    );
    assert_eq!(f.architecture(), Some("bitnet"));
    let m = f.metadata();
    assert_eq!(m.get_str("bitnet.hidden_act"), Some("relu2"));
    assert_eq!(m.get_str("bitnet.hidden_activation"), Some("relu2"));
    assert_eq!(m.get_u32("bitnet.block_count"), Some(6));
    assert!(!m.contains("bitnet-b1.58.block_count"));

    // The default keeps today's name for float output.
    let f = convert_tiny(&tmp.path().join("def.gguf"), WeightType::F16, None);
    assert_eq!(f.architecture(), Some("bitnet-b1.58"));
    // The name implies the activation; upstream's key goes only where a key selects it.
    assert!(!f.metadata().contains("bitnet-b1.58.hidden_activation"));
}

#[test]
fn upstream_refuses_bitnet_only_types_naming_the_type_to_use() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.gguf");
    let mut opts = ConvertOptions::new(tiny_dir(), &out);
    opts.dialect = Some(Dialect::Upstream);
    let e = convert(&opts, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("I2_S") && e.contains("tq2_0"), "{e}");
    assert!(!out.exists());

    let f16 = tmp.path().join("f16.gguf");
    convert_tiny(&f16, WeightType::F16, None);
    let mut q = QuantizeOptions::new(Target::Tl2);
    q.dialect = Some(Dialect::Upstream);
    let e = quantize_file(&f16, &out, &q, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("TL2") && e.contains("tq2_0"), "{e}");
    assert!(!out.exists());

    let e = write_dummy(&DummyOptions {
        shape: "tiny".into(),
        ty: "tl1".into(),
        output: out.clone(),
        seed: 1,
        dialect: Some(Dialect::Upstream),
    })
    .unwrap_err();
    assert!(matches!(e, DummyError::Dialect(_)), "{e}");
    assert!(!out.exists());
}

#[test]
fn bitnet_2024_numbers_tl2_39_and_bitnet_42() {
    let tmp = tempfile::tempdir().unwrap();
    let f16 = tmp.path().join("f16.gguf");
    convert_tiny(&f16, WeightType::F16, Some(Dialect::Upstream));
    for (dialect, id, arch) in [
        (Some(Dialect::Bitnet2024), 39, "bitnet"),
        (None, 42, "bitnet"),
    ] {
        let out = tmp.path().join(format!("tl2-{id}.gguf"));
        let mut q = QuantizeOptions::new(Target::Tl2);
        q.dialect = dialect;
        q.force = true;
        quantize_file(&f16, &out, &q, &mut |_| {}).unwrap();
        let f = GgufFile::open(&out).unwrap();
        assert_eq!(raw_type_of_projections(&f), vec![id], "{dialect:?}");
        assert_eq!(f.tensor("blk.0.attn_q.weight").unwrap().ty, TensorType::TL2);
        // An input already named `bitnet` keeps that name, which both forks register.
        assert_eq!(f.architecture(), Some(arch));
        assert_eq!(
            f.metadata().get_str("bitnet.hidden_activation"),
            Some("relu2")
        );
    }

    let out = tmp.path().join("tl2-conv.gguf");
    let f = convert_tiny(&out, WeightType::Tl2, Some(Dialect::Bitnet2024));
    assert_eq!(raw_type_of_projections(&f), vec![39]);
    assert_eq!(f.architecture(), Some("bitnet-b1.58"));
    assert_eq!(f.dialect(), Dialect::Bitnet2024);

    let out = tmp.path().join("tl2-dummy.gguf");
    write_dummy(&DummyOptions {
        shape: "tiny".into(),
        ty: "tl2".into(),
        output: out.clone(),
        seed: 1,
        dialect: Some(Dialect::Bitnet2024),
    })
    .unwrap();
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(raw_type_of_projections(&f), vec![39]);
}

#[test]
fn falcon_e_pre_tokenizer_is_named_as_each_dialect_knows_it() {
    let tmp = tempfile::tempdir().unwrap();
    for (dialect, want) in [
        (Dialect::Upstream, "falcon3"),
        (Dialect::Bitnet, "falcon_e"),
    ] {
        let out = tmp.path().join(format!("{dialect:?}.gguf"));
        let mut opts = ConvertOptions::new(tiny_dir(), &out);
        opts.weight_type = WeightType::F16;
        opts.force = true;
        opts.dialect = Some(dialect);
        opts.tokenizer_pre = Some("falcon_e".into());
        convert(&opts, &mut |_| {}).unwrap();
        let f = GgufFile::open(&out).unwrap();
        assert_eq!(
            f.metadata().get_str("tokenizer.ggml.pre"),
            Some(want),
            "{dialect:?}"
        );
    }
}
