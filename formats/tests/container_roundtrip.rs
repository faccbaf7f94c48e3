//! Write -> read round trips: every metadata value type (nested arrays included) and every
//! storable tensor type id of every dialect.

use bitnet_formats::gguf::GgufWriter;
use bitnet_formats::{
    Array, Dialect, GgufFile, SizeRule, TensorSource, TensorType, Value, ValueType,
};
use proptest::prelude::*;

fn scalar(ty: ValueType) -> BoxedStrategy<Value> {
    match ty {
        ValueType::U8 => any::<u8>().prop_map(Value::U8).boxed(),
        ValueType::I8 => any::<i8>().prop_map(Value::I8).boxed(),
        ValueType::U16 => any::<u16>().prop_map(Value::U16).boxed(),
        ValueType::I16 => any::<i16>().prop_map(Value::I16).boxed(),
        ValueType::U32 => any::<u32>().prop_map(Value::U32).boxed(),
        ValueType::I32 => any::<i32>().prop_map(Value::I32).boxed(),
        // Any bit pattern, NaNs included: values compare by bits.
        ValueType::F32 => any::<u32>()
            .prop_map(|b| Value::F32(f32::from_bits(b)))
            .boxed(),
        ValueType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        ValueType::String => ".{0,12}".prop_map(Value::String).boxed(),
        ValueType::U64 => any::<u64>().prop_map(Value::U64).boxed(),
        ValueType::I64 => any::<i64>().prop_map(Value::I64).boxed(),
        ValueType::F64 => any::<u64>()
            .prop_map(|b| Value::F64(f64::from_bits(b)))
            .boxed(),
        ValueType::Array => unreachable!(),
    }
}

fn scalar_type() -> impl Strategy<Value = ValueType> {
    prop::sample::select(
        ValueType::ALL
            .iter()
            .copied()
            .filter(|t| *t != ValueType::Array)
            .collect::<Vec<_>>(),
    )
}

/// Scalars, homogeneous arrays of any element type, and arrays of arrays.
fn value() -> impl Strategy<Value = Value> {
    let leaf = scalar_type().prop_flat_map(scalar);
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            scalar_type().prop_flat_map(|t| prop::collection::vec(scalar(t), 0..6)
                .prop_map(move |v| Value::Array(Array::new(t, v)))),
            prop::collection::vec(inner, 0..4).prop_map(|items| {
                // Arrays of arrays: wrap every element so the array is homogeneous.
                let values = items
                    .into_iter()
                    .map(|v| match v {
                        Value::Array(a) => Value::Array(a),
                        other => Value::Array(Array::new(other.value_type(), vec![other])),
                    })
                    .collect();
                Value::Array(Array::new(ValueType::Array, values))
            }),
        ]
    })
}

fn to_bytes(w: GgufWriter<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    w.write_to(&mut out, "mem", &mut |_, _| {}).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn metadata_round_trips(entries in prop::collection::vec(("[a-z.]{1,10}", value()), 0..10),
                            version in 2u32..=3) {
        let mut w = GgufWriter::new(Dialect::Upstream);
        w.set_version(version);
        for (k, v) in &entries {
            w.set(k.clone(), v.clone());
        }
        let expected = w.metadata().clone();
        let bytes = to_bytes(w);
        let f = GgufFile::from_bytes(bytes.clone(), "mem").unwrap();
        prop_assert_eq!(f.version(), version);
        prop_assert_eq!(f.metadata(), &expected);
        prop_assert_eq!(to_bytes(GgufWriter::from_file(&f)), bytes);
    }

    #[test]
    fn non_colliding_tensor_types_round_trip(
        picks in prop::collection::vec((0u32..36, 1u64..4, 1u64..3, any::<u64>()), 1..6),
        alignment_log2 in 3u32..8,
    ) {
        let mut w = GgufWriter::new(Dialect::Upstream);
        w.set("general.alignment", 1u32 << alignment_log2);
        let mut expected = Vec::new();
        for (i, (id, blocks, rows, seed)) in picks.into_iter().enumerate() {
            let ty = TensorType::from_id(id, Dialect::Upstream).unwrap();
            if ty.size_rule() == SizeRule::NotStorable {
                continue;
            }
            let ne = [ty.block_len() * blocks, rows];
            let n = ty.nbytes(&ne).unwrap() as usize;
            let data: Vec<u8> = (0..n).map(|j| (seed.wrapping_mul(j as u64 + 1) >> 7) as u8).collect();
            let name = format!("t{i}");
            w.add_tensor(name.clone(), &ne, ty, TensorSource::Owned(data.clone())).unwrap();
            expected.push((name, ne, ty, data));
        }
        let bytes = to_bytes(w);
        let f = GgufFile::from_bytes(bytes, "mem").unwrap();
        prop_assert_eq!(f.tensors().len(), expected.len());
        for (t, (name, ne, ty, data)) in f.tensors().iter().zip(&expected) {
            prop_assert_eq!(&t.name, name);
            prop_assert_eq!(&t.ne[..], &ne[..]);
            prop_assert_eq!(t.ty, *ty);
            prop_assert_eq!(t.offset % f.alignment(), 0);
            prop_assert_eq!(f.tensor_data(t), &data[..]);
        }
    }
}

