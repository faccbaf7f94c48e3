//! Hostile and malformed input: every case must give a typed error, never a panic.

use std::path::PathBuf;

use bitnet_formats::gguf::{GgufWriter, Problem};
use bitnet_formats::{Dialect, GgufError, GgufFile, TensorSource, TensorType, Value, ValueType};

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

/// Builds GGUF bytes by hand, so that any field can be made wrong.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, tensors: u64, kvs: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(tensors).u64(kvs);
        r
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &[u8]) -> &mut Self {
        self.u64(s.len() as u64).bytes(s)
    }
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key.as_bytes()).u32(4).u32(v)
    }
    fn tensor(&mut self, name: &str, ne: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name.as_bytes()).u32(ne.len() as u32);
        for &d in ne {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(&mut self, n: usize) -> &mut Self {
        while !self.0.len().is_multiple_of(32) {
            self.0.push(0);
        }
        self.0.extend(std::iter::repeat_n(0x11u8, n));
        self
    }
    fn parse(&self) -> Result<GgufFile, GgufError> {
        GgufFile::from_bytes(self.0.clone(), "hostile.gguf")
    }
}

fn problem(r: &Raw) -> Problem {
    match r.parse() {
        Ok(_) => panic!("parsed a malformed file"),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.starts_with("hostile.gguf: "),
                "error does not name the file: {text}"
            );
            e.problem()
                .cloned()
                .unwrap_or_else(|| panic!("not a content error: {text}"))
        }
    }
}

/// Every prefix shorter than the bytes the file needs fails cleanly.
fn check_all_truncations(bytes: &[u8], label: &str, stride: usize) {
    let full = GgufFile::from_bytes(bytes.to_vec(), label).unwrap();
    let needed = full
        .tensors()
        .iter()
        .map(|t| full.data_start() + t.offset + t.nbytes)
        .max()
        .unwrap_or(bytes.len() as u64) as usize;
    let mut cut = 0;
    while cut < bytes.len() {
        let result = GgufFile::from_bytes(bytes[..cut].to_vec(), label);
        if cut < needed {
            let err = result.expect_err(&format!("{label} cut at {cut} parsed"));
            assert!(err.offset().is_some(), "{label} cut at {cut}: {err}");
        }
        cut += if cut < 4096 { 1 } else { stride };
    }
}

#[test]
fn truncation_at_every_byte_of_mini_tl1() {
    let bytes = std::fs::read(fixture("golden/mini_tl1.gguf")).unwrap();
    check_all_truncations(&bytes, "mini_tl1", 1);
}

#[test]
fn truncation_of_a_vocab_file() {
    // Every byte of the header and first records, then a stride through the big arrays.
    let bytes = std::fs::read(vocab_fixture("ggml-vocab-llama-spm.gguf")).unwrap();
    check_all_truncations(&bytes, "spm", 997);
}

