//! A packed offline variant of the tiny model (codes packed as transformers' `pack_weights`,
//! `weight_scale` = the absmean scale, AutoBitLinear's multiply convention) converts to
//! exactly the same file as the bf16 original.

mod common;

use std::collections::BTreeMap;

use bitnet_tools::convert::ternarise::pack_codes;
use bitnet_tools::convert::WeightType;
use common::*;

#[test]
fn packed_offline_variant_yields_identical_codes_and_scales() {
    let tmp = tempfile::tempdir().unwrap();
    let packed_dir = tmp.path().join("packed");
    copy_dir_files(&tiny_dir(), &packed_dir, TOKENIZER_FILES);
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_dir().join("config.json")).unwrap())
            .unwrap();
    cfg["quantization_config"]["quantization_mode"] = "offline".into();
    std::fs::write(packed_dir.join("config.json"), cfg.to_string()).unwrap();

    let st = read_safetensors(&tiny_dir().join("model.safetensors"));
    let mut out: BTreeMap<String, RawTensor> = BTreeMap::new();
    for (name, t) in &st {
        let is_projection = PROJECTIONS
            .iter()
            .any(|(hf, _)| name.ends_with(&format!("{hf}.weight")));
        if !is_projection {
            out.insert(name.clone(), t.clone());
            continue;
        }
        let (rows, cols) = (t.shape[0], t.shape[1]);
        let (codes, scale) = absmean_reference(&t.floats());
        let packed = pack_codes(&codes, rows, cols);
        // Check the packing against the layout description independently of the unpacker.
        assert_eq!(unpack_reference(&packed, rows / 4, cols), codes);
        out.insert(
            name.clone(),
            RawTensor {
                dtype: safetensors::Dtype::U8,
                shape: vec![rows / 4, cols],
                data: packed,
            },
        );
        out.insert(
            format!("{name}_scale"),
            RawTensor {
                dtype: safetensors::Dtype::F32,
                shape: vec![1],
                data: scale.to_le_bytes().to_vec(),
            },
        );
    }
    write_safetensors(&packed_dir.join("model.safetensors"), &out);

    for wt in [
        WeightType::I2s(Default::default()),
        WeightType::Tq2_0,
        WeightType::F32,
    ] {
        let a = tmp.path().join("from-bf16.gguf");
        let b = tmp.path().join("from-packed.gguf");
        run(&tiny_dir(), &a, wt, "tiny");
        run(&packed_dir, &b, wt, "tiny");
        let (a, b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        if wt != WeightType::F32 {
            assert!(a == b, "{wt:?}: outputs differ");
            continue;
        }
        // Only the latent weights know which zeros are negative (-0.0); packed codes give
        // +0.0. Tensor data is 32-byte aligned, so file words are the f32 values.
        assert_eq!(a.len(), b.len());
        let zero = |w: &[u8]| u32::from_le_bytes(w.try_into().unwrap()) & 0x7fff_ffff == 0;
        let mut signed = 0;
        for (wa, wb) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
            if wa != wb {
                assert!(
                    zero(wa) && zero(wb),
                    "F32: outputs differ beyond signed zeros"
                );
                assert_eq!(wb, [0u8; 4], "the packed variant has no negative zero");
                signed += 1;
            }
        }
        assert!(signed > 0, "F32 from latent weights keeps no -0.0");
    }
}
