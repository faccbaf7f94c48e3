//! Converting to every `--type` stores the same ternary codes, and transcoding each output
//! back to I2_S with `quantize` gives those codes again.

mod common;

use bitnet_formats::codec::{decode_ternary, meta::ternary_format_from_metadata, I2sLayout};
use bitnet_formats::{GgufFile, TensorType};
use bitnet_tools::convert::WeightType;
use bitnet_tools::quantize::{quantize_file, QuantizeOptions, Target};
use common::*;

/// Codes of every projection of a file, whatever its type (float types: the sign of `t·s`).
fn all_codes(f: &GgufFile) -> Vec<(String, Vec<i8>)> {
    let mut out = Vec::new();
    for t in f.tensors().iter().filter(|t| {
        PROJECTIONS
            .iter()
            .any(|(_, g)| t.name.ends_with(&format!(".{g}.weight")))
    }) {
        let (cols, rows) = (t.ne[0] as usize, t.ne[1] as usize);
        let data = f.tensor_data(t);
        let codes: Vec<i8> = match t.ty {
            TensorType::F32 | TensorType::F16 => {
                let vals: Vec<f32> = if t.ty == TensorType::F32 {
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect()
                } else {
                    data.chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect()
                };
                let mag = vals.iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!(
                    vals.iter().all(|v| *v == 0.0 || v.abs() == mag),
                    "{}: not ternary-scaled",
                    t.name
                );
                vals.iter()
                    .map(|&v| {
                        if v > 0.0 {
                            1
                        } else if v < 0.0 {
                            -1
                        } else {
                            0
                        }
                    })
                    .collect()
            }
            ty => {
                let fmt =
                    ternary_format_from_metadata(f.metadata(), &t.name, ty, rows, cols).unwrap();
                decode_ternary(&fmt, data, rows, cols).unwrap().codes
            }
        };
        out.push((t.name.clone(), codes));
    }
    out
}

#[test]
fn every_type_holds_the_same_codes_and_transcodes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("ref.gguf");
    run(
        &tiny_dir(),
        &reference,
        WeightType::I2s(I2sLayout::X86),
        "tiny",
    );
    let expected = all_codes(&GgufFile::open(&reference).unwrap());
    assert_eq!(expected.len(), 42);

    for name in WeightType::NAMES {
        let wt = WeightType::parse(name).unwrap();
        let out = tmp.path().join(format!("{name}.gguf"));
        let report = run(&tiny_dir(), &out, wt, "tiny");
        assert!(report.warnings.is_empty(), "{name}: {:?}", report.warnings);
        let f = GgufFile::open(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
        let arch = f.architecture().unwrap().to_owned();
        let upstream = matches!(wt, WeightType::Tq1_0 | WeightType::Tq2_0);
        assert_eq!(
            arch,
            if upstream { "bitnet" } else { "bitnet-b1.58" },
            "{name}"
        );
        assert_eq!(
            f.metadata().get_str(&format!("{arch}.hidden_act")),
            Some("relu2"),
            "{name}"
        );
        assert_eq!(
            f.metadata().get_u32("general.file_type"),
            Some(wt.file_type())
        );
        assert!(
            all_codes(&f) == expected,
            "{name}: codes differ from the I2_S conversion"
        );

        let back = tmp.path().join(format!("{name}-back.gguf"));
        let mut opts = QuantizeOptions::new(Target::I2s(I2sLayout::X86));
        opts.force = true;
        quantize_file(&out, &back, &opts, &mut |_| {})
            .unwrap_or_else(|e| panic!("{name}: quantize: {e}"));
        let g = GgufFile::open(&back).unwrap();
        assert!(
            all_codes(&g) == expected,
            "{name}: codes changed by transcoding back to I2_S"
        );
    }
}