#[test]
fn truncation_at_every_byte_of_a_file_with_every_value_type() {
    let mut w = GgufWriter::new(Dialect::Bitnet);
    w.set("general.architecture", "bitnet-b1.58");
    for (i, v) in [
        Value::U8(1),
        Value::I8(-2),
        Value::U16(3),
        Value::I16(-4),
        Value::U32(5),
        Value::I32(-6),
        Value::F32(7.5),
        Value::Bool(true),
        Value::String("eight".into()),
        Value::U64(9),
        Value::I64(-10),
        Value::F64(11.25),
        Value::strings(["a", "bc", ""]),
        Value::array_of(
            ValueType::Array,
            [Value::array_of(
                ValueType::U16,
                [Value::U16(1), Value::U16(2)],
            )],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        w.set(format!("test.v{i}"), v);
    }
    let i2s = vec![0x55u8; 160];
    w.add_tensor("w", &[128, 4], TensorType::I2_S, TensorSource::Owned(i2s))
        .unwrap();
    w.add_tensor(
        "n",
        &[128],
        TensorType::F32,
        TensorSource::Owned(vec![0; 512]),
    )
    .unwrap();
    let mut bytes = Vec::new();
    w.write_to(&mut bytes, "mem", &mut |_, _| {}).unwrap();
    check_all_truncations(&bytes, "all-types", 1);
}

#[test]
fn bad_header_fields() {
    let mut r = Raw::header(3, 0, 0);
    r.0[0] = b'X';
    assert!(matches!(problem(&r), Problem::BadMagic { .. }));
    assert_eq!(
        problem(&Raw::header(1, 0, 0)),
        Problem::UnsupportedVersion(1)
    );
    assert!(matches!(
        problem(&Raw::header(3 << 24, 0, 0)),
        Problem::BigEndian { .. }
    ));
    assert!(Raw::header(2, 0, 0).parse().is_ok());
    assert!(matches!(
        problem(&Raw(b"GG".to_vec())),
        Problem::Truncated { .. }
    ));
    assert!(matches!(
        problem(&Raw::default()),
        Problem::Truncated { .. }
    ));
}

#[test]
fn absurd_counts_are_rejected_before_allocating() {
    let p = problem(&Raw::header(3, 1 << 60, 0));
    assert!(
        matches!(p, Problem::CountTooLarge { count, .. } if count == 1 << 60),
        "{p:?}"
    );
    let p = problem(&Raw::header(3, 0, 1 << 60));
    assert!(
        matches!(p, Problem::CountTooLarge { count, .. } if count == 1 << 60),
        "{p:?}"
    );
    let p = problem(&Raw::header(3, u64::MAX, u64::MAX));
    assert!(matches!(p, Problem::CountTooLarge { .. }), "{p:?}");
    // An array claiming 2^60 u32 elements.
    let mut r = Raw::header(3, 0, 1);
    r.str(b"a").u32(9).u32(4).u64(1 << 60);
    assert!(matches!(problem(&r), Problem::CountTooLarge { .. }));
    // A string claiming 2^62 bytes, as a key and as a value.
    let mut r = Raw::header(3, 0, 1);
    r.u64(1 << 62).bytes(&[0; 16]);
    assert!(matches!(problem(&r), Problem::Truncated { .. }));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(8).u64(1 << 62).bytes(b"xxxx");
    assert!(matches!(problem(&r), Problem::Truncated { .. }));
}

#[test]
fn bad_utf8_keys_values_and_names() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"bad\xffkey").u32(4).u32(0);
    let e = r.parse().unwrap_err();
    assert_eq!(e.offset(), Some(24));
    assert!(matches!(e.problem(), Some(Problem::BadUtf8 { .. })));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(8).str(b"\xc3\x28");
    assert!(matches!(problem(&r), Problem::BadUtf8 { .. }));
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t\u{1}", &[8], 0, 0);
    r.0[32] = 0xfe; // the name's single byte becomes invalid
    assert!(matches!(problem(&r), Problem::BadUtf8 { .. }));
}

#[test]
fn duplicates_are_rejected() {
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("a.b", 1).kv_u32("a.b", 2);
    assert_eq!(problem(&r), Problem::DuplicateKey("a.b".into()));
    let mut r = Raw::header(3, 2, 0);
    r.tensor("t", &[8], 0, 0).tensor("t", &[8], 0, 32).data(64);
    assert_eq!(problem(&r), Problem::DuplicateTensor("t".into()));
}

#[test]
fn unknown_value_and_tensor_types() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(13).u32(0);
    assert_eq!(problem(&r), Problem::UnknownValueType(13));
    let mut r = Raw::header(3, 1, 0);
    r.tensor("blk.0.ffn_up.weight", &[32, 2], 99, 0).data(64);
    let e = r.parse().unwrap_err();
    assert_eq!(
        e.problem(),
        Some(&Problem::UnknownTensorType {
            tensor: "blk.0.ffn_up.weight".into(),
            id: 99
        })
    );
    let text = e.to_string();
    assert!(
        text.contains("blk.0.ffn_up.weight") && text.contains("99"),
        "{text}"
    );
    // I8_S (37 in the fork) is a run-time type; 37 is a removed type upstream.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("x", &[32], 37, 0).data(32);
    let text = r.parse().unwrap_err().to_string();
    assert!(
        text.contains("I8_S") && text.contains("IQ4_NL_4_8"),
        "{text}"
    );
}

#[test]
fn shapes_out_of_range() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1, 1, 1, 1, 1], 0, 0).data(32);
    assert_eq!(
        problem(&r),
        Problem::BadDims {
            tensor: "t".into(),
            n_dims: 5
        }
    );
    let mut r = Raw::header(3, 1, 0);
    r.str(b"t").u32(u32::MAX).bytes(&[0; 16]);
    assert!(matches!(problem(&r), Problem::BadDims { .. }));
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1 << 40, 1 << 40], 0, 0).data(32);
    assert!(matches!(problem(&r), Problem::ShapeOverflow { .. }));
    // Q8_0 needs ne[0] to be a multiple of 32.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[33], 8, 0).data(64);
    assert!(matches!(problem(&r), Problem::BadShapeForType { .. }));
}

