//! gguf-rs-lib, an independent reader, as an oracle: on standard-type files it must agree
//! with ours on every key, value and tensor info.

use std::path::{Path, PathBuf};

use bitnet_formats::gguf::GgufWriter;
use bitnet_formats::{Dialect, GgufFile, TensorSource, TensorType, Value, ValueType};
use gguf_rs_lib::format::metadata::MetadataValue;
use gguf_rs_lib::reader::GGUFFileReader;

/// llama.cpp's vocab GGUFs live once, in the workspace's top-level fixtures.
fn vocab_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/vocab")
        .join(name)
}

fn same_value(ours: &Value, theirs: &MetadataValue) -> bool {
    match (ours, theirs) {
        (Value::U8(a), MetadataValue::U8(b)) => a == b,
        (Value::I8(a), MetadataValue::I8(b)) => a == b,
        (Value::U16(a), MetadataValue::U16(b)) => a == b,
        (Value::I16(a), MetadataValue::I16(b)) => a == b,
        (Value::U32(a), MetadataValue::U32(b)) => a == b,
        (Value::I32(a), MetadataValue::I32(b)) => a == b,
        (Value::U64(a), MetadataValue::U64(b)) => a == b,
        (Value::I64(a), MetadataValue::I64(b)) => a == b,
        (Value::F32(a), MetadataValue::F32(b)) => a.to_bits() == b.to_bits(),
        (Value::F64(a), MetadataValue::F64(b)) => a.to_bits() == b.to_bits(),
        (Value::Bool(a), MetadataValue::Bool(b)) => a == b,
        (Value::String(a), MetadataValue::String(b)) => a == b,
        (Value::Array(a), MetadataValue::Array(b)) => {
            a.elem_type.code() == b.element_type as u32
                && a.len() as u64 == b.length
                && a.values.len() == b.values.len()
                && a.values
                    .iter()
                    .zip(&b.values)
                    .all(|(x, y)| same_value(x, y))
        }
        _ => false,
    }
}

fn agree(path: &Path) {
    let ours = GgufFile::open(path).unwrap();
    let theirs = GGUFFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    assert_eq!(ours.version(), theirs.header().version);
    assert_eq!(ours.metadata().len(), theirs.metadata().len());
    for (key, value) in ours.metadata().iter() {
        let other = theirs
            .metadata()
            .get(key)
            .unwrap_or_else(|| panic!("oracle lacks {key}"));
        assert!(same_value(value, other), "{key}: {value:?} vs {other:?}");
    }
    assert_eq!(ours.tensors().len(), theirs.tensor_count());
    for (t, o) in ours.tensors().iter().zip(theirs.tensor_infos()) {
        assert_eq!(t.name, o.name());
        assert_eq!(t.ne, o.shape().dims());
        assert_eq!(t.raw_type, o.tensor_type() as u32, "{}", t.name);
        assert_eq!(t.offset, o.data_offset(), "{}", t.name);
        assert_eq!(
            t.nbytes,
            o.checked_expected_data_size().unwrap(),
            "{}",
            t.name
        );
    }
    assert_eq!(ours.data_start(), theirs.tensor_data_offset());
}

#[test]
fn vocab_fixtures_agree_with_the_oracle() {
    agree(&vocab_fixture("ggml-vocab-llama-bpe.gguf"));
    agree(&vocab_fixture("ggml-vocab-llama-spm.gguf"));
}

#[test]
fn a_file_with_every_common_standard_type_agrees_with_the_oracle() {
    let mut w = GgufWriter::new(Dialect::Upstream);
    w.set("general.architecture", "llama");
    w.set("general.alignment", 64u32);
    w.set("test.i8", -3i8);
    w.set("test.u16", 65535u16);
    w.set("test.i16", -2i16);
    w.set("test.i64", i64::MIN);
    w.set("test.u64", u64::MAX);
    w.set("test.f64", std::f64::consts::PI);
    w.set("test.bool", false);
    w.set(
        "test.u8s",
        Value::array_of(ValueType::U8, (0..20).map(Value::U8)),
    );
    w.set(
        "test.f32s",
        Value::array_of(ValueType::F32, [Value::F32(1.5), Value::F32(-0.0)]),
    );
    let types = [
        TensorType::F32,
        TensorType::F16,
        TensorType::BF16,
        TensorType::Q4_0,
        TensorType::Q8_0,
        TensorType::Q4_K,
        TensorType::Q6_K,
        TensorType::TQ1_0,
        TensorType::TQ2_0,
        TensorType::I32,
    ];
    for (i, ty) in types.into_iter().enumerate() {
        let ne = [256, 3];
        let n = ty.nbytes(&ne).unwrap() as usize;
        w.add_tensor(
            format!("t{i}.{ty}"),
            &ne,
            ty,
            TensorSource::Owned(vec![i as u8; n]),
        )
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("standard.gguf");
    w.write(&path).unwrap();
    agree(&path);
}