/// A shape the type can hold: for the colliding ids, one whose size differs from every
/// other reading of the same id, so the offsets prove the dialect.
fn shape_for(ty: TensorType) -> Vec<u64> {
    match ty.size_rule() {
        SizeRule::Tl2 => vec![384, 32],
        SizeRule::QuarterPlusTail => vec![256, 8],
        _ => vec![ty.block_len() * 8, 3],
    }
}

#[test]
fn every_type_id_of_every_dialect_round_trips() {
    for dialect in Dialect::ALL {
        for id in 0..=42u32 {
            let Some(ty) = TensorType::from_id(id, dialect) else {
                continue;
            };
            if ty.size_rule() == SizeRule::NotStorable {
                continue;
            }
            let ne = shape_for(ty);
            let n = ty.nbytes(&ne).unwrap() as usize;
            let payload: Vec<u8> = (0..n).map(|i| (i * 7 + id as usize) as u8).collect();
            let mut w = GgufWriter::new(dialect);
            let arch = if dialect.is_bitnet() {
                "bitnet-b1.58"
            } else {
                "llama"
            };
            w.set("general.architecture", arch);
            w.add_tensor("w", &ne, ty, TensorSource::Borrowed(&payload))
                .unwrap();
            // A sentinel after the tensor: its offset proves the first tensor's size.
            w.add_tensor(
                "sentinel",
                &[8],
                TensorType::F32,
                TensorSource::Owned(vec![9; 32]),
            )
            .unwrap();
            let bytes = to_bytes(w);
            let f = GgufFile::from_bytes(bytes.clone(), "mem")
                .unwrap_or_else(|e| panic!("{dialect} id {id} ({ty}): {e}"));
            let t = f.tensor("w").unwrap();
            assert_eq!(
                (t.raw_type, t.ty, &t.ne),
                (id, ty, &ne),
                "{dialect} id {id}"
            );
            assert_eq!(f.tensor_data(t), &payload[..], "{dialect} id {id}");
            assert_eq!(f.tensor_data(f.tensor("sentinel").unwrap()), &[9; 32]);
            if (36..=42).contains(&id) {
                // A colliding id must resolve to the dialect that gives it this meaning.
                assert_eq!(
                    TensorType::from_id(id, f.dialect()),
                    Some(ty),
                    "{dialect} id {id}"
                );
            }
            assert_eq!(to_bytes(GgufWriter::from_file(&f)), bytes);
        }
    }
}

#[test]
fn lazy_sources_are_produced_one_at_a_time_in_order() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let live = Arc::new(AtomicUsize::new(0));
    let produced = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut w = GgufWriter::new(Dialect::Upstream);
    for i in 0..4u8 {
        let (live, produced) = (live.clone(), produced.clone());
        let src = TensorSource::Lazy(Box::new(move || {
            produced.lock().unwrap().push(i);
            assert_eq!(live.fetch_add(1, Ordering::SeqCst), i as usize);
            Ok(vec![i; 64])
        }));
        w.add_tensor(format!("t{i}"), &[16], TensorType::F32, src)
            .unwrap();
    }
    // Nothing is produced before writing.
    assert!(produced.lock().unwrap().is_empty());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lazy.gguf");
    let mut seen = Vec::new();
    w.write_with_progress(&path, &mut |name, n| seen.push((name.to_owned(), n)))
        .unwrap();
    assert_eq!(*produced.lock().unwrap(), [0, 1, 2, 3]);
    assert_eq!(
        seen,
        (0..4).map(|i| (format!("t{i}"), 64)).collect::<Vec<_>>()
    );
    let f = GgufFile::open(&path).unwrap();
    for i in 0..4u8 {
        assert_eq!(f.tensor_data(f.tensor(&format!("t{i}")).unwrap()), &[i; 64]);
    }
}