#[test]
fn overlapping_misaligned_and_out_of_bounds_tensors() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[16], 0, 0)
        .tensor("b", &[16], 0, 32)
        .data(128);
    assert!(matches!(problem(&r), Problem::Overlap { .. }));
    let mut r = Raw::header(3, 1, 0);
    r.tensor("a", &[8], 0, 4).data(64);
    assert!(matches!(
        problem(&r),
        Problem::Misaligned {
            offset: 4,
            alignment: 32,
            ..
        }
    ));
    let mut r = Raw::header(3, 1, 0);
    r.tensor("a", &[64], 0, 0).data(255);
    assert!(matches!(
        problem(&r),
        Problem::TensorOutOfBounds { end: 256, .. }
    ));
    let mut r = Raw::header(3, 1, 0);
    r.tensor("a", &[8], 0, u64::MAX - 31).data(64);
    assert!(matches!(problem(&r), Problem::TensorOutOfBounds { .. }));
    // Out-of-order but disjoint tensors are accepted, as the older fork reader does.
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[8], 0, 32).tensor("b", &[8], 0, 0).data(64);
    let f = r.parse().unwrap();
    assert_eq!(f.tensor_data(f.tensor("a").unwrap()).len(), 32);
}

#[test]
fn alignment_must_be_a_power_of_two() {
    for bad in [0u32, 3, 48] {
        let mut r = Raw::header(3, 0, 1);
        r.kv_u32("general.alignment", bad);
        assert!(matches!(problem(&r), Problem::BadAlignment(_)), "{bad}");
    }
    let mut r = Raw::header(3, 0, 1);
    r.str(b"general.alignment").u32(8).str(b"32");
    assert!(matches!(problem(&r), Problem::BadAlignment(_)));
    let mut r = Raw::header(3, 1, 1);
    r.kv_u32("general.alignment", 64).tensor("a", &[8], 0, 0);
    while !r.0.len().is_multiple_of(64) {
        r.0.push(0);
    }
    r.bytes(&[1; 32]);
    let f = r.parse().unwrap();
    assert_eq!((f.alignment(), f.data_start() % 64), (64, 0));
}

#[test]
fn nested_arrays_are_readable() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"nested").u32(9).u32(9).u64(2);
    r.u32(4).u64(2).u32(7).u32(8); // [7, 8]
    r.u32(8).u64(1).str(b"x"); // ["x"]
    let f = r.parse().unwrap();
    let outer = f.metadata().get_array("nested").unwrap();
    assert_eq!(outer.elem_type, ValueType::Array);
    assert_eq!(
        outer.values[0].as_array().unwrap().as_u32s(),
        Some(vec![7, 8])
    );
    assert_eq!(
        outer.values[1].as_array().unwrap().as_strs(),
        Some(vec!["x"])
    );
}

#[test]
fn deep_nesting_is_bounded() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"deep").u32(9);
    for _ in 0..10_000 {
        r.u32(9).u64(1);
    }
    assert!(matches!(problem(&r), Problem::NestingTooDeep { .. }));
}

#[test]
fn writer_rejects_inconsistent_input() {
    let mut w = GgufWriter::new(Dialect::Upstream);
    let e = w
        .add_tensor("a", &[33], TensorType::Q8_0, TensorSource::Owned(vec![]))
        .unwrap_err();
    assert!(e.to_string().contains("Q8_0"), "{e}");
    let e = w
        .add_tensor("a", &[8], TensorType::F32, TensorSource::Owned(vec![0; 31]))
        .unwrap_err();
    assert!(e.to_string().contains("31"), "{e}");
    // I2_S has no id upstream.
    assert!(w
        .add_tensor(
            "a",
            &[128],
            TensorType::I2_S,
            TensorSource::Owned(vec![0; 64])
        )
        .is_err());
    w.add_tensor("a", &[8], TensorType::F32, TensorSource::Owned(vec![0; 32]))
        .unwrap();
    assert!(w
        .add_tensor("a", &[8], TensorType::F32, TensorSource::Owned(vec![0; 32]))
        .is_err());
    // A lazy payload of the wrong size fails at write time, and leaves no file behind.
    w.add_tensor(
        "b",
        &[8],
        TensorType::F32,
        TensorSource::Lazy(Box::new(|| Ok(vec![0; 8]))),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(w.write(dir.path().join("x.gguf")).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // Mixed-type arrays and bad alignments cannot be written.
    let mut w = GgufWriter::new(Dialect::Upstream);
    w.set(
        "a",
        Value::array_of(ValueType::U8, [Value::U8(1), Value::I8(1)]),
    );
    assert!(w.write_to(&mut Vec::new(), "m", &mut |_, _| {}).is_err());
    let mut w = GgufWriter::new(Dialect::Upstream);
    w.set("general.alignment", 24u32);
    assert!(w.write_to(&mut Vec::new(), "m", &mut |_, _| {}).is_err());
}
